package oplog_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// TestQuarantinePoisonOp: an op that fails validation is quarantined with
// its reason; the ops behind it from its origin wait, other origins' ops
// apply; a retry that still fails keeps it; a discard removes it; the
// quarantine survives a restart.
func TestQuarantinePoisonOp(t *testing.T) {
	fs := vfs.NewMem()
	dst, err := oplog.Open("db", oplog.Options{FS: fs, Durability: oplog.NoSync})
	if err != nil {
		t.Fatal(err)
	}
	bad := openMem(t, oplog.Options{})
	put(t, bad, "ns", "c", "k1", setStr("f", "one"))
	put(t, bad, "ns", "c", "k2", setStr("f", "two"))
	good := openMem(t, oplog.Options{})
	put(t, good, "ns", "c", "g1", setStr("f", "fine"))

	badOps := opsOf(entries(t, bad, "ns", nil))
	badOps[0].CL = 0 // poison: fails validation everywhere
	ops := append(slices.Clone(badOps), opsOf(entries(t, good, "ns", nil))...)
	before, _, err := dst.StateHash(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	res, err := dst.Ingest(t.Context(), "ns", ops)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 {
		t.Errorf("Applied = %d, want 1 (the other origin's op)", res.Applied)
	}
	if vv := vector(t, dst, "ns"); vv[bad.ReplicaID()] != 0 || vv[good.ReplicaID()] != 1 {
		t.Errorf("vector = %v", vv)
	}
	check := func(l *oplog.Log) {
		t.Helper()
		qs, err := l.Quarantine(t.Context(), "ns")
		if err != nil {
			t.Fatal(err)
		}
		if len(qs) != 1 || qs[0].Dot != badOps[0].Dot || qs[0].Kind != oplog.QuarantineInvalid || !strings.Contains(qs[0].Reason, "causal length") {
			t.Fatalf("quarantine = %+v, want %v as invalid (causal length)", qs, badOps[0].Dot)
		}
		if want := crdt.AppendOp(nil, &badOps[0]); !slices.Equal(qs[0].Op, want) {
			t.Fatalf("quarantined op bytes %x, want %x", qs[0].Op, want)
		}
		if n, err := l.QuarantineCount("ns"); err != nil || n != 1 {
			t.Fatalf("QuarantineCount = %d, %v", n, err)
		}
	}
	check(dst)

	// Offered again by the next sync: not quarantined twice.
	if _, err := dst.Ingest(t.Context(), "ns", ops); err != nil {
		t.Fatal(err)
	}
	check(dst)
	if r, _ := dst.Get(t.Context(), "ns", "c", "k2"); r.CL != 0 {
		t.Error("the op behind the poison op was applied out of order")
	}

	// It survives a restart.
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if dst, err = oplog.Open("db", oplog.Options{FS: fs, Durability: oplog.NoSync}); err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	check(dst)

	// A retry that still fails keeps it.
	if res, err := dst.RetryQuarantine(t.Context(), "ns"); err != nil || res.Applied != 0 || len(res.Refused) != 1 {
		t.Fatalf("RetryQuarantine = %+v, %v", res, err)
	}
	check(dst)

	// Discarded: gone; discarding again is ErrNotQuarantined.
	if err := dst.DiscardQuarantined(t.Context(), "ns", badOps[0].Dot); err != nil {
		t.Fatal(err)
	}
	if qs, _ := dst.Quarantine(t.Context(), "ns"); len(qs) != 0 {
		t.Fatalf("after discard: %+v", qs)
	}
	if err := dst.DiscardQuarantined(t.Context(), "ns", badOps[0].Dot); !errors.Is(err, oplog.ErrNotQuarantined) {
		t.Fatalf("second discard: %v", err)
	}
	after, _, _ := dst.StateHash(t.Context(), "ns")
	if after == before {
		t.Fatal("the other origin's op changed nothing")
	}
	mustVerify(t, dst, "ns")
}

// TestQuarantineClockDrift: an op beyond the drift bound is quarantined as
// such, our clock does not move, and once physical time catches up a
// retry applies it and clears the entry.
func TestQuarantineClockDrift(t *testing.T) {
	clock := newFakeClock(baseMillis)
	dst := openMem(t, oplog.Options{Clock: clock.Now, MaxClockDrift: 10 * time.Second})
	ahead := openMem(t, oplog.Options{Clock: newFakeClock(baseMillis + 120_000).Now})
	put(t, ahead, "ns", "c", "a1", setStr("f", "from the future"))
	ops := opsOf(entries(t, ahead, "ns", nil))

	res, err := dst.Ingest(t.Context(), "ns", ops)
	if err != nil || res.Applied != 0 {
		t.Fatalf("Ingest = %+v, %v", res, err)
	}
	qs, err := dst.Quarantine(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 1 || qs[0].Kind != oplog.QuarantineClockDrift || !qs[0].At.Equal(time.UnixMilli(baseMillis)) {
		t.Fatalf("quarantine = %+v, want one clock-drift entry at the refusal time", qs)
	}
	if now := dst.Now(); now.Wall() != baseMillis {
		t.Fatalf("our clock moved to %v", now)
	}

	clock.Advance(115 * time.Second)
	res, err = dst.RetryQuarantine(t.Context(), "ns")
	if err != nil || res.Applied != 1 {
		t.Fatalf("RetryQuarantine after the clock caught up = %+v, %v", res, err)
	}
	if qs, _ := dst.Quarantine(t.Context(), "ns"); len(qs) != 0 {
		t.Fatalf("quarantine after the op applied: %+v", qs)
	}
	if r, _ := dst.Get(t.Context(), "ns", "c", "a1"); r.CL == 0 {
		t.Fatal("the op was not applied")
	}
	mustVerify(t, dst, "ns")
}

// TestQuarantineClearedBySync: a drift entry leaves the quarantine when a
// later ingest (the next sync) applies the op.
func TestQuarantineClearedBySync(t *testing.T) {
	clock := newFakeClock(baseMillis)
	dst := openMem(t, oplog.Options{Clock: clock.Now, MaxClockDrift: time.Second})
	ahead := openMem(t, oplog.Options{Clock: newFakeClock(baseMillis + 5_000).Now})
	put(t, ahead, "ns", "c", "a1", setStr("f", "v"))
	ops := opsOf(entries(t, ahead, "ns", nil))
	if _, err := dst.Ingest(t.Context(), "ns", ops); err != nil {
		t.Fatal(err)
	}
	if n, _ := dst.QuarantineCount("ns"); n != 1 {
		t.Fatalf("QuarantineCount = %d, want 1", n)
	}
	clock.Advance(5 * time.Second)
	if res, err := dst.Ingest(t.Context(), "ns", ops); err != nil || res.Applied != 1 {
		t.Fatalf("Ingest = %+v, %v", res, err)
	}
	if n, _ := dst.QuarantineCount("ns"); n != 0 {
		t.Fatalf("QuarantineCount after the op applied = %d", n)
	}
}

// TestQuarantineLimit: beyond the limit, refused ops are reported but not
// kept, so a sender minting origins cannot grow the store without bound.
func TestQuarantineLimit(t *testing.T) {
	dst := openMem(t, oplog.Options{QuarantineLimit: 2})
	var ops []crdt.Op
	for range 4 {
		src := openMem(t, oplog.Options{})
		put(t, src, "ns", "c", "k", setStr("f", "v"))
		op := opsOf(entries(t, src, "ns", nil))[0]
		op.CL = 0
		ops = append(ops, op)
	}
	res, err := dst.Ingest(t.Context(), "ns", ops)
	if err != nil || len(res.Refused) != 4 {
		t.Fatalf("Ingest = %+v, %v", res, err)
	}
	if n, _ := dst.QuarantineCount("ns"); n != 2 {
		t.Fatalf("QuarantineCount = %d, want the limit 2", n)
	}
}
