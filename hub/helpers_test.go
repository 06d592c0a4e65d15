package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// failBound bounds every wait of these tests: a failure bound, not a way
// to synchronize.
const failBound = 30 * time.Second

const testNS = "team-1"

// Task is the record of the tests.
type Task struct {
	ID    string `msgpack:"-" converge:"id"`
	Title string `msgpack:"title"`
	Meta  converge.Meta
}

func quietLogger() *slog.Logger {
	if os.Getenv("CONVERGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// running is a hub serving on loopback.
type running struct {
	*Hub
	url    string
	cancel context.CancelFunc
	done   chan error

	once sync.Once
	err  error
}

// startHub opens a hub of cfg and serves it on loopback until the test
// ends or stop is called.
func startHub(t *testing.T, cfg Config) *running {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if cfg.TLSCertFile != "" {
		scheme = "https"
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Hub: h, url: scheme + "://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- h.Serve(ctx, ln) }()
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return r
}

// stop cancels Serve's context, as a signal would, and returns what Serve
// returned.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(failBound):
			r.err = errors.New("Serve did not return after its context ended")
		}
	})
	return r.err
}

func writeTokens(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// replica is a client replica of the tests: its own store, a replicator of
// testNS over a peer.
type replica struct {
	db    *converge.DB
	tasks *converge.Collection[Task]
	rep   *converge.Replicator
}

func openReplica(t *testing.T, peer transport.Peer, opts converge.ReplicatorOptions) *replica {
	t.Helper()
	db, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	opts.Namespaces = []string{testNS}
	opts.MinBackoff, opts.MaxBackoff = 5*time.Millisecond, 100*time.Millisecond
	rep, err := db.OpenReplicator(peer, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), failBound)
		defer cancel()
		if err := rep.Close(ctx); err != nil {
			t.Error(err)
		}
		db.Close()
	})
	return &replica{db: db, tasks: collection(t, db), rep: rep}
}

func collection(t *testing.T, db *converge.DB) *converge.Collection[Task] {
	t.Helper()
	c, err := converge.NewCollection[Task](db, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// httpReplica replicates through the hub's HTTP endpoint. Its periodic
// sync is an hour apart: what reaches it comes by its live stream or by
// the syncs its own commits start.
func httpReplica(t *testing.T, url, token string, mod ...func(*httptransport.ClientOptions)) *replica {
	t.Helper()
	opts := httptransport.ClientOptions{BaseURL: url, Token: token,
		MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: quietLogger()}
	for _, m := range mod {
		m(&opts)
	}
	c, err := httptransport.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	return openReplica(t, c, converge.ReplicatorOptions{Debounce: time.Millisecond, Interval: time.Hour})
}

// natsReplica replicates over the NATS server at url.
func natsReplica(t *testing.T, url string) *replica {
	t.Helper()
	db, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := natstransport.Connect(url, natstransport.Options{Store: db.SyncStore(), Heartbeat: 200 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := db.OpenReplicator(tr, converge.ReplicatorOptions{Namespaces: []string{testNS}, Interval: time.Hour,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), failBound)
		defer cancel()
		if err := rep.Close(ctx); err != nil {
			t.Error(err)
		}
		tr.Close()
		db.Close()
	})
	return &replica{db: db, rep: rep, tasks: collection(t, db)}
}

func (r *replica) put(t *testing.T, id, title string) {
	t.Helper()
	if _, err := r.tasks.Put(t.Context(), testNS, &Task{ID: id, Title: title}); err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
}

// waitHas waits until r holds task id, re-checking after each change.
func (r *replica) waitHas(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), failBound)
	defer cancel()
	sub := r.db.Subscribe(testNS)
	defer sub.Close()
	for {
		if _, err := r.tasks.Get(ctx, testNS, id); err == nil {
			return
		}
		if _, err := sub.Next(ctx); err != nil && !errors.Is(err, converge.ErrLagged) {
			t.Fatalf("waiting for %s: %v", id, err)
		}
	}
}

// waitStatus reads r's status stream until cond holds.
func (r *replica) waitStatus(t *testing.T, what string, cond func(converge.Status) bool) converge.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), failBound)
	defer cancel()
	for st := range r.rep.Statuses(ctx) {
		if cond(st) {
			return st
		}
	}
	t.Fatalf("the replicator's status never showed %s", what)
	return converge.Status{}
}

func get(t *testing.T, client *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape reads /metrics, parses it with the Prometheus text parser, and
// returns the samples by `name{label="value",...}` (labels in the
// parser's order: by name), histograms as _bucket, _sum and _count.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	code, body := get(t, nil, url+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d: %s", code, body)
	}
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := func(suffix string, extra ...string) string {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				ls = append(ls, extra...)
				sort.Strings(ls)
				if len(ls) == 0 {
					return name + suffix
				}
				return name + suffix + "{" + strings.Join(ls, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key("")] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key("")] = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[key("")] = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				hg := m.GetHistogram()
				out[key("_count")] = float64(hg.GetSampleCount())
				out[key("_sum")] = hg.GetSampleSum()
				for _, b := range hg.GetBucket() {
					out[key("_bucket", fmt.Sprintf("le=%q", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)))] = float64(b.GetCumulativeCount())
				}
				out[key("_bucket", `le="+Inf"`)] = float64(hg.GetSampleCount())
			}
		}
	}
	return out
}
