package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convergedb/converge"
)

// serveMetrics are the counters `converge serve` keeps itself; the rest of
// /metrics is read from the store, the replicator and the NATS transport
// at each scrape.
type serveMetrics struct {
	natsRoundTrip *histogram // the hub's anti-entropy round trips over NATS
	httpSync      *histogram // POST /v1/sync requests served, start to end
	inFlight      atomic.Int64
	streams       atomic.Int64
	bridgeOK      atomic.Uint64
	bridgeFailed  atomic.Uint64

	mu       sync.Mutex
	requests map[[2]string]uint64 // (route, code) -> count
	applied  map[string]uint64    // namespace -> ops applied from HTTP clients
}

func newServeMetrics() *serveMetrics {
	return &serveMetrics{
		natsRoundTrip: newHistogram(),
		httpSync:      newHistogram(),
		requests:      map[[2]string]uint64{},
		applied:       map[string]uint64{},
	}
}

func (m *serveMetrics) httpApplied(ns string, n int) {
	m.mu.Lock()
	m.applied[ns] += uint64(n)
	m.mu.Unlock()
}

func (m *serveMetrics) bridgeSync(err error) {
	if err != nil {
		m.bridgeFailed.Add(1)
	} else {
		m.bridgeOK.Add(1)
	}
}

// latencyBuckets are the histograms' upper bounds, in seconds.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// histogram is a Prometheus histogram of durations. It is safe for
// concurrent use.
type histogram struct {
	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      uint64
	last   float64
}

func newHistogram() *histogram {
	return &histogram{counts: make([]uint64, len(latencyBuckets)+1)}
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets, s) // the first bound >= s
	h.mu.Lock()
	h.counts[i]++
	h.sum += s
	h.n++
	h.last = s
	h.mu.Unlock()
}

// instrument counts the requests of next by route and status, and times
// the sync round trips.
func (h *hub) instrument(next http.Handler) http.Handler {
	m := h.metrics
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := routeOf(r.URL.Path)
		start := time.Now()
		m.inFlight.Add(1)
		if route == "stream" {
			m.streams.Add(1)
		}
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			m.inFlight.Add(-1)
			if route == "stream" {
				m.streams.Add(-1)
			}
			code := rec.code
			if code == 0 {
				code = http.StatusOK
			}
			m.mu.Lock()
			m.requests[[2]string{route, strconv.Itoa(code)}]++
			m.mu.Unlock()
			if route == "sync" && code == http.StatusOK {
				m.httpSync.observe(time.Since(start))
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// routeOf names the route of a path, for a label of bounded cardinality.
func routeOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/v1/sync/"):
		return "sync"
	case strings.HasPrefix(path, "/v1/stream/"):
		return "stream"
	case path == "/v1/health":
		return "health"
	case path == "/healthz":
		return "healthz"
	case path == "/metrics":
		return "metrics"
	}
	return "other"
}

// statusRecorder remembers the status of a response. Unwrap lets
// http.ResponseController reach the connection's Flush and deadlines, which
// the live streams use.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// serveMetrics answers /metrics in the Prometheus text format (0.0.4).
func (h *hub) serveMetrics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	var b promWriter
	if err := h.writeMetrics(ctx, &b); err != nil {
		http.Error(w, "metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(b.buf.Bytes()) // a failed write is the scraper's loss
}

func (h *hub) writeMetrics(ctx context.Context, b *promWriter) error {
	m := h.metrics
	b.family("converge_info", "gauge", "The hub's replica id.")
	b.sample("converge_info", 1, "replica", h.db.ReplicaID())

	nss, err := h.db.Namespaces(ctx)
	if err != nil {
		return err
	}
	slices.Sort(nss)
	type nsStats struct {
		ops, origins, conflicts, compacted uint64
	}
	stats := make([]nsStats, len(nss))
	for i, ns := range nss {
		vv, err := h.db.Admin().Vector(ctx, ns)
		if err != nil {
			return err
		}
		for _, seq := range vv {
			stats[i].ops += seq
		}
		stats[i].origins = uint64(len(vv))
		horizon, err := h.db.Admin().Horizon(ctx, ns)
		if err != nil {
			return err
		}
		for _, seq := range horizon {
			stats[i].compacted += seq
		}
		if stats[i].conflicts, err = h.db.ConflictCount(ctx, ns); err != nil {
			return err
		}
	}
	b.family("converge_namespaces", "gauge", "Namespaces the hub's store holds.")
	b.sample("converge_namespaces", float64(len(nss)))
	b.family("converge_ops", "gauge", "Ops held per namespace: the sum of its version vector.")
	for i, ns := range nss {
		b.sample("converge_ops", float64(stats[i].ops), "namespace", ns)
	}
	b.family("converge_log_ops", "gauge", "Ops in the log per namespace: those not yet compacted into base states.")
	for i, ns := range nss {
		b.sample("converge_log_ops", float64(stats[i].ops-stats[i].compacted), "namespace", ns)
	}
	b.family("converge_compacted_ops", "gauge", "Ops folded into base states and dropped from the log per namespace: the sum of its compaction horizon.")
	for i, ns := range nss {
		b.sample("converge_compacted_ops", float64(stats[i].compacted), "namespace", ns)
	}
	b.family("converge_origins", "gauge", "Replicas whose ops a namespace holds: the entries of its version vector.")
	for i, ns := range nss {
		b.sample("converge_origins", float64(stats[i].origins), "namespace", ns)
	}
	b.family("converge_conflicts_total", "counter", "Conflicts (concurrent writes to one field) detected per namespace.")
	for i, ns := range nss {
		b.sample("converge_conflicts_total", float64(stats[i].conflicts), "namespace", ns)
	}

	if rep := h.rep; rep != nil {
		var sts []converge.Status
		for _, ns := range h.cfg.Namespaces {
			st, err := rep.Status(ctx, ns)
			if err != nil {
				return err
			}
			sts = append(sts, st)
		}
		b.family("converge_replication_pending_ops", "gauge", "The hub's own ops its NATS peers have not acknowledged, per namespace.")
		for _, st := range sts {
			b.sample("converge_replication_pending_ops", float64(st.Pending), "namespace", st.Namespace)
		}
		b.family("converge_replication_lag_seconds", "gauge", "How long the oldest unacknowledged state has waited, per namespace.")
		for _, st := range sts {
			b.sample("converge_replication_lag_seconds", st.Lag.Seconds(), "namespace", st.Namespace)
		}
		b.family("converge_replication_last_sync_timestamp_seconds", "gauge", "When the last successful sync over NATS finished (0: never), per namespace.")
		for _, st := range sts {
			t := 0.0
			if !st.LastSync.IsZero() {
				t = float64(st.LastSync.UnixMilli()) / 1000
			}
			b.sample("converge_replication_last_sync_timestamp_seconds", t, "namespace", st.Namespace)
		}
		b.family("converge_replication_failures", "gauge", "Consecutive failed syncs over NATS, per namespace.")
		for _, st := range sts {
			b.sample("converge_replication_failures", float64(st.Failures), "namespace", st.Namespace)
		}
		b.family("converge_replication_state", "gauge", "The replication state of each namespace (1 for the current state).")
		for _, st := range sts {
			for _, s := range []converge.SyncState{converge.StateIdle, converge.StateSyncing, converge.StatePaused, converge.StateError} {
				v := 0.0
				if st.State == s {
					v = 1
				}
				b.sample("converge_replication_state", v, "namespace", st.Namespace, "state", string(s))
			}
		}
		b.histogram("converge_sync_round_trip_seconds", "Anti-entropy round trips of the hub's syncs over NATS, request to answer.", m.natsRoundTrip, "transport", "nats")
		b.family("converge_sync_round_trip_last_seconds", "gauge", "The last anti-entropy round trip over NATS.")
		m.natsRoundTrip.mu.Lock()
		last := m.natsRoundTrip.last
		m.natsRoundTrip.mu.Unlock()
		b.sample("converge_sync_round_trip_last_seconds", last, "transport", "nats")
	}
	if len(h.bridge) > 0 {
		b.family("converge_bridge_syncs_total", "counter", "Syncs over NATS run right after HTTP clients' ops were applied.")
		b.sample("converge_bridge_syncs_total", float64(m.bridgeOK.Load()), "result", "ok")
		b.sample("converge_bridge_syncs_total", float64(m.bridgeFailed.Load()), "result", "error")
	}

	if h.syncSrv != nil {
		b.histogram("converge_http_sync_duration_seconds", "POST /v1/sync requests answered 200, from request to response.", m.httpSync)
		m.mu.Lock()
		applied := maps.Clone(m.applied)
		m.mu.Unlock()
		b.family("converge_http_applied_ops_total", "counter", "Ops pushed by HTTP clients and applied, per namespace.")
		for _, ns := range slices.Sorted(maps.Keys(applied)) {
			b.sample("converge_http_applied_ops_total", float64(applied[ns]), "namespace", ns)
		}
		b.family("converge_http_streams", "gauge", "Live streams open.")
		b.sample("converge_http_streams", float64(m.streams.Load()))
	}
	m.mu.Lock()
	requests := maps.Clone(m.requests)
	m.mu.Unlock()
	b.family("converge_http_requests_total", "counter", "HTTP requests answered, by route and status code.")
	keys := slices.SortedFunc(maps.Keys(requests), func(a, b [2]string) int {
		return strings.Compare(a[0]+" "+a[1], b[0]+" "+b[1])
	})
	for _, k := range keys {
		b.sample("converge_http_requests_total", float64(requests[k]), "route", k[0], "code", k[1])
	}
	b.family("converge_http_requests_in_flight", "gauge", "HTTP requests being answered (this scrape and live streams included).")
	b.sample("converge_http_requests_in_flight", float64(m.inFlight.Load()))

	if tr := h.tr; tr != nil {
		connected := 0.0
		if tr.Conn().IsConnected() {
			connected = 1
		}
		b.family("converge_nats_connected", "gauge", "Whether the NATS connection is up.")
		b.sample("converge_nats_connected", connected)
		s := tr.Stats()
		for _, c := range []struct {
			name, help string
			v          int64
		}{
			{"requests", "Anti-entropy requests sent over NATS.", s.Requests},
			{"served", "Anti-entropy requests answered over NATS.", s.Served},
			{"published", "Live messages published (batches and vector announcements).", s.Published},
			{"published_ops", "Ops published live.", s.PublishedOps},
			{"received", "Live messages received.", s.Received},
			{"received_ops", "Ops received live.", s.ReceivedOps},
			{"fetches", "Targeted fetches after a gap or an announcement.", s.Fetches},
			{"malformed", "Messages dropped as malformed.", s.Malformed},
			{"denied", "Permission violations reported by the NATS server.", s.Denied},
			{"reconnects", "Reconnections to the NATS server.", s.Reconnects},
			{"bytes_out", "Payload bytes published or sent.", s.BytesOut},
			{"bytes_in", "Payload bytes received.", s.BytesIn},
		} {
			name := "converge_nats_" + c.name + "_total"
			b.family(name, "counter", c.help)
			b.sample(name, float64(c.v))
		}
	}
	return nil
}

// promWriter writes the Prometheus text exposition format.
type promWriter struct{ buf bytes.Buffer }

func (w *promWriter) family(name, typ, help string) {
	fmt.Fprintf(&w.buf, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

// sample writes one sample; labels are name, value pairs.
func (w *promWriter) sample(name string, v float64, labels ...string) {
	w.buf.WriteString(name)
	if len(labels) > 0 {
		w.buf.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			fmt.Fprintf(&w.buf, "%s=\"%s\"", labels[i], escapeLabel(labels[i+1]))
		}
		w.buf.WriteByte('}')
	}
	w.buf.WriteByte(' ')
	w.buf.WriteString(formatFloat(v))
	w.buf.WriteByte('\n')
}

func (w *promWriter) histogram(name, help string, h *histogram, labels ...string) {
	w.family(name, "histogram", help)
	h.mu.Lock()
	counts, sum, n := slices.Clone(h.counts), h.sum, h.n
	h.mu.Unlock()
	cum := uint64(0)
	for i, le := range latencyBuckets {
		cum += counts[i]
		w.sample(name+"_bucket", float64(cum), append(slices.Clone(labels), "le", formatFloat(le))...)
	}
	w.sample(name+"_bucket", float64(n), append(slices.Clone(labels), "le", "+Inf")...)
	w.sample(name+"_sum", sum, labels...)
	w.sample(name+"_count", float64(n), labels...)
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
