package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Replication: one writer, -replicas receiving replicas, through a network
// (the HTTP hub here, NATS in nats.go). Throughput is -replicate-ops puts
// written as fast as the writer can, until every receiver holds all of
// them; latency is -latency-samples puts made one at a time, each timed
// from the start of the writer's commit until the change subscription of
// each receiver delivers it (one sample per receiver per write).

// replicateMetrics are the replication scenarios' metrics against base.
func replicateMetrics(base string) []Metric {
	return []Metric{
		{Name: "throughput", Kind: Throughput, Baseline: base},
		{Name: "latency p50", Kind: Latency, Baseline: base},
		{Name: "latency p99", Kind: Latency, Baseline: base},
	}
}

// replicateValues are the replication figures.
func replicateValues(n int, d time.Duration, lat []time.Duration) Values {
	return Values{
		"throughput":  perSecond(n, d),
		"latency p50": ms(percentile(lat, 50)),
		"latency p99": ms(percentile(lat, 99)),
	}
}

// replicateHTTPScenario is replication through the HTTP hub.
func replicateHTTPScenario() *Scenario {
	const base = "raw HTTP relay of the same bytes"
	return &Scenario{
		Name: "replicate-http",
		Description: "One writer and -replicas receiving replicas, each a Converge DB (no fsync) with a Replicator (debounce -debounce) " +
			"whose peer is an httptransport.Client of an HTTP hub: a Converge replica served by httptransport.Server on a loopback listener, " +
			"its live streams woken by a change subscription. Receivers get ops from the hub's live stream. Throughput: -replicate-ops puts " +
			"until every receiver holds them all; latency: commit on the writer until a receiver's change subscription delivers the change. " +
			"Baseline: a hand-rolled HTTP relay moving the same op bytes the same way: the writer stores each op in raw Pebble and POSTs " +
			"what has queued (up to 1000 ops, the sync page size) to a bare net/http hub that stores them in raw Pebble and fans them out " +
			"on chunked streams to the receivers, which store them in raw Pebble. It has no vectors, states, merge, auth, compression or retries: " +
			"a lower bound for moving and storing the same bytes over the same loopback HTTP.",
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			ops, err := e.ops(ctx, e.cfg.ReplicateOps+e.cfg.LatencySamples)
			if err != nil {
				return nil, err
			}
			payloads := rawOps(ops)
			return &Trial{
				Metrics: replicateMetrics(base),
				Ours: func(ctx context.Context, _ int) (Values, error) {
					return replicateOverHTTP(ctx, e)
				},
				Baseline: func(ctx context.Context, _ int) (Values, error) {
					return relayReplicate(ctx, e, payloads)
				},
			}, nil
		},
	}
}

// replicateOverHTTP runs replicateConverge through a fresh HTTP hub.
func replicateOverHTTP(ctx context.Context, e *env) (_ Values, err error) {
	dir, err := e.dir("hub")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(dir)
	hub, err := startHTTPHub(dir)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, hub.Close()) }()
	return replicateConverge(ctx, e, hub)
}

// replicateConverge measures replication from a writer to e.cfg.Replicas
// receivers connected through net.
func replicateConverge(ctx context.Context, e *env, net syncNet) (_ Values, err error) {
	var all []*replica
	var dirs []string
	defer func() {
		err = errors.Join(err, closeAll(all)) // before their directories go
		for _, d := range dirs {
			e.removeDir(d)
		}
	}()
	for i := range 1 + e.cfg.Replicas {
		dir, err := e.dir(fmt.Sprintf("replica%d", i))
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, dir)
		r, err := openReplica(ctx, dir, net.Connect, e.cfg.Debounce)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", net.Name(), err)
		}
		all = append(all, r)
	}
	writer, receivers := all[0], all[1:]
	origin := writer.db.ReplicaID()
	counters := make([]*counter, len(receivers))
	for i, r := range receivers {
		c, stop := countFrom(ctx, r.db, origin)
		defer stop()
		counters[i] = c
	}
	written := 0
	put := func(key string, i int) error {
		t := makeTask(key, i)
		if _, err := writer.tasks.Put(ctx, benchNS, &t); err != nil {
			return fmt.Errorf("writer: put %s: %w", key, err)
		}
		written++
		return nil
	}
	// Warm up: the receivers' live streams are connected once a first
	// write reaches them.
	if err := put("warmup", 0); err != nil {
		return nil, err
	}
	if err := waitAll(ctx, counters, written); err != nil {
		return nil, fmt.Errorf("%s: warm-up: %w", net.Name(), err)
	}
	lat := make([]time.Duration, 0, e.cfg.LatencySamples*len(counters))
	for i := range e.cfg.LatencySamples {
		start := time.Now()
		if err := put(taskKey("lat", i), i); err != nil {
			return nil, err
		}
		if lat, err = sampleLatency(ctx, counters, written, start, lat); err != nil {
			return nil, fmt.Errorf("%s: latency sample %d: %w", net.Name(), i, err)
		}
	}
	start := time.Now()
	for i := range e.cfg.ReplicateOps {
		if err := put(taskKey("task", i), i); err != nil {
			return nil, err
		}
	}
	if err := waitAll(ctx, counters, written); err != nil {
		return nil, fmt.Errorf("%s: throughput: %w", net.Name(), err)
	}
	elapsed := time.Since(start)
	// Check with the vectors that every receiver holds every op.
	want, err := writer.db.Admin().Vector(ctx, benchNS)
	if err != nil {
		return nil, err
	}
	for i, r := range receivers {
		got, err := r.db.Admin().Vector(ctx, benchNS)
		if err != nil {
			return nil, err
		}
		if got[origin] < want[origin] {
			return nil, fmt.Errorf("%s: receiver %d holds %d of the writer's %d ops", net.Name(), i, got[origin], want[origin])
		}
	}
	return replicateValues(e.cfg.ReplicateOps, elapsed, lat), nil
}

// relaySender sends the ops queued by a writer to a relay hub, as many as
// have queued (up to a page) per POST, as soon as the previous POST is done.
type relaySender struct {
	client *relayClient
	mu     sync.Mutex
	queue  [][]byte
	kick   chan struct{}
}

// send queues op.
func (s *relaySender) send(op []byte) {
	s.mu.Lock()
	s.queue = append(s.queue, op)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run posts queued ops until ctx ends or a POST fails.
func (s *relaySender) run(ctx context.Context) error {
	for {
		s.mu.Lock()
		n := min(len(s.queue), relayPageOps)
		page := s.queue[:n:n]
		s.queue = s.queue[n:]
		s.mu.Unlock()
		if n == 0 {
			select {
			case <-s.kick:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		if err := s.client.publish(ctx, page, -1); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// relayReceiver subscribes to a relay hub's stream and stores the ops in its
// own raw Pebble, counting them. Its goroutine, in wg, ends with ctx; then
// call the returned close.
func relayReceiver(ctx context.Context, dir, url string, wg *sync.WaitGroup) (*counter, func() error, error) {
	rs, err := openRawPebble(dir)
	if err != nil {
		return nil, nil, err
	}
	store := &relayStore{rawStore: rs, wo: writeOptions(false)}
	c := newCounter()
	client := newRelayClient(url)
	started := make(chan error, 1)
	next := uint64(0)
	wg.Go(func() {
		err := client.subscribe(ctx, func() { started <- nil }, func(ops [][]byte) error {
			if err := store.put(next, ops); err != nil {
				return err
			}
			next += uint64(len(ops))
			c.add(len(ops))
			return nil
		})
		if err == nil {
			err = errors.New("relay stream ended")
		}
		c.fail(err)
		select {
		case started <- err: // it never started
		default:
		}
	})
	if err := <-started; err != nil {
		return nil, nil, errors.Join(err, store.Close())
	}
	return c, func() error { client.close(); return store.Close() }, nil
}

// relayReplicate is replicate's baseline: the same op bytes through the raw
// HTTP relay, measured the same way.
func relayReplicate(ctx context.Context, e *env, payloads [][]byte) (_ Values, err error) {
	dir, err := e.dir("relay")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(dir)
	hub, err := startRelayHub(dir, false)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, hub.Close()) }()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	counters := make([]*counter, e.cfg.Replicas)
	for i := range counters {
		rdir, err := e.dir(fmt.Sprintf("relay-receiver%d", i))
		if err != nil {
			return nil, err
		}
		defer e.removeDir(rdir)
		c, closeRecv, err := relayReceiver(ctx, rdir, hub.url, &wg)
		if err != nil {
			return nil, fmt.Errorf("relay receiver %d: %w", i, err)
		}
		defer func() { cancel(); wg.Wait(); err = errors.Join(err, closeRecv()) }()
		counters[i] = c
	}
	wdir, err := e.dir("relay-writer")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(wdir)
	ws, err := openRawPebble(wdir)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, ws.Close()) }()
	local := &relayStore{rawStore: ws, wo: writeOptions(false)}
	client := newRelayClient(hub.url)
	defer client.close()
	sender := &relaySender{client: client, kick: make(chan struct{}, 1)}
	senderErr := make(chan error, 1)
	wg.Go(func() {
		if err := sender.run(ctx); err != nil {
			for _, c := range counters {
				c.fail(fmt.Errorf("sender: %w", err))
			}
			senderErr <- err
		}
	})

	written := 0
	put := func(op []byte) error {
		if err := local.put(uint64(written), [][]byte{op}); err != nil {
			return err
		}
		sender.send(op)
		written++
		return nil
	}
	if err := put(payloads[0]); err != nil { // warm-up, as for Converge
		return nil, err
	}
	if err := waitAll(ctx, counters, written); err != nil {
		return nil, fmt.Errorf("relay: warm-up: %w", err)
	}
	lat := make([]time.Duration, 0, e.cfg.LatencySamples*len(counters))
	for i := range e.cfg.LatencySamples {
		start := time.Now()
		if err := put(payloads[e.cfg.ReplicateOps+i]); err != nil {
			return nil, err
		}
		if lat, err = sampleLatency(ctx, counters, written, start, lat); err != nil {
			return nil, fmt.Errorf("relay: latency sample %d: %w", i, err)
		}
	}
	start := time.Now()
	for i := range e.cfg.ReplicateOps {
		if err := put(payloads[i]); err != nil {
			return nil, err
		}
	}
	if err := waitAll(ctx, counters, written); err != nil {
		return nil, fmt.Errorf("relay: throughput: %w", err)
	}
	elapsed := time.Since(start)
	select {
	case err := <-senderErr:
		return nil, fmt.Errorf("relay sender: %w", err)
	default:
	}
	return replicateValues(e.cfg.ReplicateOps, elapsed, lat), nil
}
