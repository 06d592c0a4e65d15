package converge_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

func noBackground() converge.Options {
	return converge.Options{Compaction: converge.CompactionOptions{Disabled: true}}
}

func sameState(t *testing.T, dbs ...*converge.DB) {
	t.Helper()
	want, err := dbs[0].Admin().StateHash(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range dbs[1:] {
		got, err := db.Admin().StateHash(t.Context(), "ns")
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("replica %s has state %s, want %s", db.ReplicaID(), got, want)
		}
	}
	for _, db := range dbs {
		v, err := db.Admin().Verify(t.Context(), "ns")
		if err != nil || !v.OK() {
			t.Fatalf("Verify on %s = %+v, %v", db.ReplicaID(), v, err)
		}
	}
}

// TestCompactThenBootstrap: a hub and two replicas compact what all three
// hold; a new replica then bootstraps from the hub's snapshot and catches
// up; a replica the hub forgot comes back with writes of its own, is
// answered "snapshot needed", bootstraps, and its writes survive.
func TestCompactThenBootstrap(t *testing.T) {
	ctx := t.Context()
	hub, a, b := open(t, noBackground()), open(t, noBackground()), open(t, noBackground())
	tasksA, tasksB := coll[Task](t, a, "tasks"), coll[Task](t, b, "tasks")
	for i := range 40 {
		for round := range 5 {
			if _, err := tasksA.Put(ctx, "ns", &Task{ID: fmt.Sprintf("t%02d", i), Title: fmt.Sprintf("v%d", round)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 10 {
		if err := tasksA.Delete(ctx, "ns", fmt.Sprintf("t%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	syncPair(t, a, hub, "ns")
	syncPair(t, b, hub, "ns")
	// A requester tells what it holds before it applies the answer: the
	// hub learns that b holds it all at b's next sync.
	syncPair(t, b, hub, "ns")

	st, err := hub.Admin().Compact(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if st.Ops != 210 || st.Horizon[a.ReplicaID()] != 210 {
		t.Fatalf("hub compaction = %+v, want a's 210 ops (every known replica holds them)", st)
	}
	if _, err := a.Admin().Compact(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	sameState(t, hub, a, b)

	// A new replica bootstraps from the hub.
	c := open(t, noBackground())
	tasksC := coll[Task](t, c, "tasks")
	res := syncPair(t, c, hub, "ns")
	if res.Snapshots != 1 || res.SnapshotRecords != 40 {
		t.Fatalf("new replica's sync = %+v, want one bootstrap of 40 record states", res)
	}
	sameState(t, hub, c)
	got, err := tasksC.Get(ctx, "ns", "t20")
	if err != nil || got.Title != "v4" {
		t.Fatalf("bootstrapped replica reads t20 = %+v, %v", got, err)
	}
	if _, err := tasksC.Get(ctx, "ns", "t05"); !errors.Is(err, converge.ErrNotFound) {
		t.Fatalf("bootstrapped replica reads deleted t05: err = %v", err)
	}

	// b goes offline and writes; the hub forgets it and compacts beyond it.
	if _, err := tasksB.Put(ctx, "ns", &Task{ID: "offline", Title: "kept"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tasksA.Put(ctx, "ns", &Task{ID: "t30", Title: "later"}); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, hub, "ns")
	syncPair(t, c, hub, "ns")
	syncPair(t, c, hub, "ns")
	if err := hub.Admin().ForgetPeer(ctx, "ns", b.ReplicaID()); err != nil {
		t.Fatal(err)
	}
	if st, err := hub.Admin().Compact(ctx, "ns"); err != nil || st.Ops != 1 {
		t.Fatalf("hub compaction after forgetting b = %+v, %v; want a's latest op dropped", st, err)
	}
	res = syncPair(t, b, hub, "ns")
	if res.Snapshots != 1 || res.Sent != 1 {
		t.Fatalf("forgotten replica's sync = %+v, want a bootstrap and its own op pushed", res)
	}
	syncPair(t, a, hub, "ns")
	syncPair(t, c, hub, "ns")
	sameState(t, hub, a, b, c)
	if got, err := coll[Task](t, hub, "tasks").Get(ctx, "ns", "offline"); err != nil || got.Title != "kept" {
		t.Fatalf("hub reads b's offline write = %+v, %v", got, err)
	}
}

// TestCompactNeedsAPeer: a replica that never synced compacts nothing;
// once a peer holds its writes, it does.
func TestCompactNeedsAPeer(t *testing.T) {
	ctx := t.Context()
	a, hub := open(t, noBackground()), open(t, noBackground())
	tasks := coll[Task](t, a, "tasks")
	for i := range 20 {
		if _, err := tasks.Put(ctx, "ns", &Task{ID: "x", Title: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := a.Admin().Compact(ctx, "ns"); err != nil || st.Ops != 0 {
		t.Fatalf("offline replica compacted %+v, %v; its writes have reached no peer", st, err)
	}
	syncPair(t, a, hub, "ns")
	if st, err := a.Admin().Compact(ctx, "ns"); err != nil || st.Ops != 20 {
		t.Fatalf("compaction after the hub acknowledged = %+v, %v; want 20 ops", st, err)
	}
	h, err := a.Admin().Horizon(ctx, "ns")
	if err != nil || h[a.ReplicaID()] != 20 {
		t.Fatalf("Horizon = %v, %v", h, err)
	}
}

// TestFeedTrimmedByCompaction: a feed consumer behind the retained changes
// gets ErrFeedTrimmed, not a silent gap.
func TestFeedTrimmedByCompaction(t *testing.T) {
	ctx := t.Context()
	opts := noBackground()
	opts.Compaction.FeedRetention = 5
	a, hub := open(t, opts), open(t, noBackground())
	tasks := coll[Task](t, a, "tasks")
	for i := range 12 {
		if _, err := tasks.Put(ctx, "ns", &Task{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.SyncWith(ctx, transport.NewMemPeer(hub.SyncStore(), transport.Limits{}), "ns"); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Admin().Compact(ctx, "ns"); err != nil || st.FeedTrimmed != 7 {
		t.Fatalf("Compact = %+v, %v; want 7 feed changes trimmed", st, err)
	}
	for _, err := range a.Feed(ctx, "ns", "", 0) {
		if !errors.Is(err, converge.ErrFeedTrimmed) {
			t.Fatalf("Feed(0) = %v, want ErrFeedTrimmed", err)
		}
		break
	}
}
