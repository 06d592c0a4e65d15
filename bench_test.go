package converge_test

import (
	"fmt"
	"log/slog"
	"strconv"
	"testing"

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
