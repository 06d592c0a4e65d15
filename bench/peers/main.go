// Command peers measures Converge beside the other Go replication
// libraries, in the same process run, on the same records (the harness's
// 5-field task records): ipfs/go-ds-crdt (a Merkle-CRDT datastore, two
// replicas in process) and automerge/automerge-go (an automerge document,
// in memory).
//
// It is its own module, so that the library's go.mod does not gain the
// peers' dependency trees (IPFS/libp2p, cgo). From the repository root:
//
//	(cd bench/peers && go run .)            # every scenario, default sizes
//	(cd bench/peers && go run . -quick)     # small sizes, one run (CI)
//	(cd bench/peers && go run . -scenario put,receive -n 50000 -runs 5)
//	(cd bench/peers && go run . -json)      # one JSON object per line
//	(cd bench/peers && go run . -list)      # the scenarios and their sides
//
// Scenarios: put (local writes), put-sync (fsync every commit), receive (a
// second replica applying what the first wrote) and merge (two replicas'
// concurrent writes merged). Each runs its sides -runs times, interleaved
// (each run starts with the next side), and reports for each comparison
// the medians and their ratio, oriented so that higher is better for
// Converge, and the goal the issue set where there is one. Every side
// checks its own work (ops counted, replicas converged) before a figure
// counts. Everything runs in process, in temp directories removed at the
// end.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/convergedb/converge/bench/internal/stats"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: it returns the exit status (0 ok, 1 a scenario
// failed, 2 bad usage).
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "peers:", err)
		return 2
	}
	level := slog.LevelInfo
	if cfg.Verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	all := scenarios()
	if cfg.List {
		for _, s := range all {
			fmt.Fprintf(stdout, "%s\n    %s\n\n", s.Name, s.Description)
		}
		return 0
	}
	selected, err := selectScenarios(all, cfg.Scenarios)
	if err != nil {
		fmt.Fprintln(stderr, "peers:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started, loadBefore := time.Now(), loadAverage()
	rows, err := runAll(ctx, cfg, logger, selected)
	if err != nil {
		fmt.Fprintln(stderr, "peers:", err)
	}
	status := 0
	if err != nil || failed(rows) {
		status = 1
	}
	mode := "default sizes"
	if cfg.Quick {
		mode = "-quick"
	}
	took := fmt.Sprintf("took %s (%s: %s)", time.Since(started).Round(10*time.Millisecond), mode, cfg.summary())
	if loadBefore != "" {
		took += fmt.Sprintf("; load average %s at the start, %s at the end, %d CPUs", loadBefore, loadAverage(), runtime.NumCPU())
	}
	if cfg.JSON {
		err = writeJSON(stdout, rows)
		fmt.Fprintln(stderr, took)
	} else {
		err = writeTable(stdout, rows, cfg.Runs)
		fmt.Fprintln(stdout, took)
	}
	if err != nil {
		fmt.Fprintln(stderr, "peers:", err)
		return 1
	}
	return status
}

// runAll runs the scenarios in order and returns their rows. A scenario's
// failure is its error row; the error returned is about the temp
// directory. An interrupt ends the run: the scenarios left are error rows.
func runAll(ctx context.Context, cfg config, logger *slog.Logger, selected []*scenario) (_ []Row, err error) {
	e, err := newEnv(cfg, logger)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, e.close()) }()
	var rows []Row
	for _, s := range selected {
		if ctx.Err() != nil {
			rows = append(rows, Row{Scenario: s.Name, Status: StatusError, Note: "not run: interrupted"})
			continue
		}
		start := time.Now()
		got := runScenario(ctx, e, s)
		status := "ok"
		if failed(got) {
			status = "failed"
		}
		logger.Info("scenario", "name", s.Name, "status", status, "took", time.Since(start).Round(time.Millisecond))
		rows = append(rows, got...)
	}
	return rows, nil
}

// failed reports whether any row is an error.
func failed(rows []Row) bool {
	for _, r := range rows {
		if r.Status == StatusError {
			return true
		}
	}
	return false
}

// loadAverage returns the 1-minute load average (Linux), or "" when it
// cannot be read: on a shared machine it says how much the figures were
// contended.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(string(b), " ")
	return first
}

// writeJSON writes rows as JSON lines.
func writeJSON(w io.Writer, rows []Row) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("writing JSON: %w", err)
		}
	}
	return nil
}

// writeTable writes rows as an aligned text table with a legend.
func writeTable(w io.Writer, rows []Row, runs int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tSIZE\tMETRIC\tCONVERGE\tVALUE\tPEER\tPEER VALUE\tRATIO\tGOAL")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(tableCells(r), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing table: %w", err)
	}
	_, err := fmt.Fprintf(w, "\nratio: higher is better for Converge (ours/peer for rates, peer/ours for times); medians of %d run(s).\n", runs)
	return err
}

// tableCells returns the cells of a row of the table.
func tableCells(r Row) []string {
	if r.Status == StatusError {
		first, _, _ := strings.Cut(r.Note, "\n")
		return []string{r.Scenario, "", "error", "", "", "", "", "", first}
	}
	goal := ""
	if r.Goal > 0 {
		goal = fmt.Sprintf("≥%g×", r.Goal)
		if r.Met != nil && *r.Met {
			goal += " met"
		} else if r.Met != nil {
			goal += " not met"
		}
	}
	return []string{r.Scenario, r.Size, r.Metric, r.Converge, stats.FormatValue(r.Value, r.Unit),
		r.Peer, stats.FormatValue(r.PeerValue, r.Unit), stats.FormatRatio(r.Ratio), goal}
}
