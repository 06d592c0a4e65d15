package converge_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"

	"github.com/convergedb/converge"
)

// BenchmarkPutWatched measures Collection.Put (NoSync) in a namespace
// that live queries and change subscribers listen to, beside the same Put
// with no listener (listeners=0, the baseline of the same run): compare
// each sub-benchmark's ops/s with it.
//
//   - watches=N: N indexed watches, Where(owner = user-i) limit 20, one
//     per user; each Put writes a record of one of the users (round
//     robin), so it concerns one watch, whose query runs again: the cost
//     is the fan-out and one query per Put.
//   - watches=N,miss: the same watches; the Puts write records of other
//     users, which concern no watch: the cost is the fan-out alone.
//   - scanwatches=N: N watches without an index, Where(priority = i).
//   - subscribers=N: N DB.Changes subscribers of the namespace, each
//     reading every change.
func BenchmarkPutWatched(b *testing.B) {
	for _, c := range []struct {
		name                string
		watches, scan, subs int
		miss                bool
	}{
		{name: "listeners=0"},
		{name: "watches=100", watches: 100},
		{name: "watches=1000", watches: 1000},
		{name: "watches=1000,miss", watches: 1000, miss: true},
		{name: "scanwatches=100", scan: 100},
		{name: "subscribers=100", subs: 100},
	} {
		b.Run(c.name, func(b *testing.B) {
			benchPutWatched(b, c.watches, c.scan, c.subs, c.miss)
		})
	}
}

func benchPutWatched(b *testing.B, watches, scan, subs int, miss bool) {
	b.ReportAllocs()
	db, err := converge.Open(b.TempDir(), converge.Options{Durability: converge.NoSync, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	tasks, err := converge.NewCollection[benchTask](db, "tasks")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait(); db.Close() }()
	if err := tasks.EnsureIndex(ctx, "owner"); err != nil {
		b.Fatal(err)
	}
	started := make(chan struct{}, watches+scan+subs)
	listen := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	for i := range watches {
		q := converge.Where(converge.Eq("owner", "user-"+strconv.Itoa(i))).Limit(20)
		listen(func() {
			first := true
			for range tasks.Watch(ctx, "bench", q) {
				if first {
					started <- struct{}{}
					first = false
				}
			}
		})
	}
	for i := range scan {
		q := converge.Where(converge.Eq("priority", 1000+i))
		listen(func() {
			first := true
			for range tasks.Watch(ctx, "bench", q) {
				if first {
					started <- struct{}{}
					first = false
				}
			}
		})
	}
	for range subs {
		sub := db.Subscribe("bench")
		started <- struct{}{}
		listen(func() {
			defer sub.Close()
			for {
				if _, err := sub.Next(ctx); err != nil && ctx.Err() != nil {
					return
				}
			}
		})
	}
	for range watches + scan + subs {
		<-started // every listener has its first result
	}
	users, user := max(watches, 1), "user-"
	if miss {
		user = "other-"
	}
	var key []byte
	i := 0
	for b.Loop() {
		key = strconv.AppendInt(append(key[:0], "task-"...), int64(i), 10)
		t := benchTask{ID: string(key), Title: fmt.Sprintf("task %d", i), Priority: i % 5, Owner: user + strconv.Itoa(i%users)}
		if _, err := tasks.Put(ctx, "bench", &t); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
