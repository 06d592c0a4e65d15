// Command bench puts Converge beside the systems a user would otherwise
// pick, measured in the same run on the same machine: raw Pebble for local
// writes and ingest, a scan for indexed queries, a hand-rolled HTTP relay
// and raw NATS for replication, the ops' encoded size for catch-up, and
// NATS JetStream KV for puts and replication.
//
//	go run ./bench                      # every scenario, default sizes (a few minutes)
//	go run ./bench -quick               # every scenario, small sizes (CI)
//	go run ./bench -scenario put,ingest -runs 5
//	go run ./bench -json                # one JSON object per line
//	go run ./bench -report out/         # out/report.md and SVG charts
//	go run ./bench -list                # the scenarios and their baselines
//
// Each scenario runs Converge and its baseline interleaved -runs times,
// alternating which goes first, and reports the medians and their ratio,
// oriented so that higher is better for Converge. Everything runs on
// loopback, in temp directories removed at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: it returns the exit status (0 ok, 1 a scenario
// failed, 2 bad usage).
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags("bench", args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
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
			fmt.Fprintf(stdout, "%s\n", s.Name)
			if s.Unavailable != "" {
				fmt.Fprintf(stdout, "    not available: %s\n", s.Unavailable)
			}
			fmt.Fprintf(stdout, "    %s\n\n", s.Description)
		}
		return 0
	}
	selected, err := selectScenarios(all, cfg.Scenarios)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	started := time.Now()
	rows, err := runAll(ctx, cfg, logger, selected)
	wall := time.Since(started)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
	}
	status := 0
	if err != nil || failed(rows) {
		status = 1
	}
	mode := "default sizes"
	if cfg.Quick {
		mode = "-quick"
	}
	took := fmt.Sprintf("took %s (%s, %d run(s) per scenario)", wall.Round(10*time.Millisecond), mode, cfg.Runs)
	if cfg.JSON {
		if err := writeJSON(stdout, rows); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		fmt.Fprintln(stderr, took)
	} else {
		if err := writeTable(stdout, rows, cfg.Runs); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		fmt.Fprintln(stdout, took)
		fmt.Fprintln(stdout, "sizes:", cfg.summary())
	}
	if cfg.Report != "" {
		info := reportInfo{Args: args, Sizes: cfg.summary(), Started: started, Wall: wall, Runs: cfg.Runs, Scenarios: selected}
		if err := writeReport(cfg.Report, rows, info); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		fmt.Fprintf(stderr, "report written to %s\n", cfg.Report)
	}
	return status
}

// runAll runs the scenarios in order and returns their rows. A scenario's
// failure is its error row; the error returned is about the harness itself
// (its temp directory). An interrupt ends the run: the scenarios left are
// reported as errors.
func runAll(ctx context.Context, cfg config, logger *slog.Logger, selected []*Scenario) (_ []Row, err error) {
	e, err := newEnv(cfg, logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := e.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
		}
	}()
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
		} else if s.Prepare == nil || s.Unavailable != "" {
			status = StatusNotAvailable
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
