package oplog_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

func TestClosed(t *testing.T) {
	l, err := oplog.Open(t.TempDir(), oplog.Options{Durability: oplog.NoSync})
	if err != nil {
		t.Fatal(err)
	}
	put(t, l, "ns", "c", "k", setStr("f", "v"))
	ops := opsOf(entries(t, l, "ns", nil))
	id := l.ReplicaID()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	ctx := t.Context()
	firstErr := func(seq func(yield func(struct{}, error) bool)) error {
		var first error
		seq(func(_ struct{}, err error) bool {
			first = err
			return false
		})
		return first
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Write", func() error {
			_, err := l.Write(ctx, "ns", func(tx *oplog.Tx) error {
				_, err := tx.Mutate("c", "k2", crdt.IntentPut, nil)
				return err
			})
			return err
		}},
		{"Ingest", func() error { _, err := l.Ingest(ctx, "ns", ops); return err }},
		{"Get", func() error { _, err := l.Get(ctx, "ns", "c", "k"); return err }},
		{"Vector", func() error { _, err := l.Vector(ctx, "ns"); return err }},
		{"Namespaces", func() error { _, err := l.Namespaces(ctx); return err }},
		{"Missing", func() error {
			return firstErr(func(yield func(struct{}, error) bool) {
				for _, err := range l.Missing(ctx, "ns", nil) {
					if !yield(struct{}{}, err) {
						return
					}
				}
			})
		}},
		{"Page", func() error { _, err := l.Page(ctx, "ns", nil, oplog.PageLimits{}); return err }},
		{"Records", func() error {
			return firstErr(func(yield func(struct{}, error) bool) {
				for _, err := range l.Records(ctx, "ns", "") {
					if !yield(struct{}{}, err) {
						return
					}
				}
			})
		}},
		{"StateHash", func() error { _, _, err := l.StateHash(ctx, "ns"); return err }},
		{"Verify", func() error { _, err := l.Verify(ctx, "ns"); return err }},
		{"Rebuild", func() error { return l.Rebuild(ctx, "ns") }},
		{"ConflictCount", func() error { _, err := l.ConflictCount(ctx, "ns"); return err }},
		{"Conflicts", func() error { _, err := l.Conflicts(ctx, "ns"); return err }},
	} {
		if err := tc.call(); !errors.Is(err, oplog.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", tc.name, err)
		}
	}
	if l.ReplicaID() != id {
		t.Error("ReplicaID changed after Close")
	}
}

func TestCloseGroupCommitTwice(t *testing.T) {
	l, err := oplog.Open(t.TempDir(), oplog.Options{Durability: oplog.GroupCommit})
	if err != nil {
		t.Fatal(err)
	}
	put(t, l, "ns", "c", "k", setStr("f", "v"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestRebuild(t *testing.T) {
	src := openMem(t, oplog.Options{})
	writeMix(t, src, "ns", 50, rand.New(rand.NewPCG(31, 32)))
	other := openMem(t, oplog.Options{})
	writeMix(t, other, "ns", 30, rand.New(rand.NewPCG(33, 34)))
	syncPages(t, other, src, "ns", oplog.PageLimits{})
	put(t, src, "other", "c", "k", setStr("f", "v"))
	before := stateHash(t, src, "ns")
	_, nBefore, _ := src.StateHash(t.Context(), "ns")
	otherBefore := stateHash(t, src, "other")
	if err := src.Rebuild(t.Context(), "ns"); err != nil {
		t.Fatal(err)
	}
	h, n, err := src.StateHash(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	if h != before || n != nBefore {
		t.Errorf("after Rebuild: hash %s (%d records), want %s (%d)", h, n, before, nBefore)
	}
	if stateHash(t, src, "other") != otherBefore {
		t.Error("Rebuild of ns changed namespace other")
	}
	mustVerify(t, src, "ns")
	mustVerify(t, src, "other")
	// The store keeps working after a rebuild.
	writeMix(t, src, "ns", 5, rand.New(rand.NewPCG(35, 36)))
	checkLogMatchesVector(t, src, "ns")
	mustVerify(t, src, "ns")
}
