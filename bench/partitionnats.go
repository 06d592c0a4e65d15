package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// converge-partition through NATS: a fleet of leaf-node edge servers, one
// per replica, each linked to a hub cluster through a TCP proxy that can
// cut the link; Converge's replicas over transport/nats, and raw NATS
// pub/sub moving the same ops as the baseline.

const (
	// natsPartitionHubs is the size of the hub cluster.
	natsPartitionHubs = 3
	// natsPartitionHeartbeat is the transports' vector announcement
	// interval: after a heal, replicas that do not sync learn from the
	// announcements that others hold ops they lack.
	natsPartitionHeartbeat = 100 * time.Millisecond
	// natsPartitionInterval is the replicators' periodic sync.
	natsPartitionInterval = time.Second
	// natsLinkBound bounds the waits for a leaf link to go down or come up:
	// a failure bound, not a synchronization.
	natsLinkBound = 10 * time.Second
)

// natsFleet is a hub cluster and one edge server per replica, each edge a
// leaf node of a hub (round-robin) through a proxy: cutting the proxy cuts
// the edge, and the replicas connected to it, off the rest of the fleet
// while their own connections to the edge stay up.
type natsFleet struct {
	hubs  []*embednats.Node
	edges []*embednats.Node
	links []*embednats.Proxy
}

// startNATSFleet starts a fleet of n edges and waits until every edge's
// leaf link is up.
func startNATSFleet(n int) (_ *natsFleet, err error) {
	f := &natsFleet{}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.hubs, err = embednats.Cluster("hub", natsPartitionHubs); err != nil {
		return nil, err
	}
	for i := range n {
		link, err := embednats.NewProxy(f.hubs[i%len(f.hubs)].LeafURL().Host)
		if err != nil {
			return nil, err
		}
		f.links = append(f.links, link)
		// Not embednats.Leaf: its edge adds the leaf URLs the hub advertises
		// (the hubs' own ports) to its remote and, within one redial of a
		// cut, reaches the hub around the proxy. IgnoreDiscoveredServers
		// keeps the proxy the only way.
		o := embednats.Options()
		o.ServerName = fmt.Sprintf("edge-%d", i)
		o.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{link.URL("nats-leaf")}, IgnoreDiscoveredServers: true}}
		edge, err := embednats.Start(o)
		if err != nil {
			return nil, err
		}
		f.edges = append(f.edges, edge)
	}
	for _, edge := range f.edges {
		if err := embednats.WaitLeafNodes(edge, 1, natsLinkBound); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// cut cuts edge i's leaf link and waits until the edge has dropped it.
func (f *natsFleet) cut(ctx context.Context, i int) error {
	f.links[i].Cut()
	deadline := time.Now().Add(natsLinkBound)
	for f.edges[i].NumLeafNodes() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("edge %d still has %d leaf nodes %v after the cut", i, f.edges[i].NumLeafNodes(), natsLinkBound)
		}
		time.Sleep(time.Millisecond) // polling a condition
	}
	return nil
}

// heal restores edge i's leaf link; the edge redials it (every 50ms, the
// leaf nodes' reconnect interval in internal/embednats). It fails if the
// edge is linked already: the partition leaked.
func (f *natsFleet) heal(i int) error {
	if n := f.edges[i].NumLeafNodes(); n > 0 {
		return fmt.Errorf("edge %d has %d leaf nodes before the heal: its cut link was bypassed", i, n)
	}
	f.links[i].Heal()
	return nil
}

// close stops the servers and the proxies.
func (f *natsFleet) close() {
	for _, s := range f.edges {
		s.Stop()
	}
	for _, l := range f.links {
		_ = l.Close() // a proxy's listener: nothing to report
	}
	for _, s := range f.hubs {
		s.Stop()
	}
}

// partitionConvergeNATS runs one partition and heal with Converge's NATS
// transport on a natsFleet.
func partitionConvergeNATS(ctx context.Context, e *env) (_ Values, err error) {
	cfg := e.cfg
	fleet, err := startNATSFleet(cfg.PartitionReplicas)
	if err != nil {
		return nil, err
	}
	var reps []*replica
	var dirs []string
	defer func() {
		err = errors.Join(err, closeAll(reps)) // before the servers and the directories go
		fleet.close()
		for _, d := range dirs {
			e.removeDir(d)
		}
	}()
	opts := replicatorOptions(cfg.Debounce)
	opts.Interval = natsPartitionInterval
	for i := range cfg.PartitionReplicas {
		dir, err := e.dir(fmt.Sprintf("partition-nats%d", i))
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, dir)
		url := fleet.edges[i].ClientURL()
		r, err := openReplicaWith(ctx, dir, func(_ context.Context, db *converge.DB) (*peerConn, error) {
			return connectNATS(url, db.SyncStore(), natsPartitionHeartbeat)
		}, opts)
		if err != nil {
			return nil, fmt.Errorf("replica %d: %w", i, err)
		}
		reps = append(reps, r)
	}
	var before []natstransport.Stats
	elapsed, err := partitionHeal(ctx, e, partitionNet{
		reps: reps,
		cut:  fleet.cut,
		heal: func(i int) error {
			if i == 0 {
				before = natsStats(reps) // what the transports do from the heal on
			}
			return fleet.heal(i)
		},
	})
	if err != nil {
		return nil, err
	}
	if e.log.Enabled(ctx, slog.LevelDebug) {
		after := natsStats(reps)
		for i := range after {
			a, b := after[i], before[i]
			e.log.Debug("converge-partition nats transport", "replica", i, "requests", a.Requests-b.Requests,
				"served", a.Served-b.Served, "fetches", a.Fetches-b.Fetches, "published", a.Published-b.Published,
				"received ops", a.ReceivedOps-b.ReceivedOps, "reconnects", a.Reconnects-b.Reconnects)
		}
	}
	return Values{metricConvergeNATS: elapsed.Seconds()}, nil
}

// natsStats returns the NATS transports' counters of reps.
func natsStats(reps []*replica) []natstransport.Stats {
	out := make([]natstransport.Stats, len(reps))
	for i, r := range reps {
		if t, ok := r.conn.Peer.(*natstransport.Transport); ok {
			out[i] = t.Stats()
		}
	}
	return out
}

// The raw NATS baseline's subjects and header.
const (
	rawPartitionOps   = "bench.partition.ops"    // pages of ops
	rawPartitionReady = "bench.partition.ready." // + a replica's index: answered by it
	rawPartitionFrom  = "Bench-From"             // the number of a page's first op
)

// partitionRawNATS is the NATS baseline: the ops the sides wrote apart,
// moved by raw NATS pub/sub on a natsFleet of its own. Every replica has a
// raw Pebble holding what it holds at the heal and a connection to its
// edge, subscribed to the ops subject; after the heal each cut-off replica
// publishes its own ops and one connected replica the connected side's, in
// pages, each publisher as soon as every replica it publishes to answers a
// request (the link carries messages); every replica stores the pages it
// lacks. Measured from the heal until every replica holds every op.
func partitionRawNATS(ctx context.Context, e *env, ops partitionOps) (_ Values, err error) {
	fleet, err := startNATSFleet(ops.n)
	if err != nil {
		return nil, err
	}
	defer fleet.close()
	stores, closeStores, err := ops.openStores(e, "partition-rawnats")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, closeStores()) }()
	conns := make([]*nats.Conn, ops.n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close() // before the stores close: no handler runs after
			}
		}
	}()
	counters := make([]*counter, ops.n)
	need := make([]int, ops.n)
	for i := range ops.n {
		nc, err := nats.Connect(fleet.edges[i].ClientURL(), nats.Name(fmt.Sprintf("converge-bench-partition-%d", i)), nats.NoReconnect())
		if err != nil {
			return nil, fmt.Errorf("raw NATS: connect: %w", err)
		}
		conns[i] = nc
		cnt := newCounter()
		counters[i] = cnt
		lacks := ops.lacks(i)
		for _, r := range lacks {
			need[i] += int(r[1] - r[0])
		}
		store := stores[i]
		sub, err := nc.Subscribe(rawPartitionOps, func(m *nats.Msg) {
			from, err := strconv.ParseUint(m.Header.Get(rawPartitionFrom), 10, 64)
			if err != nil {
				cnt.fail(fmt.Errorf("replica %d: page without its first op's number: %w", i, err))
				return
			}
			if !inRanges(lacks, from) {
				return // it holds these
			}
			page, err := decodeOps(m.Data)
			if err == nil {
				err = store.put(from, page)
			}
			if err != nil {
				cnt.fail(fmt.Errorf("replica %d: %w", i, err))
				return
			}
			cnt.add(len(page))
		})
		if err != nil {
			return nil, fmt.Errorf("raw NATS: subscribe: %w", err)
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return nil, fmt.Errorf("raw NATS: %w", err)
		}
		nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { cnt.fail(err) })
		if _, err := nc.Subscribe(rawPartitionReady+strconv.Itoa(i), func(m *nats.Msg) { _ = m.Respond(nil) }); err != nil {
			return nil, fmt.Errorf("raw NATS: subscribe: %w", err)
		}
		if err := nc.FlushWithContext(ctx); err != nil {
			return nil, fmt.Errorf("raw NATS: %w", err)
		}
	}
	// Who publishes what, and to whom: each cut-off replica its own ops to
	// every other replica, the first connected replica the connected
	// side's to the cut-off ones.
	type publisher struct {
		from    int
		lo, hi  uint64
		targets []int
	}
	var pubs []publisher
	for i := range ops.m {
		lo, hi := ops.own(i)
		p := publisher{from: i, lo: lo, hi: hi}
		for j := range ops.n {
			if j != i {
				p.targets = append(p.targets, j)
			}
		}
		pubs = append(pubs, p)
	}
	connected := publisher{from: ops.m, lo: ops.minorityEnd, hi: ops.total()}
	for j := range ops.m {
		connected.targets = append(connected.targets, j)
	}
	pubs = append(pubs, connected)
	// Before the cut, every publisher reaches its targets (which also
	// subscribes its reply inbox).
	for _, p := range pubs {
		if err := waitReachable(ctx, conns[p.from], p.targets); err != nil {
			return nil, fmt.Errorf("raw NATS: before the cut: %w", err)
		}
	}
	for i := range ops.m {
		if err := fleet.cut(ctx, i); err != nil {
			return nil, fmt.Errorf("raw NATS: cutting replica %d off: %w", i, err)
		}
	}

	start := time.Now()
	for i := range ops.m {
		if err := fleet.heal(i); err != nil {
			return nil, fmt.Errorf("raw NATS: %w", err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(pubs))
	for k, p := range pubs {
		wg.Go(func() {
			nc := conns[p.from]
			if err := waitReachable(ctx, nc, p.targets); err != nil {
				errs[k] = fmt.Errorf("replica %d: %w", p.from, err)
				return
			}
			if err := publishPages(ctx, nc, ops.raws, p.lo, p.hi); err != nil {
				errs[k] = fmt.Errorf("replica %d: %w", p.from, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("raw NATS: %w", err)
	}
	// Core NATS drops what it cannot deliver: a lost page would leave a
	// replica short for good, so the wait is bounded.
	wctx, cancel := context.WithTimeout(ctx, natsLinkBound)
	defer cancel()
	for i, c := range counters {
		if err := c.wait(wctx, need[i]); err != nil {
			return nil, fmt.Errorf("raw NATS: replica %d: %w", i, err)
		}
	}
	return Values{metricConvergeNATS: time.Since(start).Seconds()}, nil
}

// inRanges reports whether n lies in one of the ranges [lo, hi).
func inRanges(ranges [][2]uint64, n uint64) bool {
	for _, r := range ranges {
		if n >= r[0] && n < r[1] {
			return true
		}
	}
	return false
}

// waitReachable waits until the replicas targets answer a request from
// nc: their subscriptions, made before the cut, are known again on nc's
// side of the fleet.
func waitReachable(ctx context.Context, nc *nats.Conn, targets []int) error {
	for _, j := range targets {
		subject := rawPartitionReady + strconv.Itoa(j)
		for {
			rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_, err := nc.RequestWithContext(rctx, subject, nil)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("replica %d unreachable: %w (last: %v)", j, ctx.Err(), err)
			}
			if errors.Is(err, nats.ErrNoResponders) {
				time.Sleep(time.Millisecond) // polling: no route to it yet
			}
		}
	}
	return nil
}

// publishPages publishes raws[lo:hi] on the ops subject in pages of up to
// relayPageOps ops and half the server's max payload, each page's header
// numbering its first op, and flushes.
func publishPages(ctx context.Context, nc *nats.Conn, raws [][]byte, lo, hi uint64) error {
	maxBytes := int(nc.MaxPayload() / 2)
	for k := lo; k < hi; {
		var data []byte
		n := uint64(0)
		for k+n < hi && n < relayPageOps {
			op := raws[k+n]
			if n > 0 && len(data)+len(op)+10 > maxBytes {
				break
			}
			data = appendOps(data, [][]byte{op})
			n++
		}
		m := nats.NewMsg(rawPartitionOps)
		m.Header.Set(rawPartitionFrom, strconv.FormatUint(k, 10))
		m.Data = data
		if err := nc.PublishMsg(m); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		k += n
	}
	return nc.FlushWithContext(ctx)
}
