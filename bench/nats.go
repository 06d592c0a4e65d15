package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/transport"
	"github.com/nats-io/nats.go"
)

// NATS scenarios: replicate-nats and catchup-nats, Converge over
// transport/nats (wired in natspeer.go) beside raw NATS pub/sub and raw
// request/reply pages of the same bytes. converge-partition's NATS row is
// in partitionnats.go.

// natsConnect connects a replica's store to the NATS server at url and
// returns its peer. The harness gives every replica (the writer, the
// receivers, the catch-up source and the catching-up replica) its own
// connection, and opens a Replicator on it except for the catching-up
// replica, which runs db.SyncWith. So the peer must answer other
// replicas' sync requests from store while its replicator streams (the
// catch-up source has no other way to serve), push live ops (its
// transport.Live, publishing the store's commits), and count in WireBytes the bytes it sent and received
// (catchup-nats reports them). Nil: the NATS scenarios measure only their
// baselines.
var natsConnect func(ctx context.Context, url string, store transport.Store) (*peerConn, error)

// natsUnavailable says why the NATS scenarios cannot measure Converge.
const natsUnavailable = "Converge's NATS transport is not wired into the harness yet; hook: natsConnect in bench/nats.go"

// errNATSUnavailable is natsUnavailable as an error.
var errNATSUnavailable = errors.New("bench: the NATS transport hook natsConnect is not set")

// natsNet is a syncNet on an embedded NATS server (internal/embednats, on
// loopback). A source replica stands where the HTTP hub would (it holds
// catch-up's ops): it runs a replicator too, which serves its store for as
// long as it streams, as the repository's transports_test.go hub does.
type natsNet struct {
	node   *embednats.Node
	source *replica
}

// startNATSNet starts a server and the source replica in dir.
func startNATSNet(ctx context.Context, dir string, debounce time.Duration) (_ *natsNet, err error) {
	if natsConnect == nil {
		return nil, errNATSUnavailable
	}
	node, err := embednats.Run()
	if err != nil {
		return nil, err
	}
	n := &natsNet{node: node}
	if n.source, err = openReplica(ctx, dir, n.Connect, debounce); err != nil {
		node.Stop()
		return nil, fmt.Errorf("source replica: %w", err)
	}
	return n, nil
}

// Name implements syncNet.
func (n *natsNet) Name() string { return "NATS" }

// Source implements syncNet.
func (n *natsNet) Source() *converge.DB { return n.source.db }

// Connect implements syncNet.
func (n *natsNet) Connect(ctx context.Context, db *converge.DB) (*peerConn, error) {
	return natsConnect(ctx, n.node.ClientURL(), db.SyncStore())
}

// Close implements syncNet.
func (n *natsNet) Close() error {
	err := n.source.close()
	n.node.Stop()
	return err
}

// replicateNATSScenario is replication through NATS.
func replicateNATSScenario() *Scenario {
	const base = "raw NATS pub/sub of the same bytes"
	s := &Scenario{
		Name: "replicate-nats",
		Description: "One writer and -replicas receiving replicas, each a Converge DB (no fsync) with a Replicator whose peer is " +
			"Converge's NATS transport, on an embedded NATS server on loopback; measured as replicate-http is. " +
			"Baseline: raw NATS (nats.go core publish/subscribe, no JetStream) of the same op bytes: one publishing connection, " +
			"-replicas subscribing connections; throughput until every subscriber received every message, latency from the publish " +
			"to the subscriber's handler. Nothing is stored: it is the messaging floor under any NATS transport.",
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			ops, err := e.ops(ctx, e.cfg.ReplicateOps+e.cfg.LatencySamples)
			if err != nil {
				return nil, err
			}
			payloads := rawOps(ops)
			t := &Trial{
				Metrics: replicateMetrics(base),
				Baseline: func(ctx context.Context, _ int) (Values, error) {
					return rawNATSPubSubRun(ctx, payloads, e.cfg.ReplicateOps, e.cfg.Replicas, e.cfg.LatencySamples)
				},
			}
			if natsConnect != nil {
				t.Ours = func(ctx context.Context, _ int) (Values, error) { return replicateOverNATS(ctx, e) }
			}
			return t, nil
		},
	}
	if natsConnect == nil {
		s.Unavailable = natsUnavailable
	}
	return s
}

// catchupNATSScenario is catch-up through NATS.
func catchupNATSScenario() *Scenario {
	const base = "raw NATS request/reply pages into Pebble"
	s := &Scenario{
		Name: "catchup-nats",
		Description: "A fresh replica -catchup-ops ops behind pulls them through Converge's NATS transport from a source replica " +
			"connected to the same embedded NATS server, with db.SyncWith; measured as catchup-http is (time, and the transport's " +
			"wire bytes against the ops' encoded size, the bytes baseline). Time baseline: the same op bytes fetched with raw NATS " +
			"request/reply, pages of up to 1000 ops from a responder reading raw Pebble, each page stored in the client's raw Pebble " +
			"in one batch: no vectors, states or merge.",
		Prepare: func(ctx context.Context, e *env) (_ *Trial, err error) {
			n := e.cfg.CatchupOps
			ops, err := e.ops(ctx, n)
			if err != nil {
				return nil, err
			}
			raws := rawOps(ops)
			encoded := float64(encodedSize(ops))
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
			dir, err := e.dir("nats-pages")
			if err != nil {
				return nil, err
			}
			pages, err := startNATSPages(dir, raws)
			if err != nil {
				return nil, err
			}
			closers = append(closers, pages.close)
			t := &Trial{
				Metrics: catchupMetrics(base),
				Baseline: func(ctx context.Context, _ int) (Values, error) {
					v, err := pages.fetch(ctx, e, uint64(n))
					if err != nil {
						return nil, err
					}
					v["wire bytes"] = encoded
					return v, nil
				},
				Close: closeAll,
			}
			if natsConnect != nil {
				sdir, err := e.dir("nats-source")
				if err != nil {
					return nil, err
				}
				net, err := startNATSNet(ctx, sdir, e.cfg.Debounce)
				if err != nil {
					return nil, err
				}
				closers = append(closers, net.Close)
				if err := loadSource(ctx, net.Source(), raws); err != nil {
					return nil, err
				}
				t.Ours = func(ctx context.Context, _ int) (Values, error) {
					return catchupConverge(ctx, e, net, n)
				}
			}
			return t, nil
		},
	}
	if natsConnect == nil {
		s.Unavailable = natsUnavailable
	}
	return s
}

// natsPagesSubject is the subject of the raw NATS catch-up's requests.
const natsPagesSubject = "bench.pages"

// natsPages is the raw NATS catch-up baseline's responder: an embedded
// server and a connection answering "from to" requests with a page of the
// ops (the relay's wire format) read from raw Pebble.
type natsPages struct {
	node  *embednats.Node
	conn  *nats.Conn
	store *relayStore
}

// startNATSPages loads raws into a raw Pebble in dir and serves them.
func startNATSPages(dir string, raws [][]byte) (_ *natsPages, err error) {
	rs, err := openRawPebble(dir)
	if err != nil {
		return nil, err
	}
	p := &natsPages{store: &relayStore{rawStore: rs, wo: writeOptions(false)}}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.close())
		}
	}()
	for i := 0; i < len(raws); i += relayPageOps {
		if err := p.store.put(uint64(i), raws[i:min(i+relayPageOps, len(raws))]); err != nil {
			return nil, err
		}
	}
	if p.node, err = embednats.Run(); err != nil {
		return nil, err
	}
	if p.conn, err = nats.Connect(p.node.ClientURL(), nats.Name("converge-bench-pages"), nats.NoReconnect()); err != nil {
		return nil, fmt.Errorf("raw NATS: connect: %w", err)
	}
	// Half the server's max payload leaves room for the framing.
	maxBytes := int(p.conn.MaxPayload() / 2)
	_, err = p.conn.Subscribe(natsPagesSubject, func(m *nats.Msg) {
		var from, to uint64
		if _, err := fmt.Sscan(string(m.Data), &from, &to); err != nil {
			_ = m.Respond(nil) // an empty page: the requester fails
			return
		}
		body, _, err := p.store.page(from, to, maxBytes)
		if err != nil {
			body = nil
		}
		_ = m.Respond(body) // a lost reply times the requester out
	})
	if err != nil {
		return nil, fmt.Errorf("raw NATS: subscribe: %w", err)
	}
	if err := p.conn.Flush(); err != nil {
		return nil, fmt.Errorf("raw NATS: %w", err)
	}
	return p, nil
}

// fetch requests the ops 0..n-1 page by page into a fresh raw Pebble.
func (p *natsPages) fetch(ctx context.Context, e *env, n uint64) (_ Values, err error) {
	dir, err := e.dir("nats-catchup")
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
	nc, err := nats.Connect(p.node.ClientURL(), nats.Name("converge-bench-catchup"), nats.NoReconnect())
	if err != nil {
		return nil, fmt.Errorf("raw NATS: connect: %w", err)
	}
	defer nc.Close()
	start := time.Now()
	for next := uint64(0); next < n; {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := nc.RequestWithContext(rctx, natsPagesSubject, fmt.Appendf(nil, "%d %d", next, n))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("raw NATS: page at %d: %w", next, err)
		}
		ops, err := decodeOps(m.Data)
		if err != nil {
			return nil, err
		}
		if len(ops) == 0 {
			return nil, fmt.Errorf("raw NATS: empty page at %d", next)
		}
		if err := store.put(next, ops); err != nil {
			return nil, err
		}
		next += uint64(len(ops))
	}
	return Values{"catch-up time": time.Since(start).Seconds()}, nil
}

// close stops the responder and closes its store.
func (p *natsPages) close() error {
	if p.conn != nil {
		p.conn.Close()
	}
	if p.node != nil {
		p.node.Stop()
	}
	return p.store.Close()
}

// rawNATSPubSubRun starts an embedded NATS server and runs rawNATSPubSub.
func rawNATSPubSubRun(ctx context.Context, payloads [][]byte, n, receivers, samples int) (Values, error) {
	node, err := embednats.Run()
	if err != nil {
		return nil, err
	}
	defer node.Stop()
	return rawNATSPubSub(ctx, node.ClientURL(), payloads, n, receivers, samples)
}

// rawNATSPubSub is the raw NATS baseline of replication, on the server at
// url: receivers subscribing connections and one publishing connection.
// Latency: samples messages (payloads[n:]) published one at a time, each
// timed from the publish until each subscriber's handler got it.
// Throughput: payloads[:n] published back to back, until every subscriber
// received them all.
func rawNATSPubSub(ctx context.Context, url string, payloads [][]byte, n, receivers, samples int) (_ Values, err error) {
	if len(payloads) < n+samples {
		return nil, fmt.Errorf("raw NATS: %d payloads for %d messages and %d samples", len(payloads), n, samples)
	}
	const subject = "bench.ops"
	counters := make([]*counter, receivers)
	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	connect := func() (*nats.Conn, error) {
		c, err := nats.Connect(url, nats.Name("converge-bench"), nats.NoReconnect())
		if err != nil {
			return nil, fmt.Errorf("raw NATS: connect: %w", err)
		}
		conns = append(conns, c)
		return c, nil
	}
	for i := range counters {
		c, err := connect()
		if err != nil {
			return nil, err
		}
		cnt := newCounter()
		counters[i] = cnt
		sub, err := c.Subscribe(subject, func(*nats.Msg) { cnt.add(1) })
		if err != nil {
			return nil, fmt.Errorf("raw NATS: subscribe: %w", err)
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return nil, fmt.Errorf("raw NATS: %w", err)
		}
		c.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { cnt.fail(err) })
		if err := c.FlushWithContext(ctx); err != nil { // the subscription reached the server
			return nil, fmt.Errorf("raw NATS: %w", err)
		}
	}
	pub, err := connect()
	if err != nil {
		return nil, err
	}
	sent := 0
	publish := func(p []byte) error {
		if err := pub.Publish(subject, p); err != nil {
			return fmt.Errorf("raw NATS: publish: %w", err)
		}
		sent++
		return nil
	}
	lat := make([]time.Duration, 0, samples*receivers)
	for i := range samples {
		start := time.Now()
		if err := publish(payloads[n+i]); err != nil {
			return nil, err
		}
		if lat, err = sampleLatency(ctx, counters, sent, start, lat); err != nil {
			return nil, fmt.Errorf("raw NATS: latency sample %d: %w", i, err)
		}
	}
	start := time.Now()
	for i := range n {
		if err := publish(payloads[i]); err != nil {
			return nil, err
		}
	}
	if err := pub.FlushWithContext(ctx); err != nil {
		return nil, fmt.Errorf("raw NATS: %w", err)
	}
	if err := waitAll(ctx, counters, sent); err != nil {
		return nil, fmt.Errorf("raw NATS: throughput: %w", err)
	}
	return replicateValues(n, time.Since(start), lat), nil
}

// replicateOverNATS measures replication from a writer to e.cfg.Replicas
// replicas on an embedded NATS server.
func replicateOverNATS(ctx context.Context, e *env) (_ Values, err error) {
	if natsConnect == nil {
		return nil, errNATSUnavailable
	}
	dir, err := e.dir("nats-source")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(dir)
	net, err := startNATSNet(ctx, dir, e.cfg.Debounce)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, net.Close()) }()
	return replicateConverge(ctx, e, net)
}
