package crdt

import (
	"errors"
	"fmt"

	"github.com/convergedb/converge/crdt/seq"
	"github.com/convergedb/converge/hlc"
)

// Kind is the kind of a field: how writes to it merge.
type Kind uint8

// Field kinds. Each is a join semilattice.
const (
	// KindRegister is a last-writer-wins register ordered by (CL, HLC, replica).
	KindRegister Kind = 1
	// KindSet is an add-wins observed-remove set of values.
	KindSet Kind = 2
	// KindCounter is a PN-counter: each origin's increments and decrements
	// are kept as two growing totals.
	KindCounter Kind = 3
	// KindMax keeps the greatest value written (by [CompareValues], ties
	// broken by bytes: the latest instant of timestamps).
	KindMax Kind = 4
	// KindMin keeps the least value written (by [CompareValues], ties
	// broken by bytes).
	KindMin Kind = 5
	// KindText is collaborative text: a sequence CRDT of code points
	// (package [seq]), edited by splices.
	KindText Kind = 6
	// KindList is a collaborative list: a sequence CRDT of msgpack
	// values (package [seq]), edited by splices.
	KindList Kind = 7
)

func (k Kind) valid() bool { return k >= KindRegister && k <= KindList }

// isSeq reports whether k is a sequence kind (text or list).
func (k Kind) isSeq() bool { return k == KindText || k == KindList }

func (k Kind) String() string {
	switch k {
	case KindRegister:
		return "register"
	case KindSet:
		return "set"
	case KindCounter:
		return "counter"
	case KindMax:
		return "max"
	case KindMin:
		return "min"
	case KindText:
		return "text"
	case KindList:
		return "list"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// FieldOpType is what a [FieldOp] does.
type FieldOpType uint8

// Field op types.
const (
	// Assign writes Value to a register (an empty Value unsets it).
	Assign FieldOpType = 1
	// Add adds the element Value to a set, tagged with the op's dot.
	Add FieldOpType = 2
	// Remove removes the element Value's adds listed in Dots (those its
	// writer observed); adds it did not observe survive.
	Remove FieldOpType = 3
	// Count sets the op origin's totals of a counter to P (increments) and
	// N (decrements); totals only grow.
	Count FieldOpType = 4
	// WriteMax offers Value to a max register.
	WriteMax FieldOpType = 5
	// WriteMin offers Value to a min register.
	WriteMin FieldOpType = 6
	// TextInsert inserts the code points of Value (a msgpack str) into a
	// text field: they get the ids (op origin, Clock), (op origin,
	// Clock+1), …, and go between the elements Left and Right, which
	// were adjacent where the op was written (zero: the start, the end).
	TextInsert FieldOpType = 7
	// TextDelete deletes the elements of a text field listed in Spans.
	TextDelete FieldOpType = 8
	// ListInsert inserts the elements of Value (a msgpack array) into a
	// list field, as TextInsert does into text.
	ListInsert FieldOpType = 9
	// ListDelete deletes the elements of a list field listed in Spans.
	ListDelete FieldOpType = 10
)

// Kind returns the kind of field the op type writes.
func (t FieldOpType) Kind() Kind {
	switch t {
	case Assign:
		return KindRegister
	case Add, Remove:
		return KindSet
	case Count:
		return KindCounter
	case WriteMax:
		return KindMax
	case WriteMin:
		return KindMin
	case TextInsert, TextDelete:
		return KindText
	case ListInsert, ListDelete:
		return KindList
	}
	return 0
}

func (t FieldOpType) String() string {
	switch t {
	case Assign:
		return "assign"
	case Add:
		return "add"
	case Remove:
		return "remove"
	case Count:
		return "count"
	case WriteMax:
		return "max"
	case WriteMin:
		return "min"
	case TextInsert:
		return "text-insert"
	case TextDelete:
		return "text-delete"
	case ListInsert:
		return "list-insert"
	case ListDelete:
		return "list-delete"
	}
	return fmt.Sprintf("fieldop(%d)", uint8(t))
}

// FieldOp is one write to one field.
type FieldOp struct {
	Name string
	Type FieldOpType
	// Value is the msgpack-encoded value (Assign, WriteMax, WriteMin) or
	// set element (Add, Remove). Empty means unset, for Assign.
	Value []byte
	// Seen is, for Assign, the HLC of the register value the writer
	// replaced (zero if none); it only serves conflict detection.
	Seen hlc.Timestamp
	// Dots are, for Remove, the adds of Value the writer observed.
	Dots []Dot
	// P and N are, for Count, the origin's new totals.
	P, N uint64
	// Clock is, for TextInsert and ListInsert, the clock of the first
	// inserted element.
	Clock uint64
	// Left and Right are, for TextInsert and ListInsert, the elements the
	// insert went between; zero for the start and the end.
	Left, Right ElemID
	// Spans are, for TextDelete and ListDelete, the deleted elements.
	Spans []Span
}

// ElemID identifies one element of a text or list field: the replica that
// inserted it and its clock (see [seq.ID]).
type ElemID = seq.ID

// Span is a range of element ids of one replica (see [seq.Span]).
type Span = seq.Span

// Op is one mutation of one record. Ops written in one transaction carry
// consecutive sequence numbers; the last has TxEnd set. Resolution marks
// an op written by a conflict resolution policy: it merges like any other
// op, and the conflicts it causes are never resolved again.
type Op struct {
	Namespace  string
	Collection string
	Key        string
	Dot        Dot
	HLC        hlc.Timestamp
	// CL is the record's causal length after the op at its writer: odd
	// for a create or update, even for a delete.
	CL         uint64
	TxEnd      bool
	Resolution bool
	Fields     []FieldOp
}

// Stamp returns the op's position in the total order of writes.
func (op *Op) Stamp() Stamp { return Stamp{HLC: op.HLC, Replica: op.Dot.Origin} }

// Version returns the op's (CL, stamp).
func (op *Op) Version() Version { return Version{CL: op.CL, Stamp: op.Stamp()} }

// IsDelete reports whether the op deletes its record.
func (op *Op) IsDelete() bool { return op.CL%2 == 0 }

// Limits bound what [Op.Validate] and the decoders accept.
const (
	MaxNameLen   = 1024    // namespace, collection, key and field names, in bytes
	MaxValueLen  = 1 << 20 // one encoded value
	MaxFieldOps  = 4096    // field ops in one op
	MaxOpSize    = 4 << 20 // one encoded op
	maxCL        = 1 << 62
	maxValueNest = 32 // nesting of arrays and maps inside a value
)

// ErrInvalidOp is wrapped by the errors of [Op.Validate] and [DecodeOp].
var ErrInvalidOp = errors.New("crdt: invalid op")

// Validate checks the op's structure: names present and bounded, a valid
// dot, HLC and CL, known field op types, values that are single well-formed
// msgpack values, and no field written twice in conflicting ways. Errors wrap
// ErrInvalidOp.
func (op *Op) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidOp, fmt.Sprintf(format, args...))
	}
	for _, n := range [...]struct{ what, s string }{{"namespace", op.Namespace}, {"collection", op.Collection}, {"key", op.Key}} {
		if n.s == "" || len(n.s) > MaxNameLen {
			return bad("%s must be 1 to %d bytes, is %d", n.what, MaxNameLen, len(n.s))
		}
	}
	if op.Dot.Origin.IsZero() {
		return bad("zero origin")
	}
	if op.Dot.Seq == 0 {
		return bad("sequence 0")
	}
	if op.HLC.IsZero() {
		return bad("zero HLC")
	}
	if op.CL == 0 || op.CL > maxCL {
		return bad("causal length %d out of range", op.CL)
	}
	if op.IsDelete() && len(op.Fields) > 0 {
		return bad("delete (CL %d) carries %d field writes", op.CL, len(op.Fields))
	}
	if len(op.Fields) > MaxFieldOps {
		return bad("%d field ops, limit %d", len(op.Fields), MaxFieldOps)
	}
	// Small ops (the usual) check names by scanning; large ones use a map.
	var names map[string]Kind
	if len(op.Fields) > 16 {
		names = make(map[string]Kind, len(op.Fields))
	}
	for i := range op.Fields {
		f := &op.Fields[i]
		if f.Name == "" || len(f.Name) > MaxNameLen {
			return bad("field %d: name must be 1 to %d bytes", i, MaxNameLen)
		}
		k := f.Type.Kind()
		if k == 0 {
			return bad("field %q: unknown op type %d", f.Name, f.Type)
		}
		if names != nil {
			if prev, ok := names[f.Name]; ok && (prev != k || !k.repeatable()) {
				return bad("field %q written twice in one op", f.Name)
			}
			names[f.Name] = k
		} else {
			for j := range i {
				if g := &op.Fields[j]; g.Name == f.Name && (g.Type.Kind() != k || !k.repeatable()) {
					return bad("field %q written twice in one op", f.Name)
				}
			}
		}
		if len(f.Value) > MaxValueLen {
			return bad("field %q: value of %d bytes, limit %d", f.Name, len(f.Value), MaxValueLen)
		}
		needValue := f.Type != Count && f.Type != Assign && f.Type != TextDelete && f.Type != ListDelete
		if len(f.Value) == 0 && needValue {
			return bad("field %q: %v without a value", f.Name, f.Type)
		}
		if len(f.Value) > 0 {
			if !needValue && f.Type != Assign {
				return bad("field %q: a value on a %v", f.Name, f.Type)
			}
			if err := checkValue(f.Value); err != nil {
				return bad("field %q: %v", f.Name, err)
			}
		}
		if err := validateDots(f); err != nil {
			return bad("field %q: %v", f.Name, err)
		}
		if err := validateSeqOp(op, i); err != nil {
			return bad("field %q: %v", f.Name, err)
		}
	}
	return nil
}

// validateDots checks a field op's dots: only a Remove has some, and each
// is a valid dot.
func validateDots(f *FieldOp) error {
	if f.Type != Remove && len(f.Dots) > 0 {
		return fmt.Errorf("dots on a %v", f.Type)
	}
	for _, d := range f.Dots {
		if d.Origin.IsZero() || d.Seq == 0 {
			return fmt.Errorf("invalid dot %v", d)
		}
	}
	return nil
}

// repeatable reports whether one op may write a field of kind k several
// times: set adds and removes, text and list inserts and deletes.
func (k Kind) repeatable() bool { return k == KindSet || k.isSeq() }
