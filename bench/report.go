package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// reportInfo describes the invocation a report is of.
type reportInfo struct {
	Args      []string
	Sizes     string // the effective sizes, as flags
	Started   time.Time
	Wall      time.Duration
	Runs      int
	Scenarios []*Scenario
}

// reportChart is one chart of the report.
type reportChart struct {
	file, title, subtitle string
	kind                  Kind
}

var reportCharts = []reportChart{
	{"throughput.svg", "Throughput", "higher is better; each pair is scaled to its larger value", Throughput},
	{"latency.svg", "Latency percentiles", "lower is better; each pair is scaled to its larger value", Latency},
	{"catchup-bytes.svg", "Bytes moved", "catch-up wire bytes against the ops' encoded size; lower is better", Bytes},
	{"durations.svg", "Durations", "catch-up and convergence times; lower is better", Duration},
}

// writeReport writes report.md and the SVG charts into dir, creating it.
func writeReport(dir string, rows []Row, info reportInfo) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var md bytes.Buffer
	fmt.Fprintf(&md, "# Converge benchmarks\n\n")
	fmt.Fprintf(&md, "Converge beside the systems a user would otherwise pick, measured in the same run on the same machine.\n\n")
	fmt.Fprintf(&md, "- date: %s\n", info.Started.UTC().Format(time.RFC3339))
	fmt.Fprintf(&md, "- machine: %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&md, "- command: `go run ./bench %s`\n", strings.Join(info.Args, " "))
	fmt.Fprintf(&md, "- sizes: `%s`\n", info.Sizes)
	fmt.Fprintf(&md, "- wall time: %s\n", info.Wall.Round(100*time.Millisecond))
	fmt.Fprintf(&md, "- each figure is the median of %d interleaved run(s) of Converge and its baseline\n\n", info.Runs)
	fmt.Fprintf(&md, "## Results\n\n")
	fmt.Fprintf(&md, "RATIO is oriented so that higher is better for Converge: ours/baseline for throughputs, "+
		"baseline/ours for latencies, durations and byte counts. The query-index baseline is the same query as a scan; "+
		"the catch-up bytes baseline is the ops' encoded size.\n\n")
	if err := writeMarkdownTable(&md, rows); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintf(&md, "\n## Charts\n\n")
	for _, c := range reportCharts {
		bars := chartRows(rows, c.kind)
		if len(bars) == 0 {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, c.file), barChart(c.title, c.subtitle, bars), 0o644); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		fmt.Fprintf(&md, "![%s](%s)\n\n", c.title, c.file)
	}
	fmt.Fprintf(&md, "## Scenarios and their baselines\n\n")
	for _, s := range info.Scenarios {
		fmt.Fprintf(&md, "### %s\n\n%s\n\n", s.Name, s.Description)
		if s.Unavailable != "" {
			fmt.Fprintf(&md, "Not available: %s.\n\n", s.Unavailable)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), md.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
