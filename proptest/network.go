package proptest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

// Network is a simulated network of replicas in one process: each replica
// is a real [converge.DB] on its own Pebble store in a directory of its own,
// and the network moves ops between them on request, by full anti-entropy
// ([Network.Sync]) or by lossy, duplicating, reordering delivery
// ([Network.Deliver]). Partitions ([Network.Partition]) make replicas in
// different groups unreachable from each other; restarts
// ([Network.Reopen]) close a replica and open it again on its store.
//
// Replicas are numbered 0 to N()-1 in the order of their replica ids, so
// the tie-breaks between replicas (writes with equal HLCs) follow the
// numbering and a run that draws the same choices behaves the same way.
//
// A Network is not safe for concurrent use: the simulation is sequential
// (the DBs themselves are).
type Network struct {
	// Limits bound the pages of ops that Sync moves per round trip. Zero
	// fields mean the transport's defaults; small limits exercise paging.
	Limits transport.Limits

	dirs   []string
	opts   []converge.Options
	clocks []*ManualClock
	dbs    []*converge.DB
	group  []int // partition group of each replica
}

// Open opens a network of n replicas with stores in subdirectories of dir
// (created if needed; existing stores there are opened again). Every
// replica gets opts, with these defaults for a simulation in one process:
//
//   - Durability SyncEveryCommit (the zero value) becomes NoSync: a crash
//     is not simulated (Reopen closes cleanly), so fsync buys nothing;
//   - a nil Clock becomes a [ManualClock] per replica, starting at [Epoch]
//     and moved only by the caller (see [Network.Clock]), so runs are
//     deterministic;
//   - a nil FS is the OS file system with fsync turned off (the stores are
//     real files; Pebble's open, flushes and close fsync several times);
//   - a nil Logger discards the log; a zero CacheSize is 1 MiB.
func Open(dir string, n int, opts converge.Options) (*Network, error) {
	if n < 1 {
		return nil, fmt.Errorf("proptest: open network of %d replicas", n)
	}
	if opts.Durability == converge.SyncEveryCommit {
		opts.Durability = converge.NoSync
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 1 << 20
	}
	if opts.FS == nil {
		opts.FS = noSyncFS{vfs.Default}
	}
	net := &Network{}
	for k := range n {
		o := opts
		var clock *ManualClock
		if o.Clock == nil {
			clock = NewManualClock(Epoch)
			o.Clock = clock.Now
		}
		sub := filepath.Join(dir, fmt.Sprintf("replica-%d", k))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, errors.Join(fmt.Errorf("proptest: %w", err), net.Close())
		}
		db, err := converge.Open(sub, o)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("proptest: open replica %d: %w", k, err), net.Close())
		}
		net.dirs = append(net.dirs, sub)
		net.opts = append(net.opts, o)
		net.clocks = append(net.clocks, clock)
		net.dbs = append(net.dbs, db)
		net.group = append(net.group, 0)
	}
	// Number the replicas in replica id order.
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Compare(net.dbs[a].ReplicaID(), net.dbs[b].ReplicaID())
	})
	net.dirs = permute(net.dirs, idx)
	net.opts = permute(net.opts, idx)
	net.clocks = permute(net.clocks, idx)
	net.dbs = permute(net.dbs, idx)
	return net, nil
}

func permute[T any](s []T, idx []int) []T {
	out := make([]T, len(idx))
	for i, j := range idx {
		out[i] = s[j]
	}
	return out
}

// N returns the number of replicas.
func (n *Network) N() int { return len(n.dbs) }

// Replica returns replica i. After [Network.Reopen] of i it is a new DB:
// call Replica again rather than keeping the old one.
func (n *Network) Replica(i int) *converge.DB { return n.dbs[i] }

// Replicas returns every replica, in order.
func (n *Network) Replicas() []*converge.DB { return slices.Clone(n.dbs) }

// Clock returns replica i's manual clock, or nil if Open was given a Clock.
func (n *Network) Clock(i int) *ManualClock { return n.clocks[i] }

// Dir returns the directory of replica i's store.
func (n *Network) Dir(i int) string { return n.dirs[i] }

// Partition splits the network into groups: replicas in one group reach
// each other, replicas in different groups do not, and a replica listed in
// no group reaches no one. It replaces any earlier partition. It panics on
// a replica index out of range or listed twice.
func (n *Network) Partition(groups ...[]int) {
	for i := range n.group {
		n.group[i] = -1 - i // alone
	}
	seen := make(map[int]bool)
	for g, members := range groups {
		for _, i := range members {
			if i < 0 || i >= len(n.dbs) || seen[i] {
				panic(fmt.Sprintf("proptest: partition: bad or repeated replica %d", i))
			}
			seen[i] = true
			n.group[i] = g
		}
	}
}

// Heal ends any partition: every replica reaches every other.
func (n *Network) Heal() {
	for i := range n.group {
		n.group[i] = 0
	}
}

// Reachable reports whether replicas i and j can exchange ops.
func (n *Network) Reachable(i, j int) bool { return n.group[i] == n.group[j] }

// peer returns a transport peer served by replica to, down if from cannot
// reach it.
func (n *Network) peer(from, to int) *transport.MemPeer {
	p := transport.NewMemPeer(n.dbs[to].SyncStore(), n.Limits)
	if !n.Reachable(from, to) {
		p.SetDown(true)
	}
	return p
}

// Sync runs a full anti-entropy sync of namespace ns between replicas from
// (the requester) and to (the responder), through the in-memory transport,
// so every message is encoded and decoded as on a network. If the two are
// partitioned apart it fails with an error wrapping
// transport.ErrUnreachable.
func (n *Network) Sync(ctx context.Context, from, to int, ns string) (transport.Result, error) {
	res, err := transport.Sync(ctx, n.dbs[from].SyncStore(), n.peer(from, to), ns, transport.Options{Limits: n.Limits})
	if err != nil {
		return res, fmt.Errorf("proptest: sync %d→%d: %w", from, to, logErr{err})
	}
	return res, nil
}

// SyncAll runs rounds of pairwise syncs of ns between every two replicas
// that reach each other, until the replicas of each group of the partition
// hold the same ops (at most N()+1 rounds). It returns the first sync
// error, or an error if the groups did not converge.
func (n *Network) SyncAll(ctx context.Context, ns string) error {
	for range len(n.dbs) + 1 {
		for i := range n.dbs {
			for j := i + 1; j < len(n.dbs); j++ {
				if !n.Reachable(i, j) {
					continue
				}
				if _, err := n.Sync(ctx, i, j, ns); err != nil {
					return err
				}
			}
		}
		done, err := n.groupsAgree(ctx, ns)
		if err != nil || done {
			return err
		}
	}
	return fmt.Errorf("proptest: sync all %q: replicas still differ after %d rounds", ns, len(n.dbs)+1)
}

// groupsAgree reports whether the replicas of each group hold the same ops.
func (n *Network) groupsAgree(ctx context.Context, ns string) (bool, error) {
	vvs := make([]crdt.VersionVector, len(n.dbs))
	for i, db := range n.dbs {
		vv, err := db.Admin().Log().Vector(ctx, ns)
		if err != nil {
			return false, fmt.Errorf("proptest: replica %d: %w", i, err)
		}
		vvs[i] = vv
	}
	for i := range n.dbs {
		for j := i + 1; j < len(n.dbs); j++ {
			if n.Reachable(i, j) && !vvs[i].Equal(vvs[j]) {
				return false, nil
			}
		}
	}
	return true, nil
}

// CheckConverged checks, with [CheckConverged], that all the replicas of
// the network hold the same ops and state of ns.
func (n *Network) CheckConverged(ctx context.Context, ns string) error {
	return CheckConverged(ctx, ns, n.dbs...)
}

// Reopen closes replica i and opens it again on its store, with the same
// options. It checks that the store kept everything: the replica id, and
// the version vector and state hash of every namespace.
func (n *Network) Reopen(ctx context.Context, i int) error {
	db := n.dbs[i]
	type snap struct {
		vv   crdt.VersionVector
		hash string
	}
	id := db.ReplicaID()
	nss, err := db.Namespaces(ctx)
	if err != nil {
		return fmt.Errorf("proptest: reopen %d: %w", i, err)
	}
	before := make(map[string]snap, len(nss))
	for _, ns := range nss {
		vv, err := db.Admin().Log().Vector(ctx, ns)
		if err != nil {
			return fmt.Errorf("proptest: reopen %d: %w", i, err)
		}
		h, err := db.Admin().StateHash(ctx, ns)
		if err != nil {
			return fmt.Errorf("proptest: reopen %d: %w", i, err)
		}
		before[ns] = snap{vv, h}
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("proptest: reopen %d: close: %w", i, err)
	}
	db, err = converge.Open(n.dirs[i], n.opts[i])
	if err != nil {
		return fmt.Errorf("proptest: reopen %d: %w", i, err)
	}
	n.dbs[i] = db
	if got := db.ReplicaID(); got != id {
		return fmt.Errorf("proptest: reopen %d: replica id %s became %s", i, id, got)
	}
	after, err := db.Namespaces(ctx)
	if err != nil {
		return fmt.Errorf("proptest: reopen %d: %w", i, err)
	}
	if !slices.Equal(nss, after) {
		return fmt.Errorf("proptest: reopen %d: namespaces %q became %q", i, nss, after)
	}
	for _, ns := range nss {
		vv, err := db.Admin().Log().Vector(ctx, ns)
		if err != nil {
			return fmt.Errorf("proptest: reopen %d: %w", i, err)
		}
		h, err := db.Admin().StateHash(ctx, ns)
		if err != nil {
			return fmt.Errorf("proptest: reopen %d: %w", i, err)
		}
		if b := before[ns]; !b.vv.Equal(vv) || b.hash != h {
			return fmt.Errorf("proptest: reopen %d: namespace %q: vector %v hash %s became vector %v hash %s", i, ns, b.vv, b.hash, vv, h)
		}
	}
	return nil
}

// Close closes every replica. The stores stay in their directories.
func (n *Network) Close() error {
	var errs []error
	for i, db := range n.dbs {
		if db == nil {
			continue
		}
		if err := db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("proptest: close replica %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// DeliverPolicy says how [Network.Deliver] mangles the ops it carries. The
// zero value delivers every missing op once, in a shuffled order, in one
// batch.
type DeliverPolicy struct {
	// Drop is the probability that a missing op is not delivered.
	Drop float64
	// Duplicate is the probability that a delivered op is delivered a
	// second time (and, with the same probability again, a third).
	Duplicate float64
	// Resend is the probability that an op the receiver already holds is
	// delivered again.
	Resend float64
	// MaxBatch, if positive, splits the shuffled ops into batches of 1 to
	// MaxBatch ops (sizes drawn at random), each applied by its own call
	// of the receiver's Store.Apply, in order: an op whose predecessor is
	// in a later batch arrives beyond a gap.
	MaxBatch int
}

// LossyDelivery is a DeliverPolicy that loses, duplicates, resends and
// reorders ops, and splits them into small batches.
var LossyDelivery = DeliverPolicy{Drop: 0.3, Duplicate: 0.2, Resend: 0.1, MaxBatch: 4}

// Delivery reports what [Network.Deliver] did.
type Delivery struct {
	Missing int // ops the receiver lacked
	Sent    int // ops sent, duplicates and resends included
	Batches int // calls of the receiver's Apply
	// Applied, Duplicates and Refused sum what the receiver reported.
	Applied, Duplicates, Refused int
}

// ErrIngest is wrapped by the errors of [Network.Deliver] when the
// receiver applied ops it must not have (beyond a gap in an origin's
// sequence, or out of an incomplete transaction), or did not account for
// every op it was given as applied, duplicate or refused.
var ErrIngest = errors.New("proptest: receiver broke the ingest contract")

// Deliver carries ops of namespace ns from replica from to replica to the
// way an unreliable network would: it takes the ops to lacks, keeps a
// random subset, duplicates some, adds some that to already holds, shuffles
// them, and hands them to to's Store.Apply (in batches, if p.MaxBatch is
// set). The receiver must refuse ops beyond a gap or in a transaction whose
// end did not arrive; they arrive later, by another Deliver or a Sync.
//
// After each batch Deliver checks that the receiver applied no op beyond
// the complete transactions that follow on from what it held (an error
// wrapping [ErrIngest]). If the two replicas are partitioned apart it fails
// with an error wrapping transport.ErrUnreachable. If to lacks ops that from
// compacted away (below from's compaction horizon), it fails with an error
// wrapping converge.ErrCompacted: to must bootstrap from a snapshot, which
// [Network.Sync] does.
func (n *Network) Deliver(ctx context.Context, from, to int, ns string, rng *rand.Rand, p DeliverPolicy) (Delivery, error) {
	var d Delivery
	if !n.Reachable(from, to) {
		return d, fmt.Errorf("proptest: deliver %d→%d: %w", from, to, transport.ErrUnreachable)
	}
	dst := n.dbs[to].SyncStore()
	have, err := dst.Vector(ctx, ns)
	if err != nil {
		return d, fmt.Errorf("proptest: deliver %d→%d: %w", from, to, err)
	}
	scanFrom := have
	if p.Resend > 0 {
		// Resend what the receiver holds too, but not below the sender's
		// compaction horizon: those ops are gone from its log.
		h, err := n.dbs[from].Admin().Log().Horizon(ctx, ns)
		if err != nil {
			return d, fmt.Errorf("proptest: deliver %d→%d: %w", from, to, err)
		}
		scanFrom = have.Meet(h)
	}
	var out []deliveryMsg
	for e, err := range n.dbs[from].Admin().Log().Missing(ctx, ns, scanFrom) {
		if err != nil {
			return d, fmt.Errorf("proptest: deliver %d→%d: %w", from, to, logErr{err})
		}
		m := deliveryMsg{e.Op, e.Raw}
		if have.Contains(e.Op.Dot) {
			if rng.Float64() < p.Resend {
				out = append(out, m)
			}
			continue
		}
		d.Missing++
		if rng.Float64() < p.Drop {
			continue
		}
		out = append(out, m)
		for range 2 {
			if rng.Float64() >= p.Duplicate {
				break
			}
			out = append(out, m)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	d.Sent = len(out)
	if err := deliverBatches(ctx, dst, ns, out, rng, p, &d); err != nil {
		return d, fmt.Errorf("proptest: deliver %d→%d: %w", from, to, err)
	}
	return d, nil
}

// deliveryMsg is one op a Deliver sends: decoded, and as encoded.
type deliveryMsg struct {
	op  crdt.Op
	raw []byte
}

// deliverBatches applies out to dst in batches of the policy's sizes,
// counting into d, and checks after each batch that dst applied whole
// transactions only.
func deliverBatches(ctx context.Context, dst transport.Store, ns string, out []deliveryMsg, rng *rand.Rand, p DeliverPolicy, d *Delivery) error {
	for len(out) > 0 {
		size := len(out)
		if p.MaxBatch > 0 {
			size = min(size, 1+rng.IntN(p.MaxBatch))
		}
		batch := out[:size]
		out = out[size:]
		raw := make([][]byte, len(batch))
		ops := make([]crdt.Op, len(batch))
		for i, m := range batch {
			raw[i], ops[i] = m.raw, m.op
		}
		before, err := dst.Vector(ctx, ns)
		if err != nil {
			return err
		}
		a, err := dst.Apply(ctx, ns, raw)
		d.Batches++
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		d.Applied += a.Applied
		d.Duplicates += a.Duplicates
		d.Refused += a.Refused
		if sum := a.Applied + a.Duplicates + a.Refused; sum != len(raw) {
			return fmt.Errorf("%w: Apply of %d ops accounted for %d: %+v", ErrIngest, len(raw), sum, a)
		}
		after, err := dst.Vector(ctx, ns)
		if err != nil {
			return err
		}
		if err := checkIngest(before, after, ops); err != nil {
			return err
		}
	}
	return nil
}

// checkIngest checks a receiver's vector after it was given ops: for each
// origin it may advance only through complete transactions that follow on
// from what it held, and must stop at a transaction's end.
func checkIngest(before, after crdt.VersionVector, ops []crdt.Op) error {
	byDot := make(map[crdt.Dot]*crdt.Op, len(ops))
	for i := range ops {
		byDot[ops[i].Dot] = &ops[i]
	}
	for origin, seq := range after {
		was := before[origin]
		if seq < was {
			return fmt.Errorf("%w: vector of %v went back from %d to %d", ErrIngest, origin, was, seq)
		}
		// The furthest the receiver may go: the last transaction end
		// of the run of consecutive ops offered after was.
		limit := was
		for s := was + 1; ; s++ {
			op, ok := byDot[crdt.Dot{Origin: origin, Seq: s}]
			if !ok {
				break
			}
			if op.TxEnd {
				limit = s
			}
		}
		if seq > limit {
			return fmt.Errorf("%w: origin %v: held %d, offered complete transactions up to %d, but advanced to %d", ErrIngest, origin, was, limit, seq)
		}
		if seq > was && !byDot[crdt.Dot{Origin: origin, Seq: seq}].TxEnd {
			return fmt.Errorf("%w: origin %v: advanced to %d, inside a transaction", ErrIngest, origin, seq)
		}
	}
	return nil
}
