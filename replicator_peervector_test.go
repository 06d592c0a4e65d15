package converge_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

// errOtherOrigin is originGate's refusal.
var errOtherOrigin = errors.New("refused: a pushed op of another origin")

// originGate is a hub that refuses a whole push holding an op of any
// origin but writer's, even an op it holds: as an HTTP server refused
// origin-restricted tokens before issue 13.3 was fixed, or as any peer may
// refuse a batch for a reason of its own.
type originGate struct {
	*transport.MemPeer
	writer   crdt.ReplicaID
	refusals atomic.Int64
}

func (g *originGate) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	for _, raw := range req.Ops {
		if op, err := crdt.DecodeOp(raw); err == nil && op.Dot.Origin != g.writer {
			g.refusals.Add(1)
			return nil, errOtherOrigin
		}
	}
	return g.MemPeer.RoundTrip(ctx, req)
}

// TestReplicatorRetriesFromAFreshVector is issue 13.3 at the client: the
// replicator keeps the peer's vector from its last sync and pushes what
// that vector lacks. When ops reached this replica by another path since
// (a live stream), that push holds ops the peer has; if the peer refuses
// the push, the next sync must start with a vector exchange, not push the
// same stale batch again, for ever.
func TestReplicatorRetriesFromAFreshVector(t *testing.T) {
	ctx := t.Context()
	quiet := converge.Options{Durability: converge.NoSync, Logger: slog.New(slog.DiscardHandler)}
	hub, a, b := open(t, quiet), open(t, quiet), open(t, quiet)
	tasksA := coll[Task](t, a, "tasks")
	tasksB := coll[Task](t, b, "tasks")
	aID, err := crdt.ParseReplicaID(a.ReplicaID())
	if err != nil {
		t.Fatal(err)
	}
	gate := &originGate{MemPeer: transport.NewMemPeer(hub.SyncStore(), transport.Limits{}), writer: aID}
	// Background syncs wait an hour: only SyncNow syncs.
	r, err := a.OpenReplicator(gate, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Debounce: time.Hour, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)

	if _, err := tasksA.Put(ctx, "ns", &Task{ID: "a1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SyncNow(ctx, "ns"); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	// b's write reaches the hub, then a, outside a's syncs.
	if _, err := tasksB.Put(ctx, "ns", &Task{ID: "b1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SyncWith(ctx, transport.NewMemPeer(hub.SyncStore(), transport.Limits{}), "ns"); err != nil {
		t.Fatal(err)
	}
	have, err := a.SyncStore().Vector(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	delivered, _, err := hub.SyncStore().Missing(ctx, "ns", have, transport.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := a.SyncStore().Apply(ctx, "ns", delivered); err != nil || got.Applied != 1 {
		t.Fatalf("live delivery of b's op: %+v, %v", got, err)
	}
	if _, err := tasksA.Put(ctx, "ns", &Task{ID: "a2"}); err != nil {
		t.Fatal(err)
	}

	// The kept vector says the hub lacks b1: the push holds it, and is
	// refused.
	if _, err := r.SyncNow(ctx, "ns"); !errors.Is(err, errOtherOrigin) {
		t.Fatalf("sync pushing from the kept vector: %v, want the gate's refusal", err)
	}
	// The next sync learns the hub's vector first, and pushes only a2.
	if _, err := r.SyncNow(ctx, "ns"); err != nil {
		t.Fatalf("sync after the refusal: %v (refusals so far: %d)", err, gate.refusals.Load())
	}
	if _, err := coll[Task](t, hub, "tasks").Get(ctx, "ns", "a2"); err != nil {
		t.Errorf("the hub lacks a2: %v", err)
	}
	if n := gate.refusals.Load(); n != 1 {
		t.Errorf("%d refused pushes, want 1", n)
	}
}
