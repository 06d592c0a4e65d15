package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
)

// converge-partition: replicas syncing through the HTTP hub, some of them
// cut off, writes on both sides (some to the same records), then the heal;
// measured from the heal until every replica and the hub hold the same
// ops and the same state hash. It will move to NATS with transport/nats.

// convergeCheckInterval is how often waitConverged re-checks the vectors
// besides after every change: an op that changes nothing visible (a write
// that loses to a later one) publishes no change.
const convergeCheckInterval = 5 * time.Millisecond

func partitionScenario() *Scenario {
	const base = "raw HTTP relay moving the same ops"
	return &Scenario{
		Name: "converge-partition",
		Description: "-partition-replicas Converge replicas (no fsync) replicate through the HTTP hub (one more replica, httptransport " +
			"on loopback), each client connection through a TCP proxy (internal/embednats.Proxy) that can cut it. After a shared seed, " +
			"the -partition-minority first replicas are cut off from the hub (each alone); every replica then writes -partition-writes puts, " +
			"the first -partition-shared of them to the same records on every replica (concurrent writes: conflicts), the rest to its own. " +
			"Once the connected side has settled, the proxies heal; measured: the time until every replica and the hub hold the same ops " +
			"(version vectors) and the same state hash, checked after each change and every 5ms. The HTTP hub is the network " +
			"(transport.MemPeer would have no live push); this moves to NATS with transport/nats. " +
			"Baseline: the same number of op bytes moved with the raw HTTP relay with no merge: the cut-off replicas POST their ops to the " +
			"relay hub, then every replica downloads the ops it lacks in pages into its raw Pebble, all in parallel: a lower bound for " +
			"moving the divergent ops through one hub.",
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			ops, err := e.ops(ctx, e.cfg.PartitionReplicas*e.cfg.PartitionWrites)
			if err != nil {
				return nil, err
			}
			raws := rawOps(ops)
			return &Trial{
				Metrics: []Metric{{Name: "time to converge", Kind: Duration, Baseline: base}},
				Ours: func(ctx context.Context, _ int) (Values, error) {
					return partitionConverge(ctx, e)
				},
				Baseline: func(ctx context.Context, _ int) (Values, error) {
					return partitionRelay(ctx, e, raws)
				},
			}, nil
		},
	}
}

// partitionConverge runs one partition and heal.
func partitionConverge(ctx context.Context, e *env) (_ Values, err error) {
	cfg := e.cfg
	hubDir, err := e.dir("partition-hub")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(hubDir)
	hub, err := startHTTPHub(hubDir)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, hub.Close()) }()
	var reps []*replica
	var proxies []*embednats.Proxy
	var dirs []string
	defer func() {
		err = errors.Join(err, closeAll(reps)) // before the proxies and the directories go
		for _, p := range proxies {
			err = errors.Join(err, p.Close())
		}
		for _, d := range dirs {
			e.removeDir(d)
		}
	}()
	hubAddr := strings.TrimPrefix(hub.URL(), "http://")
	for i := range cfg.PartitionReplicas {
		p, err := embednats.NewProxy(hubAddr)
		if err != nil {
			return nil, err
		}
		proxies = append(proxies, p)
		dir, err := e.dir(fmt.Sprintf("partition%d", i))
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, dir)
		r, err := openReplica(ctx, dir, func(context.Context, *converge.DB) (*peerConn, error) {
			return connectHTTP("http://" + p.Addr())
		}, cfg.Debounce)
		if err != nil {
			return nil, fmt.Errorf("replica %d: %w", i, err)
		}
		reps = append(reps, r)
	}
	all := []*converge.DB{hub.db}
	for _, r := range reps {
		all = append(all, r.db)
	}
	minority, majority := reps[:cfg.PartitionMinority], reps[cfg.PartitionMinority:]

	// Seed the shared records everywhere.
	err = reps[0].db.Update(ctx, benchNS, func(tx *converge.Tx) error {
		for k := range cfg.PartitionShared {
			t := makeTask(taskKey("shared", k), k)
			if _, err := reps[0].tasks.Tx(tx).Put(&t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if err := waitConverged(ctx, all); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}

	for i := range minority {
		proxies[i].Cut()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(reps))
	for i, r := range reps {
		wg.Go(func() {
			for j := range cfg.PartitionWrites {
				key := taskKey(fmt.Sprintf("r%d", i), j)
				if j < cfg.PartitionShared {
					key = taskKey("shared", j)
				}
				t := makeTask(key, i*cfg.PartitionWrites+j)
				t.Owner = fmt.Sprintf("replica-%d", i)
				if _, err := r.tasks.Put(ctx, benchNS, &t); err != nil {
					errs[i] = fmt.Errorf("replica %d: put %s: %w", i, key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	connected := []*converge.DB{hub.db}
	for _, r := range majority {
		connected = append(connected, r.db)
	}
	if err := waitConverged(ctx, connected); err != nil {
		return nil, fmt.Errorf("connected side: %w", err)
	}

	start := time.Now()
	for i := range minority {
		proxies[i].Heal()
	}
	if err := waitConverged(ctx, all); err != nil {
		return nil, fmt.Errorf("after the heal: %w", err)
	}
	elapsed := time.Since(start)
	return Values{"time to converge": elapsed.Seconds()}, nil
}

// waitConverged waits until every db holds the same ops (equal vectors)
// and the same state hash, checking after each change any of them commits
// and every convergeCheckInterval.
func waitConverged(ctx context.Context, dbs []*converge.DB) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, db := range dbs {
		sub := db.Subscribe(benchNS)
		wg.Go(func() {
			defer sub.Close()
			for {
				if _, err := sub.Next(ctx); err != nil && !errors.Is(err, converge.ErrLagged) {
					return
				}
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		})
	}
	tick := time.NewTicker(convergeCheckInterval)
	defer tick.Stop()
	for {
		same, err := sameState(ctx, dbs)
		if err != nil || same {
			return err
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			vs := make([]string, len(dbs))
			for i, db := range dbs {
				v, _ := db.Vector(context.Background(), benchNS)
				vs[i] = fmt.Sprint(v)
			}
			return fmt.Errorf("not converged: %w; vectors %s", ctx.Err(), strings.Join(vs, " | "))
		}
	}
}

// sameState reports whether the dbs have equal vectors and state hashes
// (hashes are read only once the vectors are equal).
func sameState(ctx context.Context, dbs []*converge.DB) (bool, error) {
	v0, err := dbs[0].Vector(ctx, benchNS)
	if err != nil {
		return false, err
	}
	for _, db := range dbs[1:] {
		v, err := db.Vector(ctx, benchNS)
		if err != nil {
			return false, err
		}
		if !sameVector(v0, v) {
			return false, nil
		}
	}
	h0, err := dbs[0].StateHash(ctx, benchNS)
	if err != nil {
		return false, err
	}
	for _, db := range dbs[1:] {
		h, err := db.StateHash(ctx, benchNS)
		if err != nil {
			return false, err
		}
		if h != h0 {
			return false, nil
		}
	}
	return true, nil
}

func sameVector(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// partitionRelay is the baseline: the ops the sides wrote apart, moved
// with the raw HTTP relay. Replica i's writes are raws[i*w:(i+1)*w]; the
// relay numbers them the same way.
func partitionRelay(ctx context.Context, e *env, raws [][]byte) (_ Values, err error) {
	cfg := e.cfg
	w, m := cfg.PartitionWrites, cfg.PartitionMinority
	total := uint64(len(raws))
	own := func(i int) (uint64, uint64) { return uint64(i * w), uint64((i + 1) * w) }
	// The minority's ops come first in raws; the connected side's after.
	minorityEnd := uint64(m * w)

	dir, err := e.dir("partition-relay")
	if err != nil {
		return nil, err
	}
	defer e.removeDir(dir)
	hub, err := startRelayHub(dir, false)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, hub.Close()) }()
	// Before the heal: the hub holds the connected side's ops, each
	// connected replica holds them too, each cut-off replica its own.
	if err := hub.load(minorityEnd, raws[minorityEnd:]); err != nil {
		return nil, err
	}
	stores := make([]*relayStore, cfg.PartitionReplicas)
	var dirs []string
	defer func() {
		for _, s := range stores {
			if s != nil {
				err = errors.Join(err, s.Close()) // before the directories go
			}
		}
		for _, d := range dirs {
			e.removeDir(d)
		}
	}()
	for i := range stores {
		d, err := e.dir(fmt.Sprintf("partition-relay%d", i))
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, d)
		rs, err := openRawPebble(d)
		if err != nil {
			return nil, err
		}
		stores[i] = &relayStore{rawStore: rs, wo: writeOptions(false)}
		lo, hi := minorityEnd, total
		if i < m {
			lo, hi = own(i)
		}
		for k := lo; k < hi; k += relayPageOps {
			if err := stores[i].put(k, raws[k:min(k+relayPageOps, hi)]); err != nil {
				return nil, err
			}
		}
	}

	start := time.Now()
	// The cut-off replicas push their ops.
	var wg sync.WaitGroup
	errs := make([]error, cfg.PartitionReplicas)
	for i := range m {
		wg.Go(func() {
			c := newRelayClient(hub.url)
			defer c.close()
			lo, hi := own(i)
			for k := lo; k < hi; k += relayPageOps {
				if err := c.publish(ctx, raws[k:min(k+relayPageOps, hi)], int64(k)); err != nil {
					errs[i] = fmt.Errorf("replica %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Every replica downloads what it lacks.
	for i, s := range stores {
		wg.Go(func() {
			c := newRelayClient(hub.url)
			defer c.close()
			store := func(from uint64) func([][]byte) error {
				next := from
				return func(ops [][]byte) error {
					if err := s.put(next, ops); err != nil {
						return err
					}
					next += uint64(len(ops))
					return nil
				}
			}
			var ranges [][2]uint64
			if i < m {
				lo, hi := own(i)
				ranges = [][2]uint64{{0, lo}, {hi, total}}
			} else {
				ranges = [][2]uint64{{0, minorityEnd}}
			}
			for _, r := range ranges {
				if r[0] >= r[1] {
					continue
				}
				if err := c.fetch(ctx, r[0], r[1], store(r[0])); err != nil {
					errs[i] = fmt.Errorf("replica %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return Values{"time to converge": time.Since(start).Seconds()}, nil
}
