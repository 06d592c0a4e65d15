package crdt

import (
	"bytes"
	"cmp"
	"fmt"

	"github.com/convergedb/converge/hlc"
	"github.com/oklog/ulid/v2"
)

// ReplicaID names a replica: a ULID, in its 16-byte binary form.
// The zero ReplicaID is invalid.
type ReplicaID [16]byte

// String returns the ULID text of r.
func (r ReplicaID) String() string { return ulid.ULID(r).String() }

// IsZero reports whether r is the zero (invalid) ReplicaID.
func (r ReplicaID) IsZero() bool { return r == ReplicaID{} }

// Compare orders replica ids by their bytes.
func (r ReplicaID) Compare(o ReplicaID) int { return bytes.Compare(r[:], o[:]) }

// ParseReplicaID reads the ULID text of a replica id.
func ParseReplicaID(s string) (ReplicaID, error) {
	u, err := ulid.ParseStrict(s)
	if err != nil {
		return ReplicaID{}, fmt.Errorf("crdt: replica id %q: %w", s, err)
	}
	if (ReplicaID(u)).IsZero() {
		return ReplicaID{}, fmt.Errorf("crdt: replica id %q is zero", s)
	}
	return ReplicaID(u), nil
}

// Dot identifies one op: its origin replica and its sequence number in the
// (namespace, origin) log. Sequence numbers are dense, starting at 1.
type Dot struct {
	Origin ReplicaID
	Seq    uint64
}

// Compare orders dots by origin, then sequence.
func (d Dot) Compare(o Dot) int {
	if c := d.Origin.Compare(o.Origin); c != 0 {
		return c
	}
	return cmp.Compare(d.Seq, o.Seq)
}

func (d Dot) String() string { return fmt.Sprintf("%v:%d", d.Origin, d.Seq) }

// Stamp is the total order of writes: HLC, then replica id, which breaks
// ties between replicas (a replica never issues one HLC twice).
type Stamp struct {
	HLC     hlc.Timestamp
	Replica ReplicaID
}

// Compare returns -1, 0 or +1 as s is before, equal to or after o.
func (s Stamp) Compare(o Stamp) int {
	if c := s.HLC.Compare(o.HLC); c != 0 {
		return c
	}
	return s.Replica.Compare(o.Replica)
}

// IsZero reports whether s is the zero Stamp.
func (s Stamp) IsZero() bool { return s == Stamp{} }

func (s Stamp) String() string { return fmt.Sprintf("%v@%v", s.HLC, s.Replica) }

// Version is the position of a write in the order of one record's writes:
// causal length first, then stamp.
type Version struct {
	CL uint64
	Stamp
}

// Compare returns -1, 0 or +1 as v is before, equal to or after o.
func (v Version) Compare(o Version) int {
	if c := cmp.Compare(v.CL, o.CL); c != 0 {
		return c
	}
	return v.Stamp.Compare(o.Stamp)
}
