package oplog

import (
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/convergedb/converge/crdt"
)

// naiveStable is the definition: per origin of vv, the least of vv's entry
// and every peer's.
func naiveStable(vv crdt.VersionVector, ps map[crdt.ReplicaID]crdt.VersionVector) crdt.VersionVector {
	out := make(crdt.VersionVector)
	for o, seq := range vv {
		for _, p := range ps {
			seq = min(seq, p[o])
		}
		if seq > 0 {
			out[o] = seq
		}
	}
	return out
}

// TestPeerSetStableMatchesDefinition: the incrementally kept least entries
// give the stable vector of the definition after any sequence of
// acknowledgements (vectors that grow) and removals.
func TestPeerSetStableMatchesDefinition(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 1))
		ids := make([]crdt.ReplicaID, 6)
		for i := range ids {
			ids[i][0] = byte(i + 1)
		}
		own := crdt.VersionVector{}
		model := map[crdt.ReplicaID]crdt.VersionVector{}
		s := newPeerSet()
		for step := range 60 {
			o := ids[r.IntN(len(ids))]
			own[o] += uint64(1 + r.IntN(3))
			p := ids[r.IntN(len(ids))]
			switch r.IntN(5) {
			case 0:
				delete(model, p)
				s.remove(p)
			default:
				vv := maps.Clone(model[p])
				if vv == nil {
					vv = crdt.VersionVector{}
				}
				for range r.IntN(3) {
					o := ids[r.IntN(len(ids))]
					vv[o] = max(vv[o], min(own[o], vv[o]+uint64(r.IntN(4))))
				}
				model[p] = vv
				s.set(p, maps.Clone(vv), int64(step))
			}
			got, want := s.stable(own), naiveStable(own, model)
			if !maps.Equal(got, want) {
				t.Fatalf("seed %d step %d: stable %v, want %v", seed, step, got, want)
			}
		}
	}
}
