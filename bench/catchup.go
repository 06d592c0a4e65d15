package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

// Catch-up: a fresh replica -catchup-ops ops behind pulls them through the
// network, with anti-entropy (db.SyncWith: pages of up to 1000 ops / 1 MiB,
// what a replicator does when it starts). Reported: the time, and the bytes
// that crossed the network against the ops' encoded size.

// catchupMetrics are the catch-up scenarios' metrics.
func catchupMetrics(timeBaseline string) []Metric {
	return []Metric{
		{Name: "catch-up time", Kind: Duration, Baseline: timeBaseline},
		{Name: "wire bytes", Kind: Bytes, Baseline: "encoded size of the ops"},
	}
}

// loadSource applies ops to db in pages, as a sync would (setup, untimed).
func loadSource(ctx context.Context, db *converge.DB, raws [][]byte) error {
	store := db.SyncStore()
	for i := 0; i < len(raws); i += relayPageOps {
		page := raws[i:min(i+relayPageOps, len(raws))]
		a, err := store.Apply(ctx, benchNS, page)
		if err != nil {
			return fmt.Errorf("loading the source: %w", err)
		}
		if a.Applied != len(page) {
			return fmt.Errorf("loading the source: applied %d of %d ops: %s", a.Applied, len(page), a.Reason)
		}
	}
	return nil
}

// freshSync opens a fresh replica, syncs it with net's source, and
// returns what the sync did, how long it took, and the wire bytes of the
// connection (negative when the network does not count them).
func freshSync(ctx context.Context, e *env, net syncNet, name string) (res transport.Result, elapsed time.Duration, wire int64, err error) {
	dir, err := e.dir(name)
	if err != nil {
		return res, 0, 0, err
	}
	defer e.removeDir(dir)
	db, _, err := openConverge(dir, converge.NoSync)
	if err != nil {
		return res, 0, 0, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	conn, err := net.Connect(ctx, db)
	if err != nil {
		return res, 0, 0, fmt.Errorf("%s: %w", net.Name(), err)
	}
	if conn.Close != nil {
		defer func() { err = errors.Join(err, conn.Close()) }()
	}
	start := time.Now()
	if res, err = db.SyncWith(ctx, conn.Peer, benchNS); err != nil {
		return res, 0, 0, fmt.Errorf("%s: %w", net.Name(), err)
	}
	elapsed, wire = time.Since(start), -1
	if conn.WireBytes != nil {
		wire = conn.WireBytes()
	}
	return res, elapsed, wire, nil
}

// catchupConverge makes a fresh replica pull the n ops of net's source.
func catchupConverge(ctx context.Context, e *env, net syncNet, n int) (Values, error) {
	res, elapsed, wire, err := freshSync(ctx, e, net, "catchup")
	if err != nil {
		return nil, err
	}
	if res.Received != n {
		return nil, fmt.Errorf("%s: received %d ops, want %d", net.Name(), res.Received, n)
	}
	v := Values{"catch-up time": elapsed.Seconds()}
	if wire >= 0 {
		v["wire bytes"] = float64(wire)
	}
	e.log.Debug("caught up", "net", net.Name(), "ops", n, "rounds", res.Rounds, "took", elapsed, "wire", v["wire bytes"])
	return v, nil
}

// catchupHTTPScenario is catch-up through the HTTP hub.
func catchupHTTPScenario() *Scenario {
	const base = "raw HTTP paged download into Pebble"
	return &Scenario{
		Name: "catchup-http",
		Description: "A fresh replica -catchup-ops ops behind pulls them from the HTTP hub (httptransport.Server on loopback; the ops are " +
			"puts written on a source replica) with db.SyncWith and an httptransport.Client: rounds of POST /v1/sync carrying vectors and pages " +
			"of up to 1000 ops, gzip when it pays, each page applied in one batch. Wire bytes are the client's Stats (bodies both ways, as sent). " +
			"Baselines: for the bytes, the ops' encoded size (so a ratio above 1 means compression saved more than the protocol costs; " +
			"the workload's records are repetitive, one template and one origin, so gzip does better than on real data); " +
			"for the time, the raw HTTP relay's paged download of the same op bytes (GET pages of 1000 ops from a bare net/http server reading " +
			"raw Pebble), each page stored in the client's raw Pebble in one batch, with no vectors, states or merge.",
		Prepare: func(ctx context.Context, e *env) (_ *Trial, err error) {
			n := e.cfg.CatchupOps
			ops, err := e.ops(ctx, n)
			if err != nil {
				return nil, err
			}
			raws := rawOps(ops)
			encoded := float64(encodedSize(ops))
			hubDir, err := e.dir("catchup-hub")
			if err != nil {
				return nil, err
			}
			hub, err := startHTTPHub(hubDir)
			if err != nil {
				return nil, err
			}
			var relay *relayHub
			closeNets := func() error {
				err := hub.Close()
				if relay != nil {
					err = errors.Join(err, relay.Close())
				}
				return err
			}
			defer func() {
				if err != nil {
					err = errors.Join(err, closeNets())
				}
			}()
			if err := loadSource(ctx, hub.db, raws); err != nil {
				return nil, err
			}
			relayDir, err := e.dir("catchup-relay")
			if err != nil {
				return nil, err
			}
			if relay, err = startRelayHub(relayDir, false); err != nil {
				return nil, err
			}
			if err := relay.load(0, raws); err != nil {
				return nil, err
			}
			return &Trial{
				Metrics: catchupMetrics(base),
				Ours: func(ctx context.Context, _ int) (Values, error) {
					return catchupConverge(ctx, e, hub, n)
				},
				Baseline: func(ctx context.Context, _ int) (Values, error) {
					v, err := relayCatchup(ctx, e, relay.url, uint64(n))
					if err != nil {
						return nil, err
					}
					v["wire bytes"] = encoded
					return v, nil
				},
				Close: closeNets,
			}, nil
		},
	}
}

// relayCatchup downloads the relay's ops from..to into a fresh raw Pebble.
func relayCatchup(ctx context.Context, e *env, url string, n uint64) (_ Values, err error) {
	dir, err := e.dir("relay-catchup")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(dir)
	rs, err := openRawPebble(dir)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, rs.Close()) }()
	store := &relayStore{rawStore: rs, wo: writeOptions(false)}
	client := newRelayClient(url)
	defer client.close()
	start := time.Now()
	next := uint64(0)
	err = client.fetch(ctx, 0, n, func(ops [][]byte) error {
		if err := store.put(next, ops); err != nil {
			return err
		}
		next += uint64(len(ops))
		return nil
	})
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	e.log.Debug("relay caught up", "ops", n, "took", elapsed, "wire", client.wireBytes())
	return Values{"catch-up time": elapsed.Seconds()}, nil
}
