package converge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
	"golang.org/x/time/rate"
)

// CompactionOptions configure log compaction. The zero value compacts
// every namespace in the background every 10 minutes, at up to 50,000 ops
// a second, keeping the latest 10,000 changes of each change feed.
//
// Compaction folds the ops every known peer holds (the stable vector)
// into base states and drops them from the log, so the store grows with
// the data, not with its history. A replica that has never synced a
// namespace with a peer compacts nothing of it: its writes must reach a
// peer first. A peer that later asks for compacted ops bootstraps from a
// snapshot. See docs/OPERATIONS.md.
type CompactionOptions struct {
	// Disabled turns the background compaction off; [Admin.Compact] still
	// works.
	Disabled bool
	// Interval between background compactions. Zero means 10 minutes.
	Interval time.Duration
	// Rate bounds the ops folded per second in the background. Zero means
	// 50,000.
	Rate int
	// FeedRetention is how many of the latest changes of each
	// namespace's change feed compaction keeps. Zero means 10,000;
	// negative keeps every change.
	FeedRetention int
	// OnCompact, if set, is called after each background compaction of a
	// namespace (not after [DB.Compact]), with what it did and its error,
	// nil on success: the hook for metrics. It runs on the compactor's
	// goroutine and must not block for long.
	OnCompact func(st CompactStats, err error)
	// PeerLease is how long a peer that does not sync a namespace stays
	// known: past it the peer is forgotten (see [Admin.ForgetPeer]) and no
	// longer holds compaction back. A device that comes back later
	// bootstraps from a snapshot if it lacks compacted ops; the writes it
	// made meanwhile still go up. Zero means peers never expire.
	PeerLease time.Duration
}

func (o CompactionOptions) withDefaults() CompactionOptions {
	if o.Interval <= 0 {
		o.Interval = 10 * time.Minute
	}
	if o.Rate <= 0 {
		o.Rate = 50_000
	}
	return o
}

// CompactStats reports one compaction of one namespace.
type CompactStats struct {
	Namespace string
	// Ops dropped from the log, and base states written.
	Ops, Records int
	// FeedTrimmed counts change feed entries dropped.
	FeedTrimmed int
	// Horizon is the compaction horizon after it: origin replica id →
	// the ops folded and dropped.
	Horizon map[string]uint64
}

func compactStats(st oplog.CompactStats) CompactStats {
	return CompactStats{Namespace: st.Namespace, Ops: st.Ops, Records: st.Records, FeedTrimmed: st.FeedTrimmed, Horizon: vectorMap(st.After)}
}

func vectorMap(vv crdt.VersionVector) map[string]uint64 {
	out := make(map[string]uint64, len(vv))
	for o, seq := range vv {
		out[o.String()] = seq
	}
	return out
}

// Compact compacts namespace ns now, at full speed: it folds the ops every
// known peer holds into base states, drops them from the log and returns
// the disk space. Writers are never blocked for more than one commit.
func (a *Admin) Compact(ctx context.Context, ns string) (CompactStats, error) {
	if err := checkNamespace(ns); err != nil {
		return CompactStats{}, err
	}
	st, err := a.db.log.Compact(ctx, ns, oplog.CompactOptions{Reclaim: true})
	if err != nil {
		return compactStats(st), storeErr(fmt.Errorf("converge: compact %q: %w", ns, err))
	}
	return compactStats(st), nil
}

// Horizon returns the compaction horizon of ns: origin replica id → the
// ops folded into base states and dropped from the log.
func (a *Admin) Horizon(ctx context.Context, ns string) (map[string]uint64, error) {
	h, err := a.db.log.Horizon(ctx, ns)
	if err != nil {
		return nil, storeErr(fmt.Errorf("converge: horizon %q: %w", ns, err))
	}
	return vectorMap(h), nil
}

// compactor runs background compactions until stopped.
type compactor struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func (db *DB) startCompactor(opts CompactionOptions) *compactor {
	ctx, cancel := context.WithCancel(context.Background())
	c := &compactor{cancel: cancel}
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		t := time.NewTicker(opts.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			db.compactAll(ctx, opts.Rate)
		}
	}()
	return c
}

func (c *compactor) stop() {
	c.cancel()
	c.done.Wait()
}

// compactAll compacts once, paced to rate ops a second, the namespaces
// that changed (a commit, a peer's acknowledgement) since the last pass:
// a pass costs in proportion to them, not to the namespaces held. The
// first pass, and one every lease period when peers expire (an expiry
// may free ops of a namespace that did not change), take every
// namespace.
func (db *DB) compactAll(ctx context.Context, rate int) {
	nss, err := db.compactionDue(ctx)
	if err != nil {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, oplog.ErrClosed) {
			db.logger.Warn("background compaction: list namespaces", "err", err)
		}
		return
	}
	pace := newPacer(rate)
	for _, ns := range nss {
		st, err := db.log.Compact(ctx, ns, oplog.CompactOptions{Wait: pace.wait, Reclaim: true})
		if errors.Is(err, context.Canceled) || errors.Is(err, oplog.ErrClosed) {
			return
		}
		if hook := db.opts.Compaction.OnCompact; hook != nil {
			hook(compactStats(st), err)
		}
		switch {
		case err != nil:
			db.markDirty(ns) // try again next pass
			db.logger.Warn("background compaction failed", "namespace", ns, "err", err)
		case st.Ops > 0:
			db.logger.Info("compacted", "namespace", ns, "ops", st.Ops, "records", st.Records, "feed_trimmed", st.FeedTrimmed)
		}
	}
}

// dirtySet is the namespaces changed since the last background pass.
type dirtySet struct {
	sync.Mutex
	primed   bool // a full pass ran
	lastFull time.Time
	set      map[string]struct{}
}

func (db *DB) markDirty(ns string) {
	db.dirty.Lock()
	if db.dirty.set == nil {
		db.dirty.set = make(map[string]struct{})
	}
	db.dirty.set[ns] = struct{}{}
	db.dirty.Unlock()
}

// compactionDue takes the namespaces a background pass compacts.
func (db *DB) compactionDue(ctx context.Context) ([]string, error) {
	db.dirty.Lock()
	lease := db.opts.Compaction.PeerLease
	full := !db.dirty.primed || lease > 0 && time.Since(db.dirty.lastFull) >= lease
	set := db.dirty.set
	db.dirty.set = nil
	if full {
		db.dirty.primed, db.dirty.lastFull = true, time.Now()
	}
	db.dirty.Unlock()
	if full {
		return db.log.Namespaces(ctx)
	}
	return slices.Sorted(maps.Keys(set)), nil
}

// pacer spaces out work to a rate in units a second, with a token bucket
// (golang.org/x/time/rate). A batch is charged when the next one asks: a
// batch is admitted once the work before it has had its time at the rate,
// so time spent working counts toward the wait. The bucket holds at most
// one batch of credit (its burst is the largest batch charged), and starts
// empty.
type pacer struct {
	lim   *rate.Limiter
	owed  int // the units of the batch admitted last, not yet charged
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func newPacer(r int) *pacer {
	return &pacer{lim: rate.NewLimiter(rate.Limit(r), 0), now: time.Now, sleep: sleepCtx}
}

// wait blocks until n more units may start: until the units admitted
// before them fit the rate.
func (p *pacer) wait(ctx context.Context, n int) error {
	owed := p.owed
	p.owed = n
	if owed <= 0 {
		return nil
	}
	now := p.now()
	if owed > p.lim.Burst() {
		p.lim.SetBurstAt(now, owed)
	}
	delay := p.lim.ReserveN(now, owed).DelayFrom(now)
	if delay <= 0 {
		return nil
	}
	return p.sleep(ctx, delay)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
