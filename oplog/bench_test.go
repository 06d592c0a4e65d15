package oplog_test

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
	"github.com/convergedb/converge/oplog"
)

// The benchmarks compare the store with raw Pebble writing the same bytes
// in the same number of batches with the same sync mode, in the same run.
// Compare runs with benchstat.

const benchNS, benchColl = "bench", "tasks"

// taskChanges returns the changes of a 5-field task record.
func taskChanges(i int) []crdt.Change {
	return []crdt.Change{
		{Name: "title", Type: crdt.Set, Value: crdt.EncodeString(fmt.Sprintf("write the report %04d", i%10000))}, // 21 chars
		{Name: "priority", Type: crdt.Set, Value: crdt.EncodeInt(int64(i % 5))},
		{Name: "done", Type: crdt.Set, Value: mp.AppendBool(nil, i%2 == 0)},
		{Name: "owner", Type: crdt.Set, Value: crdt.EncodeString("alice@example.com")},
		{Name: "score", Type: crdt.Set, Value: mp.AppendFloat64(nil, float64(i)*0.25)},
	}
}

// changesPool returns the changes of many tasks, made before the timed loop.
func changesPool() [][]crdt.Change {
	pool := make([][]crdt.Change, 1024)
	for i := range pool {
		pool[i] = taskChanges(i)
	}
	return pool
}

func benchKey(b []byte, i int) []byte {
	return strconv.AppendInt(append(b[:0], "task-"...), int64(i), 10)
}

// sample is a real op and the state it produces, as the store encodes them.
type sample struct {
	op    crdt.Op
	raw   []byte // the op's encoding
	state []byte // the record's state encoding after the op
}

// sampleOps writes n puts on distinct keys to a scratch store and returns
// them with their encodings.
func sampleOps(b *testing.B, n int) []sample {
	b.Helper()
	l, err := oplog.Open("db", oplog.Options{FS: vfs.NewMem(), Durability: oplog.NoSync, Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var key []byte
	for i := range n {
		key = benchKey(key, i)
		k := string(key)
		_, err := l.Write(b.Context(), benchNS, func(tx *oplog.Tx) error {
			_, err := tx.Mutate(benchColl, k, crdt.IntentPut, taskChanges(i))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	out := make([]sample, 0, n)
	for e, err := range l.Missing(b.Context(), benchNS, nil) {
		if err != nil {
			b.Fatal(err)
		}
		r, err := l.Get(b.Context(), benchNS, benchColl, e.Op.Key)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, sample{op: e.Op, raw: e.Raw, state: r.Encode()})
	}
	return out
}

// Raw keys with the store's layout (see keys.go).
func rawString(b []byte, s string) []byte { return append(append(b, s...), 0, 1) }

func rawLogKey(b []byte, origin crdt.ReplicaID, seq uint64) []byte {
	b = rawString(append(b[:0], 'L'), benchNS)
	b = append(b, origin[:]...)
	return binary.BigEndian.AppendUint64(b, seq)
}

func rawStateKey(b []byte, key []byte) []byte {
	b = rawString(rawString(append(b[:0], 'S'), benchNS), benchColl)
	return append(append(b, key...), 0, 1)
}

func rawVectorKey(origin crdt.ReplicaID) []byte {
	return append(rawString([]byte{'V'}, benchNS), origin[:]...)
}

var rawHLCKey = []byte("Mhlc")

var durabilities = []struct {
	name string
	d    oplog.Durability
	wo   *pebble.WriteOptions
}{
	{"nosync", oplog.NoSync, pebble.NoSync},
	{"sync", oplog.SyncEveryCommit, pebble.Sync},
}

func reportOps(b *testing.B, opsPerIter int) {
	b.ReportMetric(float64(b.N*opsPerIter)/b.Elapsed().Seconds(), "ops/s")
}

// openRawPebble opens Pebble with the options the store uses.
func openRawPebble(b *testing.B) *pebble.DB {
	b.Helper()
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	db, err := pebble.Open(b.TempDir(), &pebble.Options{Cache: cache, FormatMajorVersion: pebble.FormatNewest, Logger: quietPebble{b}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkPut measures one local write of one op putting a 5-field record
// on a new key: one Log.Write, one batch, one commit.
func BenchmarkPut(b *testing.B) {
	for _, d := range durabilities {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			l := openLog(b, b.TempDir(), oplog.Options{Durability: d.d, Logger: quietLogger})
			pool := changesPool()
			var key []byte
			i := 0
			for b.Loop() {
				key = benchKey(key, i)
				k := string(key)
				changes := pool[i%len(pool)]
				_, err := l.Write(b.Context(), benchNS, func(tx *oplog.Tx) error {
					_, err := tx.Mutate(benchColl, k, crdt.IntentPut, changes)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
			reportOps(b, 1)
		})
	}
}

// BenchmarkRawPebblePut is BenchmarkPut's baseline: per write, one batch of
// the four keys the store writes (log entry, state, vector entry, HLC
// high-water), with the sizes of a real op and state.
func BenchmarkRawPebblePut(b *testing.B) {
	s := sampleOps(b, 1)[0]
	for _, d := range durabilities {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			db := openRawPebble(b)
			origin := s.op.Dot.Origin
			vkey := rawVectorKey(origin)
			var key, lk, sk []byte
			var u [8]byte
			i := 0
			for b.Loop() {
				key = benchKey(key, i)
				batch := db.NewBatch()
				lk = rawLogKey(lk, origin, uint64(i+1))
				sk = rawStateKey(sk, key)
				binary.BigEndian.PutUint64(u[:], uint64(i+1))
				_ = batch.Set(lk, s.raw, nil)
				_ = batch.Set(sk, s.state, nil)
				_ = batch.Set(vkey, u[:], nil)
				_ = batch.Set(rawHLCKey, u[:], nil)
				if err := batch.Commit(d.wo); err != nil {
					b.Fatal(err)
				}
				batch.Close()
				i++
			}
			reportOps(b, 1)
			b.ReportMetric(float64(len(s.raw)), "op-bytes")
			b.ReportMetric(float64(len(s.state)), "state-bytes")
		})
	}
}

const ingestBatch = 100

// remoteBatch returns batch j of a remote origin's ops, encoded: ops
// j*ingestBatch+1 … (j+1)*ingestBatch, one-op transactions on distinct keys,
// shaped like tmpl.
func remoteBatch(tmpl *crdt.Op, origin crdt.ReplicaID, start hlc.Timestamp, j int, raw [][]byte) {
	var key []byte
	for i := range raw {
		n := j*ingestBatch + i
		op := *tmpl
		key = benchKey(key, n)
		op.Key = string(key)
		op.Dot = crdt.Dot{Origin: origin, Seq: uint64(n + 1)}
		op.HLC = start + hlc.Timestamp(n)
		op.TxEnd = true
		raw[i] = crdt.AppendOp(raw[i][:0], &op)
	}
}

// BenchmarkIngest measures applying remote ops received encoded, in calls of
// ingestBatch ops: decode, then one Log.Ingest (one batch).
func BenchmarkIngest(b *testing.B) {
	s := sampleOps(b, 1)[0]
	origin := crdt.ReplicaID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	start := hlc.New(time.Now().UnixMilli()-3_600_000, 0) // an hour ago: within any drift bound
	for _, d := range durabilities[:1] {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			l := openLog(b, b.TempDir(), oplog.Options{Durability: d.d, Logger: quietLogger})
			raw := make([][]byte, ingestBatch)
			ops := make([]crdt.Op, ingestBatch)
			j := 0
			for b.Loop() {
				b.StopTimer()
				remoteBatch(&s.op, origin, start, j, raw)
				b.StartTimer()
				for i, r := range raw {
					op, err := crdt.DecodeOp(r)
					if err != nil {
						b.Fatal(err)
					}
					ops[i] = op
				}
				res, err := l.Ingest(b.Context(), benchNS, ops)
				if err != nil {
					b.Fatal(err)
				}
				if res.Applied != ingestBatch {
					b.Fatalf("Ingest = %+v", res)
				}
				j++
			}
			reportOps(b, ingestBatch)
		})
	}
}

// BenchmarkRawPebbleIngest is BenchmarkIngest's baseline: per call, one
// batch of ingestBatch log entries and states with the same sizes, one
// vector entry and the HLC high-water.
func BenchmarkRawPebbleIngest(b *testing.B) {
	s := sampleOps(b, 1)[0]
	origin := crdt.ReplicaID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	start := hlc.New(time.Now().UnixMilli()-3_600_000, 0)
	for _, d := range durabilities[:1] {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			db := openRawPebble(b)
			raw := make([][]byte, ingestBatch)
			vkey := rawVectorKey(origin)
			var key, lk, sk []byte
			var u [8]byte
			j := 0
			for b.Loop() {
				b.StopTimer()
				remoteBatch(&s.op, origin, start, j, raw)
				b.StartTimer()
				batch := db.NewBatch()
				for i, r := range raw {
					n := j*ingestBatch + i
					key = benchKey(key, n)
					lk = rawLogKey(lk, origin, uint64(n+1))
					sk = rawStateKey(sk, key)
					_ = batch.Set(lk, r, nil)
					_ = batch.Set(sk, s.state, nil)
				}
				binary.BigEndian.PutUint64(u[:], uint64((j+1)*ingestBatch))
				_ = batch.Set(vkey, u[:], nil)
				_ = batch.Set(rawHLCKey, u[:], nil)
				if err := batch.Commit(d.wo); err != nil {
					b.Fatal(err)
				}
				batch.Close()
				j++
			}
			reportOps(b, ingestBatch)
		})
	}
}
