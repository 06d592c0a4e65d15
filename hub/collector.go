package hub

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/convergedb/converge"
)

// scrapeTimeout bounds the store reads of one scrape.
const scrapeTimeout = 10 * time.Second

// desc is a shorthand for a metric description.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The metrics read at scrape time.
var (
	descInfo       = desc("converge_info", "The hub's replica id.", "replica")
	descNamespaces = desc("converge_namespaces", "Namespaces the hub's store holds.")
	descOps        = desc("converge_ops", "Ops held per namespace: the sum of its version vector.", "namespace")
	descLogOps     = desc("converge_log_ops", "Ops in the log per namespace: those not yet compacted into base states.", "namespace")
	descCompacted  = desc("converge_compacted_ops", "Ops folded into base states and dropped from the log per namespace: the sum of its compaction horizon.", "namespace")
	descOrigins    = desc("converge_origins", "Replicas whose ops a namespace holds: the entries of its version vector.", "namespace")
	descConflicts  = desc("converge_conflicts_total", "Conflicts (concurrent writes to one field) detected per namespace.", "namespace")
	descQuarantine = desc("converge_quarantined_ops", "Ops refused (invalid, or beyond the clock bound) and kept in quarantine, per namespace.", "namespace")
	descPeers      = desc("converge_peers", "Replicas the hub has synced a namespace with (DB.Peers).", "namespace")
	descPeerBehind = desc("converge_peer_behind_ops", "Ops the hub holds that a peer did not, as it last said: its pending ops, per namespace and peer (the peers furthest behind; the rest summed as peer=\"other\").", "namespace", "peer")

	descPending  = desc("converge_replication_pending_ops", "The hub's own ops its NATS peers have not acknowledged, per namespace.", "namespace")
	descLag      = desc("converge_replication_lag_seconds", "How long the oldest unacknowledged state has waited, per namespace.", "namespace")
	descLastSync = desc("converge_replication_last_sync_timestamp_seconds", "When the last successful sync over NATS finished (0: never), per namespace.", "namespace")
	descFailures = desc("converge_replication_failures", "Consecutive failed syncs over NATS, per namespace.", "namespace")
	descState    = desc("converge_replication_state", "The replication state of each namespace (1 for the current state).", "namespace", "state")

	descNATSConnected = desc("converge_nats_connected", "Whether the NATS connection is up.")
)

// natsCounters are the NATS transport's counters, by metric name.
var natsCounters = []struct{ name, help string }{
	{"requests", "Anti-entropy requests sent over NATS."},
	{"served", "Anti-entropy requests answered over NATS."},
	{"published", "Live messages published (batches and vector announcements)."},
	{"published_ops", "Ops published live."},
	{"received", "Live messages received."},
	{"received_ops", "Ops received live."},
	{"fetches", "Targeted fetches after a gap or an announcement."},
	{"malformed", "Messages dropped as malformed."},
	{"denied", "Permission violations reported by the NATS server."},
	{"reconnects", "Reconnections to the NATS server."},
	{"bytes_out", "Payload bytes published or sent."},
	{"bytes_in", "Payload bytes received."},
}

var descNATS = func() []*prometheus.Desc {
	ds := make([]*prometheus.Desc, len(natsCounters))
	for i, c := range natsCounters {
		ds[i] = desc("converge_nats_"+c.name+"_total", c.help)
	}
	return ds
}()

// storeCollector reads the store, the replicator and the NATS transport
// at each scrape.
type storeCollector struct{ h *Hub }

// Describe implements prometheus.Collector.
func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descNamespaces, descOps, descLogOps, descCompacted, descOrigins,
		descConflicts, descQuarantine, descPeers, descPeerBehind} {
		ch <- d
	}
	if c.h.rep != nil {
		for _, d := range []*prometheus.Desc{descPending, descLag, descLastSync, descFailures, descState} {
			ch <- d
		}
	}
	if c.h.tr != nil {
		ch <- descNATSConnected
		for _, d := range descNATS {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector. A store that cannot be read
// fails the scrape (an invalid metric), rather than reporting zeros.
func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	h := c.h
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, h.db.ReplicaID())
	nss, err := h.db.Namespaces(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descNamespaces, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descNamespaces, prometheus.GaugeValue, float64(len(nss)))
	for _, ns := range nss {
		if err := c.namespace(ctx, ch, ns); err != nil {
			ch <- prometheus.NewInvalidMetric(descOps, err)
			return
		}
	}
	if h.rep != nil {
		if err := c.replication(ctx, ch); err != nil {
			ch <- prometheus.NewInvalidMetric(descPending, err)
			return
		}
	}
	if h.tr != nil {
		c.nats(ch)
	}
}

// namespace sends the series of one namespace.
func (c storeCollector) namespace(ctx context.Context, ch chan<- prometheus.Metric, ns string) error {
	db := c.h.db.Admin()
	vv, err := db.Vector(ctx, ns)
	if err != nil {
		return err
	}
	horizon, err := db.Horizon(ctx, ns)
	if err != nil {
		return err
	}
	conflicts, err := c.h.db.ConflictCount(ctx, ns)
	if err != nil {
		return err
	}
	quarantined, err := db.Quarantine(ctx, ns)
	if err != nil {
		return err
	}
	peers, err := db.Peers(ctx, ns)
	if err != nil {
		return err
	}
	ops, compacted := sum(vv), sum(horizon)
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, ns)
	}
	gauge(descOps, float64(ops))
	gauge(descLogOps, float64(ops-compacted))
	gauge(descCompacted, float64(compacted))
	gauge(descOrigins, float64(len(vv)))
	gauge(descQuarantine, float64(len(quarantined)))
	gauge(descPeers, float64(len(peers)))
	ch <- prometheus.MustNewConstMetric(descConflicts, prometheus.CounterValue, float64(conflicts), ns)
	c.peersBehind(ch, ns, peers)
	return nil
}

// peersBehind sends the ops each peer lacks: a series for each of the
// MaxPeerSeries peers furthest behind, the rest summed as "other".
func (c storeCollector) peersBehind(ch chan<- prometheus.Metric, ns string, peers []converge.PeerState) {
	limit := c.h.cfg.MaxPeerSeries
	if limit < 0 {
		return
	}
	peers = slices.Clone(peers)
	slices.SortStableFunc(peers, func(a, b converge.PeerState) int { return cmp.Compare(b.Behind, a.Behind) })
	var other uint64
	for i, p := range peers {
		if i >= limit {
			other += p.Behind
			continue
		}
		ch <- prometheus.MustNewConstMetric(descPeerBehind, prometheus.GaugeValue, float64(p.Behind), ns, p.Replica)
	}
	if len(peers) > limit {
		ch <- prometheus.MustNewConstMetric(descPeerBehind, prometheus.GaugeValue, float64(other), ns, "other")
	}
}

// replication sends the replicator's status of each NATS namespace.
func (c storeCollector) replication(ctx context.Context, ch chan<- prometheus.Metric) error {
	states := []converge.SyncState{converge.StateIdle, converge.StateSyncing, converge.StatePaused, converge.StateError}
	for _, ns := range c.h.cfg.NATS.Namespaces {
		st, err := c.h.rep.Status(ctx, ns)
		if err != nil {
			return err
		}
		last := 0.0
		if !st.LastSync.IsZero() {
			last = float64(st.LastSync.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Pending), ns)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, st.Lag.Seconds(), ns)
		ch <- prometheus.MustNewConstMetric(descLastSync, prometheus.GaugeValue, last, ns)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.GaugeValue, float64(st.Failures), ns)
		for _, s := range states {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, ns, string(s))
		}
	}
	return nil
}

// nats sends the NATS transport's connection state and counters.
func (c storeCollector) nats(ch chan<- prometheus.Metric) {
	connected := 0.0
	if c.h.tr.Conn().IsConnected() {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(descNATSConnected, prometheus.GaugeValue, connected)
	s := c.h.tr.Stats()
	values := []int64{s.Requests, s.Served, s.Published, s.PublishedOps, s.Received, s.ReceivedOps,
		s.Fetches, s.Malformed, s.Denied, s.Reconnects, s.BytesOut, s.BytesIn}
	for i, v := range values {
		ch <- prometheus.MustNewConstMetric(descNATS[i], prometheus.CounterValue, float64(v))
	}
}

func sum(vv map[string]uint64) uint64 {
	var n uint64
	for _, seq := range vv {
		n += seq
	}
	return n
}
