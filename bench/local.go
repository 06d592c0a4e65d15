package main

import (
	"context"
	"fmt"
	"time"

	"github.com/convergedb/converge"
)

// Local scenarios: writes (put, put-sync) and applying remote ops
// (ingest), each against raw Pebble writing the same bytes in the same
// batches with the same sync mode.

// putScenario is put (no fsync) or put-sync (fsync every commit).
func putScenario(sync bool) *Scenario {
	name, mode, durability, dname := "put", "no fsync", converge.NoSync, "NoSync"
	if sync {
		name, mode, durability, dname = "put-sync", "fsync every commit", converge.SyncEveryCommit, "SyncEveryCommit"
	}
	base := "raw Pebble, same bytes, " + mode
	return &Scenario{
		Name: name,
		Description: fmt.Sprintf("Local writes of new 5-field records with Collection.Put (db.Update with -put-batch records per commit when above 1), "+
			"Options.Durability = converge.%s (%s). Baseline: raw Pebble (cockroachdb/pebble/v2, the store under Converge) writing, per commit, "+
			"the same bytes Converge writes (each op's encoding as the log entry and its record state, the vector entry and the HLC mark), "+
			"with the keys of Converge's layout, in the same batches and the same sync mode. The bytes come from the same records "+
			"written on a source replica beforehand. The gap is the cost of the typed API, diffing, the CRDT fold, the change feed and "+
			"the clock; the fsync cost is common to both.", dname, mode),
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			n := e.cfg.PutOps
			if sync {
				n = e.cfg.SyncOps
			}
			ops, err := e.ops(ctx, n)
			if err != nil {
				return nil, err
			}
			batch := e.cfg.PutBatch
			return &Trial{
				Metrics: []Metric{
					{Name: "throughput", Kind: Throughput, Unit: "records/s", Baseline: base},
					{Name: "commit p50", Kind: Latency, Baseline: base},
					{Name: "commit p99", Kind: Latency, Baseline: base},
				},
				Ours: func(ctx context.Context, _ int) (Values, error) {
					return convergePuts(ctx, e, durability, n, batch)
				},
				Baseline: func(ctx context.Context, _ int) (Values, error) {
					return rawPuts(e, ops, batch, sync)
				},
			}, nil
		},
	}
}

// commitValues are the put scenarios' figures from n records written in
// the commits timed in lat, in total time d.
func commitValues(n int, d time.Duration, lat []time.Duration) Values {
	return Values{
		"throughput": perSecond(n, d),
		"commit p50": ms(percentile(lat, 50)),
		"commit p99": ms(percentile(lat, 99)),
	}
}

// convergePuts writes n new records on a fresh replica, batch per commit.
func convergePuts(ctx context.Context, e *env, d converge.Durability, n, batch int) (Values, error) {
	dir, err := e.dir("put")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(dir)
	db, tasks, err := openConverge(dir, d)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	recs := make([]task, n)
	for i := range recs {
		recs[i] = makeTask(taskKey("task", i), i)
	}
	lat := make([]time.Duration, 0, n/batch+1)
	start := time.Now()
	for i := 0; i < n; i += batch {
		j := min(i+batch, n)
		t0 := time.Now()
		if batch == 1 {
			_, err = tasks.Put(ctx, benchNS, &recs[i])
		} else {
			err = db.Update(ctx, benchNS, func(tx *converge.Tx) error {
				for k := i; k < j; k++ {
					if _, err := tasks.Tx(tx).Put(&recs[k]); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err != nil {
			return nil, fmt.Errorf("put %d: %w", i, err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	if err := db.Close(); err != nil {
		return nil, err
	}
	return commitValues(n, elapsed, lat), nil
}

// rawPuts writes the ops' bytes to a fresh raw Pebble, batch ops per commit.
func rawPuts(e *env, ops []capturedOp, batch int, sync bool) (Values, error) {
	dir, err := e.dir("rawput")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(dir)
	r, err := openRawPebble(dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	wo := writeOptions(sync)
	var w rawWriter
	lat := make([]time.Duration, 0, len(ops)/batch+1)
	start := time.Now()
	for i := 0; i < len(ops); i += batch {
		t0 := time.Now()
		if err := r.commitOps(&w, ops[i:min(i+batch, len(ops))], wo); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	return commitValues(len(ops), elapsed, lat), r.Close()
}

// ingestScenario applies remote ops to a fresh replica.
func ingestScenario() *Scenario {
	return &Scenario{
		Name: "ingest",
		Description: "Applying remote ops: -ingest-ops puts pre-generated on a source replica (one op per record, as Collection.Put writes them), " +
			"applied to a fresh replica through db.SyncStore().Apply in batches of -ingest-batch (what a transport does with a received page: " +
			"decode, check, fold into the record states, conflict detection, vector). No fsync unless -ingest-sync. " +
			"Baseline: raw Pebble writing the same op bytes and the resulting states, with Converge's keys, in the same batch sizes and sync mode.",
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			ops, err := e.ops(ctx, e.cfg.IngestOps)
			if err != nil {
				return nil, err
			}
			raws := rawOps(ops)
			mode := "no fsync"
			if e.cfg.IngestSync {
				mode = "fsync every batch"
			}
			base := fmt.Sprintf("raw Pebble, same bytes, batches of %d, %s", e.cfg.IngestBatch, mode)
			return &Trial{
				Metrics: []Metric{{Name: "throughput", Kind: Throughput, Baseline: base}},
				Ours: func(ctx context.Context, _ int) (Values, error) {
					return convergeIngest(ctx, e, raws)
				},
				Baseline: func(context.Context, int) (Values, error) {
					return rawIngest(e, ops)
				},
			}, nil
		},
	}
}

// convergeIngest applies raws to a fresh replica in batches.
func convergeIngest(ctx context.Context, e *env, raws [][]byte) (Values, error) {
	dir, err := e.dir("ingest")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(dir)
	d := converge.NoSync
	if e.cfg.IngestSync {
		d = converge.SyncEveryCommit
	}
	db, _, err := openConverge(dir, d)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	store := db.SyncStore()
	start := time.Now()
	for i := 0; i < len(raws); i += e.cfg.IngestBatch {
		page := raws[i:min(i+e.cfg.IngestBatch, len(raws))]
		a, err := store.Apply(ctx, benchNS, page)
		if err != nil {
			return nil, fmt.Errorf("apply ops %d..%d: %w", i, i+len(page), err)
		}
		if a.Applied != len(page) {
			return nil, fmt.Errorf("apply ops %d..%d: applied %d of %d: %s", i, i+len(page), a.Applied, len(page), a.Reason)
		}
	}
	elapsed := time.Since(start)
	if err := db.Close(); err != nil {
		return nil, err
	}
	return Values{"throughput": perSecond(len(raws), elapsed)}, nil
}

// rawIngest writes the ops' bytes to a fresh raw Pebble in batches.
func rawIngest(e *env, ops []capturedOp) (Values, error) {
	dir, err := e.dir("rawingest")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(dir)
	r, err := openRawPebble(dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	wo := writeOptions(e.cfg.IngestSync)
	var w rawWriter
	start := time.Now()
	for i := 0; i < len(ops); i += e.cfg.IngestBatch {
		if err := r.commitOps(&w, ops[i:min(i+e.cfg.IngestBatch, len(ops))], wo); err != nil {
			return nil, err
		}
	}
	elapsed := time.Since(start)
	return Values{"throughput": perSecond(len(ops), elapsed)}, r.Close()
}
