package converge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/backoff"
	"github.com/convergedb/converge/internal/ratelog"
	"github.com/convergedb/converge/transport"
)

// ReplicatorOptions configure a [Replicator]. Zero fields get the defaults.
type ReplicatorOptions struct {
	// Namespaces to keep in sync from the start. More can be added and
	// removed while the replicator runs ([Replicator.AddNamespace],
	// [Replicator.RemoveNamespace]): a user logs in or out.
	Namespaces []string
	// Interval between periodic syncs of a namespace. Zero means 30s.
	Interval time.Duration
	// Debounce is how long a sync waits after a local commit for more
	// commits to join it. Zero means none: an idle replicator syncs a
	// commit at once, and the commits made while a sync is in flight go
	// out together in the next, as soon as it ends (batching comes from
	// the peer's own latency, never from a fixed wait). With a peer whose
	// live path publishes this replica's commits itself
	// ([transport.Live].PublishesCommits: the sync only confirms them),
	// zero means 1s.
	Debounce time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed background
	// sync, which doubles with each consecutive failure, with full jitter:
	// after the n-th, a wait drawn uniformly from [0, min(MaxBackoff,
	// MinBackoff·2ⁿ⁻¹)]. A live stream that ends is reopened after such
	// waits too. Zero means 500ms and 1m.
	MinBackoff, MaxBackoff time.Duration
	// ProbeInterval is how often the replicator checks that the peer is
	// reachable ([transport.Peer].Health) while syncs fail or a live
	// stream waits to reconnect. When a check succeeds after one failed,
	// the backoff starts over and every namespace syncs at once (as
	// [Replicator.NotifyOnline]): sync resumes within about ProbeInterval
	// of the peer coming back, however long the backoff had grown. A
	// peer with no check of its own (errors.ErrUnsupported) is not
	// probed. A check is not a sync: a failed one changes neither the
	// backoff nor Status.Failures, which count syncs only. Zero means 1s;
	// negative means no probing.
	ProbeInterval time.Duration
	// Limits bound the pages of one sync.
	Limits transport.Limits
	// Logger receives sync events. Nil means the DB's logger.
	Logger *slog.Logger
	// FailureLogInterval bounds how often repeated failures of a
	// namespace's background syncs are logged (being offline is normal
	// for an edge device): the first failure at once, then one line per
	// interval with the count, and the recovery (internal/ratelog). Zero
	// means 5 minutes.
	FailureLogInterval time.Duration
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
	// RequestID is the id the sync's requests carried (the peer logs
	// it: HTTP's X-Converge-Request-Id), as the replicator's logs of the
	// sync do: the id of ctx ([transport.WithRequestID]) if it carries
	// one, else "<replica id>-<n>", n counting this replicator's syncs.
	RequestID string
	Sent      int // ops the peer applied
	Received  int // ops this replica applied
	Conflicts int // conflicts detected in what was received
	// Refused counts the ops this replica refused to apply, the failed
	// ones: invalid here, beyond the clock bound, too large or malformed.
	// They are quarantined ([Admin.Quarantine]), but for malformed ones, and
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
	// durable too ([Admin.Peers]): a replicator reopened counts against it,
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
	// keeps for an operator ([Admin.Quarantine]).
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
// background: after local commits (at once when idle; see Debounce), periodically, and at once
// when it opens; with live pushes when the peer has a live path
// ([transport.Peer].Live). It is safe for concurrent use. Open it with
// [DB.OpenReplicator]. The DB owns it: [DB.Close] closes it first, if
// [Replicator.Close] has not.
//
// What it decides, per namespace (when to sync, how a sync starts, the
// status), is a namespaceSync value, stepped under mu; its goroutines
// only carry the decisions out: a loop per namespace that waits until
// the next sync is due and runs it, a live stream per namespace, and one
// watcher of local commits.
type Replicator struct {
	db     *DB
	store  syncStore // the DB's, counting what this replicator applies
	tally  *applyTally
	peer   transport.Peer
	live   transport.Live // the peer's live path, or nil
	timing *syncTiming
	// retries are the waits after failed syncs and live streams that
	// ended: MinBackoff to MaxBackoff, with full jitter.
	retries *backoff.Jitter
	opts    ReplicatorOptions
	logger  *slog.Logger
	// failures logs runs of failed background syncs at a bounded rate.
	failures *ratelog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// set holds the replicated namespaces' wake-ups, sync locks and
	// contexts. RemoveNamespace takes one out; Close marks it closed, and
	// nothing is added after that.
	set struct {
		sync.RWMutex
		m      map[string]*replicatedNamespace
		closed bool
	}
	// probeWake wakes the prober: a sync failed or a live stream ended.
	probeWake chan struct{}
	syncs     atomic.Uint64 // syncs begun, numbering their labels

	mu struct {
		sync.Mutex
		paused    bool
		resumed   chan struct{}   // closed on Resume
		live      context.Context // live streams run in it; Pause cancels it
		pauseLive context.CancelFunc
		streaming int        // live streams running
		stopped   *sync.Cond // signalled when a live stream stops
		// plans are the namespaces' decisions and statuses.
		plans map[string]*namespaceSync
		// online is closed (and replaced) when the peer is known to be
		// reachable again: live streams waiting to reconnect stop waiting.
		online chan struct{}
		// reconnecting counts the live streams waiting to reconnect.
		reconnecting int
	}
	// watchers are the status streams' wake-ups (Statuses).
	watchers struct {
		sync.Mutex
		set map[chan struct{}]struct{}
	}
}

// replicatedNamespace is what a replicator's goroutines share about one
// namespace.
type replicatedNamespace struct {
	wake chan struct{} // wakes the namespace's loop: its plan changed
	sync sync.Mutex    // held by the sync running: one at a time
	// ctx ends when the namespace is removed (or the replicator closes);
	// its goroutines, counted by wg, end with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// OpenReplicator starts replicating opts.Namespaces of db with peer.
func (db *DB) OpenReplicator(peer transport.Peer, opts ReplicatorOptions) (*Replicator, error) {
	if peer == nil {
		return nil, fmt.Errorf("%w: a replicator needs a peer", ErrInvalid)
	}
	for _, ns := range opts.Namespaces {
		if err := checkNamespace(ns); err != nil {
			return nil, err
		}
	}
	r := newReplicator(db, peer, opts)
	if err := db.own(r); err != nil {
		r.cancel()
		return nil, err
	}
	r.start()
	return r, nil
}

// withDefaults returns opts with the defaults filled, for a peer whose
// live path publishes this replica's commits (publishes) or not.
func (opts ReplicatorOptions) withDefaults(publishes bool, logger *slog.Logger) ReplicatorOptions {
	if opts.Interval <= 0 {
		opts.Interval = 30 * time.Second
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 0
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
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = logger
	}
	return opts
}

// newReplicator returns the replicator of opts, its goroutines not yet
// started.
func newReplicator(db *DB, peer transport.Peer, opts ReplicatorOptions) *Replicator {
	live := peer.Live()
	publishes := live != nil && live.PublishesCommits()
	opts = opts.withDefaults(publishes, db.logger)
	r := &Replicator{db: db, peer: peer, live: live, opts: opts, logger: opts.Logger.With("component", "replicator"),
		probeWake: make(chan struct{}, 1)}
	r.set.m = make(map[string]*replicatedNamespace)
	r.failures = ratelog.New(r.logger, opts.FailureLogInterval)
	r.retries = backoff.New(backoff.Policy{Min: opts.MinBackoff, Max: opts.MaxBackoff}, nil)
	r.timing = &syncTiming{debounce: opts.Debounce, interval: opts.Interval, publishes: publishes,
		retryWait: func(failures int) time.Duration { return r.retries.Wait(failures - 1) }}
	r.tally = &applyTally{counts: make(map[string]applyCounts)}
	r.store = syncStore{db: db, tally: r.tally}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.mu.live, r.mu.pauseLive = context.WithCancel(r.ctx)
	r.mu.stopped = sync.NewCond(&r.mu.Mutex)
	r.mu.plans = make(map[string]*namespaceSync)
	r.mu.online = make(chan struct{})
	r.watchers.set = make(map[chan struct{}]struct{})
	return r
}

// start starts the replicator's goroutines.
func (r *Replicator) start() {
	sub := r.db.Subscribe("") // before the loops start: no local commit is missed
	r.wg.Go(func() { r.watchCommits(sub) })
	if r.live != nil {
		stop := r.live.OnReconnect(r.NotifyOnline)
		context.AfterFunc(r.ctx, stop)
	}
	if r.opts.ProbeInterval > 0 {
		r.wg.Go(r.probe)
	}
	for _, ns := range r.opts.Namespaces {
		r.add(ns)
	}
}

// AddNamespace starts replicating ns (a user logged in): it syncs at once
// and then as the others do. Adding a namespace already replicated does
// nothing. It returns ErrClosed once the replicator is closed.
func (r *Replicator) AddNamespace(ns string) error {
	if err := checkNamespace(ns); err != nil {
		return err
	}
	if !r.add(ns) {
		return fmt.Errorf("converge: add namespace %q: replicator closed: %w", ns, ErrClosed)
	}
	r.wakeWatchers()
	return nil
}

// add starts replicating ns, unless it is already; false means closed.
func (r *Replicator) add(ns string) bool {
	r.set.Lock()
	defer r.set.Unlock()
	if r.set.closed {
		return false
	}
	if _, ok := r.set.m[ns]; ok {
		return true
	}
	rn := &replicatedNamespace{wake: make(chan struct{}, 1)}
	rn.ctx, rn.cancel = context.WithCancel(r.ctx)
	r.set.m[ns] = rn
	r.mu.Lock()
	plan := newNamespaceSync(ns, r.timing, time.Now())
	if r.mu.paused {
		plan.Pause()
	}
	r.mu.plans[ns] = plan
	r.mu.Unlock()
	r.wg.Add(1)
	rn.wg.Go(func() { defer r.wg.Done(); r.loop(ns, rn) })
	if r.live != nil {
		r.wg.Add(1)
		rn.wg.Go(func() { defer r.wg.Done(); r.stream(r.live, ns, rn) })
	}
	return true
}

// RemoveNamespace stops replicating ns (a user logged out): it cancels a
// background sync of ns in progress and the live stream, and waits for
// them, or until ctx ends (then it returns ctx's error and they finish on
// their own). A SyncNow of ns in progress finishes; later ones fail. The
// namespace's data stays in the DB ([DB.Reset] wipes it). Removing a
// namespace not replicated does nothing.
func (r *Replicator) RemoveNamespace(ctx context.Context, ns string) error {
	r.set.Lock()
	rn, ok := r.set.m[ns]
	delete(r.set.m, ns)
	r.set.Unlock()
	if !ok {
		return nil
	}
	rn.cancel()
	r.mu.Lock()
	delete(r.mu.plans, ns)
	r.mu.Unlock()
	r.wakeWatchers()
	done := make(chan struct{})
	go func() { rn.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("converge: remove namespace %q: %w", ns, ctx.Err())
	}
}

// Namespaces returns the namespaces replicated now, sorted.
func (r *Replicator) Namespaces() []string {
	r.set.RLock()
	defer r.set.RUnlock()
	return slices.Sorted(maps.Keys(r.set.m))
}

// namespace returns what the goroutines share about ns, if replicated.
func (r *Replicator) namespace(ns string) (*replicatedNamespace, bool) {
	r.set.RLock()
	defer r.set.RUnlock()
	rn, ok := r.set.m[ns]
	return rn, ok
}

// watchCommits kicks a namespace's sync after each local commit to it. (A
// live path that publishes commits hears of them from the store itself.)
func (r *Replicator) watchCommits(sub *Subscription) {
	defer sub.Close()
	for {
		c, err := sub.Next(r.ctx)
		switch {
		case errors.Is(err, ErrLagged):
			r.kickAll() // changes were dropped
		case err != nil:
			return
		case c.Local:
			r.kick(c.Namespace)
		}
	}
}

// kick asks for a background sync of ns (if it is replicated).
func (r *Replicator) kick(ns string) {
	r.step(ns, func(s *namespaceSync, now time.Time) { s.Kick(now) })
}

// kickAll asks for a background sync of every namespace.
func (r *Replicator) kickAll() {
	for _, ns := range r.Namespaces() {
		r.kick(ns)
	}
}

// step applies an event to ns's decisions at the time now, then wakes
// ns's loop (when its next sync is due may have changed) and, if the
// status changed, the status streams. It does nothing for a namespace
// not replicated.
func (r *Replicator) step(ns string, event func(s *namespaceSync, now time.Time)) {
	rn, ok := r.namespace(ns)
	if !ok {
		return
	}
	r.mu.Lock()
	s, ok := r.mu.plans[ns]
	if !ok { // removed meanwhile
		r.mu.Unlock()
		return
	}
	before := s.status
	event(s, time.Now())
	changed := !sameStatus(before, s.status)
	r.mu.Unlock()
	signal(rn.wake)
	if changed {
		r.wakeWatchers()
	}
}

// signal sends on a wake-up channel of capacity 1 without blocking: a
// wake-up already pending stands for both.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// loop runs the background syncs of ns: it waits until one is due, or
// for an event that may change when, and runs it, until ns is removed.
func (r *Replicator) loop(ns string, rn *replicatedNamespace) {
	for rn.ctx.Err() == nil {
		r.mu.Lock()
		plan, ok := r.mu.plans[ns]
		var due bool
		var wake time.Time
		if ok {
			due, wake = plan.Next(time.Now())
		}
		r.mu.Unlock()
		if due {
			r.backgroundSync(ns, rn)
		} else if !waitUntil(rn.ctx, wake, rn.wake) {
			return
		}
	}
}

// waitUntil waits until the time wake (zero: no time), for a wake-up on
// c, or until ctx ends; false means ctx ended.
func waitUntil(ctx context.Context, wake time.Time, c <-chan struct{}) bool {
	var timeout <-chan time.Time
	if !wake.IsZero() {
		t := time.NewTimer(time.Until(wake))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-c:
	case <-timeout:
	}
	return true
}

// liveContext returns the context background syncs and live streams of
// ns run in: it ends on Pause, on Close and when ns is removed. Call
// stop when done with it.
func (r *Replicator) liveContext(rn *replicatedNamespace) (ctx context.Context, stop func()) {
	r.mu.Lock()
	live := r.mu.live
	r.mu.Unlock()
	ctx, cancel := context.WithCancel(live)
	unhook := context.AfterFunc(rn.ctx, cancel)
	return ctx, func() { unhook(); cancel() }
}

// backgroundSync runs a background sync of ns. It runs in the live
// context: Pause (or RemoveNamespace) cancels a background sync in
// progress instead of waiting for it.
func (r *Replicator) backgroundSync(ns string, rn *replicatedNamespace) {
	live, stop := r.liveContext(rn)
	defer stop()
	res := r.syncNamespace(live, ns, true)
	switch {
	case res.Err == nil:
		r.failures.Success(ns, "sync recovered", "namespace", ns)
	case !errors.Is(res.Err, ErrPaused) && live.Err() == nil:
		r.failures.Failure(ns, "sync failed", res.Err, "namespace", ns, "request_id", res.RequestID)
	}
}

// stream applies the peer's live pushes to ns, reconnecting with backoff,
// until ns is removed.
func (r *Replicator) stream(s transport.Live, ns string, rn *replicatedNamespace) {
	failures := 0 // consecutive streams that ended without applying anything
	for {
		if !r.startStream(rn) {
			return
		}
		live, stop := r.liveContext(rn)
		err := s.Stream(live, ns, r.vectorOf(ns), func(ops [][]byte) error {
			failures = 0
			return r.applyLive(ns, ops)
		})
		paused := live.Err() != nil // paused, removed or closed
		stop()
		r.mu.Lock()
		r.mu.streaming--
		r.mu.stopped.Broadcast()
		r.mu.Unlock()
		if rn.ctx.Err() != nil {
			return
		}
		if paused {
			continue
		}
		failures++
		r.logger.Debug("live stream ended", "namespace", ns, "err", err)
		if r.awaitReconnect(rn, r.retries.Wait(failures-1)) {
			failures = 0
		}
		if rn.ctx.Err() != nil {
			return
		}
	}
}

// awaitReconnect waits d before a live stream of rn's namespace is
// reopened, or until the peer is known to be reachable again (online:
// true, the backoff starts over), or until the namespace is removed.
func (r *Replicator) awaitReconnect(rn *replicatedNamespace, d time.Duration) (online bool) {
	r.mu.Lock()
	r.mu.reconnecting++
	woken := r.mu.online
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.mu.reconnecting--
		r.mu.Unlock()
	}()
	signal(r.probeWake)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-woken:
		return true
	case <-rn.ctx.Done():
	}
	return false
}

// startStream waits while the replicator is paused, then counts a live
// stream starting; false means the namespace was removed (or the
// replicator closed).
func (r *Replicator) startStream(rn *replicatedNamespace) bool {
	for rn.ctx.Err() == nil {
		r.mu.Lock()
		if !r.mu.paused {
			r.mu.streaming++
			r.mu.Unlock()
			return true
		}
		resumed := r.mu.resumed
		r.mu.Unlock()
		select {
		case <-resumed:
		case <-rn.ctx.Done():
		}
	}
	return false
}

// vectorOf returns a func reading this replica's vector of ns, for the
// live stream's have: an empty vector if it cannot be read.
func (r *Replicator) vectorOf(ns string) func() crdt.VersionVector {
	return func() crdt.VersionVector {
		vv, err := r.db.log.Vector(r.ctx, ns)
		if err != nil {
			return crdt.VersionVector{}
		}
		return vv
	}
}

// applyLive applies ops the live stream delivered to ns.
func (r *Replicator) applyLive(ns string, ops [][]byte) error {
	a, err := r.store.Apply(r.ctx, ns, ops)
	if err != nil {
		return err
	}
	if a.Applied > 0 {
		r.step(ns, func(s *namespaceSync, _ time.Time) { s.LiveApplied() })
	}
	if a.Refused > 0 {
		r.kick(ns) // a gap: let anti-entropy fetch it
	}
	return nil
}

// syncNamespace runs one sync of ns and records its outcome. A background
// sync (not SyncNow) does nothing while paused: Pause may have come
// between the loop's decision and the lock.
func (r *Replicator) syncNamespace(ctx context.Context, ns string, background bool) SyncResult {
	rn, ok := r.namespace(ns)
	if !ok {
		return SyncResult{Namespace: ns, Err: notReplicated(ns)}
	}
	rn.sync.Lock()
	defer rn.sync.Unlock()
	var from crdt.VersionVector
	ok = false
	r.step(ns, func(s *namespaceSync, now time.Time) { from, ok = s.Begin(now, background) })
	if !ok {
		if _, still := r.namespace(ns); !still {
			return SyncResult{Namespace: ns, Err: notReplicated(ns)}
		}
		return SyncResult{Namespace: ns, Err: ErrPaused}
	}
	ctx, id := r.label(ctx, ns)
	before := r.tally.get(ns)
	res, err := transport.Sync(ctx, r.store, r.peer, ns, transport.Options{Limits: r.opts.Limits, PeerVector: from})
	applied := r.tally.get(ns).minus(before)
	r.notePeer(ns, res.Peer)
	out := syncOutcome{peerVV: res.PeerVector, peer: res.Peer, err: err, cancelled: background && ctx.Err() != nil}
	r.step(ns, func(s *namespaceSync, now time.Time) { s.Done(now, background, out) })
	if err != nil && !out.cancelled {
		signal(r.probeWake)
	}
	if !out.cancelled {
		r.db.syncs.done(ns, err) // for DB.Synced and the watches
	}
	if err == nil {
		r.logger.Debug("synced", append([]any{"namespace", ns, "sent", res.Sent, "received", res.Received, "rounds", res.Rounds},
			transport.LogAttrs(ctx)...)...)
	}
	return SyncResult{Namespace: ns, RequestID: id, Sent: res.Sent, Received: applied.Applied, Conflicts: applied.Conflicts,
		Refused: applied.Refused, Resolved: applied.Resolved, Rounds: res.Rounds,
		Snapshots: res.Snapshots, SnapshotRecords: res.SnapshotRecords, Duration: res.Duration, Err: storeErr(err)}
}

// SyncNow syncs ns with the peer at once and returns the result (see
// [SyncResult] for what its counts cover). It returns ErrPaused while the
// replicator is paused, and ErrClosed once it (or its DB) is closed.
func (r *Replicator) SyncNow(ctx context.Context, ns string) (SyncResult, error) {
	if _, ok := r.namespace(ns); !ok {
		return SyncResult{}, notReplicated(ns)
	}
	if r.ctx.Err() != nil {
		err := errorf("converge: sync %q: replicator closed: %w", ns, ErrClosed)
		return SyncResult{Namespace: ns, Err: err}, err
	}
	if r.isPaused() {
		return SyncResult{Namespace: ns, Err: ErrPaused}, ErrPaused
	}
	res := r.syncNamespace(ctx, ns, false)
	return res, res.Err
}

// label returns ctx labelled for a sync of ns ("sync/ns#n" under ctx's
// label chain) with a request id (ctx's, if it carries one), and the id.
func (r *Replicator) label(ctx context.Context, ns string) (context.Context, string) {
	n := r.syncs.Add(1)
	id := transport.RequestID(ctx)
	if id == "" {
		id = r.db.ReplicaID() + "-" + strconv.FormatUint(n, 10)
		ctx = transport.WithRequestID(ctx, id)
	}
	return transport.WithLabel(ctx, "sync/"+ns+"#"+strconv.FormatUint(n, 10)), id
}

// notReplicated is the error of a call naming a namespace the replicator
// does not replicate.
func notReplicated(ns string) error {
	return fmt.Errorf("%w: namespace %q is not replicated", ErrInvalid, ns)
}

func (r *Replicator) isPaused() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.paused
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
		for _, s := range r.mu.plans {
			s.Pause()
		}
	}
	for r.mu.streaming > 0 && r.mu.paused { // a concurrent Resume ends the wait
		r.mu.stopped.Wait()
	}
	r.mu.Unlock()
	r.wakeWatchers() // the states say paused
	r.set.RLock()
	set := slices.Collect(maps.Values(r.set.m))
	r.set.RUnlock()
	for _, rn := range set {
		// A sync in progress finishes first: taking its lock waits for it.
		rn.sync.Lock()
		//lint:ignore SA2001 the critical section is the wait itself
		rn.sync.Unlock()
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
	for _, ns := range r.Namespaces() {
		r.step(ns, func(s *namespaceSync, now time.Time) { s.Resume(now) })
	}
}

// Health checks the store and the peer: the store by reading a vector and
// by its disk fault, if any ([oplog.Log.DiskFault]), the
// peer by its own check ([transport.Peer].Health), or by the last sync
// when it has none.
func (r *Replicator) Health(ctx context.Context) Health {
	var h Health
	if _, err := r.db.log.Namespaces(ctx); err != nil {
		h.Store = storeErr(err)
	} else if err := r.db.log.DiskFault(); err != nil {
		h.Store = storeErr(err) // writes fail or stall (reads work)
	}
	if err := r.peer.Health(ctx); !errors.Is(err, errors.ErrUnsupported) {
		h.Peer = err
		return h
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ns := range slices.Sorted(maps.Keys(r.mu.plans)) {
		if err := r.mu.plans[ns].status.LastError; err != nil {
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
	r.shut()
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
	r.shut()
	r.wg.Wait()
}

// shut marks the replicator closed (no namespace is added after) and
// cancels its goroutines.
func (r *Replicator) shut() {
	r.set.Lock()
	r.set.closed = true
	r.set.Unlock()
	r.cancel()
}
