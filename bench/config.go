package main

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// config holds the harness's settings: sizes, durations, replica counts.
type config struct {
	Scenarios string // comma-separated names; empty: all
	JSON      bool
	Quick     bool
	Report    string // directory for report.md and the charts; empty: none
	List      bool
	Verbose   bool
	Runs      int
	Timeout   time.Duration // per scenario

	PutOps      int // records written by put (no fsync)
	SyncOps     int // records written by put-sync (fsync every commit)
	PutBatch    int // records per commit in put and put-sync
	IngestOps   int
	IngestBatch int
	IngestSync  bool

	Records   int           // records of the query dataset
	QueryTime time.Duration // how long each side queries, per run
	MinQuery  int           // queries per side per run, at least

	ReplicateOps   int // ops the writer writes in the replicate throughput phase
	Replicas       int // receiving replicas in replicate-*
	LatencySamples int // writes timed one at a time in replicate-*
	Debounce       time.Duration

	CatchupOps int

	CompactionUpdates int // writes of the compaction scenario's history
	CompactionRecords int // records they go to
	SnapshotRecords   int // records of the snapshot a replica bootstraps from

	PartitionReplicas int
	PartitionMinority int
	PartitionWrites   int // per replica, while partitioned
	PartitionShared   int // records written on both sides (conflicts)
}

// defaultConfig returns the default sizes: a few minutes on a 2-core machine.
func defaultConfig() config {
	return config{
		Runs:    3,
		Timeout: 10 * time.Minute,

		PutOps:      50_000,
		SyncOps:     5_000,
		PutBatch:    1,
		IngestOps:   50_000,
		IngestBatch: 1_000,

		Records:   100_000,
		QueryTime: time.Second,
		MinQuery:  3,

		ReplicateOps:   20_000,
		Replicas:       2,
		LatencySamples: 500,
		Debounce:       0,

		CatchupOps: 100_000,

		CompactionUpdates: 1_000_000,
		CompactionRecords: 1_000,
		SnapshotRecords:   100_000,

		PartitionReplicas: 5,
		PartitionMinority: 2,
		PartitionWrites:   2_000,
		PartitionShared:   100,
	}
}

// quickConfig returns the sizes of -quick: every scenario at a small size,
// all of them together well under a minute.
func quickConfig() config {
	c := defaultConfig()
	c.Runs = 1
	c.Timeout = 2 * time.Minute
	c.PutOps, c.SyncOps, c.IngestOps = 5_000, 300, 10_000
	c.Records, c.QueryTime, c.MinQuery = 10_000, 100*time.Millisecond, 2
	c.ReplicateOps, c.LatencySamples = 3_000, 50
	c.CatchupOps = 10_000
	c.CompactionUpdates, c.SnapshotRecords = 20_000, 5_000
	c.PartitionWrites, c.PartitionShared = 200, 20
	return c
}

// parseFlags parses args into a config. Flags given explicitly override
// -quick's sizes.
func parseFlags(name string, args []string) (config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.Scenarios, "scenario", "", "comma-separated scenarios to run (default: all; see -list)")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object per line instead of the table")
	fs.BoolVar(&c.Quick, "quick", false, "every scenario at a small size, one run each (CI)")
	fs.StringVar(&c.Report, "report", "", "write report.md and SVG charts to this directory")
	fs.BoolVar(&c.List, "list", false, "list the scenarios and their baselines, and exit")
	fs.BoolVar(&c.Verbose, "v", false, "log progress to stderr")
	fs.IntVar(&c.Runs, "runs", c.Runs, "interleaved runs of each scenario's pair; the median is reported")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "time limit of one scenario")
	fs.IntVar(&c.PutOps, "put-ops", c.PutOps, "records written by put (no fsync)")
	fs.IntVar(&c.SyncOps, "sync-ops", c.SyncOps, "records written by put-sync (fsync every commit)")
	fs.IntVar(&c.PutBatch, "put-batch", c.PutBatch, "records per commit (one db.Update) in put and put-sync")
	fs.IntVar(&c.IngestOps, "ingest-ops", c.IngestOps, "remote ops applied by ingest")
	fs.IntVar(&c.IngestBatch, "ingest-batch", c.IngestBatch, "ops per SyncStore().Apply call in ingest (the sync page size)")
	fs.BoolVar(&c.IngestSync, "ingest-sync", false, "fsync every ingest batch (both sides)")
	fs.IntVar(&c.Records, "records", c.Records, "records of the query dataset")
	fs.DurationVar(&c.QueryTime, "query-time", c.QueryTime, "time each side spends querying, per run")
	fs.IntVar(&c.ReplicateOps, "replicate-ops", c.ReplicateOps, "ops written in the replication throughput phase")
	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "receiving replicas in replicate-* and jetstream-kv's watchers")
	fs.IntVar(&c.LatencySamples, "latency-samples", c.LatencySamples, "writes timed one at a time for end-to-end latency")
	fs.DurationVar(&c.Debounce, "debounce", c.Debounce, "replicator debounce (converge.ReplicatorOptions.Debounce; 0: Converge's default, none: a commit is sent as soon as the replicator is idle)")
	fs.IntVar(&c.CatchupOps, "catchup-ops", c.CatchupOps, "ops a replica is behind in catchup-*")
	fs.IntVar(&c.CompactionUpdates, "compaction-updates", c.CompactionUpdates, "writes of the history compaction folds (the records' puts included)")
	fs.IntVar(&c.CompactionRecords, "compaction-records", c.CompactionRecords, "records the compaction history writes to")
	fs.IntVar(&c.SnapshotRecords, "snapshot-records", c.SnapshotRecords, "records of the snapshot a fresh replica bootstraps from")
	fs.IntVar(&c.PartitionReplicas, "partition-replicas", c.PartitionReplicas, "replicas in converge-partition (besides the HTTP hub)")
	fs.IntVar(&c.PartitionMinority, "partition-minority", c.PartitionMinority, "replicas cut off from the others in converge-partition")
	fs.IntVar(&c.PartitionWrites, "partition-writes", c.PartitionWrites, "writes per replica while partitioned")
	fs.IntVar(&c.PartitionShared, "partition-shared", c.PartitionShared, "records written on both sides while partitioned (conflicts)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Quick {
		q := quickConfig()
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		pick := func(name string, dst *int, v int) {
			if !set[name] {
				*dst = v
			}
		}
		pick("runs", &c.Runs, q.Runs)
		pick("put-ops", &c.PutOps, q.PutOps)
		pick("sync-ops", &c.SyncOps, q.SyncOps)
		pick("ingest-ops", &c.IngestOps, q.IngestOps)
		pick("records", &c.Records, q.Records)
		pick("replicate-ops", &c.ReplicateOps, q.ReplicateOps)
		pick("latency-samples", &c.LatencySamples, q.LatencySamples)
		pick("catchup-ops", &c.CatchupOps, q.CatchupOps)
		pick("compaction-updates", &c.CompactionUpdates, q.CompactionUpdates)
		pick("snapshot-records", &c.SnapshotRecords, q.SnapshotRecords)
		pick("partition-writes", &c.PartitionWrites, q.PartitionWrites)
		pick("partition-shared", &c.PartitionShared, q.PartitionShared)
		if !set["query-time"] {
			c.QueryTime = q.QueryTime
		}
		if !set["timeout"] {
			c.Timeout = q.Timeout
		}
		c.MinQuery = q.MinQuery
	}
	return c, c.validate()
}

// validate checks that the sizes make sense.
func (c config) validate() error {
	var errs []error
	positive := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("-%s must be positive, got %d", name, v))
		}
	}
	positive("runs", c.Runs)
	positive("put-ops", c.PutOps)
	positive("sync-ops", c.SyncOps)
	positive("put-batch", c.PutBatch)
	positive("ingest-ops", c.IngestOps)
	positive("ingest-batch", c.IngestBatch)
	positive("records", c.Records)
	positive("replicate-ops", c.ReplicateOps)
	positive("replicas", c.Replicas)
	positive("latency-samples", c.LatencySamples)
	positive("catchup-ops", c.CatchupOps)
	positive("compaction-records", c.CompactionRecords)
	positive("snapshot-records", c.SnapshotRecords)
	if c.CompactionUpdates < c.CompactionRecords {
		errs = append(errs, fmt.Errorf("-compaction-updates must be at least -compaction-records (%d), got %d", c.CompactionRecords, c.CompactionUpdates))
	}
	positive("partition-replicas", c.PartitionReplicas)
	positive("partition-writes", c.PartitionWrites)
	if c.PartitionMinority <= 0 || c.PartitionMinority >= c.PartitionReplicas {
		errs = append(errs, fmt.Errorf("-partition-minority must be between 1 and -partition-replicas - 1, got %d", c.PartitionMinority))
	}
	if c.PartitionShared < 0 || c.PartitionShared > c.PartitionWrites {
		errs = append(errs, fmt.Errorf("-partition-shared must be between 0 and -partition-writes, got %d", c.PartitionShared))
	}
	if c.Timeout <= 0 || c.QueryTime <= 0 || c.Debounce < 0 {
		errs = append(errs, errors.New("-timeout and -query-time must be positive, -debounce not negative"))
	}
	return errors.Join(errs...)
}

// summary lists the effective sizes as flags, for the output and report.
func (c config) summary() string {
	return fmt.Sprintf("-runs %d -put-ops %d -sync-ops %d -put-batch %d -ingest-ops %d -ingest-batch %d -ingest-sync=%v "+
		"-records %d -query-time %v -replicate-ops %d -replicas %d -latency-samples %d -debounce %v -catchup-ops %d "+
		"-compaction-updates %d -compaction-records %d -snapshot-records %d "+
		"-partition-replicas %d -partition-minority %d -partition-writes %d -partition-shared %d",
		c.Runs, c.PutOps, c.SyncOps, c.PutBatch, c.IngestOps, c.IngestBatch, c.IngestSync,
		c.Records, c.QueryTime, c.ReplicateOps, c.Replicas, c.LatencySamples, c.Debounce, c.CatchupOps,
		c.CompactionUpdates, c.CompactionRecords, c.SnapshotRecords,
		c.PartitionReplicas, c.PartitionMinority, c.PartitionWrites, c.PartitionShared)
}
