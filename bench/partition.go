package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/proptest"
)

// converge-partition: replicas, some of them cut off, writes on both
// sides (some to the same records), then the heal; measured from the heal
// until every replica (and the hub) hold the same ops and the same state
// hash, once through the HTTP hub (here) and once through a NATS fleet of
// leaf-node edges (partitionnats.go), each beside its raw baseline.

// converge-partition's metrics, one per network.
const (
	metricConvergeHTTP = "time to converge (http)"
	metricConvergeNATS = "time to converge (nats)"
)

func partitionScenario() *Scenario {
	return &Scenario{
		Name: "converge-partition",
		Description: "-partition-replicas Converge replicas (no fsync, Replicator debounce -debounce), measured over two networks, one row each. " +
			"(http): the replicas sync through the HTTP hub (one more replica, httptransport on loopback), each client connection through " +
			"a TCP proxy (internal/embednats.Proxy) that can cut it. " +
			fmt.Sprintf("(nats): each replica's transport/nats connection goes to an edge NATS server of its own, a leaf node of a %d-server "+
				"hub cluster (internal/embednats, loopback) whose leaf link goes through such a proxy (the edges ignore the leaf URLs the hubs "+
				"advertise, so the proxy is their only way in); the transports announce their vector every %v (Options.Heartbeat) and the "+
				"replicators sync every %v (Interval). ", natsPartitionHubs, natsPartitionHeartbeat, natsPartitionInterval) +
			"Both: after a shared seed, the -partition-minority first replicas are cut off (each alone; over NATS, once its edge has dropped " +
			"its leaf link); every replica then writes -partition-writes puts, the first -partition-shared of them to the same records on " +
			"every replica (concurrent writes: conflicts), the rest to its own. Once the connected side has settled (and each cut-off " +
			"replica is checked to lack the others' writes), the proxies heal; measured: the time until every replica (and the HTTP hub) hold the " +
			"same ops (version vectors) and the same state hash, checked after each change and every 5ms. Over NATS no client reconnects " +
			"(only the leaf links broke): the edges redial every 50ms, so the time includes up to about 50ms of redial; then the cut-off " +
			"replicas' failing syncs, retried every 1-25ms (MinBackoff, MaxBackoff), reach a replica of the other side, and " +
			fmt.Sprintf("the %v heartbeats make the others fetch what an announcer holds and they lack; without them the rest ", natsPartitionHeartbeat) +
			fmt.Sprintf("waits for the %v periodic sync, so the figure depends on the heartbeat. ", natsPartitionInterval) +
			"Baselines move the same op bytes with no merge. (http): the raw HTTP relay: the cut-off replicas POST their ops to the " +
			"relay hub, then every replica downloads the ops it lacks in pages into its raw Pebble, all in parallel: a lower bound for " +
			"moving the divergent ops through one hub. (nats): raw NATS pub/sub (core NATS, nats.go) on a fleet of the same shape, " +
			"cut and healed the same way: each replica a raw Pebble and a connection to its edge; from the heal, each cut-off replica " +
			"publishes its own ops and one connected replica the connected side's, in pages of up to 1000 ops, each as soon as the " +
			"replicas it publishes to answer a request (polled every 1ms), and every replica stores the pages it lacks: a lower bound " +
			"for moving the divergent ops through the healed leaf links, redial included.",
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			captured, err := e.ops(ctx, e.cfg.PartitionReplicas*e.cfg.PartitionWrites)
			if err != nil {
				return nil, err
			}
			ops := newPartitionOps(e.cfg, rawOps(captured))
			type network struct {
				name       string
				ours, base func(context.Context) (Values, error)
			}
			nets := []network{
				{"http", func(ctx context.Context) (Values, error) { return partitionConverge(ctx, e) },
					func(ctx context.Context) (Values, error) { return partitionRelay(ctx, e, ops) }},
				{"nats", func(ctx context.Context) (Values, error) { return partitionConvergeNATS(ctx, e) },
					func(ctx context.Context) (Values, error) { return partitionRawNATS(ctx, e, ops) }},
			}
			// Each side measures every network, taking turns at going first.
			side := func(ctx context.Context, run int, fn func(network) func(context.Context) (Values, error)) (Values, error) {
				out := Values{}
				for k := range nets {
					n := nets[(k+run)%len(nets)]
					v, err := fn(n)(ctx)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", n.name, err)
					}
					maps.Copy(out, v)
				}
				return out, nil
			}
			return &Trial{
				Metrics: []Metric{
					{Name: metricConvergeHTTP, Kind: Duration, Baseline: "raw HTTP relay moving the same ops"},
					{Name: metricConvergeNATS, Kind: Duration, Baseline: "raw NATS pub/sub moving the same ops"},
				},
				Ours: func(ctx context.Context, run int) (Values, error) {
					return side(ctx, run, func(n network) func(context.Context) (Values, error) { return n.ours })
				},
				Baseline: func(ctx context.Context, run int) (Values, error) {
					return side(ctx, run, func(n network) func(context.Context) (Values, error) { return n.base })
				},
			}, nil
		},
	}
}

// partitionConverge runs one partition and heal through the HTTP hub.
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
	elapsed, err := partitionHeal(ctx, e, partitionNet{
		reps: reps,
		hub:  hub.db,
		cut: func(_ context.Context, i int) error {
			proxies[i].Cut()
			return nil
		},
		heal: func(i int) error {
			proxies[i].Heal()
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return Values{metricConvergeHTTP: elapsed.Seconds()}, nil
}

// partitionNet is what partitionHeal needs of a network: its replicas, a
// hub replica if it has one, and the links of the replicas it cuts off.
type partitionNet struct {
	reps []*replica
	hub  *converge.DB // nil: no replica besides reps
	// cut cuts replica i off from the others, returning once it is.
	cut func(ctx context.Context, i int) error
	// heal restores replica i's link, failing if the partition leaked.
	heal func(i int) error
}

// partitionHeal runs one partition and heal on n: a shared seed, the
// -partition-minority first replicas cut off, writes on every replica,
// the connected side settled, then the heal. It returns the time from the
// heal until every replica (and the hub) holds the same ops and state.
func partitionHeal(ctx context.Context, e *env, n partitionNet) (time.Duration, error) {
	cfg := e.cfg
	reps := n.reps
	var all, connected []*converge.DB
	if n.hub != nil {
		all, connected = append(all, n.hub), append(connected, n.hub)
	}
	for i, r := range reps {
		all = append(all, r.db)
		if i >= cfg.PartitionMinority {
			connected = append(connected, r.db)
		}
	}

	// Seed the shared records everywhere.
	err := reps[0].db.Update(ctx, benchNS, func(tx *converge.Tx) error {
		for k := range cfg.PartitionShared {
			t := makeTask(taskKey("shared", k), k)
			if _, err := reps[0].tasks.Tx(tx).Put(&t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("seed: %w", err)
	}
	if err := waitConverged(ctx, all); err != nil {
		return 0, fmt.Errorf("seed: %w", err)
	}

	for i := range cfg.PartitionMinority {
		if err := n.cut(ctx, i); err != nil {
			return 0, fmt.Errorf("cutting replica %d off: %w", i, err)
		}
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
		return 0, err
	}
	if err := waitConverged(ctx, connected); err != nil {
		return 0, fmt.Errorf("connected side: %w", err)
	}

	if err := partitionHeld(ctx, reps, cfg.PartitionMinority); err != nil {
		return 0, err
	}

	start := time.Now()
	for i := range cfg.PartitionMinority {
		if err := n.heal(i); err != nil {
			return 0, err
		}
	}
	if err := waitConverged(ctx, all); err != nil {
		return 0, fmt.Errorf("after the heal: %w", err)
	}
	return time.Since(start), nil
}

// partitionHeld checks that the cut held: no cut-off replica (the first
// minority of reps) holds all the writes of a connected one.
func partitionHeld(ctx context.Context, reps []*replica, minority int) error {
	for _, c := range reps[minority:] {
		want, err := c.db.Admin().Vector(ctx, benchNS)
		if err != nil {
			return err
		}
		id := c.db.ReplicaID()
		for i, r := range reps[:minority] {
			got, err := r.db.Admin().Vector(ctx, benchNS)
			if err != nil {
				return err
			}
			if got[id] >= want[id] {
				return fmt.Errorf("cut-off replica %d holds all the writes of connected replica %s before the heal: the partition leaked", i, id)
			}
		}
	}
	return nil
}

// waitConverged waits until every db holds the same ops (equal vectors)
// and the same state hash: proptest.WaitConverged, which re-checks after
// every change any of them makes.
func waitConverged(ctx context.Context, dbs []*converge.DB) error {
	return proptest.WaitConverged(ctx, benchNS, dbs...)
}

// partitionOps is how the baselines number the ops written apart: replica
// i's writes are raws[i*w:(i+1)*w], the minority's first, so the connected
// side's are raws[minorityEnd:].
type partitionOps struct {
	raws        [][]byte
	w, m, n     int    // writes per replica, minority, replicas
	minorityEnd uint64 // the first op of the connected side
}

func newPartitionOps(cfg config, raws [][]byte) partitionOps {
	return partitionOps{raws: raws, w: cfg.PartitionWrites, m: cfg.PartitionMinority, n: cfg.PartitionReplicas,
		minorityEnd: uint64(cfg.PartitionMinority * cfg.PartitionWrites)}
}

// total is the number of ops.
func (p partitionOps) total() uint64 { return uint64(len(p.raws)) }

// own is replica i's ops, lo (inclusive) to hi (exclusive).
func (p partitionOps) own(i int) (lo, hi uint64) { return uint64(i * p.w), uint64((i + 1) * p.w) }

// held is what replica i holds when the partition heals: a cut-off
// replica its own ops, a connected one the connected side's.
func (p partitionOps) held(i int) (lo, hi uint64) {
	if i < p.m {
		return p.own(i)
	}
	return p.minorityEnd, p.total()
}

// lacks is what replica i lacks when the partition heals.
func (p partitionOps) lacks(i int) [][2]uint64 {
	lo, hi := p.held(i)
	var out [][2]uint64
	for _, r := range [][2]uint64{{0, lo}, {hi, p.total()}} {
		if r[0] < r[1] {
			out = append(out, r)
		}
	}
	return out
}

// openStores opens a raw Pebble per replica, named after name, each
// loaded with what its replica holds when the partition heals. close
// closes them and removes their directories.
func (p partitionOps) openStores(e *env, name string) (stores []*relayStore, close func() error, err error) {
	var dirs []string
	close = func() error {
		var errs []error
		for _, s := range stores {
			errs = append(errs, s.Close()) // before the directories go
		}
		for _, d := range dirs {
			e.removeDir(d)
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, close())
		}
	}()
	for i := range p.n {
		d, err := e.dir(fmt.Sprintf("%s%d", name, i))
		if err != nil {
			return nil, nil, err
		}
		dirs = append(dirs, d)
		rs, err := openRawPebble(d)
		if err != nil {
			return nil, nil, err
		}
		s := &relayStore{rawStore: rs, wo: writeOptions(false)}
		stores = append(stores, s)
		lo, hi := p.held(i)
		for k := lo; k < hi; k += relayPageOps {
			if err := s.put(k, p.raws[k:min(k+relayPageOps, hi)]); err != nil {
				return nil, nil, err
			}
		}
	}
	return stores, close, nil
}

// partitionRelay is the HTTP baseline: the ops the sides wrote apart,
// moved with the raw HTTP relay, which numbers them as partitionOps does.
func partitionRelay(ctx context.Context, e *env, ops partitionOps) (_ Values, err error) {
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
	if err := hub.load(ops.minorityEnd, ops.raws[ops.minorityEnd:]); err != nil {
		return nil, err
	}
	stores, closeStores, err := ops.openStores(e, "partition-relay")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, closeStores()) }()

	start := time.Now()
	// The cut-off replicas push their ops.
	var wg sync.WaitGroup
	errs := make([]error, ops.n)
	for i := range ops.m {
		wg.Go(func() {
			c := newRelayClient(hub.url)
			defer c.close()
			lo, hi := ops.own(i)
			for k := lo; k < hi; k += relayPageOps {
				if err := c.publish(ctx, ops.raws[k:min(k+relayPageOps, hi)], int64(k)); err != nil {
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
			for _, r := range ops.lacks(i) {
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
	return Values{metricConvergeHTTP: time.Since(start).Seconds()}, nil
}
