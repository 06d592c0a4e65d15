package main

import (
	"time"

	"github.com/convergedb/converge/bench/internal/stats"
)

// The figures arithmetic lives in bench/internal/stats, shared with the
// peers module (bench/peers).

// median returns the median of xs (the mean of the middle two for an even
// count) and false when xs is empty. xs is not modified.
func median(xs []float64) (float64, bool) { return stats.Median(xs) }

// percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method, and 0 for an empty slice. ds is not modified.
func percentile(ds []time.Duration, p float64) time.Duration { return stats.Percentile(ds, p) }

// ms converts a duration to float milliseconds, the unit of latencies.
func ms(d time.Duration) float64 { return stats.Ms(d) }

// perSecond returns n events over d as a rate per second (0 for d <= 0).
func perSecond(n int, d time.Duration) float64 { return stats.PerSecond(n, d) }

// ratio returns the figure of merit of ours against the baseline, oriented
// so that higher is always better for Converge: ours/baseline for
// throughputs, baseline/ours for latencies, durations and byte counts. It
// reports false when the division is undefined.
func ratio(k Kind, ours, baseline float64) (float64, bool) {
	return stats.Ratio(k.HigherIsBetter(), ours, baseline)
}
