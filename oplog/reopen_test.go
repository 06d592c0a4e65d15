package oplog_test

import (
	"fmt"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/oplog"
)

func TestReopenReplicaID(t *testing.T) {
	dir := t.TempDir()
	l, err := oplog.Open(dir, oplog.Options{Durability: oplog.NoSync})
	if err != nil {
		t.Fatal(err)
	}
	id := l.ReplicaID()
	if id.IsZero() {
		t.Fatal("ReplicaID is zero")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, oplog.Options{Durability: oplog.NoSync})
	if got := l.ReplicaID(); got != id {
		t.Errorf("ReplicaID after reopen = %v, want %v", got, id)
	}
	other := openLog(t, t.TempDir(), oplog.Options{Durability: oplog.NoSync})
	if other.ReplicaID() == id {
		t.Errorf("two stores share replica id %v", id)
	}
}

// TestReopenClockSeqVector writes, closes, and reopens with a physical clock
// set earlier than before: the HLC must not go backwards, sequence numbers
// must continue densely, and the vector and state must survive.
func TestReopenClockSeqVector(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(baseMillis)
	opts := oplog.Options{Durability: oplog.SyncEveryCommit, Clock: clock.Now}
	l, err := oplog.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	id := l.ReplicaID()
	var maxHLC hlc.Timestamp
	var seqs []uint64
	for i := range 3 {
		c := writeTx(t, l, "ns",
			mutation{"tasks", fmt.Sprintf("k%d", i), crdt.IntentPut, []crdt.Change{setInt("n", int64(i))}},
			mutation{"tasks", fmt.Sprintf("j%d", i), crdt.IntentPut, []crdt.Change{setInt("n", int64(i))}},
		)
		for _, op := range c.Ops {
			maxHLC = max(maxHLC, op.HLC)
			seqs = append(seqs, op.Dot.Seq)
		}
		clock.Advance(5) // 5 ms
	}
	hashBefore := stateHash(t, l, "ns")
	vvBefore := vector(t, l, "ns")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with the physical clock an hour behind.
	clock.Set(baseMillis - 3_600_000)
	l = openLog(t, dir, opts)
	if l.ReplicaID() != id {
		t.Fatalf("ReplicaID changed across reopen")
	}
	if got := vector(t, l, "ns"); !got.Equal(vvBefore) {
		t.Errorf("vector after reopen = %v, want %v", got, vvBefore)
	}
	if got := stateHash(t, l, "ns"); got != hashBefore {
		t.Errorf("state hash after reopen = %s, want %s", got, hashBefore)
	}
	if now := l.Now(); now <= maxHLC {
		t.Errorf("Now() after reopen = %v, want > %v", now, maxHLC)
	}
	c := put(t, l, "ns", "tasks", "after", setInt("n", 9))
	op := c.Ops[0]
	if op.HLC <= maxHLC {
		t.Errorf("first op after reopen has HLC %v, want > every earlier op's (max %v)", op.HLC, maxHLC)
	}
	seqs = append(seqs, op.Dot.Seq)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("sequence numbers %v, want 1..%d densely", seqs, len(seqs))
		}
	}
	checkLogMatchesVector(t, l, "ns")
	mustVerify(t, l, "ns")

	// A second reopen: the high-water now includes the op written after
	// the first one.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	c = put(t, l, "ns", "tasks", "after2", setInt("n", 10))
	if c.Ops[0].HLC <= op.HLC || c.Ops[0].Dot.Seq != op.Dot.Seq+1 {
		t.Errorf("op after second reopen: dot %v HLC %v, want seq %d and HLC > %v", c.Ops[0].Dot, c.Ops[0].HLC, op.Dot.Seq+1, op.HLC)
	}
}

// TestReopenIngestedHLC checks that the HLC high-water includes remote
// timestamps observed by Ingest.
func TestReopenIngestedHLC(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(baseMillis)
	opts := oplog.Options{Durability: oplog.NoSync, Clock: clock.Now}
	l, err := oplog.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	// A remote replica 30s ahead, within the default drift bound.
	remote := openMem(t, oplog.Options{Clock: newFakeClock(baseMillis + 30_000).Now})
	put(t, remote, "ns", "c", "k", setStr("f", "v"))
	es := entries(t, remote, "ns", nil)
	if res, err := l.Ingest(t.Context(), "ns", opsOf(es)); err != nil || res.Applied != 1 {
		t.Fatalf("Ingest = %+v, %v", res, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	if now := l.Now(); now <= es[0].Op.HLC {
		t.Errorf("Now() after reopen = %v, want > ingested %v", now, es[0].Op.HLC)
	}
}
