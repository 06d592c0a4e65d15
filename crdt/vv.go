package crdt

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// VersionVector maps each origin to the highest sequence number of the
// contiguous prefix of its ops that a replica holds. Absent origins are 0.
// Because sequence numbers are dense and ops of one origin are applied in
// order, a vector says exactly which ops a replica has.
type VersionVector map[ReplicaID]uint64

// Get returns the vector's entry for origin.
func (v VersionVector) Get(origin ReplicaID) uint64 { return v[origin] }

// Contains reports whether the vector covers dot d.
func (v VersionVector) Contains(d Dot) bool { return d.Seq != 0 && d.Seq <= v[d.Origin] }

// Clone returns a copy of v (non-nil).
func (v VersionVector) Clone() VersionVector {
	c := make(VersionVector, len(v))
	maps.Copy(c, v)
	return c
}

// Merge raises v to the pointwise max of v and o.
func (v VersionVector) Merge(o VersionVector) {
	for r, s := range o {
		if s > v[r] {
			v[r] = s
		}
	}
}

// Meet returns the pointwise minimum of v and o: the ops both hold.
func (v VersionVector) Meet(o VersionVector) VersionVector {
	out := make(VersionVector, min(len(v), len(o)))
	for origin, seq := range v {
		if m := min(seq, o[origin]); m > 0 {
			out[origin] = m
		}
	}
	return out
}

// Covers reports whether v holds every op o holds.
func (v VersionVector) Covers(o VersionVector) bool {
	for r, s := range o {
		if v[r] < s {
			return false
		}
	}
	return true
}

// Equal reports whether v and o hold the same ops.
func (v VersionVector) Equal(o VersionVector) bool { return v.Covers(o) && o.Covers(v) }

// Origins returns the vector's origins with a non-zero entry, sorted.
func (v VersionVector) Origins() []ReplicaID {
	out := make([]ReplicaID, 0, len(v))
	for r, s := range v {
		if s > 0 {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, ReplicaID.Compare)
	return out
}

// Sum returns the number of ops the vector covers.
func (v VersionVector) Sum() uint64 {
	var n uint64
	for _, s := range v {
		n += s
	}
	return n
}

// Range is the ops of one origin with sequence numbers From..To, inclusive.
type Range struct {
	Origin   ReplicaID
	From, To uint64
}

// Len returns the number of ops in the range.
func (r Range) Len() uint64 { return r.To - r.From + 1 }

// Missing returns, sorted by origin, the ranges of ops that v holds and
// have lacks.
func (v VersionVector) Missing(have VersionVector) []Range {
	var out []Range
	for _, r := range v.Origins() {
		if s, h := v[r], have[r]; s > h {
			out = append(out, Range{Origin: r, From: h + 1, To: s})
		}
	}
	return out
}

// String formats the vector as {origin:seq ...}, sorted by origin.
func (v VersionVector) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, r := range slices.SortedFunc(maps.Keys(v), ReplicaID.Compare) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%v:%d", r, v[r])
	}
	b.WriteByte('}')
	return b.String()
}
