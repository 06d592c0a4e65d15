package main

import (
	"math"
	"slices"
	"time"
)

// median returns the median of xs (the mean of the middle two for an even
// count) and false when xs is empty. xs is not modified.
func median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method, and 0 for an empty slice. ds is not modified.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// ms converts a duration to float milliseconds, the unit of latencies.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// perSecond returns n events over d as a rate per second (0 for d <= 0).
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// ratio returns the figure of merit of ours against the baseline, oriented
// so that higher is always better for Converge: ours/baseline for
// throughputs, baseline/ours for latencies, durations and byte counts. It
// reports false when the division is undefined.
func ratio(k Kind, ours, baseline float64) (float64, bool) {
	num, den := ours, baseline
	if !k.HigherIsBetter() {
		num, den = baseline, ours
	}
	if den == 0 || math.IsNaN(num) || math.IsNaN(den) || math.IsInf(num, 0) || math.IsInf(den, 0) {
		return 0, false
	}
	return num / den, true
}
