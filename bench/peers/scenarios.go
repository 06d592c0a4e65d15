package main

import (
	"context"
	"fmt"

	"github.com/convergedb/converge"
)

// Side names, as the rows show them.
const (
	convergeNoSync = "Converge (Pebble, NoSync)"
	convergeSync   = "Converge (Pebble, SyncEveryCommit)"
	convergeMemory = "Converge (Pebble, NoSync, MemPeer)"
	automergeSide  = "automerge-go (in memory, record as a map)"
	automergeBytes = "automerge-go (in memory, record as one msgpack value)"
)

// The go-ds-crdt configurations.
var (
	dsMemory      = dsStore{}
	dsPebble      = dsStore{Pebble: true}
	dsPebbleFsync = dsStore{Pebble: true, Sync: true}
)

// scenarios returns the registry, in the order they run and are reported.
func scenarios() []*scenario {
	return []*scenario{putScenario(), putSyncScenario(), receiveScenario(), mergeScenario()}
}

// Goals the issue set: Converge, on disk, against the peers in memory.
const (
	goalPutVsDSCRDT        = 2 // Converge's put rate ≥ 2× go-ds-crdt's
	goalReceiveVsDSCRDT    = 4 // Converge's ingest ≥ 4× go-ds-crdt's receiver
	goalPutVsAutomerge     = 1 // Converge's put rate ≥ automerge-go's put+commit
	rateMetric, timeMetric = "throughput", "time"
)

func putScenario() *scenario {
	return &scenario{
		Name: "put",
		Description: "Local writes of -n new 5-field records (the harness's put records), one write and one commit each, on a fresh store. " +
			"Converge: Collection.Put on Pebble, Durability NoSync (as the harness's put). go-ds-crdt: Datastore.Put of the record's msgpack " +
			"under its id (one DAG node, its block, the set and heads updates, one broadcast each), on an in-memory map datastore and on " +
			"go-ds-pebble without fsync. automerge-go: setting the record as a map of its five fields in the root map (merged per field, " +
			"like Converge) and committing the change, in memory; and the same with the record as one msgpack bytes value, as " +
			"go-ds-crdt stores it (no per-field merge, fewer calls).",
		Size: func(c config) string { return fmt.Sprintf("%d records", c.N) },
		Prepare: func(_ context.Context, e *env) (*trial, error) {
			recs := putRecords(e.cfg.N)
			return &trial{
				Sides: []side{
					{convergeNoSync, func(ctx context.Context, _ int) (Values, error) { return convergePut(ctx, e, converge.NoSync, recs) }},
					{dsMemory.String(), func(ctx context.Context, _ int) (Values, error) { return dsPut(ctx, e, dsMemory, recs) }},
					{dsPebble.String(), func(ctx context.Context, _ int) (Values, error) { return dsPut(ctx, e, dsPebble, recs) }},
					{automergeSide, func(ctx context.Context, _ int) (Values, error) { return automergePut(ctx, recs, amMap) }},
					{automergeBytes, func(ctx context.Context, _ int) (Values, error) { return automergePut(ctx, recs, amBytes) }},
				},
				Metrics: []metric{{Name: rateMetric, HigherIsBetter: true, Unit: "records/s"}},
				Compare: []comparison{
					{rateMetric, convergeNoSync, dsMemory.String(), goalPutVsDSCRDT},
					{rateMetric, convergeNoSync, dsPebble.String(), 0},
					{rateMetric, convergeNoSync, automergeSide, goalPutVsAutomerge},
					{rateMetric, convergeNoSync, automergeBytes, 0},
				},
			}, nil
		},
	}
}

func putSyncScenario() *scenario {
	return &scenario{
		Name: "put-sync",
		Description: "The put scenario's writes, -sync-n records, with every commit fsynced: Converge with Durability SyncEveryCommit " +
			"against go-ds-crdt on go-ds-pebble with pebble.Sync write options (each of the datastore writes a Put makes is fsynced).",
		Size: func(c config) string { return fmt.Sprintf("%d records", c.SyncN) },
		Prepare: func(_ context.Context, e *env) (*trial, error) {
			recs := putRecords(e.cfg.SyncN)
			return &trial{
				Sides: []side{
					{convergeSync, func(ctx context.Context, _ int) (Values, error) {
						return convergePut(ctx, e, converge.SyncEveryCommit, recs)
					}},
					{dsPebbleFsync.String(), func(ctx context.Context, _ int) (Values, error) { return dsPut(ctx, e, dsPebbleFsync, recs) }},
				},
				Metrics: []metric{{Name: rateMetric, HigherIsBetter: true, Unit: "records/s"}},
				Compare: []comparison{{rateMetric, convergeSync, dsPebbleFsync.String(), 0}},
			}, nil
		},
	}
}

func receiveScenario() *scenario {
	return &scenario{
		Name: "receive",
		Description: "A second replica applying the -n records' ops written on a first, both in process, timed from the first delivery " +
			"until all are applied. Converge: a fresh replica pulls them with transport.Sync over transport.MemPeer (pages of 1000 ops, " +
			"every message encoded and decoded as on a network; Pebble, NoSync). go-ds-crdt: the writer's n broadcasts wait in the " +
			"receiver's inbox, then are released; the receiver walks each new head, fetching the blocks from the writer's blockstore " +
			"through an in-process exchange, until it has committed every record; in-memory datastore and go-ds-pebble without fsync.",
		Size: func(c config) string { return fmt.Sprintf("%d ops", c.N) },
		Prepare: func(_ context.Context, e *env) (*trial, error) {
			recs := putRecords(e.cfg.N)
			return &trial{
				Sides: []side{
					{convergeMemory, func(ctx context.Context, _ int) (Values, error) { return convergeReceive(ctx, e, recs) }},
					{dsMemory.String(), func(ctx context.Context, _ int) (Values, error) { return dsReceive(ctx, e, dsMemory, recs) }},
					{dsPebble.String(), func(ctx context.Context, _ int) (Values, error) { return dsReceive(ctx, e, dsPebble, recs) }},
				},
				Metrics: []metric{{Name: rateMetric, HigherIsBetter: true, Unit: "ops/s"}},
				Compare: []comparison{
					{rateMetric, convergeMemory, dsMemory.String(), goalReceiveVsDSCRDT},
					{rateMetric, convergeMemory, dsPebble.String(), 0},
				},
			}, nil
		},
	}
}

func mergeScenario() *scenario {
	return &scenario{
		Name: "merge",
		Description: "Two replicas each write -n records concurrently (one commit each; n/2 of the keys on both, with different values), " +
			"then merge both ways; timed is the merge only. Converge: one transport.Sync between the two replicas over transport.MemPeer " +
			"(it pushes and pulls; Pebble, NoSync), checked by equal state hashes. automerge-go: a.Merge(b) then b.Merge(a) on two " +
			"in-memory documents (no encoding between them), checked by equal heads, change counts and records.",
		Size: func(c config) string { return fmt.Sprintf("2 × %d changes", c.N) },
		Prepare: func(_ context.Context, e *env) (*trial, error) {
			a, b := mergeRecords(e.cfg.N)
			return &trial{
				Sides: []side{
					{convergeMemory, func(ctx context.Context, _ int) (Values, error) { return convergeMerge(ctx, e, a, b) }},
					{automergeSide, func(ctx context.Context, _ int) (Values, error) { return automergeMerge(ctx, a, b) }},
				},
				Metrics: []metric{{Name: timeMetric, HigherIsBetter: false, Unit: "s"}},
				Compare: []comparison{{timeMetric, convergeMemory, automergeSide, 0}},
			}, nil
		},
	}
}
