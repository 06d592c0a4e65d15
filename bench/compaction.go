package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
)

// Compaction (issue 8): a replica that took a long history of updates over
// few records, before and after db.Compact, beside a fresh replica holding
// only the final records: what a user would otherwise do to get rid of the
// history (export the records, write them to a new store).

// Metrics of the compaction scenario.
const (
	metricSizeBefore    = "store size before compaction"
	metricSizeAfter     = "store size after compaction"
	metricStartupBefore = "start-up before compaction"
	metricStartupAfter  = "start-up after compaction"
	metricCompactTime   = "compaction time"
)

// startupSamples is how many start-ups one run times; it reports their
// median (an open's fsyncs make single ones noisy).
const startupSamples = 5

func compactionScenario() *Scenario {
	const fresh = "fresh store holding only the final records"
	return &Scenario{
		Name: "compaction",
		Description: "A replica (no fsync) takes -compaction-updates writes over -compaction-records 5-field task records, in " +
			"db.Update transactions of 1000: the records are put, then each write picks one at random and puts it with its score and " +
			"one other field set (Collection.Put writes only what changed), or deletes it (one write in 200), or re-creates it if " +
			"deleted. " +
			"The history is written once; each run compacts a copy of it: the replica learns that a peer holds every op " +
			"(Log.Acknowledge, what a sync with a hub records), then db.Compact folds the whole log into base states, drops it, " +
			"trims the change feed to its retention (10,000 changes) and has Pebble reclaim the space. Measured before and after: " +
			"the store's size at rest (its directory once closed), and the start-up time (converge.Open, then the first reads: one " +
			"record and the state hash, which reads every record; Close untimed; the median of 5 in a row, page cache warm). " +
			"Baseline: a fresh replica where each final record was put once (a deleted one put and deleted), its size and start-up " +
			"measured the same way; the compaction time is set beside the time to write that fresh store.",
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			dir, err := e.dir("history")
			if err != nil {
				return nil, err
			}
			start := time.Now()
			final, err := writeTaskHistory(ctx, dir, e.cfg.CompactionRecords, e.cfg.CompactionUpdates)
			if err != nil {
				return nil, err
			}
			e.log.Info("wrote the compaction history", "updates", e.cfg.CompactionUpdates, "records", e.cfg.CompactionRecords,
				"took", time.Since(start).Round(time.Millisecond))
			return &Trial{
				Metrics: []Metric{
					{Name: metricSizeBefore, Kind: Bytes, Baseline: fresh},
					{Name: metricSizeAfter, Kind: Bytes, Baseline: fresh},
					{Name: metricStartupBefore, Kind: Latency, Baseline: "start-up of the " + fresh},
					{Name: metricStartupAfter, Kind: Latency, Baseline: "start-up of the " + fresh},
					{Name: metricCompactTime, Kind: Duration, Baseline: "writing the final records to a fresh store"},
				},
				Ours: func(ctx context.Context, _ int) (Values, error) {
					return compactionRun(ctx, e, dir, final)
				},
				Baseline: func(ctx context.Context, _ int) (Values, error) {
					return freshStoreRun(ctx, e, final)
				},
			}, nil
		},
	}
}

// historyWrite is what one write of the history does to its record.
type historyWrite struct {
	i      int  // the record
	delete bool // else put
}

// taskHistory is what a history left: each record's last put, and whether
// it ended deleted.
type taskHistory struct {
	updates int
	tasks   []task
	deleted []bool
}

// probe returns the id of a record that exists at the end: the one a
// start-up reads.
func (h *taskHistory) probe() string {
	for i, t := range h.tasks {
		if !h.deleted[i] {
			return t.ID
		}
	}
	return h.tasks[0].ID // every record deleted: Get fails, and says so
}

// writeTaskHistory writes updates writes over records task records to a
// new replica in dir (see the scenario's description), closes it at rest,
// and returns the final records.
func writeTaskHistory(ctx context.Context, dir string, records, updates int) (_ *taskHistory, err error) {
	db, tasks, err := openConverge(dir, converge.NoSync)
	if err != nil {
		return nil, err
	}
	defer func() {
		if db != nil {
			err = errors.Join(err, db.Close())
		}
	}()
	final := make([]task, records)
	deleted := make([]bool, records)
	rng := rand.New(rand.NewPCG(8, uint64(records)))
	written := 0
	next := func() historyWrite {
		n := written
		written++
		if n < records {
			final[n] = makeTask(taskKey("task", n), n)
			return historyWrite{i: n}
		}
		i := rng.IntN(records)
		t := &final[i]
		switch {
		case deleted[i]:
			deleted[i] = false
			*t = makeTask(taskKey("task", i), n)
		case rng.IntN(200) == 0:
			deleted[i] = true
			return historyWrite{i: i, delete: true}
		default:
			t.Score = float64(n) / 8 // always changes: every write is an op
			switch n % 4 {
			case 0:
				t.Title = fmt.Sprintf("write the report %04d, draft %d", i, n)
			case 1:
				t.Priority = (t.Priority + 1) % 5
			case 2:
				t.Done = !t.Done
			default:
				t.Owner = fmt.Sprintf("user%02d@example.com", rng.IntN(50))
			}
		}
		return historyWrite{i: i}
	}
	for written < updates {
		err := db.Update(ctx, benchNS, func(tx *converge.Tx) error {
			c := tasks.Tx(tx)
			for k := 0; k < 1000 && written < updates; k++ {
				w := next()
				if w.delete {
					if err := c.Delete(taskKey("task", w.i)); err != nil {
						return err
					}
					continue
				}
				t := final[w.i] // Put sets the ID of what it is given
				if _, err := c.Put(&t); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("history write %d: %w", written, err)
		}
	}
	if vv, err := db.Admin().Vector(ctx, benchNS); err != nil || vv[db.ReplicaID()] != uint64(updates) {
		return nil, fmt.Errorf("history: the replica holds %v ops (%v), want %d: a write wrote nothing", vv, err, updates)
	}
	err = db.Close()
	db = nil
	if err != nil {
		return nil, err
	}
	if err := settleConverge(dir); err != nil {
		return nil, err
	}
	return &taskHistory{updates: updates, tasks: final, deleted: deleted}, nil
}

// settleConverge opens and closes the replica in dir, which leaves it at
// rest: the WAL replayed into tables, obsolete files deleted.
func settleConverge(dir string) error {
	db, _, err := openConverge(dir, converge.NoSync)
	if err != nil {
		return err
	}
	return db.Close()
}

// dirSize returns the bytes of the files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sizing %s: %w", dir, err)
	}
	return n, nil
}

// startup times startupSamples start-ups of the replica in dir and returns
// the median, in milliseconds: converge.Open, one record read (id), the
// state hash (every record). Close is not timed.
func startup(ctx context.Context, dir, id string) (float64, error) {
	var ds []float64
	for range startupSamples {
		start := time.Now()
		db, tasks, err := openConverge(dir, converge.NoSync)
		if err != nil {
			return 0, err
		}
		_, err = tasks.Get(ctx, benchNS, id)
		if err == nil {
			_, err = db.Admin().StateHash(ctx, benchNS)
		}
		elapsed := time.Since(start)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("start-up: %w", err)
		}
		ds = append(ds, ms(elapsed))
	}
	m, _ := median(ds)
	return m, nil
}

// benchPeer is the replica id of the peer compactFully makes up.
var benchPeer = crdt.ReplicaID{'b', 'e', 'n', 'c', 'h', '-', 'p', 'e', 'e', 'r'}

// compactFully compacts benchNS of db down to its whole vector through
// db.Compact, which folds what every known peer holds: it first records
// that a peer holds every op (what a sync with a hub holding them records).
// It returns the ops dropped.
func compactFully(ctx context.Context, db *converge.DB) (int, error) {
	vv, err := db.Admin().Log().Vector(ctx, benchNS)
	if err != nil {
		return 0, err
	}
	if err := db.Admin().Log().Acknowledge(ctx, benchNS, benchPeer, vv); err != nil {
		return 0, err
	}
	st, err := db.Admin().Compact(ctx, benchNS)
	if err != nil {
		return 0, err
	}
	return st.Ops, nil
}

// compactionRun measures a copy of hist's store in src: its size and
// start-up, compaction, and its size and start-up after.
func compactionRun(ctx context.Context, e *env, src string, hist *taskHistory) (_ Values, err error) {
	dir, err := e.dir("compaction")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(dir)
	dir = filepath.Join(dir, "db")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		return nil, fmt.Errorf("copying the history: %w", err)
	}
	v := Values{}
	if v[metricSizeBefore], err = sizeOf(dir); err != nil {
		return nil, err
	}
	probe := hist.probe()
	if v[metricStartupBefore], err = startup(ctx, dir, probe); err != nil {
		return nil, err
	}
	db, _, err := openConverge(dir, converge.NoSync)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ops, err := compactFully(ctx, db)
	elapsed := time.Since(start)
	err = errors.Join(err, db.Close())
	if err != nil {
		return nil, fmt.Errorf("compacting: %w", err)
	}
	if ops != hist.updates {
		return nil, fmt.Errorf("compaction dropped %d ops, want the %d of the history", ops, hist.updates)
	}
	v[metricCompactTime] = elapsed.Seconds()
	if v[metricStartupAfter], err = startup(ctx, dir, probe); err != nil {
		return nil, err
	}
	if v[metricSizeAfter], err = sizeOf(dir); err != nil { // at rest: the start-ups opened and closed it
		return nil, err
	}
	e.log.Debug("compacted", "ops", ops, "took", elapsed, "values", v)
	return v, nil
}

func sizeOf(dir string) (float64, error) {
	n, err := dirSize(dir)
	return float64(n), err
}

// freshStoreRun writes the final records once to a fresh replica (a
// deleted one put, then deleted), and measures its size and start-up.
func freshStoreRun(ctx context.Context, e *env, final *taskHistory) (_ Values, err error) {
	dir, err := e.dir("fresh")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(dir)
	db, tasks, err := openConverge(dir, converge.NoSync)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for from := 0; from < len(final.tasks) && err == nil; from += 1000 {
		err = db.Update(ctx, benchNS, func(tx *converge.Tx) error {
			c := tasks.Tx(tx)
			for i := from; i < min(from+1000, len(final.tasks)); i++ {
				t := final.tasks[i]
				if _, err := c.Put(&t); err != nil {
					return err
				}
				if final.deleted[i] {
					if err := c.Delete(t.ID); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	elapsed := time.Since(start)
	err = errors.Join(err, db.Close())
	if err != nil {
		return nil, fmt.Errorf("fresh store: %w", err)
	}
	v := Values{metricCompactTime: elapsed.Seconds()}
	if v[metricStartupBefore], err = startup(ctx, dir, final.probe()); err != nil {
		return nil, err
	}
	v[metricStartupAfter] = v[metricStartupBefore]
	if v[metricSizeBefore], err = sizeOf(dir); err != nil {
		return nil, err
	}
	v[metricSizeAfter] = v[metricSizeBefore]
	return v, nil
}
