package converge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

// TestPoisonOpQuarantined: a well-formed op that fails validation arrives
// through sync among good ops of another origin. It is quarantined with
// its reason and visible in the replicator's status; the other origin's
// ops apply; discard removes it.
func TestPoisonOpQuarantined(t *testing.T) {
	ctx := t.Context()
	src, other, dst := open(t, converge.Options{}), open(t, converge.Options{}), open(t, converge.Options{})
	tasksSrc, tasksOther, tasksDst := coll[Task](t, src, "tasks"), coll[Task](t, other, "tasks"), coll[Task](t, dst, "tasks")
	for _, id := range []string{"p1", "p2"} {
		if _, err := tasksSrc.Put(ctx, "ns", &Task{ID: id, Title: "from src"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tasksOther.Put(ctx, "ns", &Task{ID: "fine", Title: "from other"}); err != nil {
		t.Fatal(err)
	}
	srcOps, _, err := src.SyncStore().Missing(ctx, "ns", crdt.VersionVector{}, transport.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	poison, err := crdt.DecodeOp(srcOps[0])
	if err != nil {
		t.Fatal(err)
	}
	poison.CL = 0 // well-formed bytes, an invalid op: no causal length
	otherOps, _, err := other.SyncStore().Missing(ctx, "ns", crdt.VersionVector{}, transport.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	batch := append([][]byte{crdt.AppendOp(nil, &poison), srcOps[1]}, otherOps...)
	a, err := dst.SyncStore().Apply(ctx, "ns", batch)
	if err != nil {
		t.Fatal(err)
	}
	if a.Applied != 1 || a.Refused != 2 || !errors.Is(a.Err, crdt.ErrInvalidOp) {
		t.Fatalf("Apply = %+v, want the other origin's op applied and src's two refused as invalid", a)
	}
	if _, err := tasksDst.Get(ctx, "ns", "fine"); err != nil {
		t.Fatalf("the other origin's op: %v", err)
	}
	if _, err := tasksDst.Get(ctx, "ns", "p2"); !errors.Is(err, converge.ErrNotFound) {
		t.Fatalf("the op behind the poison op: %v", err)
	}
	qs, err := dst.Admin().Quarantine(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 1 || qs[0].Origin != src.ReplicaID() || qs[0].Seq != 1 || qs[0].Kind != "invalid" || qs[0].Key != "p1" || qs[0].Reason == "" {
		t.Fatalf("quarantine = %+v", qs)
	}
	r, err := dst.OpenReplicator(transport.NewMemPeer(other.SyncStore(), transport.Limits{}), converge.ReplicatorOptions{Namespaces: []string{"ns"}, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	if st, err := r.Status(ctx, "ns"); err != nil || st.Quarantined != 1 {
		t.Fatalf("status = %+v, %v; want 1 quarantined", st, err)
	}
	if n, err := dst.Admin().RetryQuarantine(ctx, "ns"); err != nil || n != 0 {
		t.Fatalf("RetryQuarantine = %d, %v; the op is still invalid", n, err)
	}
	if err := dst.Admin().DiscardQuarantined(ctx, "ns", qs[0].Origin, qs[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := dst.Admin().DiscardQuarantined(ctx, "ns", qs[0].Origin, qs[0].Seq); !errors.Is(err, converge.ErrNotQuarantined) {
		t.Fatalf("second discard: %v", err)
	}
	if st, _ := r.Status(ctx, "ns"); st.Quarantined != 0 {
		t.Fatalf("status after discard = %+v", st)
	}
	// The real op, when it comes, applies and lets the one behind it in.
	if a, err := dst.SyncStore().Apply(ctx, "ns", srcOps); err != nil || a.Applied != 2 {
		t.Fatalf("Apply of the good ops = %+v, %v", a, err)
	}
}

// TestMaxOpSize: a local write over the limit is ErrTooLarge and writes
// nothing; a remote op over this replica's limit is refused and
// quarantined; the ops of its origin after it wait for it.
func TestMaxOpSize(t *testing.T) {
	ctx := t.Context()
	small := open(t, converge.Options{MaxOpSize: 512})
	big := open(t, converge.Options{})
	tasksSmall, tasksBig := coll[Task](t, small, "tasks"), coll[Task](t, big, "tasks")
	long := Task{ID: "big", Title: string(make([]byte, 2000))}
	if _, err := tasksSmall.Put(ctx, "ns", &long); !errors.Is(err, converge.ErrTooLarge) {
		t.Fatalf("local Put over the limit: %v, want ErrTooLarge", err)
	}
	if vv, _ := small.Admin().Vector(ctx, "ns"); len(vv) != 0 {
		t.Fatalf("a refused write left ops: %v", vv)
	}
	if _, err := tasksBig.Put(ctx, "ns", &long); err != nil {
		t.Fatal(err)
	}
	if _, err := tasksBig.Put(ctx, "ns", &Task{ID: "fine"}); err != nil {
		t.Fatal(err)
	}
	if _, err := small.SyncWith(ctx, transport.NewMemPeer(big.SyncStore(), transport.Limits{}), "ns"); !errors.Is(err, converge.ErrTooLarge) {
		t.Fatalf("sync of an op over the limit: %v, want an error wrapping ErrTooLarge", err)
	}
	qs, err := small.Admin().Quarantine(ctx, "ns")
	if err != nil || len(qs) != 1 || qs[0].Key != "big" || qs[0].Kind != "invalid" {
		t.Fatalf("quarantine = %+v, %v", qs, err)
	}
}
