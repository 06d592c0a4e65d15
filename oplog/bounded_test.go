package oplog_test

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
	"github.com/convergedb/converge/oplog"
)

// Issue 8's proof: a store that took a long history of updates over few
// records shrinks, once compacted, to a size bounded by the records, and
// its start-up reads nothing of the history.

const historyColl = "items"

// historyRecord is what the workload last wrote to a record.
type historyRecord struct {
	title, owner string
	n            int64
	score        float64
	deleted      bool
}

func (r *historyRecord) changes() []crdt.Change {
	return []crdt.Change{
		setStr("title", r.title),
		setStr("owner", r.owner),
		setInt("n", r.n),
		{Name: "score", Type: crdt.Set, Value: mp.AppendFloat64(nil, r.score)},
	}
}

// history is the workload of the bounded-store proof: register updates of
// a few fields of records picked at random, with deletes and re-creates.
type history struct {
	Records, Ops         int // keys, and ops written in total
	Deletes, Recreates   int
	Final                []historyRecord // what the last write to each key left
	DeletedAtEnd, Writes int             // records deleted at the end; Log.Write calls
}

func historyKey(i int) string { return fmt.Sprintf("item-%05d", i) }

// writeHistory writes ops ops over records keys of ns in transactions of up
// to batch ops: each key is created first (records ops), then each op picks
// a key at random and updates two of its four register fields ("n", which
// always changes, and one of the others), deletes it (one op in 200), or,
// if it is deleted, re-creates it with all four fields. Every Mutate writes
// exactly one op, so the log holds exactly ops ops. It is deterministic
// except for the stamps.
func writeHistory(tb testing.TB, l *oplog.Log, ns string, records, ops, batch int) *history {
	tb.Helper()
	h := &history{Records: records, Final: make([]historyRecord, records)}
	rng := rand.New(rand.NewPCG(8, uint64(records)))
	written := 0
	next := func(tx *oplog.Tx) error {
		var (
			intent  crdt.Intent
			changes []crdt.Change
			i       int
		)
		if written < records {
			i = written
			r := &h.Final[i]
			*r = historyRecord{title: fmt.Sprintf("item %d", i), owner: "alice@example.com", n: int64(written), score: float64(i) / 4}
			intent, changes = crdt.IntentPut, r.changes()
		} else {
			i = rng.IntN(records)
			r := &h.Final[i]
			switch {
			case r.deleted:
				*r = historyRecord{title: fmt.Sprintf("item %d again at %d", i, written), owner: "bob@example.com", n: int64(written), score: float64(written) / 4}
				intent, changes = crdt.IntentPut, r.changes()
				h.Recreates++
			case rng.IntN(200) == 0:
				r.deleted = true
				intent = crdt.IntentDelete
				h.Deletes++
			default:
				r.n = int64(written)
				intent, changes = crdt.IntentUpdate, []crdt.Change{setInt("n", r.n)}
				switch written % 3 {
				case 0:
					r.title = fmt.Sprintf("item %d, version %d", i, written)
					changes = append(changes, setStr("title", r.title))
				case 1:
					r.owner = fmt.Sprintf("user%d@example.com", rng.IntN(50))
					changes = append(changes, setStr("owner", r.owner))
				default:
					r.score = float64(written) / 8
					changes = append(changes, crdt.Change{Name: "score", Type: crdt.Set, Value: mp.AppendFloat64(nil, r.score)})
				}
			}
		}
		op, err := tx.Mutate(historyColl, historyKey(i), intent, changes)
		if err != nil {
			return err
		}
		if op == nil {
			return fmt.Errorf("op %d on %s wrote nothing", written, historyKey(i))
		}
		written++
		return nil
	}
	for written < ops {
		_, err := l.Write(tb.Context(), ns, func(tx *oplog.Tx) error {
			for k := 0; k < batch && written < ops; k++ {
				if err := next(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("Write (op %d): %v", written, err)
		}
		h.Writes++
	}
	h.Ops = written
	for i := range h.Final {
		if h.Final[i].deleted {
			h.DeletedAtEnd++
		}
	}
	return h
}

// dirStats sums the files of a store directory by kind.
type dirStats struct {
	Files, Tables, WALs int
	Bytes               int64 // every file
	TableBytes          int64 // sstables
	WALBytes            int64 // write-ahead logs: replayed at open
	ManifestBytes       int64
}

func (f dirStats) String() string {
	return fmt.Sprintf("%d files, %d B (%d sstables %d B, %d WALs %d B, manifest %d B)",
		f.Files, f.Bytes, f.Tables, f.TableBytes, f.WALs, f.WALBytes, f.ManifestBytes)
}

func dirFiles(tb testing.TB, dir string) dirStats {
	tb.Helper()
	var f dirStats
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n := info.Size()
		f.Files++
		f.Bytes += n
		switch name := d.Name(); {
		case strings.HasSuffix(name, ".sst"):
			f.Tables++
			f.TableBytes += n
		case strings.HasSuffix(name, ".log"):
			f.WALs++
			f.WALBytes += n
		case strings.HasPrefix(name, "MANIFEST-"):
			f.ManifestBytes += n
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("listing %s: %v", dir, err)
	}
	return f
}

func nsStats(tb testing.TB, l *oplog.Log, ns string) oplog.NamespaceStats {
	tb.Helper()
	st, err := l.Stats(tb.Context(), ns)
	if err != nil {
		tb.Fatalf("Stats: %v", err)
	}
	return st
}

func diskUsage(tb testing.TB, l *oplog.Log) uint64 {
	tb.Helper()
	n, err := l.DiskUsage(tb.Context())
	if err != nil {
		tb.Fatalf("DiskUsage: %v", err)
	}
	return n
}

func reopen(tb testing.TB, l *oplog.Log, dir string, opts oplog.Options) *oplog.Log {
	tb.Helper()
	if err := l.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	return openLog(tb, dir, opts)
}

// atRest closes l and lists its directory. Pebble deletes obsolete files
// (flushed WALs, compacted sstables, old manifests) in the background, and
// Close waits for those deletions, so the listing is the store at rest, not
// a moment of its housekeeping.
func atRest(tb testing.TB, l *oplog.Log, dir string) dirStats {
	tb.Helper()
	if err := l.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	return dirFiles(tb, dir)
}

// TestCompactionBoundsTheStore writes 1,000,000 ops over 1,000 records to
// a store on disk, compacts everything, and checks that what is left is
// bounded by the records, not by the history, and that a start-up finds no
// history to read. With -short or -race it writes 100,000 ops (2.5 s). It takes
// about 24 s on an idle 2-core machine (about a minute on a loaded one):
// half writing the history, half compacting it.
func TestCompactionBoundsTheStore(t *testing.T) {
	const records, batch = 1000, 1000
	ops, maxShare := 1_000_000, 0.05
	if testing.Short() || raceEnabled {
		// A history 10 times shorter leaves the same records: the share
		// they take of the store before compaction is 10 times larger.
		ops, maxShare = 100_000, 0.20
	}
	const ns = "bounded"
	dir := t.TempDir()
	opts := oplog.Options{Durability: oplog.NoSync}
	l := openLog(t, dir, opts)

	start := time.Now()
	h := writeHistory(t, l, ns, records, ops, batch)
	t.Logf("wrote %d ops over %d records in %d transactions (%d deletes, %d re-creates, %d deleted at the end) in %v",
		h.Ops, h.Records, h.Writes, h.Deletes, h.Recreates, h.DeletedAtEnd, time.Since(start).Round(time.Millisecond))
	if h.Deletes == 0 || h.Recreates == 0 || h.DeletedAtEnd == 0 {
		t.Fatalf("workload wrote %d deletes and %d re-creates, %d deleted at the end; want some of each", h.Deletes, h.Recreates, h.DeletedAtEnd)
	}

	// Before: a start-up of the store as the history left it.
	l = reopen(t, l, dir, opts)
	before := nsStats(t, l, ns)
	usageBefore := diskUsage(t, l)
	hashBefore, count, err := l.StateHash(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	filesBefore := atRest(t, l, dir)
	t.Logf("before compaction: log %d ops (%d B), %d states (%d B), %d base states, feed %d changes (%d B)",
		before.LogOps, before.LogBytes, before.States, before.StateBytes, before.Bases, before.FeedChanges, before.FeedBytes)
	t.Logf("before compaction: DiskUsage at start-up %d B; at rest: %v", usageBefore, filesBefore)
	if before.LogOps != ops || count != records || before.States != records {
		t.Fatalf("before compaction: %d ops in the log, %d records hashed, %d states; want %d ops and %d records", before.LogOps, count, before.States, ops, records)
	}

	// A single replica knows no peer: compact up to its whole vector.
	l = openLog(t, dir, opts)
	start = time.Now()
	st, err := l.Compact(t.Context(), ns, oplog.CompactOptions{Horizon: before.Vector, Reclaim: true})
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	t.Logf("compacted %d ops in %d batches (%d base state writes, %d feed changes trimmed) in %v",
		st.Ops, st.Batches, st.Records, st.FeedTrimmed, time.Since(start).Round(time.Millisecond))
	if st.Ops != ops || !st.After.Equal(before.Vector) {
		t.Fatalf("Compact = %+v, want %d ops up to %v", st, ops, before.Vector)
	}

	// After: a start-up of the compacted store.
	l = reopen(t, l, dir, opts)
	after := nsStats(t, l, ns)
	usageAfter := diskUsage(t, l)
	t.Logf("after compaction: log %d ops (%d B), %d states (%d B), %d base states (%d B), feed %d changes (%d B)",
		after.LogOps, after.LogBytes, after.States, after.StateBytes, after.Bases, after.BaseBytes, after.FeedChanges, after.FeedBytes)

	// Nothing of the history is left to read, and the state is untouched:
	// it is what the base states (and the empty log) give.
	if after.LogOps != 0 || after.LogBytes != 0 {
		t.Fatalf("after compaction the log holds %d ops (%d B), want none", after.LogOps, after.LogBytes)
	}
	if got := stateHash(t, l, ns); got != hashBefore {
		t.Fatalf("state hash %s after compaction, was %s", got, hashBefore)
	}
	if after.StateBytes != before.StateBytes || after.States != records || after.Bases != records || after.BaseBytes != after.StateBytes-9*int64(records) {
		// A stored state carries 9 bytes more than its base: the count of
		// ops applied to it (oplog/stored.go).
		t.Fatalf("after compaction: %d states (%d B, were %d B), %d base states (%d B); want %d of each, the same bytes but the applied counts",
			after.States, after.StateBytes, before.StateBytes, after.Bases, after.BaseBytes, records)
	}
	if !after.Vector.Equal(before.Vector) || !after.Horizon.Equal(before.Vector) {
		t.Fatalf("after compaction: vector %v, horizon %v; want both %v", after.Vector, after.Horizon, before.Vector)
	}
	mustVerify(t, l, ns)
	filesAfter := atRest(t, l, dir)
	t.Logf("after compaction: DiskUsage at start-up %d B; at rest: %v", usageAfter, filesAfter)
	t.Logf("after / before at rest: %.2f%%; after / encoded states: %.2f",
		100*float64(filesAfter.Bytes)/float64(filesBefore.Bytes), float64(filesAfter.Bytes)/float64(after.StateBytes))

	// The bound: what the store must keep, uncompressed, plus its files.
	// Stats counts keys and values. Once everything is folded, the base
	// states equal the states: K = 2. The change feed keeps its latest
	// Options.FeedRetention changes (10,000 by default), a constant of
	// the configuration, not of the history: its bytes are part of the
	// fixed overhead. The files add 1 MiB at most: a few KiB of MANIFEST
	// (the current one and its predecessor), OPTIONS files, the WAL
	// (empty at rest: an open flushes what it replays) and the sstables'
	// indexes, filters and footers. Pebble's block compression is not
	// counted on. Measured at rest: 515 kB after 1,000,000 ops (0.67% of
	// the 76.5 MB before), 486 kB after 100,000 (6.3% of 7.7 MB), against
	// this bound's 2.49 MB: the size follows the records, not the history.
	const k = 2
	bound := k*after.StateBytes + after.FeedBytes + 1<<20
	t.Logf("bound: %d × %d B (states) + %d B (feed) + 1 MiB = %d B; the store at rest holds %d B", k, after.StateBytes, after.FeedBytes, bound, filesAfter.Bytes)
	if filesAfter.Bytes > bound {
		t.Errorf("after compaction the store takes %d B at rest, above the bound %d B", filesAfter.Bytes, bound)
	}
	if share := float64(filesAfter.Bytes) / float64(filesBefore.Bytes); share > maxShare {
		t.Errorf("after compaction the store takes %d B at rest, %.1f%% of the %d B before; want at most %.0f%%",
			filesAfter.Bytes, 100*share, filesBefore.Bytes, 100*maxShare)
	}
	// Start-up: an open reads the MANIFEST and replays the WAL; the first
	// reads (vector, a record, the state hash) read states, never the log,
	// which is now empty. All of it is in the bound above; the WAL at
	// rest holds no history.
	if filesAfter.WALBytes > 64<<10 {
		t.Errorf("after compaction the WAL at rest holds %d B, want next to nothing", filesAfter.WALBytes)
	}
}
