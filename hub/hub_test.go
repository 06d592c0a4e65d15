package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
	"github.com/convergedb/converge/transport/transporttest"
)

type healthBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func checkHealthy(t *testing.T, client *http.Client, url string, want ...string) {
	t.Helper()
	code, body := get(t, client, url+"/healthz", "")
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

func mustClient(t *testing.T, url, token string) *httptransport.Client {
	t.Helper()
	c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: url, Token: token, MaxRetries: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An HTTP hub: clients sync through it live, tokens are checked, the
// metrics are parsed by Prometheus' parser and hold every metric name,
// and a graceful shutdown keeps what was acknowledged.
func TestHubHTTP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := writeTokens(t, "# clients of team 1", "tok-a team-1", "tok-b team-1,other.>")
	h := startHub(t, Config{Dir: dir, TokenFile: tokens})
	a, b := httpReplica(t, h.url, "tok-a"), httpReplica(t, h.url, "tok-b")

	// A change on a shows up live on b: b has synced once (at start), and
	// its next sync is an hour away, so only its live stream can bring it.
	b.waitStatus(t, "a first sync", func(st converge.Status) bool { return !st.LastSync.IsZero() })
	a.put(t, "t1", "from a")
	b.waitHas(t, "t1")
	b.put(t, "t2", "from b")
	a.waitHas(t, "t2")

	// A token outside its grant, and no token, are refused.
	if code, _ := get(t, nil, h.url+"/v1/stream/"+testNS, ""); code != http.StatusUnauthorized {
		t.Errorf("stream without a token = %d, want 401", code)
	}
	if _, err := a.db.SyncWith(t.Context(), mustClient(t, h.url, "tok-a"), "other.ns"); !errors.Is(err, httptransport.ErrForbidden) {
		t.Errorf("sync outside the grant: %v, want 403", err)
	}

	checkHealthy(t, nil, h.url, "store", "http")
	for _, r := range []*replica{a, b} {
		r.waitStatus(t, "nothing pending", func(st converge.Status) bool { return st.Pending == 0 })
	}
	checkMetrics(t, h.url)

	// Both write while the hub shuts down. What the hub acknowledged
	// before it stopped is in its store when it is reopened.
	acked := func(r *replica, st converge.Status) uint64 {
		vv, err := r.db.Admin().Vector(context.Background(), testNS)
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
				if _, err := r.tasks.Put(context.Background(), testNS, &Task{ID: fmt.Sprintf("%s-%d", r.db.ReplicaID(), i)}); err != nil {
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
		t.Fatalf("Serve returned %v after a graceful shutdown, want nil", err)
	}
	if resp, err := http.Get(h.url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("the hub still answers after shutdown: %d", resp.StatusCode)
	}

	db, err := converge.Open(dir, converge.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hubVV, err := db.Admin().Vector(t.Context(), testNS)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*replica{a, b} {
		st, err := r.rep.Status(t.Context(), testNS)
		if err != nil {
			t.Fatal(err)
		}
		if n := acked(r, st); hubVV[r.db.ReplicaID()] < n {
			t.Errorf("the hub acknowledged %d of a client's ops but holds %d after a restart", n, hubVV[r.db.ReplicaID()])
		}
	}
	if v, err := db.Admin().Verify(t.Context(), testNS); err != nil || !v.OK() {
		t.Errorf("the hub's store after shutdown: verify %+v, %v", v, err)
	}
}

// checkMetrics scrapes an HTTP hub that two clients synced two ops
// through, and checks the values and names it must show.
func checkMetrics(t *testing.T, url string) {
	t.Helper()
	m := scrape(t, url)
	for key, want := range map[string]float64{
		`converge_ops{namespace="team-1"}`:                               2,
		`converge_origins{namespace="team-1"}`:                           2,
		`converge_log_ops{namespace="team-1"}`:                           2, // the hub has not compacted yet
		`converge_compacted_ops{namespace="team-1"}`:                     0,
		`converge_http_applied_ops_total{namespace="team-1"}`:            2,
		`converge_conflicts_total{namespace="team-1"}`:                   0,
		`converge_quarantined_ops{namespace="team-1"}`:                   0,
		`converge_peers{namespace="team-1"}`:                             2,
		`converge_applied_ops_total{namespace="team-1",origin="remote"}`: 2,
		`converge_namespaces`:                                            1,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("/metrics %s = %v (present: %v), want %v", key, got, ok, want)
		}
	}
	for _, key := range []string{
		`converge_http_requests_total{code="200",route="sync"}`,
		`converge_http_requests_total{code="401",route="stream"}`,
		`converge_http_sync_duration_seconds_count`,
		`converge_sync_round_trip_seconds_count{transport="http"}`,
		`converge_http_streams`,
		`converge_http_requests_in_flight`,
		`go_goroutines`,
	} {
		if m[key] <= 0 {
			t.Errorf("/metrics %s = %v, want > 0", key, m[key])
		}
	}
	if runtime.GOOS == "linux" && m[`process_resident_memory_bytes`] <= 0 {
		t.Error("/metrics has no process collector")
	}
	infos := 0
	for key := range m {
		if strings.HasPrefix(key, `converge_info{replica=`) {
			infos++
		}
		if strings.HasPrefix(key, `converge_peer_behind_ops{namespace="team-1",peer=`) {
			infos += 10
		}
	}
	if infos != 21 {
		t.Errorf("/metrics: want converge_info once and converge_peer_behind_ops for both clients (%d)", infos)
	}
	if m[`converge_http_sync_duration_seconds_bucket{le="+Inf"}`] != m[`converge_http_sync_duration_seconds_count`] {
		t.Errorf("histogram: +Inf bucket %v != count %v", m[`converge_http_sync_duration_seconds_bucket{le="+Inf"}`], m[`converge_http_sync_duration_seconds_count`])
	}
}

// The hub replicates over NATS and serves HTTP: it bridges the two.
func TestHubNATSBridge(t *testing.T) {
	t.Parallel()
	s, err := embednats.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	dir := t.TempDir()
	h := startHub(t, Config{Dir: dir, TokenFile: writeTokens(t, "tok team-1"),
		NATS: NATSConfig{URL: s.ClientURL(), Namespaces: []string{testNS}, Heartbeat: time.Hour, SyncInterval: time.Hour}})
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

	checkHealthy(t, nil, h.url, "store", "http", "nats")
	m := scrape(t, h.url)
	for _, key := range []string{
		`converge_nats_connected`,
		`converge_ops{namespace="team-1"}`,
		`converge_bridge_syncs_total{result="ok"}`,
		`converge_sync_round_trip_seconds_count{transport="nats"}`,
		`converge_sync_round_trip_last_seconds{transport="nats"}`,
		`converge_nats_served_total`,
		`converge_replication_state{namespace="team-1",state="idle"}`,
	} {
		if m[key] <= 0 {
			t.Errorf("/metrics %s = %v, want > 0", key, m[key])
		}
	}
	for _, key := range []string{
		`converge_replication_pending_ops{namespace="team-1"}`,
		`converge_replication_lag_seconds{namespace="team-1"}`,
		`converge_replication_failures{namespace="team-1"}`,
		`converge_replication_last_sync_timestamp_seconds{namespace="team-1"}`,
		`converge_nats_reconnects_total`,
	} {
		if _, ok := m[key]; !ok {
			t.Errorf("/metrics has no %s", key)
		}
	}

	checkDocumentedMetrics(t, m)

	if err := h.stop(); err != nil {
		t.Fatalf("Serve returned %v after a graceful shutdown, want nil", err)
	}
	db, err := converge.Open(dir, converge.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tasks := collection(t, db)
	for _, id := range []string{"from-http", "from-nats"} {
		if _, err := tasks.Get(t.Context(), testNS, id); err != nil {
			t.Errorf("the hub's store lost %s: %v", id, err)
		}
	}
}

// A hub that cannot start says why and leaves nothing open.
func TestNewFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := New(Config{Dir: dir, TokenFile: writeTokens(t, "only-a-token"), Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("New with a malformed token file = %v, want an error naming the line", err)
	}
	// A NATS URL that cannot be dialled: the store is closed again. (A
	// server that is only unreachable does not stop the hub: see
	// TestHubStartsWithoutNATS.)
	if _, err := New(Config{Dir: dir, NATS: NATSConfig{URL: "nats://127.0.0.1:notaport", Namespaces: []string{"a"}}, Logger: quietLogger()}); err == nil {
		t.Error("New with a malformed NATS URL = nil, want an error")
	}
	db, err := converge.Open(dir, converge.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("the store is still open after a failed start: %v", err)
	}
	db.Close()

	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Dir"},
		{Config{Dir: dir}, "nothing to serve"},
		{Config{Dir: dir, NATS: NATSConfig{URL: "nats://x"}}, "namespaces"},
		{Config{Dir: dir, TokenFile: "t", NATS: NATSConfig{Namespaces: []string{"a"}}}, "NATS URL"},
		{Config{Dir: dir, NATS: NATSConfig{URL: "nats://x", Namespaces: []string{"a"}, Token: "t", User: "u"}}, "one NATS authentication"},
		{Config{Dir: dir, NATS: NATSConfig{URL: "nats://x", Namespaces: []string{"a"}, Password: "p"}}, "NATS user"},
		{Config{Dir: dir, TokenFile: "t", TLSCertFile: "c"}, "certificate and key"},
		{Config{Dir: dir, TokenFile: "t", TLSClientCAFile: "ca"}, "mTLS"},
	} {
		if _, err := New(tt.cfg); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig mentioning %q", tt.cfg, err, tt.want)
		}
	}
}

// A hub whose NATS server is not up yet starts all the same (natstransport
// connects in the background), says it is unhealthy until it connects,
// and shuts down cleanly.
func TestHubStartsWithoutNATS(t *testing.T) {
	t.Parallel()
	s, err := embednats.Run()
	if err != nil {
		t.Fatal(err)
	}
	natsURL := s.ClientURL()
	s.Stop() // nothing listens there now
	h := startHub(t, Config{Dir: t.TempDir(), NATS: NATSConfig{URL: natsURL, Namespaces: []string{"a"}}})
	code, body := get(t, nil, h.url+"/healthz", "")
	var health healthBody
	if err := json.Unmarshal([]byte(body), &health); err != nil {
		t.Fatalf("/healthz body %q: %v", body, err)
	}
	if code != http.StatusServiceUnavailable || health.Checks["store"] != "ok" || !strings.Contains(health.Checks["nats"], "not connected") {
		t.Errorf("/healthz = %d %s, want 503 with the store ok and NATS not connected", code, body)
	}
	if err := h.stop(); err != nil {
		t.Errorf("Serve = %v, want nil after its context ended", err)
	}
}

// TestSyncServerConformance runs the transport conformance suite through
// the HTTP sync server wired exactly as the hub wires it (newSyncServer,
// with the hub's OnApply): every ability of the store it serves
// (snapshots, the record of its peers) must survive the wiring (issue
// 13.4).
func TestSyncServerConformance(t *testing.T) {
	auth, err := httptransport.LoadTokenFile(writeTokens(t, "tok ns"))
	if err != nil {
		t.Fatal(err)
	}
	transporttest.Run(t, func(t *testing.T, server transport.Store) transport.Peer {
		h := &Hub{metrics: newMetrics(true, false), bridge: map[string]*bridgeState{}}
		srv, err := newSyncServer(httptransport.ServerOptions{}, server, auth, quietLogger(), h.applied)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		t.Cleanup(ts.Close)
		t.Cleanup(srv.Close) // runs first: ends the streams ts.Close would wait for
		c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: ts.URL, Token: "tok", Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

// TestHTTPHubKeepsStoreAbilities is issue 13.4 end to end: an HTTP-only
// hub records the peers it serves, so it compacts, and it serves
// snapshots (not 501), so a new replica below its horizon bootstraps.
func TestHTTPHubKeepsStoreAbilities(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startHub(t, Config{Dir: dir, TokenFile: writeTokens(t, "tok-a team-1", "tok-new team-1"), CompactInterval: 5 * time.Millisecond})
	a := httpReplica(t, h.url, "tok-a")
	for i := range 3 {
		a.put(t, fmt.Sprint("t", i), "from a")
	}
	a.waitStatus(t, "nothing pending", func(st converge.Status) bool { return st.Pending == 0 })

	// The hub knows what a holds (from a's requests): its background
	// compaction folds it, and counts its runs.
	deadline := time.Now().Add(failBound)
	for scrape(t, h.url)[`converge_compaction_dropped_ops_total`] < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the hub never compacted: it does not know what its client holds")
		}
		<-time.After(5 * time.Millisecond) // polling a condition, not synchronizing by time
	}
	m := scrape(t, h.url)
	if m[`converge_compaction_runs_total{result="ok"}`] == 0 || m[`converge_compacted_ops{namespace="team-1"}`] != 3 {
		t.Errorf("compaction metrics: runs %v, compacted %v; want runs and 3 compacted", m[`converge_compaction_runs_total{result="ok"}`], m[`converge_compacted_ops{namespace="team-1"}`])
	}

	// A snapshot page is answered.
	c := mustClient(t, h.url, "tok-new")
	page, err := c.Snapshot(t.Context(), &transport.SnapshotRequest{Namespace: testNS})
	if err != nil || len(page.Records) != 3 {
		t.Fatalf("snapshot page: %+v, %v; want the 3 records", page, err)
	}
	// A new replica, below the hub's horizon, bootstraps from it.
	fresh, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	res, err := fresh.SyncWith(t.Context(), c, testNS)
	if err != nil || res.Snapshots != 1 {
		t.Fatalf("a new replica's sync: %+v, %v; want a bootstrap from a snapshot", res, err)
	}
	if n, err := collection(t, fresh).Count(t.Context(), testNS, converge.Query{}); err != nil || n != 3 {
		t.Errorf("the new replica holds %d tasks (%v), want 3", n, err)
	}

	// The hub recorded both.
	ps, err := h.DB().Admin().Peers(t.Context(), testNS)
	if err != nil {
		t.Fatal(err)
	}
	var known []string
	for _, p := range ps {
		known = append(known, p.Replica)
	}
	for _, id := range []string{a.db.ReplicaID(), fresh.ReplicaID()} {
		if !slices.Contains(known, id) {
			t.Errorf("the hub does not know %s; it knows %v", id, known)
		}
	}
}

// checkDocumentedMetrics checks that every converge_ metric the Grafana
// dashboard queries and docs/OPERATIONS.md lists is in the scrape m of a
// hub that serves HTTP and NATS, and that every converge_ family of the
// scrape is documented.
func checkDocumentedMetrics(t *testing.T, m map[string]float64) {
	t.Helper()
	families := map[string]bool{}
	histograms := map[string]bool{}
	for key := range m {
		name, _, _ := strings.Cut(key, "{")
		if f, ok := strings.CutSuffix(name, "_bucket"); ok {
			histograms[f] = true
		}
	}
	for key := range m {
		name, _, _ := strings.Cut(key, "{")
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := strings.CutSuffix(name, suffix); ok && histograms[f] {
				name = f
			}
		}
		families[name] = true
	}
	name := regexp.MustCompile(`converge_[a-z_]+`)
	dash, err := os.ReadFile("../docs/grafana/converge.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range name.FindAllString(string(dash), -1) {
		if f, ok := strings.CutSuffix(n, "_bucket"); ok && histograms[f] {
			continue
		}
		if !families[n] {
			t.Errorf("the dashboard queries %s, which the hub does not export", n)
		}
	}
	ops, err := os.ReadFile("../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(ops)
	for f := range families {
		if !strings.HasPrefix(f, "converge_") || strings.HasPrefix(f, "converge_nats_") && strings.HasSuffix(f, "_total") {
			continue // the NATS counters are documented as one pattern
		}
		if !strings.Contains(doc, "`"+f) && !strings.Contains(doc, f+"_bucket") {
			t.Errorf("docs/OPERATIONS.md does not list %s", f)
		}
	}
}
