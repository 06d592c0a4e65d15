package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Kind says what a metric measures, which fixes its unit and the direction
// of its ratio.
type Kind int

// Metric kinds.
const (
	// Throughput is a rate; higher is better.
	Throughput Kind = iota
	// Latency is the time of one operation, in milliseconds; lower is better.
	Latency
	// Duration is the time of a whole task, in seconds; lower is better.
	Duration
	// Bytes is a byte count; lower is better.
	Bytes
)

// HigherIsBetter reports whether a larger value of a metric of kind k is
// better.
func (k Kind) HigherIsBetter() bool { return k == Throughput }

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case Throughput:
		return "throughput"
	case Latency:
		return "latency"
	case Duration:
		return "duration"
	case Bytes:
		return "bytes"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// defaultUnit is the unit of a kind's values unless a metric names another.
func (k Kind) defaultUnit() string {
	switch k {
	case Throughput:
		return "ops/s"
	case Latency:
		return "ms"
	case Duration:
		return "s"
	case Bytes:
		return "B"
	}
	return ""
}

// Metric is one figure a scenario reports for both sides.
type Metric struct {
	Name string
	Kind Kind
	// Unit of the values; empty means the kind's default (ops/s, ms, s, B).
	Unit string
	// Baseline names what the baseline side measures for this metric.
	Baseline string
}

// unit returns the metric's unit.
func (m Metric) unit() string {
	if m.Unit != "" {
		return m.Unit
	}
	return m.Kind.defaultUnit()
}

// Values are one run's figures of one side, by metric name.
type Values map[string]float64

// sideFunc measures one side of a scenario once.
type sideFunc func(ctx context.Context, run int) (Values, error)

// Trial is a prepared scenario: its metrics and its two sides, sharing
// whatever the preparation built (datasets, pre-generated ops).
type Trial struct {
	Metrics []Metric
	// Ours measures Converge. Nil means Converge's side is not available
	// (see Scenario.Unavailable); the baseline still runs.
	Ours sideFunc
	// Baseline measures the baseline. Nil means there is none to run.
	Baseline sideFunc
	// Close releases what the preparation built. May be nil.
	Close func() error
}

// Scenario is a named comparison of Converge with the system a user would
// otherwise pick, measured in the same run on the same data.
type Scenario struct {
	Name string
	// Description says what is measured and what the baseline is, and
	// why it is a fair comparison.
	Description string
	// Unavailable, when set, says why Converge's side cannot run yet.
	Unavailable string
	// Prepare builds the trial. Nil (with Unavailable set) means nothing
	// at all runs.
	Prepare func(ctx context.Context, e *env) (*Trial, error)
}

// runScenario prepares s, runs its two sides interleaved e.cfg.Runs times
// (alternating which goes first), and returns one row per metric with the
// medians. Failures become an error row naming the scenario.
func runScenario(ctx context.Context, e *env, s *Scenario) []Row {
	if s.Prepare == nil {
		return []Row{{Scenario: s.Name, Status: StatusNotAvailable, Note: s.Unavailable}}
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	fail := func(err error) []Row {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("%w (scenario timeout %v, see -timeout)", err, e.cfg.Timeout)
		}
		return []Row{{Scenario: s.Name, Status: StatusError, Note: err.Error()}}
	}
	start := time.Now()
	var t *Trial
	err := safely(func() error {
		var err error
		t, err = s.Prepare(ctx, e)
		return err
	})
	if err == nil && t == nil {
		err = errors.New("no trial prepared")
	}
	if err != nil {
		return fail(fmt.Errorf("%s: prepare: %w", s.Name, err))
	}
	defer func() {
		if t.Close != nil {
			if err := safely(t.Close); err != nil {
				e.log.Warn("closing scenario", "scenario", s.Name, "err", err)
			}
		}
	}()
	e.log.Debug("prepared", "scenario", s.Name, "took", time.Since(start).Round(time.Millisecond))

	type side struct {
		name string
		fn   sideFunc
		got  map[string][]float64
	}
	ours := &side{name: "converge", fn: t.Ours, got: map[string][]float64{}}
	base := &side{name: "baseline", fn: t.Baseline, got: map[string][]float64{}}
	for run := range e.cfg.Runs {
		order := []*side{ours, base}
		if run%2 == 1 {
			order = []*side{base, ours}
		}
		for _, sd := range order {
			if sd.fn == nil {
				continue
			}
			runStart := time.Now()
			var v Values
			err := safely(func() error {
				var err error
				v, err = sd.fn(ctx, run)
				return err
			})
			if err != nil {
				return fail(fmt.Errorf("%s: run %d: %s: %w", s.Name, run+1, sd.name, err))
			}
			e.log.Debug("measured", "scenario", s.Name, "run", run+1, "side", sd.name, "took", time.Since(runStart).Round(time.Millisecond), "values", v)
			for k, x := range v {
				sd.got[k] = append(sd.got[k], x)
			}
		}
	}
	rows := make([]Row, 0, len(t.Metrics))
	for _, m := range t.Metrics {
		r := Row{Scenario: s.Name, Metric: m.Name, Kind: m.Kind, Unit: m.unit(), Baseline: m.Baseline, Runs: e.cfg.Runs}
		if x, ok := median(ours.got[m.Name]); ok {
			r.Value = &x
		}
		if x, ok := median(base.got[m.Name]); ok {
			r.BaselineValue = &x
		}
		if r.Value != nil && r.BaselineValue != nil {
			if x, ok := ratio(m.Kind, *r.Value, *r.BaselineValue); ok {
				r.Ratio = &x
			}
		}
		if t.Ours == nil {
			r.Status, r.Note = StatusNotAvailable, s.Unavailable
		}
		rows = append(rows, r)
	}
	return rows
}

// safely runs fn, turning a panic into an error carrying the stack.
func safely(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return fn()
}

// selectScenarios returns the scenarios named in list (comma separated;
// empty means all), in the registry's order, or an error naming the
// unknown ones.
func selectScenarios(all []*Scenario, list string) ([]*Scenario, error) {
	if strings.TrimSpace(list) == "" {
		return all, nil
	}
	want := map[string]bool{}
	for name := range strings.SplitSeq(list, ",") {
		if name = strings.TrimSpace(name); name != "" {
			want[name] = true
		}
	}
	var out []*Scenario
	for _, s := range all {
		if want[s.Name] {
			out = append(out, s)
			delete(want, s.Name)
		}
	}
	if len(want) > 0 {
		unknown := slices.Sorted(maps.Keys(want))
		var known []string
		for _, s := range all {
			known = append(known, s.Name)
		}
		return nil, fmt.Errorf("unknown scenario(s) %s; known: %s", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return out, nil
}

// scenarios returns the registry, in the order they run and are reported.
func scenarios() []*Scenario {
	return []*Scenario{
		putScenario(false),
		putScenario(true),
		ingestScenario(),
		queryIndexScenario(),
		queryScanScenario(),
		replicateNATSScenario(),
		replicateHTTPScenario(),
		catchupNATSScenario(),
		catchupHTTPScenario(),
		snapshotScenario(),
		compactionScenario(),
		partitionScenario(),
		jetstreamScenario(),
		scaleWatchesScenario(),
		scalePeersScenario(),
	}
}

// quietLogger discards everything: Converge's own logging during runs.
var quietLogger = slog.New(slog.DiscardHandler)
