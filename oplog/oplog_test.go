package oplog_test

import (
	"context"
	"errors"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

func openLog(t *testing.T, dir string, opts oplog.Options) *oplog.Log {
	t.Helper()
	l, err := oplog.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func put(t *testing.T, l *oplog.Log, ns, coll, key string, changes ...crdt.Change) *oplog.Commit {
	t.Helper()
	c, err := l.Write(t.Context(), ns, func(tx *oplog.Tx) error {
		_, err := tx.Mutate(coll, key, crdt.IntentPut, changes)
		return err
	})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return c
}

func TestWriteIngestConverge(t *testing.T) {
	ctx := context.Background()
	a := openLog(t, t.TempDir(), oplog.Options{Durability: oplog.NoSync})
	b := openLog(t, t.TempDir(), oplog.Options{Durability: oplog.NoSync})
	put(t, a, "ns", "tasks", "k1", crdt.Change{Name: "title", Type: crdt.Set, Value: crdt.EncodeString("from a")})
	put(t, b, "ns", "tasks", "k1", crdt.Change{Name: "title", Type: crdt.Set, Value: crdt.EncodeString("from b")})
	sync := func(from, to *oplog.Log) {
		t.Helper()
		have, err := to.Vector(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		p, err := from.Page(ctx, "ns", have, oplog.PageLimits{})
		if err != nil {
			t.Fatal(err)
		}
		ops := make([]crdt.Op, len(p.Entries))
		for i, e := range p.Entries {
			ops[i] = e.Op
		}
		res, err := to.Ingest(ctx, "ns", ops)
		if err != nil {
			t.Fatal(err)
		}
		if res.Applied != len(ops) {
			t.Fatalf("applied %d of %d: %+v", res.Applied, len(ops), res)
		}
	}
	sync(a, b)
	sync(b, a)
	ha, _, _ := a.StateHash(ctx, "ns")
	hb, _, _ := b.StateHash(ctx, "ns")
	if ha != hb {
		t.Fatalf("hashes differ: %s vs %s", ha, hb)
	}
	ra, _ := a.Get(ctx, "ns", "tasks", "k1")
	v, ok := ra.Get("title")
	if !ok {
		t.Fatal("title missing")
	}
	t.Logf("winner %q", v.Value)
	na, _ := a.ConflictCount(ctx, "ns")
	nb, _ := b.ConflictCount(ctx, "ns")
	if na != 1 || nb != 1 {
		t.Fatalf("conflicts a=%d b=%d, want 1 each", na, nb)
	}
	for _, l := range []*oplog.Log{a, b} {
		v, err := l.Verify(ctx, "ns")
		if err != nil || !v.OK() {
			t.Fatalf("Verify = %+v, %v", v, err)
		}
	}
	// Update of a missing record.
	_, err := a.Write(ctx, "ns", func(tx *oplog.Tx) error {
		_, err := tx.Mutate("tasks", "nope", crdt.IntentUpdate, nil)
		return err
	})
	if !errors.Is(err, oplog.ErrNotFound) {
		t.Fatalf("update missing: %v, want ErrNotFound", err)
	}
}
