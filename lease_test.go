package converge_test

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestPeerLeaseExpires: a device silent for longer than the hub's peer
// lease no longer holds the hub's compaction back; when it comes back it
// is answered "snapshot needed", bootstraps, and the writes it made while
// away still reach the hub. A device heard of within the lease is kept.
func TestPeerLeaseExpires(t *testing.T) {
	ctx := t.Context()
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	hubOpts := noBackground()
	hubOpts.Clock = now.Load
	hubOpts.Compaction.PeerLease = time.Hour
	hub, a, b := open(t, hubOpts), open(t, noBackground()), open(t, noBackground())
	tasksA, tasksB := coll[Task](t, a, "tasks"), coll[Task](t, b, "tasks")
	if _, err := tasksA.Put(ctx, "ns", &Task{ID: "t1", Title: "first"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		syncPair(t, a, hub, "ns")
		syncPair(t, b, hub, "ns")
	}
	// b goes silent and writes; a goes on writing and syncing.
	if _, err := tasksB.Put(ctx, "ns", &Task{ID: "offline", Title: "kept"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tasksA.Put(ctx, "ns", &Task{ID: "t1", Title: "second"}); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, hub, "ns")
	syncPair(t, a, hub, "ns")
	if st, err := hub.Admin().Compact(ctx, "ns"); err != nil || st.Ops != 1 {
		t.Fatalf("hub compaction within the lease = %+v, %v; want only the op b holds", st, err)
	}
	// Past the lease: a is heard of again, b is not.
	now.Add(2 * time.Hour.Milliseconds())
	syncPair(t, a, hub, "ns")
	if st, err := hub.Admin().Compact(ctx, "ns"); err != nil || st.Ops != 1 {
		t.Fatalf("hub compaction past b's lease = %+v, %v; want a's second op", st, err)
	}
	peers, err := hub.Admin().Peers(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0].Replica != a.ReplicaID() {
		t.Fatalf("known peers past b's lease = %+v, want only a", peers)
	}
	res := syncPair(t, b, hub, "ns")
	if res.Snapshots != 1 || res.Sent != 1 {
		t.Fatalf("expired device's sync = %+v, want a bootstrap and its own op pushed", res)
	}
	syncPair(t, a, hub, "ns")
	sameState(t, hub, a, b)
	if got, err := coll[Task](t, hub, "tasks").Get(ctx, "ns", "offline"); err != nil || got.Title != "kept" {
		t.Fatalf("hub reads b's offline write = %+v, %v", got, err)
	}
}
