package transport_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

// compactAll folds every op r holds of ns into base states: the horizon is
// given, so no known peer is needed.
func compactAll(t *testing.T, r *transporttest.Replica, ns string) {
	t.Helper()
	vv, err := r.DB.Admin().Log().Vector(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.DB.Admin().Log().Compact(t.Context(), ns, oplog.CompactOptions{Horizon: vv})
	if err != nil {
		t.Fatalf("compact: %v", err)
	}
	if st.Ops == 0 {
		t.Fatalf("compacted nothing of %v", vv)
	}
}

func putN(t *testing.T, r *transporttest.Replica, ns, prefix string, n int) {
	t.Helper()
	for i := range n {
		if _, err := r.Items.Put(t.Context(), ns, &transporttest.Item{ID: fmt.Sprintf("%s-%03d", prefix, i), Name: prefix, N: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func vector(t *testing.T, r *transporttest.Replica, ns string) crdt.VersionVector {
	t.Helper()
	vv, err := r.DB.Admin().Log().Vector(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	return vv
}

// group stands for a NATS queue group: its round trips go to the first
// responder, its snapshot pages to each responder in turn. It has the
// first responder's other abilities (none but those).
type group struct {
	*transport.MemPeer // peers[0]
	peers              []*transport.MemPeer
	next               atomic.Int64
}

func (g *group) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	return g.peers[0].RoundTrip(ctx, req)
}

func (g *group) Snapshot(ctx context.Context, req *transport.SnapshotRequest) (*transport.SnapshotResponse, error) {
	n := g.next.Add(1) - 1
	return g.peers[int(n)%len(g.peers)].Snapshot(ctx, req)
}

// TestSnapshotPagesFromTwoResponders: the pages of one snapshot come from
// two responders, one ahead of the other. The snapshot stands for the
// pointwise minimum of their vectors, so the ops of the one ahead still
// come as ops afterwards, and the replicas converge.
func TestSnapshotPagesFromTwoResponders(t *testing.T) {
	b1, b2, a := transporttest.OpenReplica(t), transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putN(t, b1, "ns", "k", 40)
	if _, err := transport.Sync(t.Context(), b2.DB.SyncStore(), transport.NewMemPeer(b1.DB.SyncStore(), transport.Limits{}), "ns", transport.Options{}); err != nil {
		t.Fatal(err)
	}
	compactAll(t, b1, "ns")
	compactAll(t, b2, "ns")
	// b2 moves ahead: records on every page change.
	for i := 0; i < 40; i += 5 {
		if _, err := b2.Items.Put(t.Context(), "ns", &transporttest.Item{ID: fmt.Sprintf("k-%03d", i), Name: "b2"}); err != nil {
			t.Fatal(err)
		}
	}
	g := &group{peers: []*transport.MemPeer{
		transport.NewMemPeer(b2.DB.SyncStore(), transport.Limits{}),
		transport.NewMemPeer(b1.DB.SyncStore(), transport.Limits{}),
	}}
	g.MemPeer = g.peers[0]
	res, err := transport.Sync(t.Context(), a.DB.SyncStore(), g, "ns", transport.Options{Limits: transport.Limits{MaxOps: 5}})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if res.Snapshots != 1 || res.SnapshotRecords != 40 {
		t.Errorf("%d snapshots of %d records, want 1 of 40", res.Snapshots, res.SnapshotRecords)
	}
	// b1's pages hold none of b2's 8 later ops, so the snapshot may claim
	// none of them: they come as ops.
	if res.Received != 8 {
		t.Errorf("received %d ops after the snapshot, want b2's 8", res.Received)
	}
	transporttest.CheckConverged(t, "ns", a, b2)
	if _, err := transport.Sync(t.Context(), b1.DB.SyncStore(), transport.NewMemPeer(a.DB.SyncStore(), transport.Limits{}), "ns", transport.Options{}); err != nil {
		t.Fatal(err)
	}
	transporttest.CheckConverged(t, "ns", a, b1, b2)
}

// writer writes to the responder between snapshot pages.
type writer struct {
	*transport.MemPeer
	r     *transporttest.Replica
	pages int
}

func (w *writer) Snapshot(ctx context.Context, req *transport.SnapshotRequest) (*transport.SnapshotResponse, error) {
	resp, err := w.MemPeer.Snapshot(ctx, req)
	if err == nil {
		w.pages++
		// One record after the cursor (a later page holds it), one before.
		for _, id := range []string{fmt.Sprintf("k-%03d-late", w.pages*10), fmt.Sprintf("a-%03d", w.pages)} {
			if _, err := w.r.Items.Put(ctx, "ns", &transporttest.Item{ID: id, Name: "between pages"}); err != nil {
				return nil, err
			}
		}
	}
	return resp, err
}

// TestSnapshotResponderWritesBetweenPages: ops written while the snapshot
// is paged through are not claimed by it (some pages hold them, others
// do not); op rounds bring them.
func TestSnapshotResponderWritesBetweenPages(t *testing.T) {
	b, a := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putN(t, b, "ns", "k", 50)
	compactAll(t, b, "ns")
	w := &writer{MemPeer: transport.NewMemPeer(b.DB.SyncStore(), transport.Limits{}), r: b}
	res, err := transport.Sync(t.Context(), a.DB.SyncStore(), w, "ns", transport.Options{Limits: transport.Limits{MaxOps: 10}})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if res.Snapshots != 1 || w.pages < 5 {
		t.Fatalf("%d snapshots in %d pages, want 1 in at least 5", res.Snapshots, w.pages)
	}
	// The sync ends once a holds what b held when it began; what b wrote
	// during it may wait for the next sync. Together they bring, as ops,
	// everything written between pages: the snapshot claimed none of it.
	written := 2 * w.pages
	next, err := transport.Sync(t.Context(), a.DB.SyncStore(), transport.NewMemPeer(b.DB.SyncStore(), transport.Limits{}), "ns", transport.Options{})
	if err != nil || next.Snapshots != 0 {
		t.Fatalf("second sync: %+v, %v", next, err)
	}
	if got := res.Received + next.Received; got != written {
		t.Errorf("received %d+%d ops after the snapshot, want the %d written between pages", res.Received, next.Received, written)
	}
	transporttest.CheckConverged(t, "ns", a, b)
	if v, err := a.DB.Admin().Verify(t.Context(), "ns"); err != nil || !v.OK() {
		t.Errorf("verify after the bootstrap: %+v, %v", v, err)
	}
}

// opsOnly is a peer that says it cannot carry snapshots.
type opsOnly struct{ *transport.MemPeer }

func (opsOnly) Snapshot(context.Context, *transport.SnapshotRequest) (*transport.SnapshotResponse, error) {
	return nil, fmt.Errorf("opsOnly: %w", errors.ErrUnsupported)
}

// TestSnapshotUnsupported: a store or a peer that cannot carry snapshots
// ends the sync with ErrSnapshotNeeded, and nothing is installed.
func TestSnapshotUnsupported(t *testing.T) {
	b := transporttest.OpenReplica(t)
	putN(t, b, "ns", "k", 3)
	compactAll(t, b, "ns")
	for name, c := range map[string]struct {
		store transport.Store
		peer  transport.Peer
	}{
		"peer":  {nil, opsOnly{transport.NewMemPeer(b.DB.SyncStore(), transport.Limits{})}},
		"store": {transporttest.WithoutSnapshots{}, transport.NewMemPeer(b.DB.SyncStore(), transport.Limits{})},
	} {
		t.Run(name, func(t *testing.T) {
			a := transporttest.OpenReplica(t)
			store := a.DB.SyncStore()
			if c.store != nil {
				store = transporttest.WithoutSnapshots{Store: store}
			}
			res, err := transport.Sync(t.Context(), store, c.peer, "ns", transport.Options{})
			if !errors.Is(err, transport.ErrSnapshotNeeded) || res.Snapshots != 0 {
				t.Fatalf("sync: %+v, %v; want ErrSnapshotNeeded", res, err)
			}
			if vv := vector(t, a, "ns"); len(vv) != 0 {
				t.Errorf("vector %v after a refused bootstrap", vv)
			}
		})
	}
	_, err := transport.ServeSnapshot(t.Context(), transporttest.WithoutSnapshots{Store: b.DB.SyncStore()}, &transport.SnapshotRequest{Namespace: "ns"}, transport.Limits{})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ServeSnapshot from a plain store: %v, want errors.ErrUnsupported", err)
	}
}

// alwaysBehind says "snapshot needed" to every round trip, however often
// the requester bootstraps: a responder compacting faster than snapshots
// install.
type alwaysBehind struct{ *transport.MemPeer }

func (p alwaysBehind) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	resp, err := p.MemPeer.RoundTrip(ctx, req)
	if err == nil {
		resp.Ops, resp.More, resp.SnapshotNeeded = nil, false, true
	}
	return resp, err
}

// TestSnapshotLoopGuard: at most three bootstraps per sync.
func TestSnapshotLoopGuard(t *testing.T) {
	a, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putN(t, b, "ns", "k", 3)
	compactAll(t, b, "ns")
	res, err := transport.Sync(t.Context(), a.DB.SyncStore(), alwaysBehind{transport.NewMemPeer(b.DB.SyncStore(), transport.Limits{})}, "ns", transport.Options{})
	if !errors.Is(err, transport.ErrSnapshotNeeded) {
		t.Fatalf("sync: %v, want ErrSnapshotNeeded", err)
	}
	if res.Snapshots != 3 || res.Rounds != 4 {
		t.Errorf("%d snapshots in %d rounds, want 3 in 4", res.Snapshots, res.Rounds)
	}
	transporttest.CheckConverged(t, "ns", a, b) // the bootstraps did happen
}

// stuck answers the first page again whatever the cursor: a responder
// that does not move.
type stuck struct{ *transport.MemPeer }

func (p stuck) Snapshot(ctx context.Context, req *transport.SnapshotRequest) (*transport.SnapshotResponse, error) {
	r := *req
	r.After = nil
	return p.MemPeer.Snapshot(ctx, &r)
}

// TestSnapshotCursorMustMove: pages that do not follow the cursor end the
// bootstrap instead of looping.
func TestSnapshotCursorMustMove(t *testing.T) {
	a, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putN(t, b, "ns", "k", 10)
	compactAll(t, b, "ns")
	_, err := transport.Sync(t.Context(), a.DB.SyncStore(), stuck{transport.NewMemPeer(b.DB.SyncStore(), transport.Limits{})}, "ns", transport.Options{Limits: transport.Limits{MaxOps: 3}})
	if !errors.Is(err, transport.ErrBadMessage) {
		t.Fatalf("sync with a responder repeating its first page: %v, want ErrBadMessage", err)
	}
	if vv := vector(t, a, "ns"); len(vv) != 0 {
		t.Errorf("vector %v raised by an unfinished snapshot", vv)
	}
}

// TestSnapshotStalePeerVector: pushing against a peer vector of an earlier
// sync that is below our horizon pushes nothing; the fresh vector shows
// the peer has everything, and the sync succeeds.
func TestSnapshotStalePeerVector(t *testing.T) {
	a, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putN(t, a, "ns", "k", 5)
	peer := transport.NewMemPeer(b.DB.SyncStore(), transport.Limits{})
	if _, err := transport.Sync(t.Context(), a.DB.SyncStore(), peer, "ns", transport.Options{}); err != nil {
		t.Fatal(err)
	}
	compactAll(t, a, "ns")
	putN(t, a, "ns", "later", 2)
	res, err := transport.Sync(t.Context(), a.DB.SyncStore(), peer, "ns", transport.Options{PeerVector: crdt.VersionVector{}})
	if err != nil {
		t.Fatalf("sync with a stale peer vector: %v", err)
	}
	if res.Sent != 2 || res.Snapshots != 0 {
		t.Errorf("sent %d ops, %d snapshots; want 2 and none", res.Sent, res.Snapshots)
	}
	transporttest.CheckConverged(t, "ns", a, b)
}

// TestServeSnapshotNeeded: the responder applies what was pushed, then
// answers with its vector and the flag instead of failing.
func TestServeSnapshotNeeded(t *testing.T) {
	a, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putN(t, b, "ns", "k", 4)
	compactAll(t, b, "ns")
	putN(t, a, "ns", "a", 3)
	ops, _, err := a.DB.SyncStore().Missing(t.Context(), "ns", crdt.VersionVector{}, transport.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = b.DB.SyncStore().Missing(t.Context(), "ns", crdt.VersionVector{}, transport.Limits{})
	if !errors.Is(err, transport.ErrSnapshotNeeded) || !errors.Is(err, oplog.ErrCompacted) {
		t.Fatalf("Missing below the horizon: %v, want ErrSnapshotNeeded and oplog.ErrCompacted", err)
	}
	resp, err := transport.Serve(t.Context(), b.DB.SyncStore(), &transport.Request{Namespace: "ns", Vector: vector(t, a, "ns"), Ops: ops}, transport.Limits{})
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	if !resp.SnapshotNeeded || len(resp.Ops) != 0 || resp.More || resp.Applied.Applied != 3 {
		t.Fatalf("response %+v, want snapshot needed after applying 3 ops", resp)
	}
	if !resp.Vector.Equal(vector(t, b, "ns")) || !resp.Vector.Covers(vector(t, a, "ns")) {
		t.Errorf("response vector %v, want the responder's %v", resp.Vector, vector(t, b, "ns"))
	}
}
