package oplog_test

import (
	"fmt"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// exchange syncs a and b both ways.
func exchange(t *testing.T, a, b *oplog.Log, ns string) {
	t.Helper()
	syncPages(t, a, b, ns, oplog.PageLimits{})
	syncPages(t, b, a, ns, oplog.PageLimits{})
}

func TestConflictLog(t *testing.T) {
	// b's clock runs ahead of a's, so b's writes win.
	opts := func(ms int64) oplog.Options {
		return oplog.Options{Clock: newFakeClock(ms).Now, ConflictLogSize: 3}
	}
	a := openMem(t, opts(baseMillis))
	b := openMem(t, opts(baseMillis+1000))
	ctx := t.Context()

	ca := put(t, a, "ns", "c", "k", setStr("title", "from a"))
	cb := put(t, b, "ns", "c", "k", setStr("title", "from b"))
	exchange(t, a, b, "ns")
	for name, l := range map[string]*oplog.Log{"a": a, "b": b} {
		n, err := l.ConflictCount(ctx, "ns")
		if err != nil || n != 1 {
			t.Fatalf("%s: ConflictCount = %d, %v; want 1", name, n, err)
		}
		cs, err := l.Conflicts(ctx, "ns")
		if err != nil || len(cs) != 1 {
			t.Fatalf("%s: Conflicts = %+v, %v; want 1", name, cs, err)
		}
		c := cs[0]
		if c.Namespace != "ns" || c.Collection != "c" || c.Key != "k" || c.Field != "title" {
			t.Errorf("%s: conflict on %s/%s/%s.%s, want ns/c/k.title", name, c.Namespace, c.Collection, c.Key, c.Field)
		}
		if c.Winner.Version != cb.Ops[0].Version() || string(c.Winner.Value) != string(crdt.EncodeString("from b")) {
			t.Errorf("%s: winner %+v, want b's write %+v", name, c.Winner, cb.Ops[0].Version())
		}
		if c.Loser.Version != ca.Ops[0].Version() || string(c.Loser.Value) != string(crdt.EncodeString("from a")) {
			t.Errorf("%s: loser %+v, want a's write %+v", name, c.Loser, ca.Ops[0].Version())
		}
		r, err := l.Get(ctx, "ns", "c", "k")
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := r.Get("title"); string(v.Value) != string(crdt.EncodeString("from b")) {
			t.Errorf("%s: title = %x, want b's", name, v.Value)
		}
	}

	// A write that saw the current value is no conflict.
	put(t, a, "ns", "c", "k", setStr("title", "a saw b"))
	exchange(t, a, b, "ns")
	for _, l := range []*oplog.Log{a, b} {
		if n, _ := l.ConflictCount(ctx, "ns"); n != 1 {
			t.Fatalf("ConflictCount after a sequential write = %d, want 1", n)
		}
	}

	// Four more rounds of concurrent writes: the ring keeps the last 3.
	for round := range 4 {
		put(t, a, "ns", "c", "k", setStr("title", fmt.Sprintf("a%d", round)))
		put(t, b, "ns", "c", "k", setStr("title", fmt.Sprintf("b%d", round)))
		exchange(t, a, b, "ns")
	}
	for name, l := range map[string]*oplog.Log{"a": a, "b": b} {
		n, err := l.ConflictCount(ctx, "ns")
		if err != nil || n != 5 {
			t.Errorf("%s: ConflictCount = %d, %v; want 5", name, n, err)
		}
		cs, err := l.Conflicts(ctx, "ns")
		if err != nil || len(cs) != 3 {
			t.Fatalf("%s: %d conflicts kept, %v; want 3", name, len(cs), err)
		}
		// Oldest first: rounds 1, 2, 3.
		for i, c := range cs {
			w, lo := string(c.Winner.Value), string(c.Loser.Value)
			want := map[string]bool{string(crdt.EncodeString(fmt.Sprintf("a%d", i+1))): true, string(crdt.EncodeString(fmt.Sprintf("b%d", i+1))): true}
			if !want[w] || !want[lo] || w == lo {
				t.Errorf("%s: conflict %d is %q vs %q, want round %d's writes", name, i, w, lo, i+1)
			}
			if c.Winner.Version.Compare(c.Loser.Version) <= 0 {
				t.Errorf("%s: conflict %d: winner %v not after loser %v", name, i, c.Winner.Version, c.Loser.Version)
			}
		}
	}
	if stateHash(t, a, "ns") != stateHash(t, b, "ns") {
		t.Error("state hashes differ")
	}
}

// TestConflictCountSurvivesReopen checks that conflict numbering continues
// after a restart, so the ring and the count stay right.
func TestConflictCountSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	opts := oplog.Options{Durability: oplog.NoSync, ConflictLogSize: 2}
	a, err := oplog.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	b := openMem(t, oplog.Options{})
	for round := range 3 {
		put(t, a, "ns", "c", "k", setInt("f", int64(round)))
		put(t, b, "ns", "c", "k", setInt("f", int64(100+round)))
		exchange(t, a, b, "ns")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = openLog(t, dir, opts)
	if n, err := a.ConflictCount(t.Context(), "ns"); err != nil || n != 3 {
		t.Fatalf("ConflictCount after reopen = %d, %v; want 3", n, err)
	}
	put(t, a, "ns", "c", "k", setInt("f", 9))
	put(t, b, "ns", "c", "k", setInt("f", 109))
	exchange(t, a, b, "ns")
	if n, _ := a.ConflictCount(t.Context(), "ns"); n != 4 {
		t.Errorf("ConflictCount = %d, want 4", n)
	}
	if cs, _ := a.Conflicts(t.Context(), "ns"); len(cs) != 2 {
		t.Errorf("%d conflicts kept, want 2", len(cs))
	}
}
