package oplog_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// baseMillis is the fake clocks' starting time (Unix milliseconds).
const baseMillis = 1_700_000_000_000

// quietLogger discards the store's log lines.
var quietLogger = slog.New(slog.DiscardHandler)

// fakeClock is an injectable physical clock, safe for concurrent use.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock(ms int64) *fakeClock {
	c := &fakeClock{}
	c.ms.Store(ms)
	return c
}

func (c *fakeClock) Now() int64              { return c.ms.Load() }
func (c *fakeClock) Set(ms int64)            { c.ms.Store(ms) }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func openLog(t testing.TB, dir string, opts oplog.Options) *oplog.Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger
	}
	l, err := oplog.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// openMem opens a log on a fresh in-memory file system (no fsync cost).
func openMem(t *testing.T, opts oplog.Options) *oplog.Log {
	t.Helper()
	opts.FS = vfs.NewMem()
	if opts.Durability == oplog.SyncEveryCommit {
		opts.Durability = oplog.NoSync
	}
	return openLog(t, "db", opts)
}

func setStr(name, v string) crdt.Change {
	return crdt.Change{Name: name, Type: crdt.Set, Value: crdt.EncodeString(v)}
}

func setInt(name string, v int64) crdt.Change {
	return crdt.Change{Name: name, Type: crdt.Set, Value: crdt.EncodeInt(v)}
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

// mutation is one Mutate of a test transaction.
type mutation struct {
	coll, key string
	intent    crdt.Intent
	changes   []crdt.Change
}

// writeTx commits the mutations in one transaction.
func writeTx(t *testing.T, l *oplog.Log, ns string, ms ...mutation) *oplog.Commit {
	t.Helper()
	c, err := l.Write(t.Context(), ns, func(tx *oplog.Tx) error {
		for _, m := range ms {
			if _, err := tx.Mutate(m.coll, m.key, m.intent, m.changes); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return c
}

// entries returns the ops of ns that a replica with vector have lacks.
func entries(t *testing.T, l *oplog.Log, ns string, have crdt.VersionVector) []oplog.Entry {
	t.Helper()
	var out []oplog.Entry
	for e, err := range l.Missing(t.Context(), ns, have) {
		if err != nil {
			t.Fatalf("Missing: %v", err)
		}
		out = append(out, e)
	}
	return out
}

func opsOf(es []oplog.Entry) []crdt.Op {
	ops := make([]crdt.Op, len(es))
	for i, e := range es {
		ops[i] = e.Op
	}
	return ops
}

func vector(t *testing.T, l *oplog.Log, ns string) crdt.VersionVector {
	t.Helper()
	vv, err := l.Vector(t.Context(), ns)
	if err != nil {
		t.Fatalf("Vector: %v", err)
	}
	return vv
}

func stateHash(t *testing.T, l *oplog.Log, ns string) string {
	t.Helper()
	h, _, err := l.StateHash(t.Context(), ns)
	if err != nil {
		t.Fatalf("StateHash: %v", err)
	}
	return h
}

func mustVerify(t *testing.T, l *oplog.Log, ns string) {
	t.Helper()
	v, err := l.Verify(t.Context(), ns)
	if err != nil {
		t.Fatalf("Verify(%q): %v", ns, err)
	}
	if !v.OK() {
		t.Fatalf("Verify(%q) = %+v, want stored state = log state", ns, v)
	}
}

// checkLogMatchesVector checks that the log of ns holds exactly the ops its
// vector says, each origin's densely from 1, in (origin, seq) order, and
// that each origin's ops end at a transaction's end.
func checkLogMatchesVector(t *testing.T, l *oplog.Log, ns string) {
	t.Helper()
	vv := vector(t, l, ns)
	es := entries(t, l, ns, nil)
	got := crdt.VersionVector{}
	for i, e := range es {
		d := e.Op.Dot
		if want := got[d.Origin] + 1; d.Seq != want {
			t.Fatalf("entry %d: dot %v, want seq %d", i, d, want)
		}
		got[d.Origin] = d.Seq
		last := i == len(es)-1 || es[i+1].Op.Dot.Origin != d.Origin
		if last && !e.Op.TxEnd {
			t.Errorf("last op %v of its origin lacks TxEnd", d)
		}
		if raw := crdt.EncodeOp(&e.Op); string(raw) != string(e.Raw) {
			t.Errorf("entry %v: Raw is not the op's encoding", d)
		}
	}
	if !got.Equal(vv) {
		t.Fatalf("log holds %v, vector says %v", got, vv)
	}
}

// syncPages sends from's ops that to lacks, page by page, until to has
// them all. It returns the number of pages and of ops sent.
func syncPages(t *testing.T, from, to *oplog.Log, ns string, lim oplog.PageLimits) (pages, ops int) {
	t.Helper()
	ctx := t.Context()
	for {
		have := vector(t, to, ns)
		p, err := from.Page(ctx, ns, have, lim)
		if err != nil {
			t.Fatalf("Page: %v", err)
		}
		if len(p.Entries) == 0 {
			if p.More {
				t.Fatal("empty page with More set")
			}
			return pages, ops
		}
		pages++
		ops += len(p.Entries)
		res, err := to.Ingest(ctx, ns, opsOf(p.Entries))
		if err != nil {
			t.Fatalf("Ingest: %v", err)
		}
		if res.Applied != len(p.Entries) || res.Duplicates != 0 {
			t.Fatalf("Ingest of a page of %d: %+v", len(p.Entries), res)
		}
		if !p.More {
			return pages, ops
		}
	}
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
