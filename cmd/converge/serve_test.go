package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// failBound bounds every wait of these tests: a failure bound, not a way
// to synchronize.
const failBound = 30 * time.Second

const serveNS = "team-1"

func quietLogger() *slog.Logger {
	if os.Getenv("CONVERGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func noEnv(string) (string, bool) { return "", false }

// runningHub is `converge serve` running in-process.
type runningHub struct {
	url    string
	dir    string
	cancel context.CancelFunc
	done   chan error

	once sync.Once
	err  error
}

// startServe runs serve with the command line args (plus a loopback
// listener) until the test ends or stop is called.
func startServe(t *testing.T, args ...string) *runningHub {
	t.Helper()
	cfg, err := parseServeConfig(args, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("parseServeConfig(%q): %v", args, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.listener = ln
	ctx, cancel := context.WithCancel(context.Background())
	h := &runningHub{url: "http://" + ln.Addr().String(), dir: cfg.Dir, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- serve(ctx, cfg, quietLogger()) }()
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return h
}

// stop cancels serve's context, as a signal would, and returns what serve
// returned.
func (h *runningHub) stop() error {
	h.once.Do(func() {
		h.cancel()
		select {
		case h.err = <-h.done:
		case <-time.After(failBound):
			h.err = errors.New("serve did not return after its context ended")
		}
	})
	return h.err
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
// serveNS over a peer.
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
	opts.Namespaces = []string{serveNS}
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
	tasks, err := converge.NewCollection[Task](db, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	return &replica{db: db, tasks: tasks, rep: rep}
}

// httpReplica replicates through the hub's HTTP endpoint. Its periodic
// sync is an hour apart: what reaches it comes by its live stream or by
// the syncs its own commits start.
func httpReplica(t *testing.T, url, token string) *replica {
	t.Helper()
	c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: url, Token: token,
		MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return openReplica(t, c, converge.ReplicatorOptions{Debounce: time.Millisecond, Interval: time.Hour})
}

// natsReplica replicates over the NATS server at url.
func natsReplica(t *testing.T, url string) *replica {
	t.Helper()
	r := &replica{}
	db, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := natstransport.Connect(url, natstransport.Options{Store: db.SyncStore(), Heartbeat: 200 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := db.OpenReplicator(tr, converge.ReplicatorOptions{Namespaces: []string{serveNS}, Interval: time.Hour,
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
	r.db, r.rep = db, rep
	if r.tasks, err = converge.NewCollection[Task](db, "tasks"); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *replica) put(t *testing.T, id, title string) {
	t.Helper()
	if _, err := r.tasks.Put(t.Context(), serveNS, &Task{ID: id, Title: title}); err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
}

// waitHas waits until r holds task id, re-checking after each change.
func (r *replica) waitHas(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), failBound)
	defer cancel()
	sub := r.db.Subscribe(serveNS)
	defer sub.Close()
	for {
		if _, err := r.tasks.Get(ctx, serveNS, id); err == nil {
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

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
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

type healthBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func checkHealthy(t *testing.T, url string, want ...string) {
	t.Helper()
	code, body := get(t, url+"/healthz")
	var h healthBody
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/healthz body %q: %v", body, err)
	}
	if code != http.StatusOK || h.Status != "ok" {
		t.Errorf("/healthz = %d %s, want 200 ok", code, body)
	}
	for _, c := range want {
		if h.Checks[c] != "ok" {
			t.Errorf("/healthz check %q = %q, want ok; body %s", c, h.Checks[c], body)
		}
	}
}

var (
	promHelp   = regexp.MustCompile(`^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$`)
	promType   = regexp.MustCompile(`^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$`)
	promSample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (\S+)$`)
)

// scrape reads /metrics and checks it is the Prometheus text format: every
// line a HELP, a TYPE, or a sample `name{labels} value` of a family whose
// TYPE came before. It returns the samples by `name{labels}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	code, body := get(t, url+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d: %s", code, body)
	}
	types := map[string]string{}
	samples := map[string]float64{}
	for i, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if m := promHelp.FindStringSubmatch(line); m != nil {
			continue
		}
		if m := promType.FindStringSubmatch(line); m != nil {
			if _, dup := types[m[1]]; dup {
				t.Errorf("/metrics line %d: second TYPE of %s", i+1, m[1])
			}
			types[m[1]] = m[2]
			continue
		}
		m := promSample.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("/metrics line %d is not a HELP, TYPE or sample: %q", i+1, line)
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Errorf("/metrics line %d: value %q: %v", i+1, m[3], err)
		}
		family := m[1]
		if _, ok := types[family]; !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if f, ok := strings.CutSuffix(family, suffix); ok && types[f] == "histogram" {
					family = f
				}
			}
		}
		if _, ok := types[family]; !ok {
			t.Errorf("/metrics line %d: sample of %s before its TYPE", i+1, m[1])
		}
		samples[m[1]+m[2]] = v
	}
	return samples
}

func TestServeHTTP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := writeTokens(t, "# clients of team 1", "tok-a team-1", "tok-b team-1,other.>")
	h := startServe(t, "-dir", dir, "-tokens", tokens)
	a, b := httpReplica(t, h.url, "tok-a"), httpReplica(t, h.url, "tok-b")

	// A change on a shows up live on b: b has synced once (at start), and
	// its next sync is an hour away, so only its live stream can bring it.
	b.waitStatus(t, "a first sync", func(st converge.Status) bool { return !st.LastSync.IsZero() })
	a.put(t, "t1", "from a")
	b.waitHas(t, "t1")
	b.put(t, "t2", "from b")
	a.waitHas(t, "t2")

	// A token outside its grant, and no token, are refused.
	if code, _ := get(t, h.url+"/v1/stream/"+serveNS); code != http.StatusUnauthorized {
		t.Errorf("stream without a token = %d, want 401", code)
	}
	if _, err := a.db.SyncWith(t.Context(), mustClient(t, h.url, "tok-a"), "other.ns"); !errors.Is(err, httptransport.ErrForbidden) {
		t.Errorf("sync outside the grant: %v, want 403", err)
	}

	checkHealthy(t, h.url, "store", "http")
	for _, r := range []*replica{a, b} {
		r.waitStatus(t, "nothing pending", func(st converge.Status) bool { return st.Pending == 0 })
	}
	m := scrape(t, h.url)
	for key, want := range map[string]float64{
		`converge_ops{namespace="team-1"}`:                    2,
		`converge_origins{namespace="team-1"}`:                2,
		`converge_log_ops{namespace="team-1"}`:                2, // nothing compacted: the hub has not compacted yet
		`converge_compacted_ops{namespace="team-1"}`:          0,
		`converge_http_applied_ops_total{namespace="team-1"}`: 2,
		`converge_conflicts_total{namespace="team-1"}`:        0,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("/metrics %s = %v (present: %v), want %v", key, got, ok, want)
		}
	}
	for _, key := range []string{
		`converge_http_requests_total{route="sync",code="200"}`,
		`converge_http_requests_total{route="stream",code="401"}`,
		`converge_http_sync_duration_seconds_count`,
		`converge_http_streams`,
	} {
		if m[key] <= 0 {
			t.Errorf("/metrics %s = %v, want > 0", key, m[key])
		}
	}
	if m[`converge_http_sync_duration_seconds_bucket{le="+Inf"}`] != m[`converge_http_sync_duration_seconds_count`] {
		t.Errorf("histogram: +Inf bucket %v != count %v", m[`converge_http_sync_duration_seconds_bucket{le="+Inf"}`], m[`converge_http_sync_duration_seconds_count`])
	}

	// Both write while the hub shuts down. What the hub acknowledged
	// before it stopped is in its store when it is reopened.
	acked := func(r *replica, st converge.Status) uint64 {
		vv, err := r.db.Admin().Vector(context.Background(), serveNS)
		if err != nil {
			t.Error(err)
		}
		return vv[r.db.ReplicaID()] - st.Pending
	}
	var wg sync.WaitGroup
	stopWriting := make(chan struct{})
	for _, r := range []*replica{a, b} {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopWriting:
					return
				default:
				}
				if _, err := r.tasks.Put(context.Background(), serveNS, &Task{ID: fmt.Sprintf("%s-%d", r.db.ReplicaID(), i)}); err != nil {
					t.Errorf("put: %v", err)
					return
				}
			}
		})
	}
	for _, r := range []*replica{a, b} {
		r.waitStatus(t, "20 acknowledged writes", func(st converge.Status) bool { return acked(r, st) > 20 })
	}
	err := h.stop()
	close(stopWriting)
	wg.Wait()
	if err != nil {
		t.Fatalf("serve returned %v after a graceful shutdown, want nil", err)
	}
	if code, err := http.Get(h.url + "/healthz"); err == nil {
		code.Body.Close()
		t.Errorf("the hub still answers after shutdown: %d", code.StatusCode)
	}

	db, err := converge.Open(dir, converge.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hubVV, err := db.Admin().Vector(t.Context(), serveNS)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*replica{a, b} {
		st, err := r.rep.Status(t.Context(), serveNS)
		if err != nil {
			t.Fatal(err)
		}
		vv, _ := r.db.Admin().Vector(t.Context(), serveNS)
		if n := acked(r, st); hubVV[r.db.ReplicaID()] < n {
			t.Errorf("the hub acknowledged %d of a client's ops but holds %d after a restart", n, hubVV[r.db.ReplicaID()])
		} else {
			t.Logf("a client wrote %d ops; the hub acknowledged %d and holds %d", vv[r.db.ReplicaID()], n, hubVV[r.db.ReplicaID()])
		}
	}
	if v, err := db.Admin().Verify(t.Context(), serveNS); err != nil || !v.OK() {
		t.Errorf("the hub's store after shutdown: verify %+v, %v", v, err)
	}
}

func mustClient(t *testing.T, url, token string) *httptransport.Client {
	t.Helper()
	c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: url, Token: token, MaxRetries: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The hub replicates over NATS and serves HTTP: it bridges the two.
func TestServeNATSBridge(t *testing.T) {
	t.Parallel()
	s, err := embednats.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	dir := t.TempDir()
	tokens := writeTokens(t, "tok team-1")
	h := startServe(t, "-dir", dir, "-tokens", tokens, "-nats-url", s.ClientURL(), "-namespaces", serveNS,
		"-nats-heartbeat", "1h", "-sync-interval", "1h")
	// Neither client reaches the other but through the hub. With the hub's
	// announcements and periodic syncs an hour apart, and the NATS
	// replica's first sync done, the hub's sync after HTTP clients' writes
	// (the bridge) is the only way an HTTP write reaches NATS.
	viaNATS := natsReplica(t, s.ClientURL())
	viaHTTP := httpReplica(t, h.url, "tok")
	viaNATS.waitStatus(t, "a first sync", func(st converge.Status) bool { return !st.LastSync.IsZero() })

	viaHTTP.put(t, "from-http", "written over HTTP")
	viaNATS.waitHas(t, "from-http")
	viaNATS.put(t, "from-nats", "written on NATS")
	viaHTTP.waitHas(t, "from-nats")

	checkHealthy(t, h.url, "store", "http", "nats")
	m := scrape(t, h.url)
	for _, key := range []string{
		`converge_nats_connected`,
		`converge_ops{namespace="team-1"}`,
		`converge_bridge_syncs_total{result="ok"}`,
		`converge_sync_round_trip_seconds_count{transport="nats"}`,
		`converge_nats_served_total`,
	} {
		if m[key] <= 0 {
			t.Errorf("/metrics %s = %v, want > 0", key, m[key])
		}
	}
	if _, ok := m[`converge_replication_pending_ops{namespace="team-1"}`]; !ok {
		t.Errorf("/metrics has no pending ops for the replicated namespace")
	}

	if err := h.stop(); err != nil {
		t.Fatalf("serve returned %v after a graceful shutdown, want nil", err)
	}
	db, err := converge.Open(dir, converge.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tasks, err := converge.NewCollection[Task](db, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"from-http", "from-nats"} {
		if _, err := tasks.Get(t.Context(), serveNS, id); err != nil {
			t.Errorf("the hub's store lost %s: %v", id, err)
		}
	}
}

func TestServeConfig(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	cfg, err := parseServeConfig([]string{"-listen", "127.0.0.1:9", "-namespaces", "a, b.c"}, env(map[string]string{
		"CONVERGE_DIR": "/data", "CONVERGE_TOKENS": "/etc/tokens", "CONVERGE_LISTEN": ":1",
		"CONVERGE_SHUTDOWN_TIMEOUT": "5s", "CONVERGE_NATS_URL": "nats://x:4222", "CONVERGE_NATS_PASSWORD": "pw", "CONVERGE_NATS_USER": "u",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dir != "/data" || cfg.Tokens != "/etc/tokens" || cfg.Listen != "127.0.0.1:9" || cfg.ShutdownTimeout != 5*time.Second ||
		cfg.NATSUser != "u" || cfg.NATSPassword != "pw" || strings.Join(cfg.Namespaces, "|") != "a|b.c" || cfg.Durability != "sync" {
		t.Errorf("config from the environment and flags: %+v", cfg)
	}

	for _, tt := range []struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		{nil, nil, "-dir"},
		{[]string{"-dir", "d"}, nil, "nothing to serve"},
		{[]string{"-dir", "d", "-nats-url", "nats://x"}, nil, "-namespaces"},
		{[]string{"-dir", "d", "-tokens", "t", "-namespaces", "a"}, nil, "-nats-url"},
		{[]string{"-dir", "d", "-tokens", "t", "-durability", "maybe"}, nil, "-durability"},
		{[]string{"-dir", "d", "-tokens", "t", "-log-level", "loud"}, nil, "-log-level"},
		{[]string{"-dir", "d", "-nats-url", "nats://x", "-namespaces", "a", "-nats-token", "t", "-nats-user", "u"}, nil, "one NATS authentication"},
		{[]string{"-dir", "d", "-nats-url", "nats://x", "-namespaces", "a", "-nats-password", "p"}, nil, "-nats-user"},
		{[]string{"-dir", "d", "-nats-url", "nats://x", "-namespaces", "a", "-nats-tls-cert", "c"}, nil, "-nats-tls-key"},
		{[]string{"-tokens", "t"}, map[string]string{"CONVERGE_DIR": "d", "CONVERGE_SHUTDOWN_TIMEOUT": "soon"}, "CONVERGE_SHUTDOWN_TIMEOUT"},
		{[]string{"-dir", "d", "-tokens", "t", "stray"}, nil, "unexpected argument"},
	} {
		_, err := parseServeConfig(tt.args, env(tt.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("parseServeConfig(%q, %v) = %v, want an error mentioning %q", tt.args, tt.env, err, tt.wantErr)
		}
	}
}

// A hub that cannot start says why and leaves nothing behind.
func TestServeStartFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := writeTokens(t, "only-a-token")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseServeConfig([]string{"-dir", dir, "-tokens", bad}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.listener = ln
	if err := serve(t.Context(), cfg, quietLogger()); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("serve with a malformed token file = %v, want an error naming the line", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("the listener is still open after a failed start")
	}

	// A NATS URL that cannot be dialled: the store is closed again. (A
	// server that is only unreachable does not stop the hub: see
	// TestServeStartsWithoutNATS.)
	cfg, err = parseServeConfig([]string{"-dir", dir, "-nats-url", "nats://127.0.0.1:notaport", "-namespaces", "a"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := serve(t.Context(), cfg, quietLogger()); err == nil {
		t.Error("serve with a malformed NATS URL = nil, want an error")
	}
	db, err := converge.Open(dir, converge.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("the store is still open after a failed start: %v", err)
	}
	db.Close()
}

// A hub whose NATS server is not up yet starts all the same (natstransport
// connects in the background), says it is unhealthy until it connects,
// and shuts down cleanly.
func TestServeStartsWithoutNATS(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsURL := "nats://" + ln.Addr().String()
	if err := ln.Close(); err != nil { // nothing listens there now
		t.Fatal(err)
	}
	h := startServe(t, "-dir", t.TempDir(), "-nats-url", natsURL, "-namespaces", "a")
	code, body := get(t, h.url+"/healthz") // the listener is open before serve runs: no wait
	var health healthBody
	if err := json.Unmarshal([]byte(body), &health); err != nil {
		t.Fatalf("/healthz body %q: %v", body, err)
	}
	if code != http.StatusServiceUnavailable || health.Checks["store"] != "ok" || !strings.Contains(health.Checks["nats"], "not connected") {
		t.Errorf("/healthz = %d %s, want 503 with the store ok and NATS not connected", code, body)
	}
	if err := h.stop(); err != nil {
		t.Errorf("serve = %v, want nil after its context ended", err)
	}
}
