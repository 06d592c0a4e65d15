package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/convergedb/converge/bench/internal/stats"
)

// Row statuses. A measured row has an empty status.
const (
	StatusNotAvailable = "not available"
	StatusError        = "error"
)

// Row is one reported figure: a metric of a scenario, Converge's median
// and the baseline's, and their ratio (higher is better for Converge).
type Row struct {
	Scenario      string
	Metric        string
	Kind          Kind
	Unit          string
	Value         *float64 // nil: not measured (not available, or an error)
	Baseline      string
	BaselineValue *float64
	Ratio         *float64
	Runs          int
	Status        string // "", StatusNotAvailable or StatusError
	Note          string // why not available, or the error
}

// jsonRow is the JSON form of a row: one object per line.
type jsonRow struct {
	Scenario      string   `json:"scenario"`
	Metric        string   `json:"metric"`
	Value         *float64 `json:"value"`
	Unit          string   `json:"unit"`
	Baseline      string   `json:"baseline"`
	BaselineValue *float64 `json:"baseline_value"`
	Ratio         *float64 `json:"ratio"`
	Kind          string   `json:"kind,omitempty"`
	Runs          int      `json:"runs,omitempty"`
	Status        string   `json:"status,omitempty"`
	Note          string   `json:"note,omitempty"`
}

// writeJSON writes rows as JSON lines.
func writeJSON(w io.Writer, rows []Row) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		j := jsonRow{
			Scenario: r.Scenario, Metric: r.Metric, Value: r.Value, Unit: r.Unit,
			Baseline: r.Baseline, BaselineValue: r.BaselineValue, Ratio: r.Ratio,
			Runs: r.Runs, Status: r.Status, Note: r.Note,
		}
		if r.Metric != "" {
			j.Kind = r.Kind.String()
		}
		if err := enc.Encode(j); err != nil {
			return fmt.Errorf("writing JSON: %w", err)
		}
	}
	return nil
}

// tableHeader names the table's columns.
var tableHeader = []string{"SCENARIO", "METRIC", "CONVERGE", "BASELINE", "BASELINE VALUE", "RATIO"}

// tableCells returns the cells of a row of the table.
func tableCells(r Row) []string {
	switch {
	case r.Status == StatusError:
		return []string{r.Scenario, "error", "", "", "", oneLine(r.Note)}
	case r.Status == StatusNotAvailable && r.Metric == "":
		return []string{r.Scenario, "-", "not available", "", "", oneLine(r.Note)}
	}
	ours := "not available"
	if r.Status != StatusNotAvailable {
		ours = formatValue(r.Value, r.Unit)
	}
	return []string{r.Scenario, r.Metric, ours, r.Baseline, formatValue(r.BaselineValue, r.Unit), formatRatio(r.Ratio)}
}

// writeTable writes rows as an aligned text table with a legend.
func writeTable(w io.Writer, rows []Row, runs int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(tableCells(r), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing table: %w", err)
	}
	_, err := fmt.Fprintf(w, "\nratio: higher is better for Converge (ours/baseline for throughputs, baseline/ours for latencies, durations and bytes); medians of %d run(s).\n", runs)
	return err
}

// writeMarkdownTable writes rows as a Markdown table.
func writeMarkdownTable(w io.Writer, rows []Row) error {
	var b strings.Builder
	b.WriteString("| " + strings.Join(tableHeader, " | ") + " |\n")
	b.WriteString(strings.Repeat("|---", len(tableHeader)) + "|\n")
	for _, r := range rows {
		cells := tableCells(r)
		for i, c := range cells {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// oneLine keeps the first line of s, for table cells.
func oneLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// formatRatio renders a ratio as "1.23×" (three significant digits below
// 0.1, "0.00224×"), or "-" when undefined.
func formatRatio(r *float64) string { return stats.FormatRatio(r) }

// formatValue renders a value in its unit for people: SI prefixes for
// rates and bytes, µs/ms/s for times.
func formatValue(v *float64, unit string) string { return stats.FormatValue(v, unit) }
