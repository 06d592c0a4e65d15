package converge

import (
	"time"

	"github.com/convergedb/converge/crdt"
)

// syncTiming is what a replicator's namespaces share about when and how
// to sync: its options, with the defaults filled.
type syncTiming struct {
	debounce time.Duration // from a kick to the sync it asks for
	interval time.Duration // between periodic syncs
	// retryWait is the wait before the retry after n consecutive failed
	// syncs (n ≥ 1): the replicator's
	// backoff.Jitter's Wait(n-1).
	retryWait func(failures int) time.Duration
	// publishes says that the peer's live path publishes this replica's
	// commits itself: every sync starts with a vector exchange.
	publishes bool
}

// namespaceSync is the replicator's decisions for one namespace, kept
// apart from the goroutines that carry them out (in the manner of etcd's
// raft: a state machine its caller steps). The replicator steps it with
// each event and the time it happened; it asks it when the next
// background sync is due ([namespaceSync.Next]) and how a sync starts
// ([namespaceSync.Begin]). It reads no clock, starts no goroutine and does
// no I/O. It is not safe for concurrent use: the replicator guards it with
// its mutex.
//
// A background sync is due once one of its reasons is:
//   - a kick ([namespaceSync.Kick]: a local commit, Resume, a reconnection
//     of the live path, a gap in what the live stream delivered, changes
//     dropped by the replicator's subscription), debounce after the first
//     kick since the last background sync began, or, for a kick that came
//     while a background sync ran, debounce after that sync ends. With
//     no debounce (the default) a kick is due at once when idle, and the
//     kicks that come while a sync is in flight are batched into the one
//     sync that begins when it ends;
//   - the periodic tick, every interval from the start (ticks missed while
//     busy or paused are dropped, as a time.Ticker drops them);
//   - a retry after a failed background sync: after the n-th consecutive
//     failure, a wait drawn uniformly from [0, min(MaxBackoff,
//     MinBackoff·2ⁿ⁻¹)] (syncTiming.retryWait); [namespaceSync.Online]
//     (the peer is reachable again) makes a sync due at once and starts
//     the count over.
//
// A background sync that begins consumes every reason: it carries what
// came before it. Nothing is due while paused or while a background sync
// runs. A SyncNow ([namespaceSync.Begin] with background false) consumes
// no reason, and its failure schedules no retry; its outcome counts in the
// status and the peer bookkeeping all the same.
type namespaceSync struct {
	timing *syncTiming
	// status holds what the outcomes decide: State, LastSync, LastError
	// and Failures (the consecutive failed syncs, which the retry waits
	// grow with). [Replicator.Status] computes the rest.
	status Status

	paused             bool
	running            bool      // a background sync runs
	kickAt             time.Time // when the kicked sync is due; zero: no kick
	kickedWhileRunning bool      // a kick came while a background sync ran
	tickAt             time.Time // the next periodic sync
	retryAt            time.Time // when the retry is due; zero: none
	// streak counts the consecutive failed syncs the retry waits grow
	// with: status.Failures, but reset by Online (the backoff starts
	// over once the peer is known to be reachable again).
	streak int

	// peerVV is the peer's vector from the last sync that learned it:
	// what the peer acknowledged, and what a sync pushes from.
	peerVV crdt.VersionVector
	// exchange says that peerVV is stale: the next sync starts with a
	// vector exchange instead of pushing from it. A failed sync sets it
	// (its push may be what failed: pushing the same batch again would
	// fail again, every retry), and so does a live delivery (the peer
	// holds what it delivered; peerVV says it lacks it).
	exchange bool
	// peerID is the replica that answered the last sync whose responses
	// named it (zero until one does).
	peerID crdt.ReplicaID
}

// newNamespaceSync returns the decisions of namespace ns of a replicator
// opened at now: idle, with a sync kicked (a replicator syncs once when
// it opens) and the first tick an interval away.
func newNamespaceSync(ns string, timing *syncTiming, now time.Time) *namespaceSync {
	s := &namespaceSync{timing: timing, status: Status{Namespace: ns, State: StateIdle}, tickAt: now.Add(timing.interval)}
	s.Kick(now)
	return s
}

// Kick asks for a background sync: something happened at now that the
// peer should hear of, or that the peer may have more of.
func (s *namespaceSync) Kick(now time.Time) {
	if s.running {
		s.kickedWhileRunning = true // the sync running may have missed it
		return
	}
	if s.kickAt.IsZero() {
		s.kickAt = now.Add(s.timing.debounce) // later kicks join this one
	}
}

// Online records that the peer is reachable again at now (a probe of it
// succeeded after failing, its live path reconnected, or the app said the
// device is online): the backoff starts over and a sync is due at once,
// without the debounce (after the sync running, if one is).
func (s *namespaceSync) Online(now time.Time) {
	s.streak = 0
	s.retryAt = time.Time{}
	if s.running {
		s.kickedWhileRunning = true
		return
	}
	s.kickAt = now
}

// LiveApplied records that the live stream applied ops: the peer holds
// them, so the next sync starts with a vector exchange (pushing from the
// kept vector would send them back).
func (s *namespaceSync) LiveApplied() { s.exchange = true }

// Pause stops background syncs until Resume; the status says paused
// until then, whatever the syncs still running end with.
func (s *namespaceSync) Pause() {
	s.paused = true
	s.status.State = StatePaused
}

// Resume restarts background syncs, with a kick: what was committed
// while paused goes out. Reasons that came due while paused are due at
// once.
func (s *namespaceSync) Resume(now time.Time) {
	if s.paused {
		s.paused = false
		s.status.State = StateIdle
	}
	s.Kick(now)
}

// Next reports whether a background sync is due at now; if none is, wake
// is when one will be, barring new events (zero: none before an event,
// as while paused or while a background sync runs).
func (s *namespaceSync) Next(now time.Time) (due bool, wake time.Time) {
	if s.paused || s.running {
		return false, time.Time{}
	}
	wake = earliest(earliest(s.tickAt, s.kickAt), s.retryAt)
	if !wake.After(now) {
		return true, time.Time{}
	}
	return false, wake
}

// earliest returns the earlier of a and b, the zero time standing for
// never.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// Begin starts a sync at now, a background one or a SyncNow, and returns
// the vector its first round pushes from: nil starts with a vector
// exchange. ok is false, and nothing changes, for a background sync while
// paused (Pause may come between Next and Begin).
func (s *namespaceSync) Begin(now time.Time, background bool) (from crdt.VersionVector, ok bool) {
	if background {
		if s.paused {
			return nil, false
		}
		s.running = true
		s.kickAt, s.retryAt = time.Time{}, time.Time{}
		s.skipTicks(now)
	}
	if !s.paused {
		s.status.State = StateSyncing
	}
	from = s.peerVV
	if s.exchange || s.timing.publishes {
		from = nil
	}
	s.exchange = false
	return from, true
}

// skipTicks moves the next tick past now: a sync beginning now carries
// the ticks due.
func (s *namespaceSync) skipTicks(now time.Time) {
	if s.tickAt.After(now) {
		return
	}
	missed := now.Sub(s.tickAt)/s.timing.interval + 1
	s.tickAt = s.tickAt.Add(missed * s.timing.interval)
}

// syncOutcome is what a sync learned and how it ended.
type syncOutcome struct {
	peerVV crdt.VersionVector // the peer's vector, if the sync learned it
	peer   crdt.ReplicaID     // the peer that answered, if it said
	err    error
	// cancelled marks a background sync cut short by Pause or Close: not
	// a failure.
	cancelled bool
}

// Done records the outcome of the sync begun last, at now.
func (s *namespaceSync) Done(now time.Time, background bool, out syncOutcome) {
	if background {
		s.running = false
		if s.kickedWhileRunning {
			s.kickedWhileRunning = false
			s.Kick(now)
		}
	}
	if out.peerVV != nil {
		s.peerVV = out.peerVV
	}
	if !out.peer.IsZero() {
		s.peerID = out.peer
	}
	if out.err != nil {
		s.exchange = true
	}
	switch {
	case out.err != nil && out.cancelled:
		s.setState(StateIdle)
	case out.err != nil:
		s.setState(StateError)
		s.status.LastError = out.err
		s.status.Failures++
		s.streak++
		if background {
			s.retryAt = now.Add(s.timing.retryWait(s.streak))
		}
	default:
		s.setState(StateIdle)
		s.status.LastError, s.status.Failures, s.status.LastSync = nil, 0, now
		s.streak = 0
	}
}

// setState sets the status's state, but while paused (it says paused).
func (s *namespaceSync) setState(st SyncState) {
	if !s.paused {
		s.status.State = st
	}
}
