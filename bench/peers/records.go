package main

import (
	"time"

	"github.com/convergedb/converge/bench/internal/workload"
)

// The records every side writes are the harness's (bench/internal/workload):
// the 5-field task record, one per key.

// putRecords returns the first n records of the put and replicate
// workloads, keys task-0000000 on.
func putRecords(n int) []workload.Task {
	recs := make([]workload.Task, n)
	for i := range recs {
		recs[i] = workload.MakeTask(workload.Key("task", i), i)
	}
	return recs
}

// mergeRecords returns what two replicas write concurrently in the merge
// scenario, n records each: a writes keys 0..n-1, b keys n/2..n/2+n-1 with
// other values, so the n - n/2 keys in between are written on both
// (concurrent updates of the same record, which each system resolves) and
// the merged state holds n + n/2 records.
func mergeRecords(n int) (a, b []workload.Task) {
	a = putRecords(n)
	b = make([]workload.Task, n)
	for i := range b {
		k := n/2 + i
		b[i] = workload.MakeTask(workload.Key("task", k), n+k)
	}
	return a, b
}

// mergeValues are the merge scenario's figures: the time of the merge.
func mergeValues(d time.Duration) Values {
	return Values{timeMetric: d.Seconds()}
}
