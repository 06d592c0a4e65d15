package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func fp(x float64) *float64 { return &x }

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
		ok   bool
	}{
		{nil, 0, false},
		{[]float64{3}, 3, true},
		{[]float64{3, 1, 2}, 2, true},
		{[]float64{4, 1, 3, 2}, 2.5, true},
	} {
		in := slices.Clone(c.in)
		got, ok := median(in)
		if got != c.want || ok != c.ok {
			t.Errorf("median(%v) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("median modified its input: %v", in)
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 1: time.Millisecond} {
		if got := percentile(ds, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("percentile sorted its input")
	}
}

func TestRatioDirection(t *testing.T) {
	// Higher is always better for Converge.
	for _, c := range []struct {
		k                Kind
		ours, base, want float64
	}{
		{Throughput, 200, 100, 2},  // twice the rate
		{Latency, 1, 4, 4},         // a quarter of the latency
		{Duration, 2, 1, 0.5},      // twice the time
		{Bytes, 250, 1000, 4},      // a quarter of the bytes
		{Throughput, 50, 100, 0.5}, // half the rate
		{Latency, 8, 2, 0.25},      // four times the latency
		{Bytes, 1000, 1000, 1},     // the same
	} {
		got, ok := ratio(c.k, c.ours, c.base)
		if !ok || got != c.want {
			t.Errorf("ratio(%v, ours %v, baseline %v) = %v, %v; want %v", c.k, c.ours, c.base, got, ok, c.want)
		}
	}
	if _, ok := ratio(Throughput, 1, 0); ok {
		t.Error("throughput ratio over a zero baseline is defined")
	}
	if _, ok := ratio(Latency, 0, 1); ok {
		t.Error("latency ratio over a zero figure is defined")
	}
}

func sampleRows() []Row {
	return []Row{
		{Scenario: "put", Metric: "throughput", Kind: Throughput, Unit: "records/s", Value: fp(59200), Baseline: "raw Pebble", BaselineValue: fp(240000), Ratio: fp(59200.0 / 240000), Runs: 3},
		{Scenario: "put", Metric: "commit p99", Kind: Latency, Unit: "ms", Value: fp(0.105), Baseline: "raw Pebble", BaselineValue: fp(0.030), Ratio: fp(0.030 / 0.105), Runs: 3},
		{Scenario: "catchup-http", Metric: "wire bytes", Kind: Bytes, Unit: "B", Value: fp(75300), Baseline: "encoded size of the ops", BaselineValue: fp(790000), Ratio: fp(790000.0 / 75300), Runs: 3},
		{Scenario: "replicate-nats", Metric: "throughput", Kind: Throughput, Unit: "ops/s", Baseline: "raw NATS <pub|sub> & co", BaselineValue: fp(583000), Runs: 3, Status: StatusNotAvailable, Note: "no transport"},
		{Scenario: "catchup-nats", Status: StatusNotAvailable, Note: "no transport yet"},
		{Scenario: "broken", Status: StatusError, Note: "broken: run 1: converge: boom\nstack"},
	}
}

func TestJSONLines(t *testing.T) {
	var b bytes.Buffer
	if err := writeJSON(&b, sampleRows()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(sampleRows()) {
		t.Fatalf("%d lines for %d rows:\n%s", len(lines), len(sampleRows()), b.String())
	}
	required := []string{"scenario", "metric", "value", "unit", "baseline", "baseline_value", "ratio"}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not a JSON object: %v\n%s", i, err, line)
		}
		for _, k := range required {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d lacks %q: %s", i, k, line)
			}
		}
	}
	// The order of the keys is the spec's.
	if !strings.HasPrefix(lines[0], `{"scenario":"put","metric":"throughput","value":59200,"unit":"records/s","baseline":"raw Pebble","baseline_value":240000,"ratio":0.24666`) {
		t.Errorf("first line: %s", lines[0])
	}
	var na map[string]any
	if err := json.Unmarshal([]byte(lines[3]), &na); err != nil {
		t.Fatal(err)
	}
	if na["value"] != nil || na["ratio"] != nil || na["baseline_value"] != 583000.0 || na["status"] != StatusNotAvailable {
		t.Errorf("not-available row: %s", lines[3])
	}
	if !strings.Contains(lines[3], `<pub|sub> & co`) {
		t.Errorf("JSON escaped HTML: %s", lines[3])
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	if err := writeTable(&b, sampleRows(), 3); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"SCENARIO", "BASELINE VALUE", "RATIO",
		"59.2k records/s", "240k records/s", "0.25×",
		"105 µs", "30 µs", "0.29×",
		"75.3 kB", "790 kB", "10.49×",
		"not available", "no transport yet",
		"broken: run 1: converge: boom",
		"medians of 3 run(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "stack") {
		t.Errorf("table shows more than an error's first line:\n%s", out)
	}
	// Columns are aligned: the ratio column starts at the same offset.
	lines := strings.Split(out, "\n")
	col := strings.Index(lines[0], "RATIO")
	if i := strings.Index(lines[1], "0.25×"); i != col {
		t.Errorf("ratio at column %d, header at %d:\n%s", i, col, out)
	}
	var md bytes.Buffer
	if err := writeMarkdownTable(&md, sampleRows()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), `raw NATS <pub\|sub> & co`) || !strings.HasPrefix(md.String(), "| SCENARIO |") {
		t.Errorf("markdown table:\n%s", md.String())
	}
}

func TestFormatValue(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{583000, "ops/s", "583k ops/s"},
		{1390, "queries/s", "1.39k queries/s"},
		{39.2, "queries/s", "39.2 queries/s"},
		{120, "B", "120 B"},
		{12_300_000, "B", "12.3 MB"},
		{0.057, "ms", "57 µs"},
		{1.45, "ms", "1.45 ms"},
		{2500, "ms", "2.50 s"},
		{0.022, "s", "22 ms"},
		{3.5, "s", "3.50 s"},
	} {
		if got := formatValue(fp(c.v), c.unit); got != c.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
	if got := formatValue(nil, "s"); got != "-" {
		t.Errorf("formatValue(nil) = %q", got)
	}
}

// checkXML fails unless b is well-formed XML with an svg root.
func checkXML(t *testing.T, name string, b []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v\n%s", name, err, b)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Fatalf("%s: root element %q, want svg", name, root)
	}
}

func TestSVG(t *testing.T) {
	rows := sampleRows()
	for _, k := range []Kind{Throughput, Latency, Bytes} {
		bars := chartRows(rows, k)
		if len(bars) == 0 {
			t.Fatalf("no bars of kind %v", k)
		}
		svg := barChart("Title <&> \"quoted\"", "sub 'title'", bars)
		checkXML(t, k.String(), svg)
		if !bytes.Contains(svg, []byte("<rect")) {
			t.Errorf("%v chart has no bars", k)
		}
	}
	// The not-available row shows its baseline bar only.
	bars := chartRows(rows, Throughput)
	if len(bars) != 2 || bars[1].Ours != nil || bars[1].OursText != "not available" {
		t.Errorf("throughput bars: %+v", bars)
	}
	checkXML(t, "empty", barChart("nothing", "", nil))
}

func TestSelectScenarios(t *testing.T) {
	all := scenarios()
	got, err := selectScenarios(all, " ingest , put")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "put" || got[1].Name != "ingest" {
		t.Errorf("selected %v", names(got))
	}
	if got, _ := selectScenarios(all, ""); len(got) != len(all) {
		t.Errorf("empty selection selected %d of %d", len(got), len(all))
	}
	if _, err := selectScenarios(all, "put,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown scenario: %v", err)
	}
	seen := map[string]bool{}
	for _, s := range all {
		if seen[s.Name] || s.Description == "" {
			t.Errorf("scenario %q duplicated or undescribed", s.Name)
		}
		seen[s.Name] = true
	}
	for _, want := range []string{"put", "put-sync", "ingest", "query-index", "query-scan", "replicate-nats", "replicate-http", "catchup-nats", "catchup-http", "converge-partition", "jetstream-kv"} {
		if !seen[want] {
			t.Errorf("no scenario %s", want)
		}
	}
}

func names(ss []*Scenario) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags("bench", []string{"-quick", "-put-ops", "123"})
	if err != nil {
		t.Fatal(err)
	}
	q := quickConfig()
	if c.Runs != 1 || c.PutOps != 123 || c.IngestOps != q.IngestOps || c.QueryTime != q.QueryTime {
		t.Errorf("quick config with -put-ops: %+v", c)
	}
	c, err = parseFlags("bench", []string{"-runs", "5"})
	if err != nil {
		t.Fatal(err)
	}
	if d := defaultConfig(); c.Runs != 5 || c.PutOps != d.PutOps {
		t.Errorf("default config with -runs 5: %+v", c)
	}
	for _, bad := range [][]string{{"-runs", "0"}, {"-partition-minority", "5"}, {"extra"}} {
		if _, err := parseFlags("bench", bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

func TestPartitionOps(t *testing.T) {
	cfg := defaultConfig()
	cfg.PartitionReplicas, cfg.PartitionMinority, cfg.PartitionWrites = 4, 2, 10
	p := newPartitionOps(cfg, make([][]byte, 40))
	for i, want := range []struct {
		held  [2]uint64
		lacks [][2]uint64
	}{
		{[2]uint64{0, 10}, [][2]uint64{{10, 40}}},
		{[2]uint64{10, 20}, [][2]uint64{{0, 10}, {20, 40}}},
		{[2]uint64{20, 40}, [][2]uint64{{0, 20}}},
		{[2]uint64{20, 40}, [][2]uint64{{0, 20}}},
	} {
		lo, hi := p.held(i)
		if [2]uint64{lo, hi} != want.held || !slices.Equal(p.lacks(i), want.lacks) {
			t.Errorf("replica %d holds %d..%d and lacks %v; want %v and %v", i, lo, hi, p.lacks(i), want.held, want.lacks)
		}
	}
	if !inRanges([][2]uint64{{0, 10}, {20, 40}}, 25) || inRanges([][2]uint64{{0, 10}, {20, 40}}, 10) {
		t.Error("inRanges")
	}
}

func TestRelayOps(t *testing.T) {
	ops := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("x"), 300)}
	got, err := decodeOps(appendOps(nil, ops))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ops) {
		t.Fatalf("%d ops back, want %d", len(got), len(ops))
	}
	for i := range ops {
		if !bytes.Equal(got[i], ops[i]) {
			t.Errorf("op %d = %q, want %q", i, got[i], ops[i])
		}
	}
	if _, err := decodeOps([]byte{5, 'a'}); err == nil {
		t.Error("a truncated op decoded")
	}
}

// TestRunScenario checks the runner: interleaving, medians, ratios, and
// failures reported as rows naming the scenario.
func TestRunScenario(t *testing.T) {
	cfg := defaultConfig()
	cfg.Runs = 4
	e, err := newEnv(cfg, quietLogger)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	var order []string
	n := 0.0
	s := &Scenario{Name: "fake", Prepare: func(context.Context, *env) (*Trial, error) {
		return &Trial{
			Metrics: []Metric{{Name: "rate", Kind: Throughput, Baseline: "b"}, {Name: "lat", Kind: Latency, Baseline: "b"}},
			Ours: func(_ context.Context, run int) (Values, error) {
				order = append(order, "ours")
				n++
				return Values{"rate": 10 * n, "lat": 1}, nil
			},
			Baseline: func(_ context.Context, run int) (Values, error) {
				order = append(order, "base")
				return Values{"rate": 10, "lat": 2}, nil
			},
		}, nil
	}}
	rows := runScenario(context.Background(), e, s)
	if want := []string{"ours", "base", "base", "ours", "ours", "base", "base", "ours"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if len(rows) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	// ours' rates are 10, 20, 30, 40: median 25; ratio 25/10.
	if r := rows[0]; *r.Value != 25 || *r.BaselineValue != 10 || *r.Ratio != 2.5 || r.Unit != "ops/s" {
		t.Errorf("rate row %+v", r)
	}
	if r := rows[1]; *r.Ratio != 2 || r.Unit != "ms" {
		t.Errorf("latency row %+v", r)
	}

	failing := &Scenario{Name: "failing", Prepare: func(context.Context, *env) (*Trial, error) {
		return &Trial{
			Metrics:  []Metric{{Name: "rate", Kind: Throughput}},
			Ours:     func(context.Context, int) (Values, error) { return nil, errors.New("boom") },
			Baseline: func(context.Context, int) (Values, error) { panic("oops") },
		}, nil
	}}
	rows = runScenario(context.Background(), e, failing)
	if len(rows) != 1 || rows[0].Status != StatusError || !strings.Contains(rows[0].Note, "failing: run 1: converge: boom") {
		t.Errorf("failing rows %+v", rows)
	}
	// A panic is an error row too; the runs stop at the first failure.
	e.cfg.Runs = 2
	rows = runScenario(context.Background(), e, &Scenario{Name: "panicking", Prepare: func(ctx context.Context, e *env) (*Trial, error) {
		t, err := failing.Prepare(ctx, e)
		t.Ours = func(context.Context, int) (Values, error) { return Values{"rate": 1}, nil }
		return t, err
	}})
	if len(rows) != 1 || rows[0].Status != StatusError || !strings.Contains(rows[0].Note, "panicking: run 1: baseline: panic: oops") {
		t.Errorf("panicking rows %+v", rows)
	}
	rows = runScenario(context.Background(), e, &Scenario{Name: "later", Unavailable: "not yet"})
	if len(rows) != 1 || rows[0].Status != StatusNotAvailable || rows[0].Note != "not yet" {
		t.Errorf("unavailable rows %+v", rows)
	}
}

// TestRawNATSPubSub runs the raw NATS baseline at a tiny size.
func TestRawNATSPubSub(t *testing.T) {
	payloads := make([][]byte, 120)
	for i := range payloads {
		payloads[i] = bytes.Repeat([]byte{byte(i)}, 150)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := rawNATSPubSubRun(ctx, payloads, 100, 2, 20)
	if err != nil {
		t.Fatal(err)
	}
	if v["throughput"] <= 0 || v["latency p50"] <= 0 || v["latency p99"] < v["latency p50"] {
		t.Errorf("values %v", v)
	}
}

// TestQuick runs the command in-process: -quick of the cheap scenarios,
// smaller still, as JSON with a report.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real stores and loopback servers")
	}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-quick", "-json", "-report", dir,
		"-scenario", "put,put-sync,ingest,replicate-http,catchup-http,converge-partition",
		"-put-ops", "500", "-sync-ops", "50", "-ingest-ops", "2000", "-ingest-batch", "500",
		"-replicate-ops", "500", "-latency-samples", "10", "-catchup-ops", "2000",
		"-partition-writes", "100", "-partition-shared", "10"}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	got := map[string]map[string]jsonRow{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var r jsonRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		if got[r.Scenario] == nil {
			got[r.Scenario] = map[string]jsonRow{}
		}
		got[r.Scenario][r.Metric] = r
	}
	for _, c := range []struct{ scen, metric string }{
		{"put", "throughput"}, {"put-sync", "commit p99"}, {"ingest", "throughput"},
		{"replicate-http", "latency p50"}, {"catchup-http", "wire bytes"},
		{"converge-partition", metricConvergeHTTP}, {"converge-partition", metricConvergeNATS},
	} {
		scen, metric := c.scen, c.metric
		r, ok := got[scen][metric]
		if !ok {
			t.Errorf("no %s %s row; stdout:\n%s", scen, metric, stdout.String())
			continue
		}
		if r.Value == nil || *r.Value <= 0 || r.BaselineValue == nil || *r.BaselineValue <= 0 || r.Ratio == nil || r.Status != "" {
			t.Errorf("%s %s: %+v", scen, metric, r)
		}
	}
	if r := got["catchup-http"]["wire bytes"]; r.BaselineValue != nil && *r.BaselineValue < 2000*50 {
		t.Errorf("catch-up baseline is %v bytes for 2000 ops", *r.BaselineValue)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| SCENARIO |", "![Throughput](throughput.svg)", "### replicate-http"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, f := range []string{"throughput.svg", "latency.svg", "catchup-bytes.svg", "durations.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		checkXML(t, f, b)
	}
}
