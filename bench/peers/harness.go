package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/convergedb/converge/bench/internal/stats"
)

// A scenario here has several sides, not a pair: Converge in one or more
// configurations and each peer library, all measured in the same process
// on the same records. Its rows compare one Converge side with one peer
// side on one metric; a row may carry the goal the issue set for it.

// Values are one run's figures of one side, by metric name.
type Values map[string]float64

// sideFunc measures one side of a scenario once. It checks its own work
// (every op counted, every replica converged) and returns an error when
// the check fails: a figure is only reported for work that was verified.
type sideFunc func(ctx context.Context, run int) (Values, error)

// side is one system in one configuration.
type side struct {
	Name string // e.g. "Converge NoSync (Pebble)", "go-ds-crdt (in-memory datastore)"
	Run  sideFunc
}

// metric is one figure every side of a scenario reports.
type metric struct {
	Name string
	// HigherIsBetter orients the ratios: ours/peer when true (rates),
	// peer/ours when false (times).
	HigherIsBetter bool
	Unit           string // "records/s", "ops/s", "s"
}

// comparison is one row: Converge side Ours against peer side Peer on
// Metric, with the goal ratio (0: none).
type comparison struct {
	Metric, Ours, Peer string
	Goal               float64
}

// trial is a prepared scenario.
type trial struct {
	Sides   []side
	Metrics []metric
	Compare []comparison
}

// scenario is a named set of sides and the comparisons between them.
type scenario struct {
	Name string
	// Description says what each side does and why the comparison is
	// fair, or where it is not.
	Description string
	// Size describes the workload of this invocation, for the rows.
	Size    func(cfg config) string
	Prepare func(ctx context.Context, e *env) (*trial, error)
}

// Row statuses. A measured row has an empty status.
const StatusError = "error"

// Row is one reported comparison: the medians of a Converge side and a peer
// side on one metric, and their ratio (higher is better for Converge).
type Row struct {
	Scenario  string   `json:"scenario"`
	Metric    string   `json:"metric"`
	Unit      string   `json:"unit"`
	Size      string   `json:"size"`
	Converge  string   `json:"converge"`
	Value     *float64 `json:"value"`
	Peer      string   `json:"peer"`
	PeerValue *float64 `json:"peer_value"`
	Ratio     *float64 `json:"ratio"`
	Goal      float64  `json:"goal,omitempty"`
	// Met says whether the ratio reaches the goal; nil when there is no
	// goal or no ratio.
	Met    *bool  `json:"met,omitempty"`
	Runs   int    `json:"runs"`
	Status string `json:"status,omitempty"`
	Note   string `json:"note,omitempty"`
}

// runScenario prepares s and runs its sides e.cfg.Runs times, interleaved:
// run r starts with side r mod len(sides) and goes round, so each side is
// measured in every position. It returns one row per comparison with the
// medians; a failure is one error row naming the scenario.
func runScenario(ctx context.Context, e *env, s *scenario) []Row {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	fail := func(err error) []Row {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("%w (scenario timeout %v, see -timeout)", err, e.cfg.Timeout)
		}
		return []Row{{Scenario: s.Name, Status: StatusError, Note: err.Error()}}
	}
	var t *trial
	if err := safely(func() (err error) { t, err = s.Prepare(ctx, e); return err }); err != nil {
		return fail(fmt.Errorf("%s: prepare: %w", s.Name, err))
	}
	got := make([]map[string][]float64, len(t.Sides))
	for i := range got {
		got[i] = map[string][]float64{}
	}
	for run := range e.cfg.Runs {
		for k := range t.Sides {
			i := (run + k) % len(t.Sides)
			sd := t.Sides[i]
			start := time.Now()
			var v Values
			err := safely(func() (err error) { v, err = sd.Run(ctx, run); return err })
			if err != nil {
				return fail(fmt.Errorf("%s: run %d: %s: %w", s.Name, run+1, sd.Name, err))
			}
			for _, m := range t.Metrics {
				if _, ok := v[m.Name]; !ok {
					return fail(fmt.Errorf("%s: run %d: %s reported no %q", s.Name, run+1, sd.Name, m.Name))
				}
			}
			e.log.Debug("measured", "scenario", s.Name, "run", run+1, "side", sd.Name, "took", time.Since(start).Round(time.Millisecond), "values", v)
			for name, x := range v {
				got[i][name] = append(got[i][name], x)
			}
		}
	}
	return compareRows(e.cfg, s, t, got)
}

// compareRows turns the sides' figures (got[i] for t.Sides[i]) into one row
// per comparison of t.
func compareRows(cfg config, s *scenario, t *trial, got []map[string][]float64) []Row {
	index := map[string]int{}
	for i, sd := range t.Sides {
		index[sd.Name] = i
	}
	metrics := map[string]metric{}
	for _, m := range t.Metrics {
		metrics[m.Name] = m
	}
	rows := make([]Row, 0, len(t.Compare))
	for _, c := range t.Compare {
		m, ok := metrics[c.Metric]
		oi, ok1 := index[c.Ours]
		pi, ok2 := index[c.Peer]
		if !ok || !ok1 || !ok2 {
			panic(fmt.Sprintf("scenario %s compares unknown metric or side: %+v", s.Name, c))
		}
		r := Row{Scenario: s.Name, Metric: m.Name, Unit: m.Unit, Size: s.Size(cfg), Converge: c.Ours, Peer: c.Peer, Goal: c.Goal, Runs: cfg.Runs}
		if x, ok := stats.Median(got[oi][m.Name]); ok {
			r.Value = &x
		}
		if x, ok := stats.Median(got[pi][m.Name]); ok {
			r.PeerValue = &x
		}
		if r.Value != nil && r.PeerValue != nil {
			if x, ok := stats.Ratio(m.HigherIsBetter, *r.Value, *r.PeerValue); ok {
				r.Ratio = &x
				if c.Goal > 0 {
					met := x >= c.Goal
					r.Met = &met
				}
			}
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

// env is what the scenarios of one invocation share: the settings, the
// logger and a temp directory removed at the end.
type env struct {
	cfg config
	log *slog.Logger
	tmp string
}

// newEnv creates the temp root.
func newEnv(cfg config, log *slog.Logger) (*env, error) {
	tmp, err := os.MkdirTemp("", "converge-peers-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	return &env{cfg: cfg, log: log, tmp: tmp}, nil
}

// dir returns a new empty directory under the temp root.
func (e *env) dir(name string) (string, error) {
	d, err := os.MkdirTemp(e.tmp, strings.ReplaceAll(name, "/", "-")+"-")
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	return d, nil
}

// removeDir removes a per-run directory, logging a failure: a leftover is
// removed with the temp root anyway.
func (e *env) removeDir(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		e.log.Warn("removing temp dir", "dir", dir, "err", err)
	}
}

// close removes the temp root.
func (e *env) close() error {
	if err := os.RemoveAll(e.tmp); err != nil {
		return fmt.Errorf("removing %s: %w", e.tmp, err)
	}
	return nil
}

// counter counts events (records applied, say) and lets a goroutine wait
// for a count. It is safe for concurrent use.
type counter struct {
	mu   sync.Mutex
	n    int
	err  error
	wake chan struct{}
}

func newCounter() *counter { return &counter{wake: make(chan struct{})} }

// add adds k and wakes the waiters.
func (c *counter) add(k int) {
	c.mu.Lock()
	c.n += k
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
}

// fail records the first error: waiters return it.
func (c *counter) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.wake)
		c.wake = make(chan struct{})
	}
	c.mu.Unlock()
}

// state returns the count and the error recorded, if any.
func (c *counter) state() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.err
}

// wait blocks until the count reaches n, the counter fails, or ctx ends.
func (c *counter) wait(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		got, err, w := c.n, c.err, c.wake
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if got >= n {
			return nil
		}
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d records applied, have %d: %w", n, got, ctx.Err())
		}
	}
}
