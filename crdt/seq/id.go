package seq

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
)

// Replica names the writer of elements: the 16 bytes of a replica id. The
// zero Replica names no one; it marks the absent origin (the start or the
// end of the sequence) in an [ID].
type Replica [16]byte

// IsZero reports whether r is the zero Replica.
func (r Replica) IsZero() bool { return r == Replica{} }

// Compare orders replicas by their bytes.
func (r Replica) Compare(o Replica) int { return bytes.Compare(r[:], o[:]) }

// MaxClock bounds element clocks: every element's clock is below it, so a
// replica can insert up to MaxClock elements into one sequence.
const MaxClock = 1<<32 - 1

// ID identifies one element of a sequence: the replica that inserted it and
// its clock, the count of elements that replica inserted into the sequence
// before it. One replica's elements have consecutive clocks from 0, so a run
// of elements it typed is one range of ids. The zero ID stands for no
// element: the start of the sequence as a left origin, its end as a right
// origin.
type ID struct {
	Replica Replica
	Clock   uint64
}

// IsZero reports whether id is the zero ID (no element).
func (id ID) IsZero() bool { return id.Replica.IsZero() }

// Compare orders ids by replica, then clock.
func (id ID) Compare(o ID) int {
	if c := id.Replica.Compare(o.Replica); c != 0 {
		return c
	}
	return cmp.Compare(id.Clock, o.Clock)
}

// String returns the id as replica:clock, the replica in hex, or "none".
func (id ID) String() string {
	if id.IsZero() {
		return "none"
	}
	return fmt.Sprintf("%x:%d", id.Replica[:], id.Clock)
}

// Span is a range of ids of one replica: N elements from ID on, N ≥ 1.
type Span struct {
	ID ID
	N  uint64
}

// Insert is the insertion of a run of elements, as it travels between
// replicas: Content gets the ids ID, ID+1, …, and goes between the elements
// Left and Right, which were adjacent (tombstones included) where it was
// written. A zero Left is the start of the sequence, a zero Right its end.
type Insert[E any] struct {
	ID          ID
	Left, Right ID
	Content     []E
}

// Side says which element an [Anchor] sticks to.
type Side uint8

const (
	// After anchors to the position just after an element (or the start
	// of the sequence, for the zero ID): text inserted at the position
	// later goes after the anchor.
	After Side = iota
	// Before anchors to the position just before an element (or the end
	// of the sequence, for the zero ID): text inserted at the position
	// later goes before the anchor, which moves right with its element.
	Before
)

// Anchor is a stable position in a sequence, for a cursor or a comment:
// just after or just before one element. It keeps its place through any
// edits, concurrent ones included; if its element is deleted, it resolves
// to where the element was. The zero Anchor is the start of the sequence,
// and {Side: Before} its end.
type Anchor struct {
	ID   ID
	Side Side
}

// Errors of the local operations.
var (
	// ErrRange is returned for a position or length outside the sequence.
	ErrRange = errors.New("seq: position out of range")
	// ErrClockExhausted is returned when an insert would give an element
	// a clock of MaxClock or more.
	ErrClockExhausted = errors.New("seq: replica clock exhausted")
	// ErrZeroReplica is returned for an insert by the zero Replica.
	ErrZeroReplica = errors.New("seq: zero replica")
)
