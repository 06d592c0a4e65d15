package converge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

// ErrPaused is returned by [Replicator.SyncNow] while the replicator is paused.
var ErrPaused = errors.New("converge: replication paused")

// ReplicatorOptions configure a [Replicator]. Zero fields get the defaults.
type ReplicatorOptions struct {
	// Namespaces to keep in sync. Required.
	Namespaces []string
	// Interval between periodic syncs of a namespace. Zero means 30s.
	Interval time.Duration
	// Debounce is how long a sync waits after a local commit for more
	// commits to join it. Zero means 20ms, or 1s with a peer whose live
	// path publishes this replica's commits itself
	// ([transport.Live].PublishesCommits: the sync confirms them).
	Debounce time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed sync, which
	// doubles with each failure, with full jitter. Zero means 500ms and 1m.
	MinBackoff, MaxBackoff time.Duration
	// Limits bound the pages of one sync.
	Limits transport.Limits
	// Logger receives sync events. Nil means the DB's logger.
	Logger *slog.Logger
}

// SyncResult reports one sync of one namespace.
//
// Sent and Rounds count the sync's own round trips. Received, Conflicts,
// Refused and Resolved count what this replicator applied to the namespace
// while the sync ran, from its first round to its last: the pages of the
// sync and whatever the live stream applied meanwhile (an op the live
// stream applies first comes to the sync as a duplicate, and is counted
// once). A sync starts once a background sync of the namespace in
// progress has finished; what that one applied is not counted.
type SyncResult struct {
	Namespace string
	Sent      int // ops the peer applied
	Received  int // ops this replica applied
	Conflicts int // conflicts detected in what was received
	// Refused counts the ops this replica refused to apply, the failed
	// ones: invalid here, beyond the clock bound, too large or malformed.
	// They are quarantined ([DB.Quarantine]), but for malformed ones, and
	// offered again by the next sync. Ops held back behind a gap or an
	// incomplete transaction are not counted: they apply once the missing
	// ops arrive.
	Refused int
	// Resolved counts the conflicts the DB's conflict policy resolved by
	// writing a resolution ([Options.ConflictPolicy]); with LastWriteWins
	// it is 0.
	Resolved int
	Rounds   int
	// Snapshots counts bootstraps from a snapshot of the peer's states
	// (this replica was behind the peer's compaction horizon), and
	// SnapshotRecords the record states they installed.
	Snapshots, SnapshotRecords int
	Duration                   time.Duration
	Err                        error
}

// SyncState says what a namespace's replication is doing.
type SyncState string

// Sync states.
const (
	StateIdle    SyncState = "idle"
	StateSyncing SyncState = "syncing"
	StatePaused  SyncState = "paused"
	StateError   SyncState = "error" // the last sync failed; retrying with backoff
)

// Status is the replication status of one namespace.
type Status struct {
	Namespace string
	State     SyncState
	// Pending is the number of this replica's own ops the peer has not
	// acknowledged: the offline queue. It is durable (the log is the
	// queue) and drains as syncs succeed. What peers acknowledged is
	// durable too ([DB.Peers]): a replicator reopened counts against it,
	// and until its first sync names the peer that answers, an op counts
	// as pending unless every peer that ever answered this DB's
	// replicators holds it.
	Pending uint64
	// LastSync is when the last successful sync finished (zero: never).
	LastSync time.Time
	// Lag is how long the oldest unacknowledged state has waited: the time
	// since the last successful sync while ops are pending, else 0.
	Lag time.Duration
	// LastError is the last sync's error, nil after a success.
	LastError error
	// Failures counts consecutive failed syncs.
	Failures int
	// Quarantined counts remote ops this replica refused to apply and
	// keeps for an operator ([DB.Quarantine]).
	Quarantined int
	// QuarantineWaiting counts the ops held back behind quarantined ones
	// (the later ops of their origins that known peers hold; see
	// [QuarantinedOp].Waiting).
	QuarantineWaiting uint64
}

// Health reports on the store and the peer.
type Health struct {
	Store error // nil when the store answers
	Peer  error // nil when the last sync (or the peer's own check) succeeded
}

// OK reports whether both the store and the peer are healthy.
func (h Health) OK() bool { return h.Store == nil && h.Peer == nil }

// Replicator keeps namespaces of a DB in sync with one peer, in the
// background: after local commits (debounced), periodically, and at once
// when it opens; with live pushes when the peer has a live path
// ([transport.Peer].Live). It is safe for concurrent use. Open it with
// [DB.OpenReplicator]. The DB owns it: [DB.Close] closes it first, if
// [Replicator.Close] has not.
type Replicator struct {
	db        *DB
	store     syncStore // the DB's, counting what this replicator applies
	tally     *applyTally
	peer      transport.Peer
	live      transport.Live // the peer's live path, or nil
	publishes bool           // live publishes local commits: syncs start with a vector exchange
	opts      ReplicatorOptions
	logger    *slog.Logger
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	kicks     map[string]chan struct{}
	locks     map[string]*sync.Mutex // one sync at a time per namespace

	mu struct {
		sync.Mutex
		paused    bool
		resumed   chan struct{}   // closed on Resume
		live      context.Context // live streams run in it; Pause cancels it
		pauseLive context.CancelFunc
		streaming int        // live streams running
		stopped   *sync.Cond // signalled when a live stream stops
		status    map[string]*Status
		peerVV    map[string]crdt.VersionVector // what the peer acknowledged last
		// exchange marks namespaces whose next sync starts with a vector
		// exchange instead of pushing from peerVV, which is stale: the
		// last sync failed (pushing from it again may fail again), or the
		// live stream delivered ops since (the peer holds them).
		exchange map[string]bool
		// peerID is the replica id of the peer that answered the last
		// sync of a namespace, when its responses named it.
		peerID map[string]crdt.ReplicaID
		rng    *rand.Rand
	}
	// watchers are the status streams' wake-ups (Statuses).
	watchers struct {
		sync.Mutex
		set map[chan struct{}]struct{}
	}
}

// OpenReplicator starts replicating opts.Namespaces of db with peer.
func (db *DB) OpenReplicator(peer transport.Peer, opts ReplicatorOptions) (*Replicator, error) {
	if peer == nil || len(opts.Namespaces) == 0 {
		return nil, fmt.Errorf("%w: a replicator needs a peer and namespaces", ErrInvalid)
	}
	for _, ns := range opts.Namespaces {
		if err := checkNamespace(ns); err != nil {
			return nil, err
		}
	}
	if opts.Interval <= 0 {
		opts.Interval = 30 * time.Second
	}
	live := peer.Live()
	publishes := live != nil && live.PublishesCommits()
	if opts.Debounce <= 0 {
		opts.Debounce = 20 * time.Millisecond
		if publishes {
			opts.Debounce = time.Second
		}
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = db.logger
	}
	r := &Replicator{db: db, peer: peer, live: live, publishes: publishes, opts: opts, logger: opts.Logger.With("component", "replicator"),
		kicks: make(map[string]chan struct{}), locks: make(map[string]*sync.Mutex)}
	r.tally = &applyTally{counts: make(map[string]applyCounts)}
	r.store = syncStore{db: db, tally: r.tally}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.mu.live, r.mu.pauseLive = context.WithCancel(r.ctx)
	r.mu.stopped = sync.NewCond(&r.mu.Mutex)
	r.mu.status = make(map[string]*Status)
	r.mu.peerVV = make(map[string]crdt.VersionVector)
	r.mu.exchange = make(map[string]bool)
	r.mu.peerID = make(map[string]crdt.ReplicaID)
	r.watchers.set = make(map[chan struct{}]struct{})
	r.mu.rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
	for _, ns := range opts.Namespaces {
		r.kicks[ns] = make(chan struct{}, 1)
		r.kicks[ns] <- struct{}{} // sync once at start
		r.locks[ns] = &sync.Mutex{}
		r.mu.status[ns] = &Status{Namespace: ns, State: StateIdle}
	}
	if err := db.own(r); err != nil {
		r.cancel()
		return nil, err
	}
	sub := db.Subscribe("") // before the loops start: no local commit is missed
	r.wg.Go(func() { r.watchCommits(sub) })
	if live != nil {
		stop := live.OnReconnect(func() {
			for _, k := range r.kicks {
				kick(k)
			}
		})
		context.AfterFunc(r.ctx, stop)
	}
	for _, ns := range opts.Namespaces {
		r.wg.Go(func() { r.loop(ns) })
		if live != nil {
			r.wg.Go(func() { r.stream(live, ns) })
		}
	}
	return r, nil
}

// watchCommits kicks a namespace's loop after each local commit to it. (A
// live path that publishes commits hears of them from the store itself.)
func (r *Replicator) watchCommits(sub *Subscription) {
	defer sub.Close()
	for {
		c, err := sub.Next(r.ctx)
		if err != nil && !errors.Is(err, ErrLagged) {
			return
		}
		if err != nil || c.Local {
			ns := c.Namespace
			if err != nil {
				// Changes were dropped: kick every namespace.
				for _, k := range r.kicks {
					kick(k)
				}
				continue
			}
			if k, ok := r.kicks[ns]; ok {
				kick(k)
			}
		}
	}
}

func kick(k chan struct{}) {
	select {
	case k <- struct{}{}:
	default:
	}
}

// loop runs the background syncs of one namespace.
func (r *Replicator) loop(ns string) {
	ticker := time.NewTicker(r.opts.Interval)
	defer ticker.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.kicks[ns]:
			// Let a burst of commits join this sync.
			if !r.sleep(r.opts.Debounce) {
				return
			}
			select {
			case <-r.kicks[ns]:
			default:
			}
		case <-ticker.C:
		case <-retry:
		}
		if resumed := r.pausedChan(); resumed != nil {
			select {
			case <-resumed:
			case <-r.ctx.Done():
				return
			}
		}
		// Background syncs run in the live context: Pause cancels one in
		// progress instead of waiting for it.
		r.mu.Lock()
		live := r.mu.live
		r.mu.Unlock()
		res := r.syncNamespace(live, ns, true)
		retry = nil
		if res.Err != nil && !errors.Is(res.Err, ErrPaused) && live.Err() == nil {
			r.logger.Warn("sync failed", "namespace", ns, "err", res.Err)
			retry = time.After(r.backoff(ns))
		}
	}
}

// stream applies the peer's live pushes to ns, reconnecting with backoff.
func (r *Replicator) stream(s transport.Live, ns string) {
	store := r.store
	have := func() crdt.VersionVector {
		vv, err := r.db.log.Vector(r.ctx, ns)
		if err != nil {
			return crdt.VersionVector{}
		}
		return vv
	}
	failures := 0
	for r.ctx.Err() == nil {
		r.mu.Lock()
		if r.mu.paused {
			resumed := r.mu.resumed
			r.mu.Unlock()
			select {
			case <-resumed:
			case <-r.ctx.Done():
				return
			}
			continue
		}
		live := r.mu.live
		r.mu.streaming++
		r.mu.Unlock()
		err := s.Stream(live, ns, have, func(ops [][]byte) error {
			failures = 0
			a, err := store.Apply(r.ctx, ns, ops)
			if err != nil {
				return err
			}
			if a.Applied > 0 {
				r.mu.Lock()
				r.mu.exchange[ns] = true // or the next sync pushes them back
				r.mu.Unlock()
			}
			if a.Refused > 0 {
				kick(r.kicks[ns]) // a gap: let anti-entropy fetch it
			}
			return nil
		})
		r.mu.Lock()
		r.mu.streaming--
		r.mu.stopped.Broadcast()
		r.mu.Unlock()
		if r.ctx.Err() != nil {
			return
		}
		if live.Err() != nil {
			continue // paused
		}
		failures++
		r.logger.Debug("live stream ended", "namespace", ns, "err", err)
		if !r.sleep(r.backoffN(failures)) {
			return
		}
	}
}

// sleep waits d or until the replicator closes; false means closed.
func (r *Replicator) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}

func (r *Replicator) backoff(ns string) time.Duration {
	r.mu.Lock()
	n := r.mu.status[ns].Failures
	r.mu.Unlock()
	return r.backoffN(n)
}

// backoffN is the wait after n consecutive failures: exponential from
// MinBackoff, capped at MaxBackoff, with full jitter.
func (r *Replicator) backoffN(n int) time.Duration {
	d := r.opts.MinBackoff
	for i := 1; i < n && d < r.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.opts.MaxBackoff)
	r.mu.Lock()
	j := time.Duration(r.mu.rng.Int64N(int64(d) + 1))
	r.mu.Unlock()
	return j
}

func (r *Replicator) pausedChan() chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.paused {
		return r.mu.resumed
	}
	return nil
}

// syncNamespace runs one sync of ns and records its outcome. A background
// sync (not SyncNow) does nothing while paused: Pause may have come between
// the loop's check and the lock.
func (r *Replicator) syncNamespace(ctx context.Context, ns string, background bool) SyncResult {
	lock := r.locks[ns]
	lock.Lock()
	defer lock.Unlock()
	if background && r.pausedChan() != nil {
		return SyncResult{Namespace: ns, Err: ErrPaused}
	}
	r.update(ns, func(s *Status) { s.State = StateSyncing })
	r.mu.Lock()
	peerVV := r.mu.peerVV[ns]
	if r.mu.exchange[ns] || r.publishes {
		// Start with a vector exchange: after a failure, pushing from the
		// kept vector may be what failed (the same stale batch again,
		// every retry); after live deliveries, or with a live path that
		// publishes, the vector no longer says what the peer lacks.
		peerVV = nil
	}
	delete(r.mu.exchange, ns)
	r.mu.Unlock()
	before := r.tally.get(ns)
	res, err := transport.Sync(ctx, r.store, r.peer, ns, transport.Options{Limits: r.opts.Limits, PeerVector: peerVV})
	applied := r.tally.get(ns).minus(before)
	out := SyncResult{Namespace: ns, Sent: res.Sent, Received: applied.Applied, Conflicts: applied.Conflicts,
		Refused: applied.Refused, Resolved: applied.Resolved, Rounds: res.Rounds,
		Snapshots: res.Snapshots, SnapshotRecords: res.SnapshotRecords, Duration: res.Duration, Err: err}
	now := time.Now()
	r.mu.Lock()
	if res.PeerVector != nil {
		r.mu.peerVV[ns] = res.PeerVector
	}
	if !res.Peer.IsZero() {
		r.mu.peerID[ns] = res.Peer
	}
	if err != nil {
		r.mu.exchange[ns] = true
	}
	r.mu.Unlock()
	r.notePeer(ns, res.Peer)
	r.update(ns, func(s *Status) {
		if err != nil && background && ctx.Err() != nil {
			s.State = StateIdle // cancelled by Pause or Close: not a failure
			return
		}
		if err != nil {
			s.State, s.LastError = StateError, err
			s.Failures++
			return
		}
		s.State, s.LastError, s.Failures, s.LastSync = StateIdle, nil, 0, now
	})
	if err == nil {
		r.logger.Debug("synced", "namespace", ns, "sent", res.Sent, "received", res.Received, "rounds", res.Rounds)
	}
	return out
}

// update changes ns's status and wakes the status watchers.
func (r *Replicator) update(ns string, fn func(*Status)) {
	r.mu.Lock()
	fn(r.mu.status[ns])
	r.mu.Unlock()
	r.wakeWatchers()
}

// SyncNow syncs ns with the peer at once and returns the result (see
// [SyncResult] for what its counts cover). It returns ErrPaused while the
// replicator is paused, and ErrClosed once it (or its DB) is closed.
func (r *Replicator) SyncNow(ctx context.Context, ns string) (SyncResult, error) {
	if _, ok := r.locks[ns]; !ok {
		return SyncResult{}, fmt.Errorf("%w: namespace %q is not replicated", ErrInvalid, ns)
	}
	if r.ctx.Err() != nil {
		err := fmt.Errorf("converge: sync %q: replicator closed: %w", ns, ErrClosed)
		return SyncResult{Namespace: ns, Err: err}, err
	}
	if r.pausedChan() != nil {
		return SyncResult{Namespace: ns, Err: ErrPaused}, ErrPaused
	}
	res := r.syncNamespace(ctx, ns, false)
	return res, res.Err
}

// Pause stops background syncs and live pushes until Resume. It cancels a
// background sync in progress (a SyncNow in progress finishes first) and
// waits for live streams to stop: once it returns, nothing from the peer is
// applied until Resume. Local writes go on, and queue in the log.
func (r *Replicator) Pause() {
	r.mu.Lock()
	if !r.mu.paused {
		r.mu.paused = true
		r.mu.resumed = make(chan struct{})
		r.mu.pauseLive()
	}
	for r.mu.streaming > 0 && r.mu.paused { // a concurrent Resume ends the wait
		r.mu.stopped.Wait()
	}
	r.mu.Unlock()
	for _, ns := range r.opts.Namespaces {
		r.locks[ns].Lock() // a sync in progress finishes first
		r.update(ns, func(s *Status) { s.State = StatePaused })
		r.locks[ns].Unlock()
	}
}

// Resume restarts background syncs and syncs every namespace at once.
func (r *Replicator) Resume() {
	r.mu.Lock()
	if r.mu.paused {
		r.mu.paused = false
		r.mu.live, r.mu.pauseLive = context.WithCancel(r.ctx)
		close(r.mu.resumed)
	}
	r.mu.Unlock()
	for _, ns := range r.opts.Namespaces {
		r.update(ns, func(s *Status) {
			if s.State == StatePaused {
				s.State = StateIdle
			}
		})
		kick(r.kicks[ns])
	}
}

// Health checks the store and the peer: the store by reading a vector, the
// peer by its own check ([transport.Peer].Health), or by the last sync
// when it has none.
func (r *Replicator) Health(ctx context.Context) Health {
	var h Health
	if _, err := r.db.log.Vector(ctx, r.opts.Namespaces[0]); err != nil {
		h.Store = err
	}
	if err := r.peer.Health(ctx); !errors.Is(err, errors.ErrUnsupported) {
		h.Peer = err
		return h
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ns := range r.opts.Namespaces {
		if err := r.mu.status[ns].LastError; err != nil {
			h.Peer = err
		}
	}
	return h
}

// Close stops the replicator and waits for its goroutines, or until ctx
// ends (then it returns ctx's error and they finish on their own). Closing
// a replicator twice, or after its DB (which closed it), does nothing.
func (r *Replicator) Close(ctx context.Context) error {
	r.db.disown(r)
	r.cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("converge: close replicator: %w", ctx.Err())
	}
}

// stop stops the replicator and waits for its goroutines: the DB calls it
// as it closes.
func (r *Replicator) stop() {
	r.cancel()
	r.wg.Wait()
}
