// Package transporttest is the conformance suite every transport runs:
// real stores on both ends, synced through the transport under test.
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, func(t *testing.T, server transport.Store) transport.Peer {
//			return transport.NewMemPeer(server, transport.Limits{})
//		})
//	}
package transporttest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/proptest"
	"github.com/convergedb/converge/transport"
)

// NewPeer connects to a replica serving store through the transport under
// test, wired the way production wires it (a command's server, with its
// hooks), and returns the client side. It should register cleanups with
// t. The suite runs every ability through it: the peer must carry
// snapshot pages (a replica below the responder's compaction horizon
// bootstraps through them), and the served store must still record the
// peers it serves (the input of its compaction).
type NewPeer func(t *testing.T, server transport.Store) transport.Peer

// Item is the record type the suite writes.
type Item struct {
	ID    string   `msgpack:"-" converge:"id"`
	Name  string   `msgpack:"name"`
	N     int64    `msgpack:"n"`
	Tags  []string `msgpack:"tags" converge:"set"`
	Count int64    `msgpack:"count" converge:"counter"`
	Meta  converge.Meta
}

// Replica is one store of the suite.
type Replica struct {
	DB    *converge.DB
	Items *converge.Collection[Item]
}

// OpenReplica opens a replica in a temp dir, closed when the test ends.
func OpenReplica(t testing.TB) *Replica {
	t.Helper()
	db, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync})
	if err != nil {
		t.Fatalf("open replica: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	items, err := converge.NewCollection[Item](db, "items")
	if err != nil {
		t.Fatalf("collection: %v", err)
	}
	return &Replica{DB: db, Items: items}
}

// CheckConverged fails the test unless the replicas hold the same ops and
// the same state in ns (proptest.CheckConverged).
func CheckConverged(t testing.TB, ns string, reps ...*Replica) {
	t.Helper()
	dbs := make([]*converge.DB, len(reps))
	for i, r := range reps {
		dbs[i] = r.DB
	}
	if err := proptest.CheckConverged(context.Background(), ns, dbs...); err != nil {
		t.Fatal(err)
	}
}

func put(t testing.TB, r *Replica, ns string, items ...Item) {
	t.Helper()
	for i := range items {
		if _, err := r.Items.Put(context.Background(), ns, &items[i]); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
}

// compacted returns a replica holding items in ns whose log is compacted
// away: it synced with another replica through newPeer (so that one is a
// known peer holding every op) and compacted to the stable vector.
func compacted(t *testing.T, newPeer NewPeer, ns string, items ...Item) *Replica {
	t.Helper()
	r, other := OpenReplica(t), OpenReplica(t)
	put(t, r, ns, items...)
	if _, err := r.DB.SyncWith(t.Context(), newPeer(t, other.DB.SyncStore()), ns); err != nil {
		t.Fatalf("sync with the peer that lets it compact: %v", err)
	}
	st, err := r.DB.Admin().Compact(t.Context(), ns)
	if err != nil {
		t.Fatalf("compact: %v", err)
	}
	vv, err := r.DB.Admin().Vector(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ops == 0 || fmt.Sprint(st.Horizon) != fmt.Sprint(vv) {
		t.Fatalf("compacted %d ops to horizon %v; want every op (vector %v)", st.Ops, st.Horizon, vv)
	}
	return r
}

// checkPeer fails the test unless r knows the replica peer holds what it
// holds of ns.
func checkPeer(t testing.TB, ns string, r, peer *Replica) {
	t.Helper()
	ps, err := r.DB.Admin().Peers(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	want, err := peer.DB.Admin().Vector(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Replica == peer.DB.ReplicaID() {
			if fmt.Sprint(p.Vector) != fmt.Sprint(want) {
				t.Errorf("acknowledged vector of the peer %v, want %v", p.Vector, want)
			}
			return
		}
	}
	t.Errorf("the peer %s is not known: %+v", peer.DB.ReplicaID(), ps)
}

// checkKnows fails the test unless r lists the replica peer among the
// peers of ns with peer's own ops: a responder learns a requester's
// vector from its requests, sent before it applies the answers.
func checkKnows(t testing.TB, ns string, r, peer *Replica) {
	t.Helper()
	ps, err := r.DB.Admin().Peers(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	id := peer.DB.ReplicaID()
	want, err := peer.DB.Admin().Vector(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Replica == id {
			if p.Vector[id] != want[id] {
				t.Errorf("recorded %d of the peer's own ops, want %d", p.Vector[id], want[id])
			}
			return
		}
	}
	t.Errorf("the peer %s is not known: %+v", id, ps)
}

// Run runs the conformance suite against the transport newPeer makes:
// each check is a subtest.
func Run(t *testing.T, newPeer NewPeer) {
	checks := []struct {
		name  string
		check func(*testing.T, NewPeer)
	}{
		{"SnapshotBootstrap", checkSnapshotBootstrap},
		{"SnapshotPushPath", checkSnapshotPushPath},
		{"ServedStoreRecordsPeers", checkServedStoreRecordsPeers},
		{"BothDirections", checkBothDirections},
		{"Idempotent", checkIdempotent},
		{"Paged", checkPaged},
		{"Transaction", checkTransaction},
		{"Relay", checkRelay},
		{"MalformedOpsRefused", checkMalformedOpsRefused},
		{"Concurrent", checkConcurrent},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.check(t, newPeer) })
	}
}

// checkSnapshotBootstrap: the responder compacted its log away: a new
// replica gets "snapshot needed", bootstraps from a paged snapshot, then
// syncs ops.
func checkSnapshotBootstrap(t *testing.T, newPeer NewPeer) {
	const n = 60
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{ID: fmt.Sprintf("item-%03d", i), Name: "b", N: int64(i), Tags: []string{"t"}, Count: 1}
	}
	b := compacted(t, newPeer, "ns", items...)
	put(t, b, "ns", Item{ID: "item-000", Name: "after compaction"}) // an op in the log, beyond the horizon
	a := OpenReplica(t)
	put(t, a, "ns", Item{ID: "from-a", Name: "a's own"})
	peer := newPeer(t, b.DB.SyncStore())
	res, err := transport.Sync(t.Context(), a.DB.SyncStore(), peer, "ns", transport.Options{Limits: transport.Limits{MaxOps: 16}})
	if err != nil {
		t.Fatalf("sync from a new replica: %v", err)
	}
	if res.Snapshots != 1 || res.SnapshotRecords != n || res.SnapshotBytes == 0 {
		t.Errorf("snapshots %d of %d records, %d bytes; want 1 of %d records", res.Snapshots, res.SnapshotRecords, res.SnapshotBytes, n)
	}
	if res.Sent != 1 {
		t.Errorf("sent %d ops, want a's own 1", res.Sent)
	}
	CheckConverged(t, "ns", a, b)
	checkPeer(t, "ns", a, b)
	checkKnows(t, "ns", b, a) // the served store recorded its client
	// Once bootstrapped, syncs are op syncs again.
	put(t, b, "ns", Item{ID: "later", Name: "b"})
	res, err = a.DB.SyncWith(t.Context(), peer, "ns")
	if err != nil || res.Snapshots != 0 || res.Received != 1 {
		t.Fatalf("sync after the bootstrap: %+v, %v; want 1 op received and no snapshot", res, err)
	}
	CheckConverged(t, "ns", a, b)
}

// checkSnapshotPushPath: the requester compacted its log away and the
// responder is new: the requester cannot push what the responder lacks.
// The responder bootstraps when it syncs the other way.
func checkSnapshotPushPath(t *testing.T, newPeer NewPeer) {
	a := compacted(t, newPeer, "ns", Item{ID: "x", Name: "a"}, Item{ID: "y", Name: "a", Tags: []string{"t"}})
	b := OpenReplica(t)
	_, err := a.DB.SyncWith(t.Context(), newPeer(t, b.DB.SyncStore()), "ns")
	if !errors.Is(err, transport.ErrSnapshotNeeded) {
		t.Fatalf("push to a new replica below the compaction horizon: %v, want ErrSnapshotNeeded", err)
	}
	res, err := b.DB.SyncWith(t.Context(), newPeer(t, a.DB.SyncStore()), "ns")
	if err != nil || res.Snapshots != 1 {
		t.Fatalf("the new replica's sync: %+v, %v; want a bootstrap", res, err)
	}
	if _, err := a.DB.SyncWith(t.Context(), newPeer(t, b.DB.SyncStore()), "ns"); err != nil {
		t.Fatalf("push after the bootstrap: %v", err)
	}
	CheckConverged(t, "ns", a, b)
	checkPeer(t, "ns", a, b)
	checkPeer(t, "ns", b, a)
}

// checkServedStoreRecordsPeers: the served store learns what its client
// holds from the client's requests, which is what lets it compact: a store
// whose wiring lost that ability would keep its log for ever.
func checkServedStoreRecordsPeers(t *testing.T, newPeer NewPeer) {
	a, b := OpenReplica(t), OpenReplica(t)
	put(t, a, "ns", Item{ID: "x", Name: "a"})
	put(t, b, "ns", Item{ID: "y", Name: "b"})
	peer := newPeer(t, b.DB.SyncStore())
	for range 2 { // the second sync's request says a holds b's op too
		if _, err := a.DB.SyncWith(t.Context(), peer, "ns"); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
	CheckConverged(t, "ns", a, b)
	checkPeer(t, "ns", b, a)
	checkPeer(t, "ns", a, b)
	st, err := b.DB.Admin().Compact(t.Context(), "ns")
	if err != nil {
		t.Fatalf("compact the served store: %v", err)
	}
	if st.Ops != 2 {
		t.Errorf("the served store compacted %d ops, want both (its client holds them)", st.Ops)
	}
}

// checkBothDirections: one sync carries ops both ways and reports the
// conflict it met.
func checkBothDirections(t *testing.T, newPeer NewPeer) {
	a, b := OpenReplica(t), OpenReplica(t)
	put(t, a, "ns", Item{ID: "x", Name: "from a"}, Item{ID: "y", Name: "only a"})
	put(t, b, "ns", Item{ID: "x", Name: "from b"}, Item{ID: "z", Name: "only b"})
	res, err := a.DB.SyncWith(t.Context(), newPeer(t, b.DB.SyncStore()), "ns")
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if res.Sent != 2 || res.Received != 2 {
		t.Errorf("sent %d, received %d; want 2 and 2", res.Sent, res.Received)
	}
	if res.Conflicts != 1 {
		t.Errorf("conflicts = %d, want 1 (both wrote x.name)", res.Conflicts)
	}
	CheckConverged(t, "ns", a, b)
}

// checkIdempotent: syncing again moves nothing.
func checkIdempotent(t *testing.T, newPeer NewPeer) {
	a, b := OpenReplica(t), OpenReplica(t)
	put(t, a, "ns", Item{ID: "x", Name: "a"})
	peer := newPeer(t, b.DB.SyncStore())
	for i := range 3 {
		res, err := a.DB.SyncWith(t.Context(), peer, "ns")
		if err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
		if i > 0 && res.Sent+res.Received != 0 {
			t.Errorf("sync %d moved %d+%d ops, want none", i, res.Sent, res.Received)
		}
	}
	CheckConverged(t, "ns", a, b)
}

// checkPaged: pages stay within the requested limits, and all of them
// arrive.
func checkPaged(t *testing.T, newPeer NewPeer) {
	a, b := OpenReplica(t), OpenReplica(t)
	const n = 250
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{ID: fmt.Sprintf("item-%04d", i), Name: "a", N: int64(i)}
	}
	put(t, a, "ns", items...)
	res, err := transport.Sync(t.Context(), b.DB.SyncStore(), newPeer(t, a.DB.SyncStore()), "ns", transport.Options{Limits: transport.Limits{MaxOps: 16}})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if res.Received != n {
		t.Errorf("received %d, want %d", res.Received, n)
	}
	if res.Rounds < n/16 {
		t.Errorf("%d rounds for %d ops in pages of 16: pages not bounded", res.Rounds, n)
	}
	CheckConverged(t, "ns", a, b)
}

// checkTransaction: a transaction larger than a page arrives whole.
func checkTransaction(t *testing.T, newPeer NewPeer) {
	a, b := OpenReplica(t), OpenReplica(t)
	err := a.DB.Update(t.Context(), "ns", func(tx *converge.Tx) error {
		for i := range 40 {
			if _, err := a.Items.Tx(tx).Put(&Item{ID: fmt.Sprintf("t-%02d", i), Name: "tx"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	// Pages of 7 ops: the 40-op transaction must still arrive whole.
	res, err := transport.Sync(t.Context(), b.DB.SyncStore(), newPeer(t, a.DB.SyncStore()), "ns", transport.Options{Limits: transport.Limits{MaxOps: 7}})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if res.Received != 40 || res.Refused != 0 {
		t.Errorf("received %d refused %d, want 40 and 0", res.Received, res.Refused)
	}
	CheckConverged(t, "ns", a, b)
}

// checkRelay: a and c never meet; b carries ops between them.
func checkRelay(t *testing.T, newPeer NewPeer) {
	a, b, c := OpenReplica(t), OpenReplica(t), OpenReplica(t)
	put(t, a, "ns", Item{ID: "from-a"})
	put(t, c, "ns", Item{ID: "from-c"})
	for _, r := range []*Replica{a, c, a} {
		if _, err := r.DB.SyncWith(t.Context(), newPeer(t, b.DB.SyncStore()), "ns"); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
	CheckConverged(t, "ns", a, b, c)
}

// checkMalformedOpsRefused: malformed pushed ops are refused in the
// answer, not as an error, and change nothing.
func checkMalformedOpsRefused(t *testing.T, newPeer NewPeer) {
	b := OpenReplica(t)
	put(t, b, "ns", Item{ID: "keep", Name: "b"})
	before, err := b.DB.Admin().StateHash(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	peer := newPeer(t, b.DB.SyncStore())
	req := &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Ops: [][]byte{{0x93, 0x01}, []byte("not msgpack at all")}}
	resp, err := peer.RoundTrip(t.Context(), req)
	if err != nil {
		t.Fatalf("round trip with malformed ops: %v (want the ops refused in the response, not an error)", err)
	}
	if resp.Applied.Refused != 2 || resp.Applied.Applied != 0 {
		t.Errorf("applied %+v, want 2 refused", resp.Applied)
	}
	if resp.Applied.Reason == "" {
		t.Error("no reason given for the refusal")
	}
	after, _ := b.DB.Admin().StateHash(t.Context(), "ns")
	if after != before {
		t.Error("state changed after malformed ops")
	}
}

// checkConcurrent: replicas writing and syncing with one hub at once
// converge.
func checkConcurrent(t *testing.T, newPeer NewPeer) {
	hub := OpenReplica(t)
	reps := []*Replica{OpenReplica(t), OpenReplica(t), OpenReplica(t)}
	errs := make(chan error, len(reps))
	for i, r := range reps {
		go func() {
			for j := range 20 {
				if _, err := r.Items.Put(context.Background(), "ns", &Item{ID: fmt.Sprintf("k%d", j%5), Name: fmt.Sprintf("r%d-%d", i, j)}); err != nil {
					errs <- err
					return
				}
				if _, err := r.DB.SyncWith(context.Background(), newPeer(t, hub.DB.SyncStore()), "ns"); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range reps {
		if err := <-errs; err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	for _, r := range reps {
		if _, err := r.DB.SyncWith(t.Context(), newPeer(t, hub.DB.SyncStore()), "ns"); err != nil {
			t.Fatal(err)
		}
	}
	CheckConverged(t, "ns", append(reps, hub)...)
}

// WithoutSnapshots is a store that says it can neither make nor install
// snapshots (errors.ErrUnsupported) and otherwise is Store: for tests of
// how a transport or the sync engine reports that.
type WithoutSnapshots struct{ transport.Store }

// Snapshot implements transport.Store: errors.ErrUnsupported.
func (WithoutSnapshots) Snapshot(context.Context, string, *transport.SnapshotCursor, transport.Limits) (crdt.VersionVector, []transport.SnapshotRecord, bool, error) {
	return nil, nil, false, fmt.Errorf("transporttest: WithoutSnapshots: %w", errors.ErrUnsupported)
}

// InstallSnapshot implements transport.Store: errors.ErrUnsupported.
func (WithoutSnapshots) InstallSnapshot(context.Context, string, []transport.SnapshotRecord) error {
	return fmt.Errorf("transporttest: WithoutSnapshots: %w", errors.ErrUnsupported)
}

// FinishSnapshot implements transport.Store: errors.ErrUnsupported.
func (WithoutSnapshots) FinishSnapshot(context.Context, string, crdt.VersionVector) error {
	return fmt.Errorf("transporttest: WithoutSnapshots: %w", errors.ErrUnsupported)
}
