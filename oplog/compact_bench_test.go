package oplog_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// Benchmarks of bounded storage (issue 8): start-up and size of a store
// with a long history, before and after compaction, beside a store that
// holds only the final records; and a snapshot bootstrap beside a raw
// Pebble copy of the same bytes.
//
//	go test ./oplog -run '^$' -bench 'Startup|SnapshotBootstrap' -benchtime 5x
//	CONVERGE_BENCH_UPDATES=1000000 go test ./oplog -run '^$' -bench Startup -benchtime 20x -count 3
//
// Each builds its stores once per process (at 1,000,000 updates, about 25 s
// of writing and compacting): -count repeats the timed parts on them.

// benchUpdates is the history's length: CONVERGE_BENCH_UPDATES, or 100,000.
func benchUpdates(b *testing.B) int {
	s := os.Getenv("CONVERGE_BENCH_UPDATES")
	if s == "" {
		return 100_000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1000 {
		b.Fatalf("CONVERGE_BENCH_UPDATES=%q: want an integer of at least 1000", s)
	}
	return n
}

// copyDir copies the files of the closed store in src to dst.
func copyDir(b *testing.B, src, dst string) {
	b.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		b.Fatalf("copying %s: %v", src, err)
	}
}

func closeLog(tb testing.TB, l *oplog.Log) {
	tb.Helper()
	if err := l.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

// BenchmarkStartup measures a start-up: Open, then the first reads a
// replica makes (the namespace's vector, one record, the state hash, which
// reads every record), of three stores holding the same 1,000 records:
//
//   - history: CONVERGE_BENCH_UPDATES ops (register updates, deletes,
//     re-creates; see writeHistory) written in transactions of 1000;
//   - compacted: a copy of history, compacted up to its vector;
//   - final-records (the baseline): a fresh store where each final record
//     was written once (a deleted one: a put and a delete).
//
// Each store is opened and closed once before timing, so every timed open
// finds it at rest (no WAL to replay). Close is not timed. The page cache
// is warm: the figures are CPU and Pebble's work (and the fsyncs of the
// files an open writes: a new MANIFEST, OPTIONS, WAL), not disk reads.
// Metrics: ms/open (the whole start-up), split into ms-pebble-open/op
// (oplog.Open) and ms-first-reads/op; disk-B (the directory at rest),
// log-ops, state-B (Stats: states' keys and values).
func BenchmarkStartup(b *testing.B) {
	const records, ns = 1000, "bench"
	updates := benchUpdates(b)
	root := b.TempDir()
	dirs := map[string]string{}
	for _, name := range []string{"history", "compacted", "final-records"} {
		dirs[name] = filepath.Join(root, name)
	}
	opts := oplog.Options{Durability: oplog.NoSync, Logger: quietLogger}

	l := openLog(b, dirs["history"], opts)
	h := writeHistory(b, l, ns, records, updates, 1000)
	hash := hashOf(b, l, ns)
	closeLog(b, l)
	copyDir(b, dirs["history"], dirs["compacted"])
	l = openLog(b, dirs["compacted"], opts)
	if _, err := l.Compact(b.Context(), ns, oplog.CompactOptions{Horizon: vectorOf(b, l, ns), Reclaim: true}); err != nil {
		b.Fatalf("Compact: %v", err)
	}
	if got := hashOf(b, l, ns); got != hash {
		b.Fatalf("compaction changed the state hash: %s, was %s", got, hash)
	}
	closeLog(b, l)
	l = openLog(b, dirs["final-records"], opts)
	_, err := l.Write(b.Context(), ns, func(tx *oplog.Tx) error {
		for i := range h.Final {
			if _, err := tx.Mutate(historyColl, historyKey(i), crdt.IntentPut, h.Final[i].changes()); err != nil {
				return err
			}
			if h.Final[i].deleted {
				if _, err := tx.Mutate(historyColl, historyKey(i), crdt.IntentDelete, nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("Write: %v", err)
	}
	closeLog(b, l)

	for _, name := range []string{"history", "compacted", "final-records"} {
		dir := dirs[name]
		closeLog(b, openLog(b, dir, opts)) // at rest: the WAL replayed and flushed
		b.Run(name, func(b *testing.B) {
			key := historyKey(records / 2)
			var opening time.Duration
			for b.Loop() {
				t0 := time.Now()
				l, err := oplog.Open(dir, opts)
				if err != nil {
					b.Fatalf("Open: %v", err)
				}
				opening += time.Since(t0)
				if _, err := l.Vector(b.Context(), ns); err != nil {
					b.Fatal(err)
				}
				if _, err := l.Get(b.Context(), ns, historyColl, key); err != nil {
					b.Fatal(err)
				}
				if _, n, err := l.StateHash(b.Context(), ns); err != nil || n != records {
					b.Fatalf("StateHash: %d records, %v", n, err)
				}
				b.StopTimer()
				closeLog(b, l)
				b.StartTimer()
			}
			b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/open")
			b.ReportMetric(opening.Seconds()*1000/float64(b.N), "ms-pebble-open/op")
			b.ReportMetric((b.Elapsed()-opening).Seconds()*1000/float64(b.N), "ms-first-reads/op")
			b.StopTimer()
			l := openLog(b, dir, opts)
			st := nsStats(b, l, ns)
			closeLog(b, l)
			b.ReportMetric(float64(dirFiles(b, dir).Bytes), "disk-B")
			b.ReportMetric(float64(st.LogOps), "log-ops")
			b.ReportMetric(float64(st.StateBytes), "state-B")
		})
	}
}

func vectorOf(tb testing.TB, l *oplog.Log, ns string) crdt.VersionVector {
	tb.Helper()
	vv, err := l.Vector(tb.Context(), ns)
	if err != nil {
		tb.Fatalf("Vector: %v", err)
	}
	return vv
}

// BenchmarkSnapshotBootstrap measures bootstrapping an empty replica from
// a snapshot of 100,000 records (5-field tasks, each written once): every
// page of Snapshot (the default limits: 1000 records or 1 MiB), each
// installed with InstallSnapshot, then FinishSnapshot (one fsync). The
// empty store is opened untimed. Baseline (raw-pebble-copy): raw Pebble
// iterating the same store's state keys and values and writing them to an
// empty Pebble in batches of 1000, the last one fsynced: the bytes of the
// states, with no decoding, merging, base states, change feed or vector.
// Metrics: ms/bootstrap, records/s, copied-B (snapshot: the pages' state
// bytes; raw copy: keys and values), stored-B (what the receiver holds,
// keys and values: Converge keeps states, base states and the change
// feed), state-B (the source's Stats: states' keys and values); and the
// converge side's time split into ms-snapshot/op (reading the pages),
// ms-install/op and ms-finish/op.
func BenchmarkSnapshotBootstrap(b *testing.B) {
	const ns, records = "bench", 100_000
	srcDir := filepath.Join(b.TempDir(), "src")
	opts := oplog.Options{Durability: oplog.NoSync, Logger: quietLogger}
	src := openLog(b, srcDir, opts)
	pool := changesPool()
	var key []byte
	for i := 0; i < records; i += 1000 {
		_, err := src.Write(b.Context(), ns, func(tx *oplog.Tx) error {
			for j := i; j < min(i+1000, records); j++ {
				key = benchKey(key, j)
				if _, err := tx.Mutate(benchColl, string(key), crdt.IntentPut, pool[j%len(pool)]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatalf("Write: %v", err)
		}
	}
	srcStats := nsStats(b, src, ns)
	hash := hashOf(b, src, ns)
	// Settle the source: Pebble's background compactions of what was just
	// written would otherwise run during the timed bootstraps.
	closeLog(b, src)
	settle(b, srcDir)
	src = openLog(b, srcDir, opts)

	b.Run("converge", func(b *testing.B) {
		copied, stored := 0, int64(0)
		var reading, installing, finishing time.Duration
		for b.Loop() {
			b.StopTimer()
			dstDir := filepath.Join(b.TempDir(), "dst")
			dst := openLog(b, dstDir, opts)
			b.StartTimer()
			copied = 0
			var cur *oplog.SnapshotCursor
			var floor crdt.VersionVector
			for {
				t0 := time.Now()
				p, err := src.Snapshot(b.Context(), ns, cur, oplog.PageLimits{})
				if err != nil {
					b.Fatalf("Snapshot: %v", err)
				}
				t1 := time.Now()
				reading += t1.Sub(t0)
				if floor == nil {
					floor = p.Vector
				}
				floor = floor.Meet(p.Vector)
				if _, err := dst.InstallSnapshot(b.Context(), ns, p.Records); err != nil {
					b.Fatalf("InstallSnapshot: %v", err)
				}
				installing += time.Since(t1)
				copied += p.Bytes
				if !p.More {
					break
				}
				last := p.Records[len(p.Records)-1]
				cur = &oplog.SnapshotCursor{Collection: last.Collection, Key: last.Key}
			}
			t0 := time.Now()
			if err := dst.FinishSnapshot(b.Context(), ns, floor); err != nil {
				b.Fatalf("FinishSnapshot: %v", err)
			}
			finishing += time.Since(t0)
			b.StopTimer()
			if got := hashOf(b, dst, ns); got != hash {
				b.Fatalf("bootstrapped state hash %s, want %s", got, hash)
			}
			if stored == 0 {
				st := nsStats(b, dst, ns)
				stored = st.StateBytes + st.BaseBytes + st.FeedBytes + st.LogBytes
			}
			closeLog(b, dst)
			os.RemoveAll(dstDir)
			b.StartTimer()
		}
		reportBootstrap(b, records, copied, stored, srcStats.StateBytes)
		perOp := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(b.N) }
		b.ReportMetric(perOp(reading), "ms-snapshot/op")
		b.ReportMetric(perOp(installing), "ms-install/op")
		b.ReportMetric(perOp(finishing), "ms-finish/op")
	})

	closeLog(b, src)
	b.Run("raw-pebble-copy", func(b *testing.B) {
		raw, err := pebble.Open(srcDir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: quietPebble{b}})
		if err != nil {
			b.Fatal(err)
		}
		defer raw.Close()
		copied, n := 0, 0
		for b.Loop() {
			b.StopTimer()
			dstDir := filepath.Join(b.TempDir(), "dst")
			dst := openRawPebbleAt(b, dstDir)
			b.StartTimer()
			copied, n = 0, 0
			it, err := raw.NewIter(&pebble.IterOptions{LowerBound: []byte{'S'}, UpperBound: []byte{'S' + 1}})
			if err != nil {
				b.Fatal(err)
			}
			batch := dst.NewBatch()
			for it.First(); it.Valid(); it.Next() {
				if err := batch.Set(it.Key(), it.Value(), nil); err != nil {
					b.Fatal(err)
				}
				copied += len(it.Key()) + len(it.Value())
				n++
				if n%1000 == 0 {
					if err := batch.Commit(pebble.NoSync); err != nil {
						b.Fatal(err)
					}
					batch.Close()
					batch = dst.NewBatch()
				}
			}
			if err := it.Close(); err != nil {
				b.Fatal(err)
			}
			if err := batch.Commit(pebble.Sync); err != nil {
				b.Fatal(err)
			}
			batch.Close()
			b.StopTimer()
			if n != records {
				b.Fatalf("copied %d states, want %d", n, records)
			}
			if err := dst.Close(); err != nil {
				b.Fatal(err)
			}
			os.RemoveAll(dstDir)
			b.StartTimer()
		}
		reportBootstrap(b, records, copied, int64(copied), srcStats.StateBytes)
	})
}

func reportBootstrap(b *testing.B, records, copied int, stored, stateBytes int64) {
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/bootstrap")
	b.ReportMetric(float64(b.N*records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(copied), "copied-B")
	b.ReportMetric(float64(stored), "stored-B")
	b.ReportMetric(float64(stateBytes), "state-B")
}

// settle compacts the closed store in dir down to the last level, so that
// no background compaction is pending when it is next opened.
func settle(b *testing.B, dir string) {
	b.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: quietPebble{b}})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Compact(b.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatalf("settling %s: %v", dir, err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
}

// openRawPebbleAt opens Pebble in dir with the options the store uses
// (cache size, format); the caller closes it.
func openRawPebbleAt(b *testing.B, dir string) *pebble.DB {
	b.Helper()
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{Cache: cache, FormatMajorVersion: pebble.FormatNewest, Logger: quietPebble{b}})
	if err != nil {
		b.Fatal(err)
	}
	return db
}

func hashOf(tb testing.TB, l *oplog.Log, ns string) string {
	tb.Helper()
	h, _, err := l.StateHash(tb.Context(), ns)
	if err != nil {
		tb.Fatalf("StateHash: %v", err)
	}
	return h
}
