// Package stats holds the figures arithmetic and formatting the benchmark
// harness (bench) and the peers module (bench/peers) share: medians,
// percentiles, rates, oriented ratios, and values and ratios rendered for
// people.
package stats

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Median returns the median of xs (the mean of the middle two for an even
// count) and false when xs is empty. xs is not modified.
func Median(xs []float64) (float64, bool) {
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

// Percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method, and 0 for an empty slice. ds is not modified.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// Ms converts a duration to float milliseconds, the unit of latencies.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// PerSecond returns n events over d as a rate per second (0 for d <= 0).
func PerSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Ratio returns the figure of merit of ours against the baseline, oriented
// so that higher is always better for ours: ours/baseline when a higher
// value is better (throughputs), baseline/ours otherwise (latencies,
// durations, byte counts). It reports false when the division is
// undefined.
func Ratio(higherIsBetter bool, ours, baseline float64) (float64, bool) {
	num, den := ours, baseline
	if !higherIsBetter {
		num, den = baseline, ours
	}
	if den == 0 || math.IsNaN(num) || math.IsNaN(den) || math.IsInf(num, 0) || math.IsInf(den, 0) {
		return 0, false
	}
	return num / den, true
}

// FormatRatio renders a ratio as "1.23×" (three significant digits below
// 0.1, "0.00224×"), or "-" when undefined.
func FormatRatio(r *float64) string {
	if r == nil {
		return "-"
	}
	if *r > 0 && *r < 0.1 {
		return fmt.Sprintf("%.3g×", *r)
	}
	return fmt.Sprintf("%.2f×", *r)
}

// FormatValue renders a value in its unit for people: SI prefixes for
// rates and bytes, µs/ms/s for times ("ms" and "s" units), "-" for nil.
func FormatValue(v *float64, unit string) string {
	if v == nil {
		return "-"
	}
	x := *v
	switch unit {
	case "ms":
		switch {
		case x < 1:
			return sig3(x*1000) + " µs"
		case x < 1000:
			return sig3(x) + " ms"
		}
		return sig3(x/1000) + " s"
	case "s":
		if x < 1 {
			return sig3(x*1000) + " ms"
		}
		return sig3(x) + " s"
	case "B":
		v, prefix := siScale(x)
		return sig3(v) + " " + prefix + "B"
	}
	if strings.HasSuffix(unit, "/s") {
		v, prefix := siScale(x)
		return sig3(v) + prefix + " " + unit
	}
	return sig3(x) + " " + unit
}

// siScale divides x by powers of 1000 to below 1000 and returns the SI
// prefix of the power.
func siScale(x float64) (float64, string) {
	prefixes := []string{"", "k", "M", "G", "T"}
	i := 0
	for math.Abs(x) >= 1000 && i < len(prefixes)-1 {
		x /= 1000
		i++
	}
	return x, prefixes[i]
}

// sig3 renders x with about three significant digits (integers as such).
func sig3(x float64) string {
	switch {
	case x == math.Trunc(x) || math.Abs(x) >= 100:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}
