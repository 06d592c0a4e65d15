package main

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/convergedb/converge"
)

// Snapshot bootstrap (issue 8): a fresh replica syncs with a peer that
// compacted its whole log, so it cannot be sent ops: it bootstraps from a
// snapshot of the peer's states, page by page, over HTTP and over NATS.

// Metrics of the snapshot scenario.
const (
	metricSnapshotTimeHTTP  = "bootstrap time (http)"
	metricSnapshotBytesHTTP = "wire bytes (http)"
	metricSnapshotTimeNATS  = "bootstrap time (nats)"
	metricSnapshotBytesNATS = "wire bytes (nats)"
)

func snapshotScenario() *Scenario {
	const bytesBase = "encoded size of the records (keys and states, as stored)"
	return &Scenario{
		Name: "snapshot",
		Description: "A fresh replica bootstraps -snapshot-records records (5-field tasks, each put once) from a peer that compacted " +
			"its whole log (it learned that another replica holds every op, then db.Compact), so the ops cannot be sent: db.SyncWith " +
			"asks, is answered that a snapshot is needed, pages through the peer's states (1000 records or 1 MiB a page), installs " +
			"each page in one batch (states, base states, change feed), then raises its vector and checks with an op round that " +
			"nothing is left. Measured over two networks, one row each: (http) the HTTP hub (httptransport on loopback; wire bytes " +
			"are the client's Stats, bodies both ways after gzip); (nats) Converge's NATS transport to a replica on an embedded NATS " +
			"server (wire bytes are the transport's Stats, payloads both ways). Baselines: for the bytes, the encoded size of the " +
			"records: each record's key as the store lays it out and its state encoding (what the peer's store holds of them); for " +
			"the time, a raw download of those same bytes (one blob per record) into raw Pebble, each page in one batch, as the " +
			"catch-up scenarios do: (http) GET pages of 1000 from the raw HTTP relay; (nats) raw NATS request/reply pages of up to " +
			"1000 from a responder reading raw Pebble. No decoding, merging, base states or change feed.",
		Prepare: func(ctx context.Context, e *env) (_ *Trial, err error) {
			n := e.cfg.SnapshotRecords
			ops, err := e.ops(ctx, n)
			if err != nil {
				return nil, err
			}
			raws := rawOps(ops)
			// The records as the peer's store holds them: key and state.
			blobs := make([][]byte, len(ops))
			size := 0
			for i := range ops {
				// The store keeps each state behind the count of ops
				// applied to it (oplog's stored form: 0xcf and a
				// big-endian uint64; each record here was put once).
				blobs[i] = append(rawStateKey(nil, benchNS, ops[i].Coll, ops[i].Key), 0xcf, 0, 0, 0, 0, 0, 0, 0, 1)
				blobs[i] = append(blobs[i], ops[i].State...)
				size += len(blobs[i])
			}
			var closers []func() error
			closeAll := func() error {
				var errs []error
				for i := len(closers) - 1; i >= 0; i-- {
					errs = append(errs, closers[i]())
				}
				return errors.Join(errs...)
			}
			defer func() {
				if err != nil {
					err = errors.Join(err, closeAll())
				}
			}()
			// A compacted peer: load the ops, fold them all away.
			compacted := func(db *converge.DB) error {
				if err := loadSource(ctx, db, raws); err != nil {
					return err
				}
				dropped, err := compactFully(ctx, db)
				if err != nil {
					return fmt.Errorf("compacting the peer: %w", err)
				}
				if dropped != n {
					return fmt.Errorf("compacting the peer dropped %d ops, want %d", dropped, n)
				}
				return nil
			}

			hubDir, err := e.dir("snapshot-hub")
			if err != nil {
				return nil, err
			}
			hub, err := startHTTPHub(hubDir)
			if err != nil {
				return nil, err
			}
			closers = append(closers, hub.Close)
			if err := compacted(hub.db); err != nil {
				return nil, err
			}
			// The baseline's bytes are the store's: its states' keys and values.
			if st, err := hub.db.Admin().Log().Stats(ctx, benchNS); err != nil || st.StateBytes != int64(size) || st.States != n {
				return nil, fmt.Errorf("the peer holds %d states of %d bytes (%v); the baseline moves %d records of %d bytes", st.States, st.StateBytes, err, n, size)
			}
			relayDir, err := e.dir("snapshot-relay")
			if err != nil {
				return nil, err
			}
			relay, err := startRelayHub(relayDir, false)
			if err != nil {
				return nil, err
			}
			closers = append(closers, relay.Close)
			if err := relay.load(0, blobs); err != nil {
				return nil, err
			}
			pagesDir, err := e.dir("snapshot-nats-pages")
			if err != nil {
				return nil, err
			}
			pages, err := startNATSPages(pagesDir, blobs)
			if err != nil {
				return nil, err
			}
			closers = append(closers, pages.close)
			var nats *natsNet
			if natsConnect != nil {
				sdir, err := e.dir("snapshot-nats-peer")
				if err != nil {
					return nil, err
				}
				if nats, err = startNATSNet(ctx, sdir, e.cfg.Debounce); err != nil {
					return nil, err
				}
				closers = append(closers, nats.Close)
				if err := compacted(nats.Source()); err != nil {
					return nil, err
				}
			}

			type network struct {
				name       string
				ours, base func(context.Context) (Values, error)
			}
			nets := []network{{
				name: "http",
				ours: func(ctx context.Context) (Values, error) {
					return snapshotBootstrap(ctx, e, hub, n, metricSnapshotTimeHTTP, metricSnapshotBytesHTTP)
				},
				base: func(ctx context.Context) (Values, error) {
					v, err := relayCatchup(ctx, e, relay.url, uint64(n))
					if err != nil {
						return nil, err
					}
					return Values{metricSnapshotTimeHTTP: v["catch-up time"], metricSnapshotBytesHTTP: float64(size)}, nil
				},
			}, {
				name: "nats",
				ours: func(ctx context.Context) (Values, error) {
					if nats == nil {
						return Values{}, nil // not available: no row value
					}
					return snapshotBootstrap(ctx, e, nats, n, metricSnapshotTimeNATS, metricSnapshotBytesNATS)
				},
				base: func(ctx context.Context) (Values, error) {
					v, err := pages.fetch(ctx, e, uint64(n))
					if err != nil {
						return nil, err
					}
					return Values{metricSnapshotTimeNATS: v["catch-up time"], metricSnapshotBytesNATS: float64(size)}, nil
				},
			}}
			// Each side measures both networks, taking turns at going first.
			side := func(ctx context.Context, run int, fn func(network) func(context.Context) (Values, error)) (Values, error) {
				out := Values{}
				for k := range nets {
					nw := nets[(k+run)%len(nets)]
					v, err := fn(nw)(ctx)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", nw.name, err)
					}
					maps.Copy(out, v)
				}
				return out, nil
			}
			return &Trial{
				Metrics: []Metric{
					{Name: metricSnapshotTimeHTTP, Kind: Duration, Baseline: "raw HTTP paged download of the same bytes into Pebble"},
					{Name: metricSnapshotBytesHTTP, Kind: Bytes, Baseline: bytesBase},
					{Name: metricSnapshotTimeNATS, Kind: Duration, Baseline: "raw NATS request/reply pages of the same bytes into Pebble"},
					{Name: metricSnapshotBytesNATS, Kind: Bytes, Baseline: bytesBase},
				},
				Ours: func(ctx context.Context, run int) (Values, error) {
					return side(ctx, run, func(nw network) func(context.Context) (Values, error) { return nw.ours })
				},
				Baseline: func(ctx context.Context, run int) (Values, error) {
					return side(ctx, run, func(nw network) func(context.Context) (Values, error) { return nw.base })
				},
				Close: closeAll,
			}, nil
		},
	}
}

// snapshotBootstrap makes a fresh replica sync with net's compacted source
// of n records, and reports the time and the wire bytes under the given
// metric names.
func snapshotBootstrap(ctx context.Context, e *env, net syncNet, n int, timeMetric, bytesMetric string) (Values, error) {
	res, elapsed, wire, err := freshSync(ctx, e, net, "snapshot")
	if err != nil {
		return nil, err
	}
	if res.Snapshots != 1 || res.SnapshotRecords != n || res.Received != 0 {
		return nil, fmt.Errorf("%s: %d snapshot(s) of %d records and %d ops received; want one snapshot of %d records and no op",
			net.Name(), res.Snapshots, res.SnapshotRecords, res.Received, n)
	}
	v := Values{timeMetric: elapsed.Seconds()}
	if wire >= 0 {
		v[bytesMetric] = float64(wire)
	}
	e.log.Debug("bootstrapped", "net", net.Name(), "records", n, "rounds", res.Rounds, "snapshot bytes", res.SnapshotBytes,
		"took", elapsed, "wire", v[bytesMetric])
	return v, nil
}
