package converge_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

// Query benchmarks over 100,000 records: an indexed lookup against a scan
// of the same data, a range with order and limit, a scan with a predicate,
// and the latency of a watch seeing a remote change.

// qbIssue is the record of the query benchmarks.
type qbIssue struct {
	ID       string
	Status   string   `msgpack:"status"`   // qbStatuses distinct values
	Priority int      `msgpack:"priority"` // 0..999
	Title    string   `msgpack:"title"`
	Score    float64  `msgpack:"score"`
	Tags     []string `msgpack:"tags" converge:"set"`
	Meta     converge.Meta
}

const (
	qbRecords  = 100_000
	qbStatuses = 2_000 // an Eq on status matches qbRecords/qbStatuses = 50
	qbBatch    = 1_000 // records per transaction while loading
	qbNS       = "bench"
)

func qbStatus(i int) string { return fmt.Sprintf("status-%04d", i%qbStatuses) }

// qbData is the dataset, built once per process: one DB holding the same
// records in two collections, "indexed" (indexes on status and on
// priority) and "plain" (none).
var qbData struct {
	once    sync.Once
	err     error
	dir     string
	db      *converge.DB
	indexed *converge.Collection[qbIssue]
	plain   *converge.Collection[qbIssue]
}

// TestMain removes the benchmark dataset, if one was built, once every test
// and benchmark has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if qbData.db != nil {
		qbData.db.Close()
	}
	if qbData.dir != "" {
		os.RemoveAll(qbData.dir)
	}
	os.Exit(code)
}

func qbDataset(b *testing.B) (indexed, plain *converge.Collection[qbIssue]) {
	b.Helper()
	qbData.once.Do(func() {
		start := time.Now()
		qbData.err = qbBuild(context.Background())
		b.Logf("dataset of %d records (×2 collections) built in %v", qbRecords, time.Since(start).Round(time.Millisecond))
	})
	if qbData.err != nil {
		b.Fatalf("building the dataset: %v", qbData.err)
	}
	return qbData.indexed, qbData.plain
}

func qbBuild(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "converge-querybench-")
	if err != nil {
		return err
	}
	qbData.dir = dir
	db, err := converge.Open(dir, converge.Options{Durability: converge.NoSync, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	qbData.db = db
	if qbData.indexed, err = converge.NewCollection[qbIssue](db, "indexed"); err != nil {
		return err
	}
	if qbData.plain, err = converge.NewCollection[qbIssue](db, "plain"); err != nil {
		return err
	}
	tags := []string{"bug", "feature", "docs", "ui", "backend", "perf", "security", "infra"}
	for lo := 0; lo < qbRecords; lo += qbBatch {
		err := db.Update(ctx, qbNS, func(tx *converge.Tx) error {
			for i := lo; i < min(lo+qbBatch, qbRecords); i++ {
				is := qbIssue{
					ID:       fmt.Sprintf("issue-%06d", i),
					Status:   qbStatus(i),
					Priority: (i * 7919) % 1000, // a permutation of 0..999 per 1000 records
					Title:    fmt.Sprintf("issue number %d of the benchmark", i),
					Score:    float64((i*104729)%100_000) / 100,
					Tags:     []string{tags[i%len(tags)], tags[(i/len(tags))%len(tags)]},
				}
				for _, c := range []*converge.Collection[qbIssue]{qbData.indexed, qbData.plain} {
					v := is
					if _, err := c.Tx(tx).Put(&v); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// The indexes are built from the stored records (faster than keeping
	// them current through the loading writes).
	for _, f := range []string{"status", "priority"} {
		if err := qbData.indexed.EnsureIndex(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// qbRun measures q on coll, checking the plan kind and the result size.
func qbRun(b *testing.B, coll *converge.Collection[qbIssue], q func(i int) converge.Query, wantPlan string, wantN int) {
	b.Helper()
	ctx := b.Context()
	plan, err := coll.Explain(q(0))
	if err != nil {
		b.Fatal(err)
	}
	if !strings.HasPrefix(plan, wantPlan) {
		b.Fatalf("plan %q, want %s", plan, wantPlan)
	}
	b.ReportAllocs()
	n, i := 0, 0
	for b.Loop() {
		got, err := coll.Find(ctx, qbNS, q(i))
		if err != nil {
			b.Fatal(err)
		}
		n = len(got)
		i++
	}
	if n != wantN {
		b.Fatalf("%d results, want %d", n, wantN)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(n), "results")
}

// eqStatus is an equality on status (50 records), a different status each
// iteration.
func eqStatus(i int) converge.Query {
	return converge.Where(converge.Eq("status", qbStatus(i*7)))
}

// BenchmarkQueryIndexedEq is an equality on an indexed field: the index
// names the 50 matching records. Compare with BenchmarkQueryScanEq.
func BenchmarkQueryIndexedEq(b *testing.B) {
	indexed, _ := qbDataset(b)
	qbRun(b, indexed, eqStatus, "index status", qbRecords/qbStatuses)
}

// BenchmarkQueryScanEq is BenchmarkQueryIndexedEq without the index: a scan
// of the 100,000 records.
func BenchmarkQueryScanEq(b *testing.B) {
	_, plain := qbDataset(b)
	qbRun(b, plain, eqStatus, "scan", qbRecords/qbStatuses)
}

// BenchmarkQueryRangeOrderLimit is priority >= 500 ordered by priority,
// limit 50: with the priority index the read stops after 51 entries; the
// scan sorts the 50,000 matches.
func BenchmarkQueryRangeOrderLimit(b *testing.B) {
	indexed, plain := qbDataset(b)
	q := func(int) converge.Query {
		return converge.Where(converge.Gte("priority", 500)).OrderBy("priority").Limit(50)
	}
	b.Run("indexed", func(b *testing.B) { qbRun(b, indexed, q, "index priority", 50) })
	b.Run("scan", func(b *testing.B) { qbRun(b, plain, q, "scan", 50) })
}

// BenchmarkQueryScanPredicate is a scan with a predicate on a field no
// index covers (score >= 990: about 1% of the records).
func BenchmarkQueryScanPredicate(b *testing.B) {
	indexed, _ := qbDataset(b)
	q := func(int) converge.Query { return converge.Where(converge.Gte("score", 990.0)) }
	qbRun(b, indexed, q, "scan", qbRecords/100)
}

// qbWatched is the record of the watch benchmark.
type qbWatched struct {
	ID   string
	Kind string `msgpack:"kind"`
	N    int    `msgpack:"n"`
	Meta converge.Meta
}

// BenchmarkWatchLatencyRemote measures how long a change made on another
// replica takes to reach a watch: per iteration one remote op that changes
// the watched result is ingested, and the iteration ends when the watch
// emits the new result. The watch is on kind = "w" (an index lookup) in a
// collection of 1,000 records.
//
//   - apply: the op, encoded beforehand, goes through SyncStore().Apply
//     (what a transport does on receipt); apply-only is the same ingest
//     with no watch, the baseline;
//   - sync: the op is written on the other replica and pulled with
//     SyncWith over the in-memory transport; sync-only is the baseline.
func BenchmarkWatchLatencyRemote(b *testing.B) {
	for _, mode := range []string{"apply", "apply-only", "sync", "sync-only"} {
		b.Run(mode, func(b *testing.B) {
			ctx := b.Context()
			opts := converge.Options{Durability: converge.NoSync, Logger: slog.New(slog.DiscardHandler)}
			a, err := converge.Open(b.TempDir(), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			remote, err := converge.Open(b.TempDir(), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer remote.Close()
			ca, err := converge.NewCollection[qbWatched](a, "items")
			if err != nil {
				b.Fatal(err)
			}
			cr, err := converge.NewCollection[qbWatched](remote, "items")
			if err != nil {
				b.Fatal(err)
			}
			if err := ca.EnsureIndex(ctx, "kind"); err != nil {
				b.Fatal(err)
			}
			err = a.Update(ctx, qbNS, func(tx *converge.Tx) error {
				for i := range 1000 {
					if _, err := ca.Tx(tx).Put(&qbWatched{ID: fmt.Sprint("other-", i), Kind: "other"}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := cr.Put(ctx, qbNS, &qbWatched{ID: "w", Kind: "w"}); err != nil {
				b.Fatal(err)
			}
			peer := transport.NewMemPeer(remote.SyncStore(), transport.Limits{})
			if _, err := a.SyncWith(ctx, peer, qbNS); err != nil {
				b.Fatal(err)
			}

			// The watch hands each emitted n over.
			seen := make(chan int, 1)
			wctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			defer func() { cancel(); <-done }()
			watching := !strings.HasSuffix(mode, "-only")
			go func() {
				defer close(done)
				if !watching {
					return
				}
				for v, err := range ca.Watch(wctx, qbNS, converge.Where(converge.Eq("kind", "w"))) {
					if err != nil || len(v.Value) != 1 {
						return
					}
					select {
					case seen <- v.Value[0].N:
					case <-wctx.Done():
						return
					}
				}
			}()
			waitFor := func(n int) {
				if !watching {
					return
				}
				for {
					select {
					case got := <-seen:
						if got == n {
							return
						}
					case <-done:
						b.Fatalf("the watch ended before emitting n = %d", n)
					}
				}
			}
			waitFor(0)

			// Ops made on the remote replica, encoded, ahead of the timer.
			var pending [][]byte
			refill := func(from int) {
				b.StopTimer()
				defer b.StartTimer()
				have, err := a.Admin().Log().Vector(ctx, qbNS)
				if err != nil {
					b.Fatal(err)
				}
				for k := range 256 {
					if err := cr.Update(ctx, qbNS, "w", converge.Set("n", from+k)); err != nil {
						b.Fatal(err)
					}
				}
				pending = pending[:0]
				for e, err := range remote.Admin().Log().Missing(ctx, qbNS, have) {
					if err != nil {
						b.Fatal(err)
					}
					pending = append(pending, e.Raw)
				}
			}
			store := a.SyncStore()
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n++
				switch mode {
				case "apply", "apply-only":
					if len(pending) == 0 {
						refill(n)
					}
					res, err := store.Apply(ctx, qbNS, pending[:1])
					if err != nil || res.Applied != 1 {
						b.Fatalf("Apply: %+v, %v", res, err)
					}
					pending = pending[1:]
				default:
					if err := cr.Update(ctx, qbNS, "w", converge.Set("n", n)); err != nil {
						b.Fatal(err)
					}
					if _, err := a.SyncWith(ctx, peer, qbNS); err != nil {
						b.Fatal(err)
					}
				}
				waitFor(n)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			if got, err := ca.Get(ctx, qbNS, "w"); err != nil || got.N != n {
				b.Fatalf("after %d ops the record reads %+v, %v", n, got, err)
			}
		})
	}
}
