package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/convergedb/converge/crdt/seq"
	"github.com/convergedb/converge/internal/mp"
)

// ErrNotFound is returned by [Record.Prepare] for an update or delete of a
// record that does not exist (absent or deleted).
var ErrNotFound = errors.New("not found")

// ErrCounterOverflow is returned by [Record.Prepare] when an increment would
// overflow a counter's totals.
var ErrCounterOverflow = errors.New("crdt: counter overflow")

// Intent is what a local write means to do to its record.
type Intent uint8

const (
	// IntentPut creates the record if it is absent or deleted, and
	// otherwise updates it.
	IntentPut Intent = iota + 1
	// IntentUpdate updates an existing record; ErrNotFound otherwise.
	IntentUpdate
	// IntentDelete deletes an existing record; ErrNotFound otherwise.
	IntentDelete
)

// ChangeType is the type of a local field change.
type ChangeType uint8

// Local field changes, turned into field ops by [Record.Prepare].
const (
	Set        ChangeType = iota + 1 // assign Value to a register
	Unset                            // unset a register
	AddElem                          // add Value to a set
	RemoveElem                       // remove Value from a set (the adds observed)
	Increment                        // add Delta to a counter
	OfferMax                         // offer Value to a max register
	OfferMin                         // offer Value to a min register
	// TextSplice deletes Del code points of a text field from Pos on, then
	// inserts there the text Value holds (a msgpack str; empty: none).
	TextSplice
	// ListSplice deletes Del elements of a list field from Pos on, then
	// inserts there the elements Value holds (a msgpack array; empty:
	// none). Replacing an element is a splice of one for one; there is no
	// move (a move is a delete and an insert).
	ListSplice
)

// Change is one field change of a local write.
type Change struct {
	Name  string
	Type  ChangeType
	Value []byte // msgpack-encoded
	Delta int64  // for Increment
	// Pos and Del are, for TextSplice and ListSplice, where the splice
	// starts and how many elements it deletes, in the field as the
	// earlier splices of the write left it.
	Pos, Del int
}

// ErrRange is returned (wrapped) by [Record.Prepare] for a splice outside
// its field's text or list.
var ErrRange = seq.ErrRange

// Prepare turns a local write on r into the op's causal length and field
// ops, as replica self would write it: a register write records the HLC it
// replaces, a remove lists the adds it observed, an increment carries self's
// new totals. It does not modify r. Prepare returns ErrNotFound for an
// IntentUpdate or IntentDelete of a record that does not exist; a Put on a
// deleted record re-creates it empty but for the changes. Splices of a text
// or list field apply in order to the field's current sequence (an empty
// one after a re-create), and become inserts and deletes of elements by
// id; their positions out of range are an error wrapping [ErrRange].
func (r *Record) Prepare(self ReplicaID, intent Intent, changes []Change) (cl uint64, fields []FieldOp, err error) {
	if cl, err = r.causalLength(intent); err != nil || intent == IntentDelete {
		return cl, nil, err
	}
	// After a (re-)create, nothing of the old state is visible.
	view := r
	if cl != r.CL {
		view = &Record{CL: cl}
	}
	fields = make([]FieldOp, 0, len(changes))
	// Several changes to one field in one write coalesce into one field
	// op, as if applied in order: the last assignment wins, increments add
	// up, max and min keep the extreme, and removing an element drops an
	// earlier add of it.
	for _, c := range changes {
		if c.Type == TextSplice || c.Type == ListSplice {
			continue // below, once the other changes are known
		}
		want := changeOpType(c.Type)
		if want == 0 {
			return 0, nil, fmt.Errorf("crdt: field %q: unknown change type %d", c.Name, c.Type)
		}
		prev := slices.IndexFunc(fields, func(f FieldOp) bool { return f.Name == c.Name })
		if prev >= 0 && fields[prev].Type.Kind() != want.Kind() {
			return 0, nil, fmt.Errorf("%w: field %q changed as a %v and a %v in one write", ErrInvalidOp, c.Name, fields[prev].Type.Kind(), want.Kind())
		}
		switch c.Type {
		case Set, Unset:
			fo := FieldOp{Name: c.Name, Type: Assign}
			if c.Type == Set && !isNil(c.Value) {
				fo.Value = c.Value
			}
			if prev >= 0 {
				fields[prev].Value = fo.Value
				continue
			}
			if f := view.current(c.Name); f != nil {
				fo.Seen = f.At.HLC
			}
			fields = append(fields, fo)
		case AddElem:
			fields = append(fields, FieldOp{Name: c.Name, Type: Add, Value: c.Value})
		case RemoveElem:
			fields = slices.DeleteFunc(fields, func(f FieldOp) bool {
				return f.Name == c.Name && f.Type == Add && bytes.Equal(f.Value, c.Value)
			})
			if dots := view.observedAdds(c.Name, c.Value); len(dots) > 0 {
				fields = append(fields, FieldOp{Name: c.Name, Type: Remove, Value: c.Value, Dots: dots})
			}
		case Increment:
			if c.Delta == 0 {
				continue
			}
			t, err := view.tally(self, cl, &c, prev, fields)
			if err != nil {
				return 0, nil, err
			}
			if prev >= 0 {
				fields[prev].P, fields[prev].N = t.P, t.N
				continue
			}
			fields = append(fields, FieldOp{Name: c.Name, Type: Count, P: t.P, N: t.N})
		case OfferMax, OfferMin:
			if prev >= 0 {
				o := orderValues(c.Value, fields[prev].Value)
				if (want == WriteMax && o > 0) || (want == WriteMin && o < 0) {
					fields[prev].Value = c.Value
				}
				continue
			}
			fields = append(fields, FieldOp{Name: c.Name, Type: want, Value: c.Value})
		}
	}
	if fields, err = view.prepareSplices(self, changes, fields); err != nil {
		return 0, nil, err
	}
	return cl, fields, nil
}

// causalLength returns the CL of a write of intent on r: ErrNotFound for
// an update or delete of a record that does not exist.
func (r *Record) causalLength(intent Intent) (uint64, error) {
	switch intent {
	case IntentDelete, IntentUpdate:
		if !r.Exists() {
			return 0, ErrNotFound
		}
		if intent == IntentDelete {
			return r.CL + 1, nil
		}
		return r.CL, nil
	case IntentPut:
		if !r.Exists() {
			return r.CL + 1, nil
		}
		return r.CL, nil
	}
	return 0, fmt.Errorf("crdt: unknown intent %d", intent)
}

// tally returns self's new totals of counter c.Name after the increment
// c: from the write's earlier increment of it (fields[prev]) or from the
// record at causal length cl.
func (r *Record) tally(self ReplicaID, cl uint64, c *Change, prev int, fields []FieldOp) (Tally, error) {
	var t Tally
	if prev >= 0 {
		t.P, t.N = fields[prev].P, fields[prev].N
	} else if f := r.component(c.Name, KindCounter); f != nil {
		if i, ok := slices.BinarySearchFunc(f.Counts, self, func(t Tally, o ReplicaID) int { return t.Origin.Compare(o) }); ok && f.Counts[i].CL == cl {
			t = f.Counts[i]
		}
	}
	if c.Delta > 0 {
		if t.P > math.MaxUint64-uint64(c.Delta) {
			return t, fmt.Errorf("%w: field %q", ErrCounterOverflow, c.Name)
		}
		t.P += uint64(c.Delta)
		return t, nil
	}
	d := uint64(-(c.Delta + 1)) + 1 // |Delta| without overflowing MinInt64
	if t.N > math.MaxUint64-d {
		return t, fmt.Errorf("%w: field %q", ErrCounterOverflow, c.Name)
	}
	t.N += d
	return t, nil
}

// component returns the field entry of (name, kind), or nil.
func (r *Record) component(name string, kind Kind) *Field {
	i, ok := slices.BinarySearchFunc(r.Fields, Field{Name: name, Kind: kind}, func(a, b Field) int { return compareFieldKey(&a, &b) })
	if !ok {
		return nil
	}
	return &r.Fields[i]
}

// observedAdds returns the live adds of element v in set field name.
func (r *Record) observedAdds(name string, v []byte) []Dot {
	f := r.component(name, KindSet)
	if f == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(f.Elems, v, func(e Elem, v []byte) int { return orderValues(e.Value, v) })
	if !ok {
		return nil
	}
	dots := make([]Dot, len(f.Elems[i].Adds))
	for j, t := range f.Elems[i].Adds {
		dots[j] = t.Dot
	}
	return dots
}

// SetElems returns the visible elements of set field name, each
// msgpack-encoded, in [OrderValues] order.
func (r *Record) SetElems(name string) [][]byte {
	f := r.current(name)
	if f == nil || f.Kind != KindSet {
		return nil
	}
	elems := r.visibleElems(f)
	out := make([][]byte, len(elems))
	for i, e := range elems {
		out[i] = e.Value
	}
	return out
}

// EncodeInt returns the msgpack encoding of an integer, as field values hold it.
func EncodeInt(v int64) []byte { return mp.AppendInt(nil, v) }

// EncodeString returns the msgpack encoding of a string.
func EncodeString(s string) []byte { return mp.AppendString(nil, s) }

// changeOpType returns the field op type a change becomes, or 0.
func changeOpType(t ChangeType) FieldOpType {
	switch t {
	case Set, Unset:
		return Assign
	case AddElem:
		return Add
	case RemoveElem:
		return Remove
	case Increment:
		return Count
	case OfferMax:
		return WriteMax
	case OfferMin:
		return WriteMin
	}
	return 0
}
