package converge_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

// The replicator's tests run in synctest bubbles: the replicator's timers
// run on the bubble's fake clock, and settle lets every goroutine of the
// bubble finish what is due, so a test states exactly when a background
// sync happens (the DBs, Pebble's goroutines and the in-memory peers all
// live in the bubble).

// settle advances the bubble's clock by d, then waits until every other
// goroutine of the bubble is blocked: whatever the replicator had due by
// then is done.
func settle(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// waitFor reads changes of db in ns until cond holds (checked first).
func waitFor(t *testing.T, db *converge.DB, ns string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a failure bound, not synchronization
	defer cancel()
	sub := db.Subscribe(ns)
	defer sub.Close()
	for !cond() {
		if _, err := sub.Next(ctx); err != nil && !errors.Is(err, converge.ErrLagged) {
			t.Fatalf("waiting for a condition: %v", err)
		}
	}
}

// tripLog is the in-memory peer, recording when each round trip came.
type tripLog struct {
	*transport.MemPeer
	mu    sync.Mutex
	trips []time.Time
	// delay is how long each round trip takes (on the bubble's fake
	// clock): the peer's latency.
	delay time.Duration
}

func newTripLog(store transport.Store, limits transport.Limits) *tripLog {
	return &tripLog{MemPeer: transport.NewMemPeer(store, limits)}
}

func (p *tripLog) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	p.mu.Lock()
	p.trips = append(p.trips, time.Now())
	p.mu.Unlock()
	if p.delay > 0 {
		select {
		case <-time.After(p.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return p.MemPeer.RoundTrip(ctx, req)
}

// since returns the times of the round trips after t0, as offsets.
func (p *tripLog) since(t0 time.Time) []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Duration
	for _, at := range p.trips {
		if at.After(t0) {
			out = append(out, at.Sub(t0))
		}
	}
	return out
}

func exists(t *testing.T, c *converge.Collection[Task], id string) bool {
	t.Helper()
	_, err := c.Get(t.Context(), "ns", id)
	if err != nil && !errors.Is(err, converge.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestReplicatorBackgroundPauseResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		tasks, hubTasks := coll[Task](t, app, "tasks"), coll[Task](t, hub, "tasks")
		peer := transport.NewMemPeer(hub.SyncStore(), transport.Limits{})
		const debounce = 10 * time.Millisecond
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Debounce: debounce, Interval: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		settle(debounce) // the sync at open
		// A local commit is synced in the background, once the debounce
		// has passed.
		if _, err := tasks.Put(ctx, "ns", &Task{ID: "a"}); err != nil {
			t.Fatal(err)
		}
		settle(debounce - time.Nanosecond)
		if exists(t, hubTasks, "a") {
			t.Error("a commit synced before the debounce passed")
		}
		settle(time.Nanosecond)
		if !exists(t, hubTasks, "a") {
			t.Fatal("a commit not synced once the debounce passed")
		}

		// Paused: writes queue in the log; SyncNow refuses; nothing syncs,
		// not even when an interval passes.
		r.Pause()
		for _, id := range []string{"b", "c"} {
			if _, err := tasks.Put(ctx, "ns", &Task{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		st, err := r.Status(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		if st.State != converge.StatePaused || st.Pending != 2 {
			t.Errorf("paused status = %+v, want paused with 2 pending", st)
		}
		if _, err := r.SyncNow(ctx, "ns"); !errors.Is(err, converge.ErrPaused) {
			t.Errorf("SyncNow while paused: %v, want ErrPaused", err)
		}
		settle(2 * time.Hour)
		if exists(t, hubTasks, "b") {
			t.Error("a paused replicator synced")
		}
		// Resumed: the queue drains at once (the interval's tick came due
		// while paused).
		r.Resume()
		settle(0)
		if !exists(t, hubTasks, "c") {
			t.Fatal("the queue did not drain on Resume")
		}
		res, err := r.SyncNow(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent != 0 {
			t.Errorf("SyncNow after the queue drained sent %d ops", res.Sent)
		}
		if st, _ := r.Status(ctx, "ns"); st.Pending != 0 || st.State != converge.StateIdle || st.LastSync.IsZero() {
			t.Errorf("after resume: %+v, want idle, nothing pending", st)
		}
		// Remote changes come back with the next sync.
		if _, err := hubTasks.Put(ctx, "ns", &Task{ID: "from-hub"}); err != nil {
			t.Fatal(err)
		}
		res, err = r.SyncNow(ctx, "ns")
		if err != nil || res.Received != 1 {
			t.Errorf("SyncNow = %+v, %v; want 1 received", res, err)
		}
		if h := r.Health(ctx); !h.OK() {
			t.Errorf("Health = %+v", h)
		}
	})
}

// TestReplicatorResumeKicksASync: Resume with nothing due syncs at once
// (no debounce by default).
func TestReplicatorResumeKicksASync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		peer := newTripLog(hub.SyncStore(), transport.Limits{})
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(t.Context())
		settle(time.Second)
		r.Pause()
		settle(time.Minute)
		t0 := time.Now()
		r.Resume()
		settle(time.Second)
		if got := peer.since(t0.Add(-time.Nanosecond)); len(got) == 0 || got[0] != time.Nanosecond {
			t.Errorf("round trips after Resume at %v, want the first at once (no default debounce)", got)
		}
	})
}

// TestReplicatorSyncsCommitsAtOnce: with the defaults an idle replicator
// syncs a commit at once, and the commits made while that sync is in
// flight go out together in one sync when it ends.
func TestReplicatorSyncsCommitsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		tasks, hubTasks := coll[Task](t, app, "tasks"), coll[Task](t, hub, "tasks")
		peer := newTripLog(hub.SyncStore(), transport.Limits{})
		peer.delay = 10 * time.Millisecond
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		settle(time.Second) // the sync at open
		t0 := time.Now()
		if _, err := tasks.Put(ctx, "ns", &Task{ID: "a"}); err != nil {
			t.Fatal(err)
		}
		settle(0)
		first := peer.since(t0.Add(-time.Nanosecond))
		if len(first) != 1 || first[0] != time.Nanosecond {
			t.Fatalf("round trips %v after the first commit, want one at once", first)
		}
		for _, id := range []string{"b", "c", "d", "e"} { // while the first sync is in flight
			settle(time.Millisecond)
			if _, err := tasks.Put(ctx, "ns", &Task{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		settle(time.Second)
		trips := peer.since(t0.Add(-time.Nanosecond))
		// The first sync's round trips, then the second's, which begins
		// when the first ends: none began while a sync was in flight.
		for i := 1; i < len(trips); i++ {
			if trips[i]-trips[i-1] < peer.delay {
				t.Fatalf("round trips at %v after the first commit: one began while another was in flight", trips)
			}
		}
		if len(trips) > 4 {
			t.Errorf("round trips at %v after the first commit, want two syncs (the burst batched)", trips)
		}
		if n, err := hubTasks.Count(ctx, "ns", converge.Query{}); err != nil || n != 5 {
			t.Errorf("the hub holds %d tasks (%v), want 5", n, err)
		}
	})
}

// TestReplicatorDebouncesCommits: with a Debounce, a burst of commits goes
// out in one sync, the debounce after the first.
func TestReplicatorDebouncesCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		tasks, hubTasks := coll[Task](t, app, "tasks"), coll[Task](t, hub, "tasks")
		peer := newTripLog(hub.SyncStore(), transport.Limits{})
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Debounce: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		settle(0)
		if got := peer.since(time.Time{}); len(got) != 0 {
			t.Fatalf("round trips %v before the debounce passed", got)
		}
		settle(20 * time.Millisecond)
		if got := peer.since(time.Time{}); len(got) == 0 {
			t.Fatal("no sync 20ms after open")
		}
		t0 := time.Now()
		for _, id := range []string{"a", "b", "c", "d", "e"} {
			if _, err := tasks.Put(ctx, "ns", &Task{ID: id}); err != nil {
				t.Fatal(err)
			}
			settle(3 * time.Millisecond)
		}
		settle(time.Second)
		trips := peer.since(t0)
		if len(trips) == 0 {
			t.Fatal("the burst was not synced")
		}
		for _, at := range trips {
			if at != 20*time.Millisecond {
				t.Errorf("round trips at %v after the first commit, want all at 20ms (one debounced sync)", trips)
				break
			}
		}
		if n, err := hubTasks.Count(ctx, "ns", converge.Query{}); err != nil || n != 5 {
			t.Errorf("the hub holds %d tasks (%v), want 5", n, err)
		}
	})
}

// TestReplicatorSyncsEveryInterval: with no local commits, what the peer
// gains comes at the next periodic sync, every Interval from the open.
func TestReplicatorSyncsEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		tasks, hubTasks := coll[Task](t, app, "tasks"), coll[Task](t, hub, "tasks")
		r, err := app.OpenReplicator(transport.NewMemPeer(hub.SyncStore(), transport.Limits{}), converge.ReplicatorOptions{Namespaces: []string{"ns"}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		opened := time.Now()
		settle(time.Second)
		for i, id := range []string{"h1", "h2"} {
			if _, err := hubTasks.Put(ctx, "ns", &Task{ID: id}); err != nil {
				t.Fatal(err)
			}
			tick := time.Duration(i+1) * 30 * time.Second // the default interval
			settle(time.Until(opened.Add(tick)) - time.Nanosecond)
			if exists(t, tasks, id) {
				t.Errorf("%s arrived before the periodic sync at %v", id, tick)
			}
			settle(time.Nanosecond)
			if !exists(t, tasks, id) {
				t.Errorf("%s did not arrive with the periodic sync at %v", id, tick)
			}
			settle(time.Second)
		}
	})
}

// TestReplicatorRetriesWithBackoff: while the peer is unreachable, a
// failed background sync is retried after a wait of at most
// min(MaxBackoff, MinBackoff·2ⁿ⁻¹) after the n-th consecutive failure;
// once it is back, the next retry (at most MaxBackoff away) succeeds and
// the count starts again. Each bound is checked in 20 outages: a wait
// with twice the bound would pass one with odds 1/2, not 20.
func TestReplicatorRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		tasks := coll[Task](t, app, "tasks")
		peer := newTripLog(hub.SyncStore(), transport.Limits{})
		const minB, maxB = 100 * time.Millisecond, 800 * time.Millisecond
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Interval: time.Hour, MinBackoff: minB, MaxBackoff: maxB})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		settle(time.Second) // the sync at open
		for outage := range 20 {
			peer.SetDown(true)
			start := time.Now()
			if _, err := tasks.Put(ctx, "ns", &Task{ID: fmt.Sprint(outage)}); err != nil {
				t.Fatal(err)
			}
			for len(peer.since(start)) < 5 && time.Since(start) < time.Minute {
				settle(10 * time.Millisecond)
			}
			trips := peer.since(start)
			if len(trips) < 5 {
				t.Fatalf("outage %d: %d attempts in a minute", outage, len(trips))
			}
			for n := 1; n < len(trips); n++ {
				if gap, ceil := trips[n]-trips[n-1], min(maxB, minB<<min(n-1, 10)); gap < 0 || gap > ceil {
					t.Errorf("outage %d: wait after failure %d = %v, want within [0, %v]", outage, n, gap, ceil)
				}
			}
			st, err := r.Status(ctx, "ns")
			if err != nil {
				t.Fatal(err)
			}
			if st.State != converge.StateError || st.Failures != len(trips) || !errors.Is(st.LastError, transport.ErrUnreachable) {
				t.Errorf("outage %d: status = %+v, want the error state after %d failures", outage, st, len(trips))
			}
			peer.SetDown(false)
			settle(maxB)
			if st, _ := r.Status(ctx, "ns"); st.State != converge.StateIdle || st.Failures != 0 || st.LastError != nil || st.Pending != 0 {
				t.Errorf("outage %d: status once reachable = %+v, want idle, no failures, nothing pending", outage, st)
			}
		}
		// A long outage: the waits stop growing at MaxBackoff.
		peer.SetDown(true)
		start := time.Now()
		if _, err := tasks.Put(ctx, "ns", &Task{ID: "long"}); err != nil {
			t.Fatal(err)
		}
		settle(time.Minute)
		if n := len(peer.since(start)); n < 60/0.8 {
			t.Errorf("%d attempts in a minute with waits of at most %v", n, maxB)
		}
	})
}

func TestReplicatorOfflineThenOnline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		tasks, hubTasks := coll[Task](t, app, "tasks"), coll[Task](t, hub, "tasks")
		peer := transport.NewMemPeer(hub.SyncStore(), transport.Limits{MaxOps: 7})
		peer.SetDown(true)
		const maxBackoff = 2 * time.Millisecond
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Interval: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: maxBackoff})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		for i := range 50 {
			if _, err := tasks.Put(ctx, "ns", &Task{ID: string(rune('A' + i))}); err != nil {
				t.Fatal(err)
			}
		}
		_, err = r.SyncNow(ctx, "ns")
		if !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("SyncNow offline: %v, want ErrUnreachable", err)
		}
		st, _ := r.Status(ctx, "ns")
		if st.State != converge.StateError || st.LastError == nil || st.Pending != 50 {
			t.Errorf("offline status = %+v, want error state, 50 pending", st)
		}
		if h := r.Health(ctx); h.Peer == nil || h.Store != nil {
			t.Errorf("offline health = %+v, want a peer error only", h)
		}
		settle(time.Second) // the background syncs fail, and retry
		// Back online: the retry loop catches up, in pages of 7, within
		// MaxBackoff.
		peer.SetDown(false)
		settle(maxBackoff)
		if n, err := hubTasks.Count(ctx, "ns", converge.Query{}); err != nil || n != 50 {
			t.Fatalf("the hub holds %d tasks (%v) once the peer is back, want 50", n, err)
		}
		res, err := r.SyncNow(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := r.Status(ctx, "ns"); st.Pending != 0 || st.LastError != nil {
			t.Errorf("online status = %+v (last SyncNow %+v)", st, res)
		}
		// The status stream shows the current state and ends with ctx.
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for s := range r.Statuses(sctx) {
			if s.Namespace != "ns" {
				t.Errorf("status of %q", s.Namespace)
			}
			cancel()
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		if err := r.Close(cctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// failingLive is a live path whose streams end at once with an error,
// after delivering the batch armed, if any; it records when each stream
// started.
type failingLive struct {
	*transport.MemPeer
	mu     sync.Mutex
	starts []time.Time
	armed  [][]byte
}

func (p *failingLive) Live() transport.Live      { return p }
func (p *failingLive) PublishesCommits() bool    { return false }
func (p *failingLive) OnReconnect(func()) func() { return func() {} }

func (p *failingLive) Stream(ctx context.Context, ns string, have func() crdt.VersionVector, apply func(ops [][]byte) error) error {
	p.mu.Lock()
	p.starts = append(p.starts, time.Now())
	batch := p.armed
	p.armed = nil
	p.mu.Unlock()
	if batch != nil {
		if err := apply(batch); err != nil {
			return err
		}
	}
	return errors.New("stream broke")
}

func (p *failingLive) gaps() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(p.starts); i++ {
		out = append(out, p.starts[i].Sub(p.starts[i-1]))
	}
	return out
}

// TestReplicatorStreamReconnectsWithBackoff: a live stream that ends is
// reopened after a wait of at most min(MaxBackoff, MinBackoff·2ⁿ⁻¹) after
// the n-th consecutive end; a stream that applied ops starts the count
// again.
func TestReplicatorStreamReconnectsWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		peer := &failingLive{MemPeer: transport.NewMemPeer(hub.SyncStore(), transport.Limits{})}
		const minB, maxB = 100 * time.Millisecond, 800 * time.Millisecond
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Interval: time.Hour, MinBackoff: minB, MaxBackoff: maxB})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		settle(time.Minute)
		gaps := peer.gaps()
		if len(gaps) < 60/0.8 {
			t.Fatalf("%d reconnections in a minute with waits of at most %v", len(gaps), maxB)
		}
		for n, gap := range gaps {
			if ceil := min(maxB, minB<<min(n, 10)); gap < 0 || gap > ceil {
				t.Errorf("wait after end %d = %v, want within [0, %v]", n+1, gap, ceil)
			}
		}
		// A stream that delivers starts the count again: the next wait is
		// at most MinBackoff. Checked 20 times: a wait of up to MaxBackoff
		// would pass one with odds 1/8, not 20.
		if _, err := coll[Task](t, hub, "tasks").Put(ctx, "ns", &Task{ID: "live"}); err != nil {
			t.Fatal(err)
		}
		ops, _, err := hub.SyncStore().Missing(ctx, "ns", crdt.VersionVector{}, transport.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			settle(10 * time.Second) // the waits are at MaxBackoff again
			peer.mu.Lock()
			peer.armed = ops
			before := len(peer.starts)
			peer.mu.Unlock()
			settle(maxB)
			peer.mu.Lock()
			starts := peer.starts[before:]
			peer.mu.Unlock()
			if len(starts) < 2 {
				t.Fatalf("%d streams within %v of the last one", len(starts), maxB)
			}
			if gap := starts[1].Sub(starts[0]); gap > minB {
				t.Errorf("wait after a stream that delivered = %v, want at most %v", gap, minB)
			}
		}
		if !exists(t, coll[Task](t, app, "tasks"), "live") {
			t.Error("the live delivery was not applied")
		}
	})
}
