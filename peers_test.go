package converge_test

import (
	"errors"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

// TestPeersAndStability: syncs record what each side holds, in both
// directions; the stable vector is what every known replica holds; a
// forgotten replica no longer holds it back; it survives a restart.
func TestPeersAndStability(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	hub, err := converge.Open(dir, converge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := open(t, converge.Options{}), open(t, converge.Options{})
	tasksA, tasksB := coll[Task](t, a, "tasks"), coll[Task](t, b, "tasks")
	for _, id := range []string{"a1", "a2"} {
		if _, err := tasksA.Put(ctx, "ns", &Task{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	peer := transport.NewMemPeer(hub.SyncStore(), transport.Limits{})
	if _, err := a.SyncWith(ctx, peer, "ns"); err != nil {
		t.Fatal(err)
	}
	// a knows the hub, the hub knows a.
	ps, err := a.Admin().Peers(ctx, "ns")
	if err != nil || len(ps) != 1 || ps[0].Replica != hub.ReplicaID() || ps[0].Vector[a.ReplicaID()] != 2 || ps[0].Behind != 0 {
		t.Fatalf("a's peers = %+v, %v", ps, err)
	}
	ps, err = hub.Admin().Peers(ctx, "ns")
	if err != nil || len(ps) != 1 || ps[0].Replica != a.ReplicaID() {
		t.Fatalf("hub's peers = %+v, %v", ps, err)
	}

	// b syncs and writes; the hub has b's op, a has not seen it yet.
	if _, err := tasksB.Put(ctx, "ns", &Task{ID: "b1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SyncWith(ctx, peer, "ns"); err != nil {
		t.Fatal(err)
	}
	stable, err := hub.Admin().StableVector(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if stable[a.ReplicaID()] != 2 || stable[b.ReplicaID()] != 0 {
		t.Fatalf("hub's stable vector = %v: a's 2 ops are stable, b's op is not (a lacks it)", stable)
	}
	ps, _ = hub.Admin().Peers(ctx, "ns")
	for _, p := range ps {
		if p.Replica == a.ReplicaID() && p.Behind != 1 {
			t.Errorf("a is %d ops behind the hub, want 1", p.Behind)
		}
	}

	// a catches up: the hub learns so from a's next message (a sync's
	// requester says what it holds before it applies the answer).
	for range 2 {
		if _, err := a.SyncWith(ctx, peer, "ns"); err != nil {
			t.Fatal(err)
		}
	}
	if stable, _ = hub.Admin().StableVector(ctx, "ns"); stable[b.ReplicaID()] != 1 || stable[a.ReplicaID()] != 2 {
		t.Fatalf("after a's catch-up, stable = %v", stable)
	}

	// a writes, then leaves the fleet: forgetting it releases the horizon.
	if _, err := tasksA.Put(ctx, "ns", &Task{ID: "a3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SyncWith(ctx, peer, "ns"); err != nil { // b's ops move on; a never hears again
		t.Fatal(err)
	}
	if _, err := tasksB.Put(ctx, "ns", &Task{ID: "b2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SyncWith(ctx, peer, "ns"); err != nil {
		t.Fatal(err)
	}
	if stable, _ = hub.Admin().StableVector(ctx, "ns"); stable[b.ReplicaID()] != 1 {
		t.Fatalf("stable = %v: a's last known vector holds b at 1", stable)
	}
	// Restart the hub: what it knows of its peers is stored.
	if err := hub.Close(); err != nil {
		t.Fatal(err)
	}
	if hub, err = converge.Open(dir, converge.Options{}); err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	if ps, _ = hub.Admin().Peers(ctx, "ns"); len(ps) != 2 {
		t.Fatalf("after restart the hub knows %d peers, want 2", len(ps))
	}
	if err := hub.Admin().ForgetPeer(ctx, "ns", a.ReplicaID()); err != nil {
		t.Fatal(err)
	}
	if stable, _ = hub.Admin().StableVector(ctx, "ns"); stable[b.ReplicaID()] != 2 {
		t.Fatalf("after forgetting a, stable = %v, want b's 2 ops", stable)
	}
	if err := hub.Admin().ForgetPeer(ctx, "ns", a.ReplicaID()); !errors.Is(err, converge.ErrUnknownPeer) {
		t.Fatalf("forgetting twice: %v", err)
	}
}
