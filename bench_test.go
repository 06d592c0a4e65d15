package converge_test

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge"
)

// benchTask is a 5-field record.
type benchTask struct {
	ID       string
	Title    string  `msgpack:"title"`
	Priority int     `msgpack:"priority"`
	Done     bool    `msgpack:"done"`
	Owner    string  `msgpack:"owner"`
	Score    float64 `msgpack:"score"`
	Meta     converge.Meta
}

// BenchmarkCollectionPut measures Collection.Put of a new 5-field record:
// the typed path over oplog.Log.Write (compare with oplog's BenchmarkPut
// and BenchmarkRawPebblePut).
func BenchmarkCollectionPut(b *testing.B) {
	for _, d := range []struct {
		name string
		d    converge.Durability
	}{
		{"nosync", converge.NoSync},
		{"sync", converge.SyncEveryCommit},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			db, err := converge.Open(b.TempDir(), converge.Options{Durability: d.d, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			tasks, err := converge.NewCollection[benchTask](db, "tasks")
			if err != nil {
				b.Fatal(err)
			}
			pool := make([]benchTask, 1024)
			for i := range pool {
				pool[i] = benchTask{
					Title:    fmt.Sprintf("write the report %04d", i),
					Priority: i % 5,
					Done:     i%2 == 0,
					Owner:    "alice@example.com",
					Score:    float64(i) * 0.25,
				}
			}
			var key []byte
			i := 0
			for b.Loop() {
				key = strconv.AppendInt(append(key[:0], "task-"...), int64(i), 10)
				t := pool[i%len(pool)]
				t.ID = string(key)
				if _, err := tasks.Put(b.Context(), "bench", &t); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkCollectionPutRawPebble is BenchmarkCollectionPut's baseline, run
// beside it: raw Pebble writing, per Put, one batch of four keys (log
// entry, state, vector entry, HLC mark) with the sizes a real Put writes,
// in the same sync mode.
func BenchmarkCollectionPutRawPebble(b *testing.B) {
	// Measure the sizes of a real Put's op and state.
	db, err := converge.Open(b.TempDir(), converge.Options{Durability: converge.NoSync, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	tasks, err := converge.NewCollection[benchTask](db, "tasks")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tasks.Put(b.Context(), "bench", &benchTask{ID: "task-0", Title: "write the report 0000", Owner: "alice@example.com", Score: 0.25}); err != nil {
		b.Fatal(err)
	}
	var opBytes, stateBytes []byte
	for e, err := range db.Admin().Log().Missing(b.Context(), "bench", nil) {
		if err != nil {
			b.Fatal(err)
		}
		opBytes = e.Raw
	}
	st, err := db.Admin().Log().Get(b.Context(), "bench", "tasks", "task-0")
	if err != nil {
		b.Fatal(err)
	}
	stateBytes = st.Encode()
	db.Close()

	for _, d := range []struct {
		name string
		wo   *pebble.WriteOptions
	}{{"nosync", pebble.NoSync}, {"sync", pebble.Sync}} {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			cache := pebble.NewCache(64 << 20)
			defer cache.Unref()
			pdb, err := pebble.Open(b.TempDir(), &pebble.Options{Cache: cache, FormatMajorVersion: pebble.FormatNewest})
			if err != nil {
				b.Fatal(err)
			}
			defer pdb.Close()
			var lk, sk []byte
			var u [8]byte
			i := 0
			for b.Loop() {
				i++
				lk = binary.BigEndian.AppendUint64(append(lk[:0], "Lbench\x00\x01origin-16-bytes.."...), uint64(i))
				sk = strconv.AppendInt(append(sk[:0], "Sbench\x00\x01tasks\x00\x01task-"...), int64(i), 10)
				binary.BigEndian.PutUint64(u[:], uint64(i))
				batch := pdb.NewBatch()
				_ = batch.Set(lk, opBytes, nil)
				_ = batch.Set(sk, stateBytes, nil)
				_ = batch.Set([]byte("Vbench\x00\x01origin-16-bytes.."), u[:], nil)
				_ = batch.Set([]byte("Mhlc"), u[:], nil)
				if err := batch.Commit(d.wo); err != nil {
					b.Fatal(err)
				}
				batch.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkCollectionEdit measures a read-edit-save: Put of a struct the
// app read, with one field changed (the three-way diff against the version
// read, and the refresh of the struct from the state written), beside its
// baseline, the same change written as a field update (Update with one
// Set), in the same run. Both rewrite records that exist, without fsync.
func BenchmarkCollectionEdit(b *testing.B) {
	setup := func(b *testing.B) (*converge.Collection[benchTask], []benchTask) {
		db, err := converge.Open(b.TempDir(), converge.Options{Durability: converge.NoSync, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		tasks, err := converge.NewCollection[benchTask](db, "tasks")
		if err != nil {
			b.Fatal(err)
		}
		held := make([]benchTask, 1024)
		for i := range held {
			t := benchTask{ID: fmt.Sprintf("task-%04d", i), Title: "write the report", Priority: i % 5, Owner: "alice@example.com", Score: float64(i) * 0.25}
			if _, err := tasks.Put(b.Context(), "bench", &t); err != nil {
				b.Fatal(err)
			}
			if held[i], err = tasks.Get(b.Context(), "bench", t.ID); err != nil {
				b.Fatal(err)
			}
		}
		return tasks, held
	}
	b.Run("put-read-struct", func(b *testing.B) {
		b.ReportAllocs()
		tasks, held := setup(b)
		i := 0
		for b.Loop() {
			t := &held[i%len(held)]
			t.Priority++
			if _, err := tasks.Put(b.Context(), "bench", t); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("update-field", func(b *testing.B) {
		b.ReportAllocs()
		tasks, held := setup(b)
		i := 0
		for b.Loop() {
			t := &held[i%len(held)]
			t.Priority++
			if err := tasks.Update(b.Context(), "bench", t.ID, converge.Set("priority", t.Priority)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
}
