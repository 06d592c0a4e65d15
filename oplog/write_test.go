package oplog_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

func TestDurabilityModes(t *testing.T) {
	for _, d := range []oplog.Durability{oplog.SyncEveryCommit, oplog.GroupCommit, oplog.NoSync} {
		t.Run(d.String(), func(t *testing.T) {
			dir := t.TempDir()
			l, err := oplog.Open(dir, oplog.Options{Durability: d})
			if err != nil {
				t.Fatal(err)
			}
			const writers, perWriter = 4, 25
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					for i := range perWriter {
						key := fmt.Sprintf("w%d-%d", w, i)
						_, err := l.Write(t.Context(), "ns", func(tx *oplog.Tx) error {
							_, err := tx.Mutate("c", key, crdt.IntentPut, []crdt.Change{setInt("i", int64(i))})
							return err
						})
						if err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("Write: %v", err)
			}
			check := func(l *oplog.Log) {
				t.Helper()
				if got := vector(t, l, "ns")[l.ReplicaID()]; got != writers*perWriter {
					t.Fatalf("vector = %d, want %d", got, writers*perWriter)
				}
				for w := range writers {
					for i := range perWriter {
						r, err := l.Get(t.Context(), "ns", "c", fmt.Sprintf("w%d-%d", w, i))
						if err != nil {
							t.Fatal(err)
						}
						v, ok := r.Get("i")
						if !ok || string(v.Value) != string(crdt.EncodeInt(int64(i))) {
							t.Fatalf("w%d-%d: i = %x (%v), want %d", w, i, v.Value, ok, i)
						}
					}
				}
				checkLogMatchesVector(t, l, "ns")
				mustVerify(t, l, "ns")
			}
			check(l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			check(openLog(t, dir, oplog.Options{Durability: d}))
		})
	}
}

func TestUnknownDurability(t *testing.T) {
	l, err := oplog.Open(t.TempDir(), oplog.Options{Durability: oplog.NoSync + 1})
	if err == nil {
		l.Close()
		t.Fatal("Open with an unknown durability succeeded")
	}
}

func TestTransactionSeqsAndTxEnd(t *testing.T) {
	l := openMem(t, oplog.Options{})
	put(t, l, "ns", "c", "first", setStr("f", "x"))
	c := writeTx(t, l, "ns",
		mutation{"c", "a", crdt.IntentPut, []crdt.Change{setStr("f", "1")}},
		mutation{"c", "b", crdt.IntentPut, []crdt.Change{setStr("f", "2")}},
		mutation{"c", "a", crdt.IntentUpdate, []crdt.Change{setStr("g", "3")}},
		mutation{"c", "first", crdt.IntentDelete, nil},
	)
	if len(c.Ops) != 4 {
		t.Fatalf("commit has %d ops, want 4", len(c.Ops))
	}
	if !c.Local || c.Namespace != "ns" {
		t.Errorf("commit Local=%v Namespace=%q, want true, ns", c.Local, c.Namespace)
	}
	for i, op := range c.Ops {
		if want := uint64(2 + i); op.Dot.Seq != want || op.Dot.Origin != l.ReplicaID() {
			t.Errorf("op %d: dot %v, want %v:%d", i, op.Dot, l.ReplicaID(), want)
		}
		if want := i == len(c.Ops)-1; op.TxEnd != want {
			t.Errorf("op %d: TxEnd = %v, want %v", i, op.TxEnd, want)
		}
		if i > 0 && op.HLC <= c.Ops[i-1].HLC {
			t.Errorf("op %d: HLC %v not after %v", i, op.HLC, c.Ops[i-1].HLC)
		}
	}
	// The stored log agrees.
	es := entries(t, l, "ns", nil)
	if len(es) != 5 {
		t.Fatalf("log holds %d ops, want 5", len(es))
	}
	for i, e := range es {
		if want := i == 0 || i == 4; e.Op.TxEnd != want {
			t.Errorf("stored op %v: TxEnd = %v, want %v", e.Op.Dot, e.Op.TxEnd, want)
		}
	}
	// The tx saw its own writes: a's update kept f and added g.
	r, err := l.Get(t.Context(), "ns", "c", "a")
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := r.Get("f"); !ok || string(f.Value) != string(crdt.EncodeString("1")) {
		t.Errorf("a.f = %x, %v", f.Value, ok)
	}
	if g, ok := r.Get("g"); !ok || string(g.Value) != string(crdt.EncodeString("3")) {
		t.Errorf("a.g = %x, %v", g.Value, ok)
	}
	if r, _ := l.Get(t.Context(), "ns", "c", "first"); r.Exists() {
		t.Error("deleted record exists")
	}
	checkLogMatchesVector(t, l, "ns")
	mustVerify(t, l, "ns")
}

func TestTransactionReadYourWrites(t *testing.T) {
	l := openMem(t, oplog.Options{})
	_, err := l.Write(t.Context(), "ns", func(tx *oplog.Tx) error {
		if r, err := tx.Get("c", "k"); err != nil || r.CL != 0 {
			return fmt.Errorf("Get before = %+v, %v", r, err)
		}
		if _, err := tx.Mutate("c", "k", crdt.IntentPut, []crdt.Change{setStr("f", "v")}); err != nil {
			return err
		}
		r, err := tx.Get("c", "k")
		if err != nil {
			return err
		}
		if v, ok := r.Get("f"); !ok || string(v.Value) != string(crdt.EncodeString("v")) {
			return fmt.Errorf("Get after Mutate: f = %x, %v", v.Value, ok)
		}
		if tx.Namespace() != "ns" {
			return fmt.Errorf("Namespace() = %q", tx.Namespace())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTransactionErrorWritesNothing(t *testing.T) {
	var commits int
	l := openMem(t, oplog.Options{OnCommit: func(*oplog.Commit) { commits++ }})
	put(t, l, "ns", "c", "k", setStr("f", "v"))
	vvBefore := vector(t, l, "ns")
	hashBefore := stateHash(t, l, "ns")
	commits = 0
	boom := errors.New("boom")
	_, err := l.Write(t.Context(), "ns", func(tx *oplog.Tx) error {
		for i := range 3 {
			if _, err := tx.Mutate("c", fmt.Sprintf("n%d", i), crdt.IntentPut, []crdt.Change{setInt("i", int64(i))}); err != nil {
				return err
			}
		}
		if _, err := tx.Mutate("c", "k", crdt.IntentDelete, nil); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want %v", err, boom)
	}
	if got := vector(t, l, "ns"); !got.Equal(vvBefore) {
		t.Errorf("vector = %v, want %v", got, vvBefore)
	}
	if got := stateHash(t, l, "ns"); got != hashBefore {
		t.Error("state changed")
	}
	if es := entries(t, l, "ns", nil); len(es) != 1 {
		t.Errorf("log holds %d ops, want 1", len(es))
	}
	if commits != 0 {
		t.Errorf("OnCommit called %d times", commits)
	}
	for i := range 3 {
		if r, _ := l.Get(t.Context(), "ns", "c", fmt.Sprintf("n%d", i)); r.CL != 0 {
			t.Errorf("n%d was written", i)
		}
	}
	// The next write takes the next sequence number: none was used up.
	c := put(t, l, "ns", "c", "k2", setStr("f", "v"))
	if c.Ops[0].Dot.Seq != 2 {
		t.Errorf("next op has seq %d, want 2", c.Ops[0].Dot.Seq)
	}
}

func TestMutateNotFound(t *testing.T) {
	l := openMem(t, oplog.Options{})
	put(t, l, "ns", "c", "deleted", setStr("f", "v"))
	writeTx(t, l, "ns", mutation{"c", "deleted", crdt.IntentDelete, nil})
	vvBefore := vector(t, l, "ns")
	set := []crdt.Change{setStr("f", "x")}
	for _, tc := range []struct {
		name    string
		key     string
		intent  crdt.Intent
		changes []crdt.Change
	}{
		{"update absent", "absent", crdt.IntentUpdate, set},
		{"delete absent", "absent", crdt.IntentDelete, nil},
		{"update deleted", "deleted", crdt.IntentUpdate, set},
		{"delete deleted", "deleted", crdt.IntentDelete, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Write(t.Context(), "ns", func(tx *oplog.Tx) error {
				_, err := tx.Mutate("c", tc.key, tc.intent, tc.changes)
				return err
			})
			if !errors.Is(err, oplog.ErrNotFound) {
				t.Fatalf("Write = %v, want ErrNotFound", err)
			}
		})
	}
	if got := vector(t, l, "ns"); !got.Equal(vvBefore) {
		t.Errorf("vector = %v, want %v", got, vvBefore)
	}
}

func TestMutateNoChange(t *testing.T) {
	l := openMem(t, oplog.Options{})
	put(t, l, "ns", "c", "k", setStr("f", "v"))
	var op *crdt.Op
	c, err := l.Write(t.Context(), "ns", func(tx *oplog.Tx) error {
		var err error
		op, err = tx.Mutate("c", "k", crdt.IntentUpdate, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if op != nil {
		t.Errorf("Mutate with no changes = %+v, want nil", op)
	}
	if len(c.Ops) != 0 {
		t.Errorf("commit holds %d ops, want 0", len(c.Ops))
	}
	// Removing an element the set does not hold changes nothing either.
	c, err = l.Write(t.Context(), "ns", func(tx *oplog.Tx) error {
		op, err = tx.Mutate("c", "k", crdt.IntentUpdate, []crdt.Change{{Name: "s", Type: crdt.RemoveElem, Value: crdt.EncodeString("x")}})
		return err
	})
	if err != nil || op != nil || len(c.Ops) != 0 {
		t.Errorf("remove of an absent element: op %+v, %d ops, %v; want nothing written", op, len(c.Ops), err)
	}
	if got := vector(t, l, "ns")[l.ReplicaID()]; got != 1 {
		t.Errorf("vector = %d, want 1", got)
	}
}

func TestWriteBadNamespace(t *testing.T) {
	l := openMem(t, oplog.Options{})
	for _, ns := range []string{"", string(make([]byte, crdt.MaxNameLen+1))} {
		_, err := l.Write(t.Context(), ns, func(tx *oplog.Tx) error { return nil })
		if !errors.Is(err, oplog.ErrNamespace) {
			t.Errorf("Write(ns of %d bytes) = %v, want ErrNamespace", len(ns), err)
		}
		_, err = l.Ingest(t.Context(), ns, nil)
		if !errors.Is(err, oplog.ErrNamespace) {
			t.Errorf("Ingest(ns of %d bytes) = %v, want ErrNamespace", len(ns), err)
		}
	}
}

func TestWriteTooLarge(t *testing.T) {
	l := openMem(t, oplog.Options{})
	big := make([]byte, crdt.MaxValueLen-16)
	var changes []crdt.Change
	for i := range 5 {
		changes = append(changes, crdt.Change{Name: fmt.Sprintf("f%d", i), Type: crdt.Set, Value: crdt.EncodeString(string(big))})
	}
	_, err := l.Write(t.Context(), "ns", func(tx *oplog.Tx) error {
		_, err := tx.Mutate("c", "k", crdt.IntentPut, changes)
		return err
	})
	if !errors.Is(err, oplog.ErrTooLarge) {
		t.Fatalf("Write of a %d-byte op = %v, want ErrTooLarge", 5*len(big), err)
	}
	if got := vector(t, l, "ns"); len(got) != 0 {
		t.Errorf("vector = %v, want empty", got)
	}
}

func TestNamespacesAndRecords(t *testing.T) {
	l := openMem(t, oplog.Options{})
	put(t, l, "b", "c", "k", setStr("f", "v"))
	put(t, l, "a", "c2", "k2", setStr("f", "v"))
	put(t, l, "a", "c1", "k1", setStr("f", "v"))
	put(t, l, "a", "c1", "k0", setStr("f", "v"))
	writeTx(t, l, "a", mutation{"c1", "k0", crdt.IntentDelete, nil})
	nss, err := l.Namespaces(t.Context())
	if err != nil || fmt.Sprint(nss) != "[a b]" {
		t.Errorf("Namespaces = %v, %v; want [a b]", nss, err)
	}
	var got []string
	for e, err := range l.Records(t.Context(), "a", "") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s/%s:%v", e.Collection, e.Key, e.State.Exists()))
	}
	if want := "[c1/k0:false c1/k1:true c2/k2:true]"; fmt.Sprint(got) != want {
		t.Errorf("Records(a) = %v, want %v", got, want)
	}
	got = got[:0]
	for e, err := range l.Records(t.Context(), "a", "c2") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Key)
	}
	if fmt.Sprint(got) != "[k2]" {
		t.Errorf("Records(a, c2) = %v, want [k2]", got)
	}
}
