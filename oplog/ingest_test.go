package oplog_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/oplog"
)

// writeMix writes n transactions of 1 to 3 ops to ns on l: puts, updates
// and deletes over a few keys, with sets and counters.
func writeMix(t *testing.T, l *oplog.Log, ns string, n int, rng *rand.Rand) {
	t.Helper()
	for i := range n {
		_, err := l.Write(t.Context(), ns, func(tx *oplog.Tx) error {
			for j := range 1 + rng.IntN(3) {
				key := fmt.Sprintf("k%d", rng.IntN(8))
				r, err := tx.Get("c", key)
				if err != nil {
					return err
				}
				intent := crdt.IntentPut
				var changes []crdt.Change
				switch {
				case r.Exists() && rng.IntN(5) == 0:
					intent = crdt.IntentDelete
				case r.Exists() && rng.IntN(2) == 0:
					intent = crdt.IntentUpdate
					changes = []crdt.Change{
						{Name: "n", Type: crdt.Increment, Delta: int64(rng.IntN(5)) - 2},
						{Name: "tags", Type: crdt.RemoveElem, Value: crdt.EncodeInt(int64(rng.IntN(3)))},
					}
				default:
					changes = []crdt.Change{
						setStr("title", fmt.Sprintf("t%d.%d", i, j)),
						{Name: "tags", Type: crdt.AddElem, Value: crdt.EncodeInt(int64(rng.IntN(3)))},
					}
				}
				if _, err := tx.Mutate("c", key, intent, changes); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
}

func TestIngestIdempotent(t *testing.T) {
	src := openMem(t, oplog.Options{})
	writeMix(t, src, "ns", 30, rand.New(rand.NewPCG(1, 2)))
	ops := opsOf(entries(t, src, "ns", nil))

	dst := openMem(t, oplog.Options{})
	res, err := dst.Ingest(t.Context(), "ns", ops)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != len(ops) || res.Duplicates != 0 || res.Incomplete != 0 || len(res.Gaps) != 0 || len(res.Refused) != 0 {
		t.Fatalf("first Ingest = %+v, want %d applied", res, len(ops))
	}
	if res.Commit == nil || res.Commit.Local || len(res.Commit.Ops) != len(ops) {
		t.Errorf("first Ingest Commit = %+v", res.Commit)
	}
	h := stateHash(t, dst, "ns")
	if want := stateHash(t, src, "ns"); h != want {
		t.Fatalf("state hash %s, source %s", h, want)
	}
	res, err = dst.Ingest(t.Context(), "ns", ops)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 0 || res.Duplicates != len(ops) {
		t.Fatalf("second Ingest = %+v, want %d duplicates", res, len(ops))
	}
	if got := stateHash(t, dst, "ns"); got != h {
		t.Errorf("state hash changed by duplicates")
	}
	// Duplicates within one call count once applied, once duplicate.
	dup := openMem(t, oplog.Options{})
	res, err = dup.Ingest(t.Context(), "ns", append(slices.Clone(ops), ops...))
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != len(ops) || res.Duplicates != len(ops) {
		t.Fatalf("Ingest of ops twice in one call = %+v", res)
	}
	if got := stateHash(t, dup, "ns"); got != h {
		t.Errorf("state hash differs")
	}
	checkLogMatchesVector(t, dst, "ns")
	mustVerify(t, dst, "ns")
}

func TestIngestOrder(t *testing.T) {
	src := openMem(t, oplog.Options{})
	writeMix(t, src, "ns", 40, rand.New(rand.NewPCG(3, 4)))
	other := openMem(t, oplog.Options{})
	writeMix(t, other, "ns", 20, rand.New(rand.NewPCG(5, 6)))
	syncPages(t, other, src, "ns", oplog.PageLimits{}) // src now holds two origins
	want := entries(t, src, "ns", nil)
	wantHash := stateHash(t, src, "ns")

	for name, reorder := range map[string]func([]crdt.Op){
		"reversed": slices.Reverse[[]crdt.Op],
		"shuffled": func(ops []crdt.Op) {
			rand.New(rand.NewPCG(7, 8)).Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		},
	} {
		t.Run(name, func(t *testing.T) {
			ops := opsOf(want)
			reorder(ops)
			given := slices.Clone(ops)
			dst := openMem(t, oplog.Options{})
			res, err := dst.Ingest(t.Context(), "ns", ops)
			if err != nil {
				t.Fatal(err)
			}
			if res.Applied != len(ops) {
				t.Fatalf("Ingest = %+v, want all %d applied", res, len(ops))
			}
			for i := range ops {
				if ops[i].Dot != given[i].Dot {
					t.Fatal("Ingest reordered the caller's slice")
				}
			}
			// Applied in (origin, seq) order.
			for i := 1; i < len(res.Commit.Ops); i++ {
				if res.Commit.Ops[i-1].Dot.Compare(res.Commit.Ops[i].Dot) >= 0 {
					t.Fatalf("applied %v before %v", res.Commit.Ops[i-1].Dot, res.Commit.Ops[i].Dot)
				}
			}
			got := entries(t, dst, "ns", nil)
			if len(got) != len(want) {
				t.Fatalf("log holds %d ops, want %d", len(got), len(want))
			}
			for i := range got {
				if string(got[i].Raw) != string(want[i].Raw) {
					t.Fatalf("log entry %d (%v) differs from source's", i, got[i].Op.Dot)
				}
			}
			if h := stateHash(t, dst, "ns"); h != wantHash {
				t.Errorf("state hash %s, want %s", h, wantHash)
			}
			mustVerify(t, dst, "ns")
		})
	}
}

// TestIngestRandomChunks delivers the ops in random, overlapping chunks in
// random order until the receiver has them all.
func TestIngestRandomChunks(t *testing.T) {
	src := openMem(t, oplog.Options{})
	writeMix(t, src, "ns", 40, rand.New(rand.NewPCG(9, 10)))
	all := opsOf(entries(t, src, "ns", nil))
	rng := rand.New(rand.NewPCG(11, 12))
	dst := openMem(t, oplog.Options{})
	for round := 0; ; round++ {
		if round > 10000 {
			t.Fatal("no convergence")
		}
		if vector(t, dst, "ns").Equal(vector(t, src, "ns")) {
			break
		}
		i := rng.IntN(len(all))
		j := min(len(all), i+1+rng.IntN(8))
		chunk := slices.Clone(all[i:j])
		rng.Shuffle(len(chunk), func(a, b int) { chunk[a], chunk[b] = chunk[b], chunk[a] })
		before := vector(t, dst, "ns")
		res, err := dst.Ingest(t.Context(), "ns", chunk)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Refused) != 0 {
			t.Fatalf("refused: %+v", res.Refused)
		}
		after := vector(t, dst, "ns")
		if got := after.Sum() - before.Sum(); got != uint64(res.Applied) {
			t.Fatalf("vector advanced by %d, Applied = %d", got, res.Applied)
		}
		// The vector only ever stops at a transaction's end.
		if s := after[src.ReplicaID()]; s > 0 && !all[s-1].TxEnd {
			t.Fatalf("vector stopped at %d, inside a transaction", s)
		}
	}
	if stateHash(t, dst, "ns") != stateHash(t, src, "ns") {
		t.Error("state hashes differ")
	}
	mustVerify(t, dst, "ns")
}

// singleOps writes n one-op transactions to a fresh log and returns them.
func singleOps(t *testing.T, n int, opts oplog.Options) (*oplog.Log, []crdt.Op) {
	t.Helper()
	src := openMem(t, opts)
	for i := range n {
		put(t, src, "ns", "c", fmt.Sprintf("k%d", i), setInt("i", int64(i)))
	}
	return src, opsOf(entries(t, src, "ns", nil))
}

func TestIngestGap(t *testing.T) {
	src, ops := singleOps(t, 5, oplog.Options{})
	origin := src.ReplicaID()
	dst := openMem(t, oplog.Options{})
	given := []crdt.Op{ops[0], ops[1], ops[3], ops[4]} // seq 3 missing
	res, err := dst.Ingest(t.Context(), "ns", given)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 2 {
		t.Errorf("Applied = %d, want 2", res.Applied)
	}
	if want := []oplog.Gap{{Origin: origin, Have: 2, Next: 4}}; !slices.Equal(res.Gaps, want) {
		t.Errorf("Gaps = %+v, want %+v", res.Gaps, want)
	}
	if got := vector(t, dst, "ns")[origin]; got != 2 {
		t.Errorf("vector = %d, want 2", got)
	}
	for _, k := range []string{"k3", "k4"} {
		if r, _ := dst.Get(t.Context(), "ns", "c", k); r.CL != 0 {
			t.Errorf("%s beyond the gap was applied", k)
		}
	}
	res, err = dst.Ingest(t.Context(), "ns", ops[2:])
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 3 || len(res.Gaps) != 0 {
		t.Errorf("Ingest of the rest = %+v, want 3 applied", res)
	}
	if stateHash(t, dst, "ns") != stateHash(t, src, "ns") {
		t.Error("state hashes differ")
	}
}

func TestIngestIncompleteTransaction(t *testing.T) {
	src := openMem(t, oplog.Options{})
	put(t, src, "ns", "c", "before", setStr("f", "v"))
	writeTx(t, src, "ns",
		mutation{"c", "a", crdt.IntentPut, []crdt.Change{setStr("f", "1")}},
		mutation{"c", "b", crdt.IntentPut, []crdt.Change{setStr("f", "2")}},
		mutation{"c", "c", crdt.IntentPut, []crdt.Change{setStr("f", "3")}},
	)
	ops := opsOf(entries(t, src, "ns", nil)) // seq 1; 2, 3, 4 (TxEnd)
	origin := src.ReplicaID()
	dst := openMem(t, oplog.Options{})

	res, err := dst.Ingest(t.Context(), "ns", ops[:3])
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 || res.Incomplete != 2 {
		t.Fatalf("Ingest without the TxEnd op = %+v, want 1 applied, 2 incomplete", res)
	}
	if got := vector(t, dst, "ns")[origin]; got != 1 {
		t.Fatalf("vector = %d, want 1", got)
	}
	for _, k := range []string{"a", "b"} {
		if r, _ := dst.Get(t.Context(), "ns", "c", k); r.CL != 0 {
			t.Errorf("%s of the incomplete transaction was applied", k)
		}
	}
	// The end alone is beyond a gap.
	res, err = dst.Ingest(t.Context(), "ns", ops[3:])
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 0 || len(res.Gaps) != 1 {
		t.Fatalf("Ingest of the TxEnd op alone = %+v, want a gap", res)
	}
	// The whole transaction applies.
	res, err = dst.Ingest(t.Context(), "ns", ops)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 3 || res.Duplicates != 1 || res.Incomplete != 0 {
		t.Fatalf("Ingest of the whole transaction = %+v, want 3 applied, 1 duplicate", res)
	}
	if stateHash(t, dst, "ns") != stateHash(t, src, "ns") {
		t.Error("state hashes differ")
	}
	mustVerify(t, dst, "ns")
}

func TestIngestClockDrift(t *testing.T) {
	const drift = 10 * time.Second
	clock := newFakeClock(baseMillis)
	dst := openMem(t, oplog.Options{Clock: clock.Now, MaxClockDrift: drift})

	// A replica whose clock runs a minute ahead, and a sane one.
	ahead := openMem(t, oplog.Options{Clock: newFakeClock(baseMillis + 60_000).Now})
	put(t, ahead, "ns", "c", "a1", setStr("f", "v"))
	put(t, ahead, "ns", "c", "a2", setStr("f", "v"))
	sane := openMem(t, oplog.Options{Clock: newFakeClock(baseMillis).Now})
	put(t, sane, "ns", "c", "s1", setStr("f", "v"))
	aheadOps := opsOf(entries(t, ahead, "ns", nil))
	ops := append(slices.Clone(aheadOps), opsOf(entries(t, sane, "ns", nil))...)

	res, err := dst.Ingest(t.Context(), "ns", ops)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 {
		t.Errorf("Applied = %d, want 1 (the sane replica's op)", res.Applied)
	}
	if len(res.Refused) != 1 || res.Refused[0].Dot != aheadOps[0].Dot || !errors.Is(res.Refused[0].Err, hlc.ErrClockDrift) {
		t.Fatalf("Refused = %+v, want %v refused with ErrClockDrift", res.Refused, aheadOps[0].Dot)
	}
	var de *hlc.DriftError
	if !errors.As(res.Refused[0].Err, &de) || de.Remote != aheadOps[0].HLC {
		t.Errorf("refusal error %v is not a DriftError for %v", res.Refused[0].Err, aheadOps[0].HLC)
	}
	vv := vector(t, dst, "ns")
	if vv[ahead.ReplicaID()] != 0 || vv[sane.ReplicaID()] != 1 {
		t.Errorf("vector = %v, want nothing of the replica ahead", vv)
	}
	for _, k := range []string{"a1", "a2"} {
		if r, _ := dst.Get(t.Context(), "ns", "c", k); r.CL != 0 {
			t.Errorf("%s was applied", k)
		}
	}
	// The local clock did not jump ahead.
	c := put(t, dst, "ns", "c", "local", setStr("f", "v"))
	if w := c.Ops[0].HLC.Wall(); w != baseMillis {
		t.Errorf("local op after the refusal at wall %d, want %d (physical time)", w, int64(baseMillis))
	}
	if now := dst.Now(); now.Wall() != baseMillis {
		t.Errorf("Now() = %v, want wall %d", now, int64(baseMillis))
	}

	// Physical time catches up: the same ops are accepted.
	clock.Advance(55 * time.Second)
	res, err = dst.Ingest(t.Context(), "ns", ops)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 2 || res.Duplicates != 1 || len(res.Refused) != 0 {
		t.Fatalf("Ingest after the clock advanced = %+v, want 2 applied, 1 duplicate", res)
	}
	if c := put(t, dst, "ns", "c", "local2", setStr("f", "v")); c.Ops[0].HLC <= aheadOps[1].HLC {
		t.Errorf("local op HLC %v not after ingested %v", c.Ops[0].HLC, aheadOps[1].HLC)
	}
	mustVerify(t, dst, "ns")
}

// TestIngestDriftMidTransaction refuses an op in the middle of a
// transaction: the whole transaction waits.
func TestIngestDriftMidTransaction(t *testing.T) {
	clock := newFakeClock(baseMillis)
	dst := openMem(t, oplog.Options{Clock: clock.Now, MaxClockDrift: time.Second})
	srcClock := newFakeClock(baseMillis)
	src := openMem(t, oplog.Options{Clock: srcClock.Now})
	put(t, src, "ns", "c", "first", setStr("f", "v"))
	_, err := src.Write(t.Context(), "ns", func(tx *oplog.Tx) error {
		if _, err := tx.Mutate("c", "a", crdt.IntentPut, []crdt.Change{setStr("f", "1")}); err != nil {
			return err
		}
		srcClock.Advance(time.Minute)
		_, err := tx.Mutate("c", "b", crdt.IntentPut, []crdt.Change{setStr("f", "2")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ops := opsOf(entries(t, src, "ns", nil))
	res, err := dst.Ingest(t.Context(), "ns", ops)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 || res.Incomplete != 1 || len(res.Refused) != 1 || res.Refused[0].Dot.Seq != 3 {
		t.Fatalf("Ingest = %+v, want op 1 applied, op 2 incomplete, op 3 refused", res)
	}
	if r, _ := dst.Get(t.Context(), "ns", "c", "a"); r.CL != 0 {
		t.Error("part of a refused transaction was applied")
	}
}

func TestIngestInvalid(t *testing.T) {
	src, ops := singleOps(t, 1, oplog.Options{})
	good := ops[0]
	dst := openMem(t, oplog.Options{})
	for _, tc := range []struct {
		name   string
		mutate func(op *crdt.Op)
	}{
		{"zero origin", func(op *crdt.Op) { op.Dot.Origin = crdt.ReplicaID{} }},
		{"zero origin, later seq", func(op *crdt.Op) { op.Dot = crdt.Dot{Seq: 5} }},
		{"seq 0", func(op *crdt.Op) { op.Dot.Seq = 0 }},
		{"zero HLC", func(op *crdt.Op) { op.HLC = 0 }},
		{"empty collection", func(op *crdt.Op) { op.Collection = "" }},
		{"empty key", func(op *crdt.Op) { op.Key = "" }},
		{"CL 0", func(op *crdt.Op) { op.CL = 0 }},
		{"delete with fields", func(op *crdt.Op) { op.CL = 2 }},
		{"unknown field op", func(op *crdt.Op) { op.Fields[0].Type = 99 }},
		{"malformed value", func(op *crdt.Op) { op.Fields[0].Value = []byte{0xc1} }},
		{"field written twice", func(op *crdt.Op) { op.Fields = append(op.Fields, op.Fields[0]) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := good
			op.Fields = slices.Clone(good.Fields)
			tc.mutate(&op)
			res, err := dst.Ingest(t.Context(), "ns", []crdt.Op{op})
			if err != nil {
				t.Fatal(err)
			}
			if res.Applied != 0 || len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, crdt.ErrInvalidOp) {
				t.Fatalf("Ingest = %+v, want the op refused with ErrInvalidOp", res)
			}
			if vv := vector(t, dst, "ns"); len(vv) != 0 {
				t.Errorf("vector = %v, want empty", vv)
			}
		})
	}
	// The valid op still applies.
	res, err := dst.Ingest(t.Context(), "ns", []crdt.Op{good})
	if err != nil || res.Applied != 1 {
		t.Fatalf("Ingest of the valid op = %+v, %v", res, err)
	}
	if stateHash(t, dst, "ns") != stateHash(t, src, "ns") {
		t.Error("state hashes differ")
	}
}

func TestIngestNamespaceMismatch(t *testing.T) {
	_, ops := singleOps(t, 2, oplog.Options{})
	dst := openMem(t, oplog.Options{})
	res, err := dst.Ingest(t.Context(), "other", ops)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 0 || len(res.Refused) != 2 {
		t.Fatalf("Ingest = %+v, want both refused", res)
	}
	for _, r := range res.Refused {
		if !errors.Is(r.Err, oplog.ErrNamespace) {
			t.Errorf("refusal of %v: %v, want ErrNamespace", r.Dot, r.Err)
		}
	}
	for _, ns := range []string{"ns", "other"} {
		if vv := vector(t, dst, ns); len(vv) != 0 {
			t.Errorf("vector of %s = %v, want empty", ns, vv)
		}
	}
}

// TestIngestOwnOps offers a replica its own ops back, as a relaying peer
// does: they are duplicates.
func TestIngestOwnOps(t *testing.T) {
	l, ops := singleOps(t, 3, oplog.Options{})
	h := stateHash(t, l, "ns")
	res, err := l.Ingest(t.Context(), "ns", ops)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 0 || res.Duplicates != 3 {
		t.Fatalf("Ingest of own ops = %+v, want 3 duplicates", res)
	}
	if stateHash(t, l, "ns") != h {
		t.Error("state changed")
	}
	if c := put(t, l, "ns", "c", "next", setStr("f", "v")); c.Ops[0].Dot.Seq != 4 {
		t.Errorf("next local op has seq %d, want 4", c.Ops[0].Dot.Seq)
	}
}

func TestIngestCanceled(t *testing.T) {
	_, ops := singleOps(t, 1, oplog.Options{})
	dst := openMem(t, oplog.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := dst.Ingest(ctx, "ns", ops); !errors.Is(err, context.Canceled) {
		t.Errorf("Ingest with a canceled context = %v, want context.Canceled", err)
	}
	_, err := dst.Write(ctx, "ns", func(tx *oplog.Tx) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Write with a canceled context = %v, want context.Canceled", err)
	}
	if vv := vector(t, dst, "ns"); len(vv) != 0 {
		t.Errorf("vector = %v, want empty", vv)
	}
}
