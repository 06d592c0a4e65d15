package oplog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
)

// What other replicas hold, as they told us in sync messages: the input of
// causal stability (an op is stable once every known replica holds it).

// peerKey is 'P' ns peer(16).
func peerKey(ns string, peer crdt.ReplicaID) []byte {
	return append(nsKey(tagPeer, ns), peer[:]...)
}

const peerVersion = 1

func appendPeerVector(b []byte, vv crdt.VersionVector) []byte {
	origins := vv.Origins()
	b = mp.AppendArrayHeader(b, 1+2*len(origins))
	b = mp.AppendUint(b, peerVersion)
	for _, o := range origins {
		b = mp.AppendBytes(b, o[:])
		b = mp.AppendUint(b, vv[o])
	}
	return b
}

func decodePeerVector(k, v []byte) (crdt.VersionVector, error) {
	bad := func(what string) (crdt.VersionVector, error) {
		return nil, fmt.Errorf("%w: peer vector %x: %s", ErrCorrupt, k, what)
	}
	r := mp.NewReader(v)
	n, err := r.ArrayHeader()
	if err != nil || n%2 != 1 {
		return bad("header")
	}
	if ver, err := r.Uint(); err != nil || ver != peerVersion {
		return bad("version")
	}
	vv := make(crdt.VersionVector, n/2)
	for range n / 2 {
		id, err := r.Bytes()
		if err != nil || len(id) != 16 {
			return bad("origin")
		}
		seq, err := r.Uint()
		if err != nil {
			return bad("seq")
		}
		vv[crdt.ReplicaID(id)] = seq
	}
	if r.Len() != 0 {
		return bad("trailing bytes")
	}
	return vv, nil
}

// peersLocked returns what each known peer holds in ns, loading it on
// first use.
func (l *Log) peersLocked(ns string) (*peerSet, error) {
	if ps, ok := l.mu.peers[ns]; ok {
		return ps, nil
	}
	prefix := nsKey(tagPeer, ns)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("oplog: peers %q: %w", ns, pebbleErr(err))
	}
	defer it.Close()
	ps := newPeerSet()
	now := l.opts.Clock()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+16 {
			return nil, fmt.Errorf("%w: peer key %x", ErrCorrupt, k)
		}
		vv, err := decodePeerVector(k, it.Value())
		if err != nil {
			return nil, err
		}
		ps.set(crdt.ReplicaID(k[len(prefix):]), vv, now)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("oplog: peers %q: %w", ns, pebbleErr(err))
	}
	l.mu.peers[ns] = ps
	return ps, nil
}

// Acknowledge records that replica peer holds at least vv in ns (merged
// with what it was known to hold); a peer that holds nothing yet is known
// too, and holds the stable vector at nothing. It writes only when that
// grows, and
// without fsync: what peers hold is advisory, a lost update is learned
// again at the next sync.
func (l *Log) Acknowledge(ctx context.Context, ns string, peer crdt.ReplicaID, vv crdt.VersionVector) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("oplog: %w", err)
	}
	if peer.IsZero() || peer == l.replica {
		return nil
	}
	if err := checkNamespace(ns); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	ps, err := l.peersLocked(ns)
	if err != nil {
		return err
	}
	now := l.opts.Clock()
	cur, known := ps.vecs[peer]
	if known && cur.Covers(vv) {
		ps.seen[peer] = now // heard of: the lease runs from now
		return nil
	}
	merged := cur.Clone()
	if merged == nil {
		merged = crdt.VersionVector{}
	}
	merged.Merge(vv)
	enc := appendPeerVector(nil, merged)
	if err := l.bounded(ctx, "acknowledge", func() error { return l.db.Set(peerKey(ns, peer), enc, pebble.NoSync) }); err != nil {
		return fmt.Errorf("oplog: acknowledge %v: %w", peer, err)
	}
	ps.set(peer, merged, now)
	l.changedLocked(ns)
	return nil
}

// Peers returns what each known peer holds in ns.
func (l *Log) Peers(ctx context.Context, ns string) (map[crdt.ReplicaID]crdt.VersionVector, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("oplog: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	ps, err := l.peersLocked(ns)
	if err != nil {
		return nil, err
	}
	out := make(map[crdt.ReplicaID]crdt.VersionVector, len(ps.vecs))
	for p, vv := range ps.vecs {
		out[p] = maps.Clone(vv)
	}
	return out, nil
}

// PeerHolds returns how many ops of origin in ns peer holds, as it last
// said, and whether peer is known.
func (l *Log) PeerHolds(ctx context.Context, ns string, peer, origin crdt.ReplicaID) (uint64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("oplog: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, false, ErrClosed
	}
	ps, err := l.peersLocked(ns)
	if err != nil {
		return 0, false, err
	}
	vv, ok := ps.vecs[peer]
	return vv[origin], ok, nil
}

// ErrUnknownPeer: ForgetPeer was given a replica this store does not know.
var ErrUnknownPeer = errors.New("oplog: unknown peer")

// ForgetPeer removes a replica from the known peers of ns (a replica
// removed from the fleet), so it no longer holds the stable vector back,
// and from its upstreams.
// If it syncs again, it is known again.
func (l *Log) ForgetPeer(ctx context.Context, ns string, peer crdt.ReplicaID) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("oplog: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	ps, err := l.peersLocked(ns)
	if err != nil {
		return err
	}
	if _, ok := ps.vecs[peer]; !ok {
		return fmt.Errorf("%w: %v in %q", ErrUnknownPeer, peer, ns)
	}
	return l.forgetLocked(ns, ps, peer)
}

// forgetLocked removes peer from the known peers and upstreams of ns.
func (l *Log) forgetLocked(ns string, ps *peerSet, peer crdt.ReplicaID) error {
	ups, err := l.upstreamsLocked(ns)
	if err != nil {
		return err
	}
	b := l.db.NewBatch()
	spent := false
	defer closeUnlessSpent(b, &spent)
	if err := b.Delete(peerKey(ns, peer), nil); err != nil {
		return fmt.Errorf("oplog: forget %v: %w", peer, err)
	}
	if err := b.Delete(upstreamKey(ns, peer), nil); err != nil {
		return fmt.Errorf("oplog: forget %v: %w", peer, err)
	}
	spent = true
	if err := l.commitBatch(context.Background(), "forget peer", b, pebble.Sync); err != nil { // bounded by StallTimeout
		return fmt.Errorf("oplog: forget %v: %w", peer, err)
	}
	ps.remove(peer)
	delete(ups, peer)
	l.changedLocked(ns)
	return nil
}

// StableVector returns the ops of ns that this replica and every known
// peer hold: per origin, the least of their entries. An op is causally
// stable once its dot is in it. With no known peer it is this replica's
// own vector.
func (l *Log) StableVector(ctx context.Context, ns string) (crdt.VersionVector, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("oplog: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	vv, err := l.vectorLocked(ns)
	if err != nil {
		return nil, err
	}
	ps, err := l.peersLocked(ns)
	if err != nil {
		return nil, err
	}
	if err := l.expireLocked(ns, ps); err != nil {
		return nil, err
	}
	return ps.stable(vv), nil
}

// expireLocked forgets the peers of ns not heard of for the peer lease
// (Options.PeerLease; none if zero), so that they no longer hold the
// stable vector back. A peer that comes back is known again; if it lacks
// ops compacted meanwhile it bootstraps from a snapshot.
func (l *Log) expireLocked(ns string, ps *peerSet) error {
	if l.opts.PeerLease <= 0 {
		return nil
	}
	for _, p := range ps.expired(l.opts.Clock() - l.opts.PeerLease.Milliseconds()) {
		if err := l.forgetLocked(ns, ps, p); err != nil {
			return err
		}
		l.logger.Info("peer lease expired", "namespace", ns, "peer", p, "lease", l.opts.PeerLease)
	}
	return nil
}

// What this replica asked: its upstreams are the peers that answered the
// syncs it started (a replicator's peer), as opposed to the peers that
// synced with it. A replicator reopened counts its pending ops against
// what they hold until a new sync names its peer.

// upstreamKey is 'U' ns peer(16).
func upstreamKey(ns string, peer crdt.ReplicaID) []byte {
	return append(nsKey(tagUpstream, ns), peer[:]...)
}

// upstreamsLocked returns the upstreams of ns, loading them on first use.
func (l *Log) upstreamsLocked(ns string) (map[crdt.ReplicaID]struct{}, error) {
	if ups, ok := l.mu.upstreams[ns]; ok {
		return ups, nil
	}
	prefix := nsKey(tagUpstream, ns)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("oplog: upstreams %q: %w", ns, pebbleErr(err))
	}
	defer it.Close()
	ups := make(map[crdt.ReplicaID]struct{})
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+16 {
			return nil, fmt.Errorf("%w: upstream key %x", ErrCorrupt, k)
		}
		ups[crdt.ReplicaID(k[len(prefix):])] = struct{}{}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("oplog: upstreams %q: %w", ns, pebbleErr(err))
	}
	l.mu.upstreams[ns] = ups
	return ups, nil
}

// NoteUpstream records that peer answered a sync of ns this replica
// started. It writes only the first time, without fsync: a lost record
// is written again by the next sync.
func (l *Log) NoteUpstream(ctx context.Context, ns string, peer crdt.ReplicaID) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("oplog: %w", err)
	}
	if peer.IsZero() || peer == l.replica {
		return nil
	}
	if err := checkNamespace(ns); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	ups, err := l.upstreamsLocked(ns)
	if err != nil {
		return err
	}
	if _, ok := ups[peer]; ok {
		return nil
	}
	if err := l.bounded(ctx, "note upstream", func() error { return l.db.Set(upstreamKey(ns, peer), nil, pebble.NoSync) }); err != nil {
		return fmt.Errorf("oplog: note upstream %v: %w", peer, err)
	}
	ups[peer] = struct{}{}
	return nil
}

// Upstreams returns the peers that answered syncs of ns this replica
// started (see NoteUpstream), in no particular order.
func (l *Log) Upstreams(ctx context.Context, ns string) ([]crdt.ReplicaID, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("oplog: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	ups, err := l.upstreamsLocked(ns)
	if err != nil {
		return nil, err
	}
	return slices.Collect(maps.Keys(ups)), nil
}
