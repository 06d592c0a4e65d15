package oplog_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// writeSizes writes one transaction of n puts per n in sizes.
func writeSizes(t *testing.T, l *oplog.Log, ns, prefix string, sizes []int) {
	t.Helper()
	for i, n := range sizes {
		var ms []mutation
		for j := range n {
			ms = append(ms, mutation{"c", fmt.Sprintf("%s%d.%d", prefix, i, j), crdt.IntentPut, []crdt.Change{setStr("f", fmt.Sprintf("value %d %d", i, j))}})
		}
		writeTx(t, l, ns, ms...)
	}
}

// checkPage checks one page against its limits: whole transactions only,
// and beyond a limit only when it is a single transaction.
func checkPage(t *testing.T, p *oplog.Page, have crdt.VersionVector, lim oplog.PageLimits) {
	t.Helper()
	bytes := 0
	txs := 0
	for i, e := range p.Entries {
		bytes += len(e.Raw)
		d := e.Op.Dot
		if i == 0 || p.Entries[i-1].Op.Dot.Origin != d.Origin {
			if want := have[d.Origin] + 1; d.Seq != want {
				t.Fatalf("page's ops of %v start at %d, want %d", d.Origin, d.Seq, want)
			}
		} else if want := p.Entries[i-1].Op.Dot.Seq + 1; d.Seq != want {
			t.Fatalf("page skips from %v to %v", p.Entries[i-1].Op.Dot, d)
		}
		endOfOrigin := i == len(p.Entries)-1 || p.Entries[i+1].Op.Dot.Origin != d.Origin
		if endOfOrigin && !e.Op.TxEnd {
			t.Fatalf("page ends inside a transaction at %v", d)
		}
		if e.Op.TxEnd {
			txs++
		}
	}
	if bytes != p.Bytes {
		t.Errorf("page Bytes = %d, entries hold %d", p.Bytes, bytes)
	}
	if (len(p.Entries) > lim.MaxOps || p.Bytes > lim.MaxBytes) && txs != 1 {
		t.Fatalf("page of %d ops, %d bytes (limits %d ops, %d bytes) holds %d transactions; only a single transaction may exceed the limits",
			len(p.Entries), p.Bytes, lim.MaxOps, lim.MaxBytes, txs)
	}
}

func TestPage(t *testing.T) {
	src := openMem(t, oplog.Options{})
	writeSizes(t, src, "ns", "a", []int{1, 1, 3, 1, 5, 1, 1, 2, 1, 1, 1, 4, 1, 2, 2})
	other := openMem(t, oplog.Options{})
	writeSizes(t, other, "ns", "b", []int{2, 1, 1, 6, 1, 1})
	syncPages(t, other, src, "ns", oplog.PageLimits{})
	all := entries(t, src, "ns", nil)
	opSize := len(all[0].Raw)
	srcVV := vector(t, src, "ns")
	srcHash := stateHash(t, src, "ns")

	for _, lim := range []oplog.PageLimits{
		{MaxOps: 1, MaxBytes: 1 << 20},
		{MaxOps: 2, MaxBytes: 1 << 20},
		{MaxOps: 4, MaxBytes: 1 << 20},
		{MaxOps: 7, MaxBytes: 1 << 20},
		{MaxOps: 1000, MaxBytes: 1},
		{MaxOps: 1000, MaxBytes: 3 * opSize},
		{MaxOps: 1000, MaxBytes: 3*opSize + opSize/2},
		{MaxOps: 3, MaxBytes: 2 * opSize},
		{MaxOps: 1000, MaxBytes: 1 << 20},
	} {
		t.Run(fmt.Sprintf("ops=%d,bytes=%d", lim.MaxOps, lim.MaxBytes), func(t *testing.T) {
			dst := openMem(t, oplog.Options{})
			seen := make(map[crdt.Dot]bool)
			pages := 0
			for {
				have := vector(t, dst, "ns")
				p, err := src.Page(t.Context(), "ns", have, lim)
				if err != nil {
					t.Fatal(err)
				}
				if pages++; pages > len(all)+1 {
					t.Fatal("paging does not end")
				}
				checkPage(t, p, have, lim)
				for _, e := range p.Entries {
					if seen[e.Op.Dot] {
						t.Fatalf("op %v delivered twice", e.Op.Dot)
					}
					seen[e.Op.Dot] = true
				}
				res, err := dst.Ingest(t.Context(), "ns", opsOf(p.Entries))
				if err != nil {
					t.Fatal(err)
				}
				if res.Applied != len(p.Entries) {
					t.Fatalf("page of %d ops: Ingest = %+v", len(p.Entries), res)
				}
				done := vector(t, dst, "ns").Equal(srcVV)
				if p.More == done {
					t.Fatalf("page More = %v, receiver has everything: %v", p.More, done)
				}
				if !p.More {
					break
				}
				if len(p.Entries) == 0 {
					t.Fatal("empty page with More")
				}
			}
			if len(seen) != len(all) {
				t.Errorf("delivered %d ops, want %d", len(seen), len(all))
			}
			if stateHash(t, dst, "ns") != srcHash {
				t.Error("state hashes differ")
			}
			t.Logf("%d pages", pages)
		})
	}
}

func TestPageLargeTransaction(t *testing.T) {
	src := openMem(t, oplog.Options{})
	writeSizes(t, src, "ns", "a", []int{1, 6, 1})
	p, err := src.Page(t.Context(), "ns", nil, oplog.PageLimits{MaxOps: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 1 || !p.More {
		t.Fatalf("first page: %d ops, More %v; want the first transaction alone", len(p.Entries), p.More)
	}
	have := crdt.VersionVector{src.ReplicaID(): 1}
	p, err = src.Page(t.Context(), "ns", have, oplog.PageLimits{MaxOps: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 6 || !p.More {
		t.Fatalf("second page: %d ops, More %v; want the 6-op transaction whole", len(p.Entries), p.More)
	}
	have[src.ReplicaID()] = 7
	p, err = src.Page(t.Context(), "ns", have, oplog.PageLimits{MaxOps: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 1 || p.More {
		t.Fatalf("last page: %d ops, More %v", len(p.Entries), p.More)
	}
	have[src.ReplicaID()] = 8
	p, err = src.Page(t.Context(), "ns", have, oplog.PageLimits{MaxOps: 2})
	if err != nil || len(p.Entries) != 0 || p.More {
		t.Fatalf("page when nothing is missing: %+v, %v", p, err)
	}
}

// TestPageRandom pages random logs with random limits.
func TestPageRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	src := openMem(t, oplog.Options{})
	writeMix(t, src, "ns", 60, rng)
	other := openMem(t, oplog.Options{})
	writeMix(t, other, "ns", 30, rng)
	syncPages(t, other, src, "ns", oplog.PageLimits{MaxOps: 5})
	n := len(entries(t, src, "ns", nil))
	for range 20 {
		lim := oplog.PageLimits{MaxOps: 1 + rng.IntN(10), MaxBytes: 1 + rng.IntN(2000)}
		dst := openMem(t, oplog.Options{})
		for {
			have := vector(t, dst, "ns")
			p, err := src.Page(t.Context(), "ns", have, lim)
			if err != nil {
				t.Fatal(err)
			}
			checkPage(t, p, have, lim)
			res, err := dst.Ingest(t.Context(), "ns", opsOf(p.Entries))
			if err != nil || res.Applied != len(p.Entries) {
				t.Fatalf("Ingest = %+v, %v", res, err)
			}
			if !p.More {
				break
			}
		}
		if got := vector(t, dst, "ns").Sum(); got != uint64(n) {
			t.Fatalf("limits %+v: receiver holds %d ops, want %d", lim, got, n)
		}
	}
}
