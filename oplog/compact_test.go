package oplog_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// logOps counts the ops the log of ns holds.
func logOps(t *testing.T, l *oplog.Log, ns string) int {
	t.Helper()
	h, err := l.Horizon(t.Context(), ns)
	if err != nil {
		t.Fatalf("Horizon: %v", err)
	}
	n := 0
	for _, err := range l.Missing(t.Context(), ns, h) {
		if err != nil {
			t.Fatalf("Missing(horizon): %v", err)
		}
		n++
	}
	return n
}

func compact(t *testing.T, l *oplog.Log, ns string, opts oplog.CompactOptions) oplog.CompactStats {
	t.Helper()
	st, err := l.Compact(t.Context(), ns, opts)
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	return st
}

func TestCompactFoldsTheLogIntoBaseStates(t *testing.T) {
	l := openMem(t, oplog.Options{})
	rng := rand.New(rand.NewPCG(3, 4))
	writeMix(t, l, "ns", 200, rng)
	vv := vector(t, l, "ns")
	before := stateHash(t, l, "ns")
	total := logOps(t, l, "ns")

	// Half of the ops first, in small batches, then the rest.
	half := crdt.VersionVector{l.ReplicaID(): vv[l.ReplicaID()] / 2}
	st := compact(t, l, "ns", oplog.CompactOptions{Horizon: half, BatchOps: 7})
	if st.Ops != int(half[l.ReplicaID()]) || st.Batches < 2 || !st.After.Equal(half) {
		t.Fatalf("first compaction = %+v, want %d ops in batches of 7 up to %v", st, half[l.ReplicaID()], half)
	}
	if got := logOps(t, l, "ns"); got != total-st.Ops {
		t.Fatalf("log holds %d ops after compacting %d of %d", got, st.Ops, total)
	}
	mustVerify(t, l, "ns")
	if _, err := l.Page(t.Context(), "ns", nil, oplog.PageLimits{}); !errors.Is(err, oplog.ErrCompacted) {
		t.Fatalf("Page(nil) after compaction: err = %v, want ErrCompacted", err)
	}
	if p, err := l.Page(t.Context(), "ns", half, oplog.PageLimits{}); err != nil || len(p.Entries) == 0 {
		t.Fatalf("Page(horizon) = %v, %v; want the ops after it", p, err)
	}

	compact(t, l, "ns", oplog.CompactOptions{Horizon: vv})
	if got := logOps(t, l, "ns"); got != 0 {
		t.Fatalf("log holds %d ops after compacting everything", got)
	}
	if got := stateHash(t, l, "ns"); got != before {
		t.Fatalf("state hash changed by compaction: %s, was %s", got, before)
	}
	mustVerify(t, l, "ns")
	if err := l.Rebuild(t.Context(), "ns"); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if got := stateHash(t, l, "ns"); got != before {
		t.Fatalf("state rebuilt from base states = %s, want %s", got, before)
	}

	// Writes go on, and the horizon survives a reopen.
	writeMix(t, l, "ns", 50, rng)
	mustVerify(t, l, "ns")
	if got := logOps(t, l, "ns"); got == 0 {
		t.Fatal("log holds no ops after new writes")
	}
	if h, _ := l.Horizon(t.Context(), "ns"); !h.Equal(vv) {
		t.Fatalf("Horizon = %v, want %v", h, vv)
	}
}

func TestCompactDefaultHorizonIsStable(t *testing.T) {
	a := openMem(t, oplog.Options{})
	b := openMem(t, oplog.Options{})
	writeMix(t, a, "ns", 40, rand.New(rand.NewPCG(5, 6)))

	// No peer known: nothing is stable, nothing is dropped.
	if st := compact(t, a, "ns", oplog.CompactOptions{}); st.Ops != 0 {
		t.Fatalf("compaction with no known peer dropped %d ops", st.Ops)
	}
	// b holds the first 30 ops: a may drop those, no more.
	syncPages(t, a, b, "ns", oplog.PageLimits{})
	held := vector(t, b, "ns")
	writeMix(t, a, "ns", 10, rand.New(rand.NewPCG(7, 8)))
	if err := a.Acknowledge(t.Context(), "ns", b.ReplicaID(), held); err != nil {
		t.Fatal(err)
	}
	st := compact(t, a, "ns", oplog.CompactOptions{})
	if !st.After.Equal(held) || st.Ops != int(held[a.ReplicaID()]) {
		t.Fatalf("compaction = %+v, want horizon %v (what b holds)", st, held)
	}
	// b can still catch up from a: it holds everything below the horizon.
	syncPages(t, a, b, "ns", oplog.PageLimits{MaxOps: 3})
	if stateHash(t, a, "ns") != stateHash(t, b, "ns") {
		t.Fatal("b did not converge with a after a compacted what b holds")
	}
	mustVerify(t, a, "ns")
}

// bootstrap copies src's state to dst by snapshot pages of lim, then syncs
// the ops after it; it returns the pages read.
func bootstrap(t *testing.T, src, dst *oplog.Log, ns string, lim oplog.PageLimits, between func(page int)) int {
	t.Helper()
	var cur *oplog.SnapshotCursor
	var floor crdt.VersionVector
	pages := 0
	for {
		p, err := src.Snapshot(t.Context(), ns, cur, lim)
		if err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		pages++
		if floor == nil {
			floor = p.Vector.Clone()
		}
		floor = floor.Meet(p.Vector)
		if _, err := dst.InstallSnapshot(t.Context(), ns, p.Records); err != nil {
			t.Fatalf("InstallSnapshot: %v", err)
		}
		if !p.More {
			break
		}
		last := p.Records[len(p.Records)-1]
		cur = &oplog.SnapshotCursor{Collection: last.Collection, Key: last.Key}
		if between != nil {
			between(pages)
		}
	}
	if err := dst.FinishSnapshot(t.Context(), ns, floor); err != nil {
		t.Fatalf("FinishSnapshot: %v", err)
	}
	syncPages(t, src, dst, ns, oplog.PageLimits{})
	return pages
}

func TestSnapshotBootstrap(t *testing.T) {
	src := openMem(t, oplog.Options{})
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range 20 {
		put(t, src, "ns", "d", fmt.Sprintf("r%02d", i), setStr("v", "x"))
	}
	writeMix(t, src, "ns", 100, rng)
	compact(t, src, "ns", oplog.CompactOptions{Horizon: vector(t, src, "ns")})

	dst := openMem(t, oplog.Options{})
	// src keeps writing while dst reads its pages: the snapshot stands
	// for the first page's vector, and the ordinary sync brings the rest.
	pages := bootstrap(t, src, dst, "ns", oplog.PageLimits{MaxOps: 4}, func(int) {
		writeMix(t, src, "ns", 3, rng)
	})
	if pages < 3 {
		t.Fatalf("snapshot took %d pages, want several", pages)
	}
	if a, b := stateHash(t, src, "ns"), stateHash(t, dst, "ns"); a != b {
		t.Fatalf("after bootstrap: hashes %s (src) and %s (dst)", a, b)
	}
	if a, b := vector(t, src, "ns"), vector(t, dst, "ns"); !a.Equal(b) {
		t.Fatalf("after bootstrap: vectors %v (src) and %v (dst)", a, b)
	}
	mustVerify(t, dst, "ns")
	// dst answers later peers itself, from its horizon on.
	third := openMem(t, oplog.Options{})
	if _, err := dst.Page(t.Context(), "ns", nil, oplog.PageLimits{}); !errors.Is(err, oplog.ErrCompacted) {
		t.Fatalf("a bootstrapped replica served ops below its snapshot: err = %v", err)
	}
	bootstrap(t, dst, third, "ns", oplog.PageLimits{}, nil)
	if a, b := stateHash(t, src, "ns"), stateHash(t, third, "ns"); a != b {
		t.Fatal("third replica, bootstrapped from a bootstrapped one, differs")
	}
}

// A replica that was behind the horizon, with writes of its own the donor
// never saw, keeps them through the snapshot.
func TestSnapshotIntoABehindReplica(t *testing.T) {
	src := openMem(t, oplog.Options{})
	dst := openMem(t, oplog.Options{})
	rng := rand.New(rand.NewPCG(11, 12))
	writeMix(t, src, "ns", 30, rng)
	syncPages(t, src, dst, "ns", oplog.PageLimits{})
	writeMix(t, dst, "ns", 30, rng) // dst's own, unsent
	writeMix(t, src, "ns", 30, rng)
	compact(t, src, "ns", oplog.CompactOptions{Horizon: vector(t, src, "ns")})
	if _, err := src.Page(t.Context(), "ns", vector(t, dst, "ns"), oplog.PageLimits{}); !errors.Is(err, oplog.ErrCompacted) {
		t.Fatalf("Page for a replica behind the horizon: err = %v, want ErrCompacted", err)
	}
	bootstrap(t, src, dst, "ns", oplog.PageLimits{MaxOps: 5}, nil)
	syncPages(t, dst, src, "ns", oplog.PageLimits{})
	if a, b := stateHash(t, src, "ns"), stateHash(t, dst, "ns"); a != b {
		t.Fatalf("hashes differ after bootstrap and sync back: %s, %s", a, b)
	}
	mustVerify(t, dst, "ns")
	mustVerify(t, src, "ns")
}

func TestInstallSnapshotRefusesBadStates(t *testing.T) {
	dst := openMem(t, oplog.Options{})
	for _, recs := range [][]oplog.SnapshotRecord{
		{{Collection: "c", Key: "k", State: []byte{0x93, 1, 2}}},
		{{Collection: "", Key: "k", State: (&crdt.Record{}).AppendBinary(nil)}},
	} {
		if _, err := dst.InstallSnapshot(t.Context(), "ns", recs); !errors.Is(err, crdt.ErrInvalidRecord) {
			t.Errorf("InstallSnapshot(%v): err = %v, want ErrInvalidRecord", recs, err)
		}
	}
	if _, count, err := dst.StateHash(t.Context(), "ns"); err != nil || count != 0 {
		t.Fatalf("a refused snapshot page left %d records (%v)", count, err)
	}
}

func TestCompactTrimsTheFeed(t *testing.T) {
	l := openMem(t, oplog.Options{FeedRetention: 10})
	for i := range 30 {
		put(t, l, "ns", "c", "k", setInt("n", int64(i)))
	}
	st := compact(t, l, "ns", oplog.CompactOptions{Horizon: vector(t, l, "ns")})
	if st.FeedTrimmed != 20 {
		t.Fatalf("FeedTrimmed = %d, want 20", st.FeedTrimmed)
	}
	for _, err := range l.Feed(t.Context(), "ns", 0) {
		if !errors.Is(err, oplog.ErrFeedTrimmed) {
			t.Fatalf("Feed(0) after trimming: err = %v, want ErrFeedTrimmed", err)
		}
		break
	}
	n := 0
	for c, err := range l.Feed(t.Context(), "ns", 20) {
		if err != nil {
			t.Fatalf("Feed(20): %v", err)
		}
		if c.Seq != uint64(21+n) {
			t.Fatalf("Feed(20) yielded change %d at position %d", c.Seq, n)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("Feed(20) yielded %d changes, want the 10 kept", n)
	}
}

// Writers and ingests go on while compaction runs; the result verifies.
func TestCompactConcurrentWithWrites(t *testing.T) {
	l := openMem(t, oplog.Options{})
	rng := rand.New(rand.NewPCG(13, 14))
	writeMix(t, l, "ns", 300, rng)
	target := vector(t, l, "ns")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			if _, err := l.Write(t.Context(), "ns", func(tx *oplog.Tx) error {
				_, err := tx.Mutate("c", fmt.Sprintf("k%d", i%8), crdt.IntentPut, []crdt.Change{setInt("w", int64(i))})
				return err
			}); err != nil {
				t.Errorf("Write: %v", err)
				return
			}
		}
	}()
	compact(t, l, "ns", oplog.CompactOptions{Horizon: target, BatchOps: 16})
	wg.Wait()
	mustVerify(t, l, "ns")
	if h, _ := l.Horizon(t.Context(), "ns"); !h.Equal(target) {
		t.Fatalf("Horizon = %v, want %v", h, target)
	}
}
