package oplog

import (
	"context"
	"errors"
	"fmt"
	"maps"

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
func (l *Log) peersLocked(ns string) (map[crdt.ReplicaID]crdt.VersionVector, error) {
	if ps, ok := l.mu.peers[ns]; ok {
		return ps, nil
	}
	prefix := nsKey(tagPeer, ns)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("oplog: peers %q: %w", ns, pebbleErr(err))
	}
	defer it.Close()
	ps := make(map[crdt.ReplicaID]crdt.VersionVector)
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+16 {
			return nil, fmt.Errorf("%w: peer key %x", ErrCorrupt, k)
		}
		vv, err := decodePeerVector(k, it.Value())
		if err != nil {
			return nil, err
		}
		ps[crdt.ReplicaID(k[len(prefix):])] = vv
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
	cur, known := ps[peer]
	if known && cur.Covers(vv) {
		return nil
	}
	merged := cur.Clone()
	if merged == nil {
		merged = crdt.VersionVector{}
	}
	merged.Merge(vv)
	if err := l.db.Set(peerKey(ns, peer), appendPeerVector(nil, merged), pebble.NoSync); err != nil {
		return fmt.Errorf("oplog: acknowledge %v: %w", peer, err)
	}
	ps[peer] = merged
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
	out := make(map[crdt.ReplicaID]crdt.VersionVector, len(ps))
	for p, vv := range ps {
		out[p] = maps.Clone(vv)
	}
	return out, nil
}

// ErrUnknownPeer: ForgetPeer was given a replica this store does not know.
var ErrUnknownPeer = errors.New("oplog: unknown peer")

// ForgetPeer removes a replica from the known peers of ns (a replica
// removed from the fleet), so it no longer holds the stable vector back.
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
	if _, ok := ps[peer]; !ok {
		return fmt.Errorf("%w: %v in %q", ErrUnknownPeer, peer, ns)
	}
	if err := l.db.Delete(peerKey(ns, peer), pebble.Sync); err != nil {
		return fmt.Errorf("oplog: forget %v: %w", peer, err)
	}
	delete(ps, peer)
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
	return stableOf(vv, ps), nil
}

// stableOf returns, per origin of vv, the least of vv's entry and every
// peer's.
func stableOf(vv crdt.VersionVector, ps map[crdt.ReplicaID]crdt.VersionVector) crdt.VersionVector {
	stable := make(crdt.VersionVector, len(vv))
	for o, seq := range vv {
		for _, p := range ps {
			seq = min(seq, p[o])
		}
		if seq > 0 {
			stable[o] = seq
		}
	}
	return stable
}
