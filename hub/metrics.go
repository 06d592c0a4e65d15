package hub

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// This file is the one place where the hub's metrics are defined and
// registered (docs/OPERATIONS.md lists them; docs/grafana/converge.json
// charts them). The hub updates the counters and histograms below as
// things happen; everything the store, the replicator and the NATS
// transport know is read at scrape time by storeCollector
// (collector.go).

// latencyBuckets are the duration histograms' upper bounds, in seconds.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// metrics are the hub's collectors, in a registry of their own (no
// global state: two hubs in one process do not mix).
type metrics struct {
	reg *prometheus.Registry

	roundTrip     *prometheus.HistogramVec // sync round trips by transport
	roundTripLast *prometheus.GaugeVec
	httpSync      prometheus.Histogram
	requests      *prometheus.CounterVec // by route and code
	inFlight      prometheus.Gauge
	streams       prometheus.Gauge
	bridge        *prometheus.CounterVec // by result
	httpApplied   *prometheus.CounterVec // by namespace
	applied       *prometheus.CounterVec // by namespace and origin (local, remote)
	compactions   *prometheus.CounterVec // by result
	compactedOps  prometheus.Counter
}

// newMetrics creates and registers the hub's metrics: those of HTTP sync
// when httpSync, of NATS replication when nats, of the bridge when both,
// and the Go and process collectors.
func newMetrics(httpSync, nats bool) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.roundTrip = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "converge_sync_round_trip_seconds",
		Help:    "Anti-entropy round trips by transport: over NATS the hub's own requests, request to answer; over HTTP the hub's answers to POST /v1/sync, request to response.",
		Buckets: latencyBuckets}, []string{"transport"})
	m.roundTripLast = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "converge_sync_round_trip_last_seconds",
		Help: "The last anti-entropy round trip, by transport."}, []string{"transport"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "converge_http_requests_total",
		Help: "HTTP requests answered, by route and status code."}, []string{"route", "code"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "converge_http_requests_in_flight",
		Help: "HTTP requests being answered (this scrape and live streams included)."})
	m.applied = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "converge_applied_ops_total",
		Help: "Ops added to the hub's log, by namespace and origin: local (written by the hub) or remote (applied from a peer, over any transport)."}, []string{"namespace", "origin"})
	m.compactions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "converge_compaction_runs_total",
		Help: "Background compactions of a namespace, by result (ok, error)."}, []string{"result"})
	m.compactedOps = prometheus.NewCounter(prometheus.CounterOpts{Name: "converge_compaction_dropped_ops_total",
		Help: "Ops folded into base states and dropped from the log by background compactions."})
	m.reg.MustRegister(m.roundTrip, m.roundTripLast, m.requests, m.inFlight, m.applied, m.compactions, m.compactedOps,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if httpSync {
		m.httpSync = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "converge_http_sync_duration_seconds",
			Help: "POST /v1/sync requests answered 200, from request to response.", Buckets: latencyBuckets})
		m.httpApplied = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "converge_http_applied_ops_total",
			Help: "Ops pushed by HTTP clients and applied, per namespace."}, []string{"namespace"})
		m.streams = prometheus.NewGauge(prometheus.GaugeOpts{Name: "converge_http_streams", Help: "Live streams open."})
		m.reg.MustRegister(m.httpSync, m.httpApplied, m.streams)
	}
	if httpSync && nats {
		m.bridge = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "converge_bridge_syncs_total",
			Help: "Syncs over NATS run right after HTTP clients' ops were applied, by result (ok, error)."}, []string{"result"})
		m.reg.MustRegister(m.bridge)
	}
	m.initSeries(httpSync, nats)
	return m
}

// initSeries creates the series of the labels known in advance, at zero,
// so that they are scraped (and rates work) before the first event.
func (m *metrics) initSeries(httpSync, nats bool) {
	for _, result := range []string{"ok", "error"} {
		m.compactions.WithLabelValues(result)
		if m.bridge != nil {
			m.bridge.WithLabelValues(result)
		}
	}
	if httpSync {
		m.roundTrip.WithLabelValues("http")
	}
	if nats {
		m.roundTrip.WithLabelValues("nats")
	}
}

// handler serves the registry in the Prometheus exposition formats.
func (m *metrics) handler(errLog promhttp.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: errLog, ErrorHandling: promhttp.HTTPErrorOnError})
}

func (m *metrics) observeRoundTrip(transport string, took time.Duration) {
	m.roundTrip.WithLabelValues(transport).Observe(took.Seconds())
	m.roundTripLast.WithLabelValues(transport).Set(took.Seconds())
}

func (m *metrics) bridgeSync(err error) {
	if err != nil {
		m.bridge.WithLabelValues("error").Inc()
	} else {
		m.bridge.WithLabelValues("ok").Inc()
	}
}

// opsApplied is the DB's OnOps hook.
func (m *metrics) opsApplied(ns string, n int, local bool) {
	origin := "remote"
	if local {
		origin = "local"
	}
	m.applied.WithLabelValues(ns, origin).Add(float64(n))
}

// compacted is the DB's CompactionOptions.OnCompact hook.
func (m *metrics) compacted(ops int, err error) {
	if err != nil {
		m.compactions.WithLabelValues("error").Inc()
		return
	}
	m.compactions.WithLabelValues("ok").Inc()
	m.compactedOps.Add(float64(ops))
}

// instrument counts the requests of next by route and status, and times
// the sync round trips.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := routeOf(r.URL.Path)
		start := time.Now()
		m.inFlight.Inc()
		if route == "stream" && m.streams != nil {
			m.streams.Inc()
		}
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			m.inFlight.Dec()
			if route == "stream" && m.streams != nil {
				m.streams.Dec()
			}
			code := rec.code
			if code == 0 {
				code = http.StatusOK
			}
			m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
			if route == "sync" && code == http.StatusOK && m.httpSync != nil {
				took := time.Since(start)
				m.httpSync.Observe(took.Seconds())
				m.observeRoundTrip("http", took)
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
	case strings.HasPrefix(path, "/v1/snapshot/"):
		return "snapshot"
	case strings.HasPrefix(path, "/v1/stream/"):
		return "stream"
	case strings.HasPrefix(path, "/v1/admin/"):
		return "admin"
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
