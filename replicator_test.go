package converge_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

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

func TestReplicatorBackgroundPauseResume(t *testing.T) {
	ctx := t.Context()
	quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
	app, hub := open(t, quiet), open(t, quiet)
	tasks, hubTasks := coll[Task](t, app, "tasks"), coll[Task](t, hub, "tasks")
	peer := transport.NewMemPeer(hub.SyncStore(), transport.Limits{})
	r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Debounce: time.Millisecond, Interval: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	exists := func(c *converge.Collection[Task], id string) func() bool {
		return func() bool { _, err := c.Get(ctx, "ns", id); return err == nil }
	}
	// A local commit is synced in the background.
	if _, err := tasks.Put(ctx, "ns", &Task{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, hub, "ns", exists(hubTasks, "a"))

	// Paused: writes queue in the log; SyncNow refuses.
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
	if _, err := hubTasks.Get(ctx, "ns", "b"); !errors.Is(err, converge.ErrNotFound) {
		t.Errorf("a paused replicator synced: %v", err)
	}
	// Resumed: the queue drains.
	r.Resume()
	waitFor(t, hub, "ns", exists(hubTasks, "c"))
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
}

func TestReplicatorOfflineThenOnline(t *testing.T) {
	ctx := t.Context()
	quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
	app, hub := open(t, quiet), open(t, quiet)
	tasks, hubTasks := coll[Task](t, app, "tasks"), coll[Task](t, hub, "tasks")
	peer := transport.NewMemPeer(hub.SyncStore(), transport.Limits{MaxOps: 7})
	peer.SetDown(true)
	r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Interval: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
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
	// Back online: the retry loop catches up in pages of 7.
	peer.SetDown(false)
	waitFor(t, hub, "ns", func() bool {
		n, _ := hubTasks.Count(ctx, "ns", converge.Query{})
		return n == 50
	})
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
}
