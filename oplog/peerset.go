package oplog

import "github.com/convergedb/converge/crdt"

// peerSet is what the known peers of one namespace hold, with the least
// entry per origin over them maintained as the vectors grow: the stable
// vector is then O(origins) to compute, never O(origins × peers), and an
// acknowledgement costs O(entries that grew) (amortized: when the last
// peer at an origin's least entry moves up, that origin is recomputed
// over the peers once). Not safe for concurrent use: the Log's mu guards
// it.
type peerSet struct {
	vecs map[crdt.ReplicaID]crdt.VersionVector
	// seen is when each peer was last heard of (Unix ms; the store's open
	// for the peers loaded from disk), for the lease.
	seen map[crdt.ReplicaID]int64
	// Per origin, over the peers whose vector has it: how many have it,
	// the least of their entries, and how many hold exactly that least.
	has   map[crdt.ReplicaID]int
	low   map[crdt.ReplicaID]uint64
	atLow map[crdt.ReplicaID]int
}

func newPeerSet() *peerSet {
	return &peerSet{
		vecs: make(map[crdt.ReplicaID]crdt.VersionVector), seen: make(map[crdt.ReplicaID]int64),
		has: make(map[crdt.ReplicaID]int), low: make(map[crdt.ReplicaID]uint64), atLow: make(map[crdt.ReplicaID]int),
	}
}

// set makes peer hold vv (which must cover what it held: vectors only
// grow), heard of at now.
func (s *peerSet) set(peer crdt.ReplicaID, vv crdt.VersionVector, now int64) {
	cur := s.vecs[peer]
	s.vecs[peer] = vv
	s.seen[peer] = now
	for o, seq := range vv {
		if prev := cur[o]; seq != prev {
			s.raise(o, prev, seq)
		}
	}
}

// raise moves one peer's entry for o from prev (0: none) up to seq.
func (s *peerSet) raise(o crdt.ReplicaID, prev, seq uint64) {
	if prev == 0 {
		s.has[o]++
		switch lo, ok := s.low[o]; {
		case !ok || seq < lo:
			s.low[o], s.atLow[o] = seq, 1
		case seq == lo:
			s.atLow[o]++
		}
		return
	}
	if prev == s.low[o] {
		if s.atLow[o]--; s.atLow[o] == 0 {
			s.recompute(o)
		}
	}
}

// remove forgets peer.
func (s *peerSet) remove(peer crdt.ReplicaID) {
	vv, ok := s.vecs[peer]
	if !ok {
		return
	}
	delete(s.vecs, peer)
	delete(s.seen, peer)
	for o, seq := range vv {
		if seq == 0 {
			continue // never counted
		}
		if s.has[o]--; s.has[o] == 0 {
			delete(s.has, o)
			delete(s.low, o)
			delete(s.atLow, o)
			continue
		}
		if seq == s.low[o] {
			if s.atLow[o]--; s.atLow[o] == 0 {
				s.recompute(o)
			}
		}
	}
}

// recompute finds the least entry for o over the peers that have it.
func (s *peerSet) recompute(o crdt.ReplicaID) {
	var lo uint64
	n := 0
	for _, vv := range s.vecs {
		seq, ok := vv[o]
		if !ok || seq == 0 {
			continue
		}
		switch {
		case n == 0 || seq < lo:
			lo, n = seq, 1
		case seq == lo:
			n++
		}
	}
	if n == 0 {
		delete(s.low, o)
		delete(s.atLow, o)
		return
	}
	s.low[o], s.atLow[o] = lo, n
}

// stable returns, per origin of vv, the least of vv's entry and every
// peer's (a peer without the origin holds none of it).
func (s *peerSet) stable(vv crdt.VersionVector) crdt.VersionVector {
	out := make(crdt.VersionVector, len(vv))
	n := len(s.vecs)
	for o, seq := range vv {
		if n > 0 {
			if s.has[o] < n {
				continue
			}
			seq = min(seq, s.low[o])
		}
		if seq > 0 {
			out[o] = seq
		}
	}
	return out
}

// expired returns the peers last heard of before cutoff (Unix ms).
func (s *peerSet) expired(cutoff int64) []crdt.ReplicaID {
	var out []crdt.ReplicaID
	for p, t := range s.seen {
		if t < cutoff {
			out = append(out, p)
		}
	}
	return out
}
