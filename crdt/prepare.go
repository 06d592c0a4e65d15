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
//
// Prepare is PrepareFrom with r as the base: the writer saw r.
func (r *Record) Prepare(self ReplicaID, intent Intent, changes []Change) (cl uint64, fields []FieldOp, err error) {
	return r.PrepareFrom(self, nil, intent, changes)
}

// PrepareFrom is [Record.Prepare] for a write whose writer saw base, an
// earlier state of the record (a read-edit-save: the app read base, and
// the changes are what it changed since), rather than r. What the writer
// observed comes from base: a register write records the HLC base held for
// the field, and a remove lists the adds of the element base held, so
// adds that reached r after base survive it (add-wins). The rest comes
// from r: the op's causal length, and the totals an increment raises
// (changes carry deltas, which add to r's totals). A base at another
// causal length than the op's saw nothing of the record the op writes
// (it was deleted or re-created since): its writer observed nothing. A nil
// base means r. PrepareFrom modifies neither record.
func (r *Record) PrepareFrom(self ReplicaID, base *Record, intent Intent, changes []Change) (cl uint64, fields []FieldOp, err error) {
	switch intent {
	case IntentDelete:
		if !r.Exists() {
			return 0, nil, ErrNotFound
		}
		return r.CL + 1, nil, nil
	case IntentUpdate:
		if !r.Exists() {
			return 0, nil, ErrNotFound
		}
		cl = r.CL
	case IntentPut:
		cl = r.CL
		if !r.Exists() {
			cl = r.CL + 1
		}
	default:
		return 0, nil, fmt.Errorf("crdt: unknown intent %d", intent)
	}
	// After a (re-)create, nothing of the old state is visible.
	p := preparer{self: self, cl: cl, view: r, fields: make([]FieldOp, 0, len(changes))}
	if cl != r.CL {
		p.view = &Record{CL: cl}
	}
	p.observed = p.view
	if base != nil {
		p.observed = base
		if base.CL != cl {
			p.observed = &Record{CL: cl}
		}
	}
	for _, c := range changes {
		if c.Type == TextSplice || c.Type == ListSplice {
			continue // below, once the other changes are known
		}
		if err := p.change(c); err != nil {
			return 0, nil, err
		}
	}
	if p.fields, err = p.view.prepareSplices(self, changes, p.fields); err != nil {
		return 0, nil, err
	}
	return cl, p.fields, nil
}

// preparer builds the field ops of one local write, change by change.
// Several changes to one field in one write coalesce into one field op, as
// if applied in order: the last assignment wins, increments add up, max and
// min keep the extreme, and removing an element drops an earlier add of it.
type preparer struct {
	self ReplicaID
	cl   uint64  // the op's causal length
	view *Record // the record as the op finds it (empty after a (re-)create)
	// observed is what the writer saw: the HLCs register writes replace
	// and the adds removes cancel.
	observed *Record
	fields   []FieldOp
}

// find returns the index of the field op of field name, or -1.
func (p *preparer) find(name string) int {
	for i := range p.fields {
		if p.fields[i].Name == name {
			return i
		}
	}
	return -1
}

// change folds one change into the field ops.
func (p *preparer) change(c Change) error {
	want := changeOpType(c.Type)
	if want == 0 {
		return fmt.Errorf("crdt: field %q: unknown change type %d", c.Name, c.Type)
	}
	prev := p.find(c.Name)
	if prev >= 0 && p.fields[prev].Type.Kind() != want.Kind() {
		return fmt.Errorf("%w: field %q changed as a %v and a %v in one write", ErrInvalidOp, c.Name, p.fields[prev].Type.Kind(), want.Kind())
	}
	switch c.Type {
	case Set, Unset:
		fo := FieldOp{Name: c.Name, Type: Assign}
		if c.Type == Set && !isNil(c.Value) {
			fo.Value = c.Value
		}
		if prev >= 0 {
			p.fields[prev].Value = fo.Value
			return nil
		}
		if f := p.observed.current(c.Name); f != nil {
			fo.Seen = f.At.HLC
		}
		p.fields = append(p.fields, fo)
	case AddElem:
		p.fields = append(p.fields, FieldOp{Name: c.Name, Type: Add, Value: c.Value})
	case RemoveElem:
		p.fields = slices.DeleteFunc(p.fields, func(f FieldOp) bool {
			return f.Name == c.Name && f.Type == Add && bytes.Equal(f.Value, c.Value)
		})
		if dots := p.observed.observedAdds(c.Name, c.Value); len(dots) > 0 {
			p.fields = append(p.fields, FieldOp{Name: c.Name, Type: Remove, Value: c.Value, Dots: dots})
		}
	case Increment:
		return p.increment(c, prev)
	case OfferMax, OfferMin:
		if prev >= 0 {
			o := orderRegister(c.Value, p.fields[prev].Value)
			if (want == WriteMax && o > 0) || (want == WriteMin && o < 0) {
				p.fields[prev].Value = c.Value
			}
			return nil
		}
		p.fields = append(p.fields, FieldOp{Name: c.Name, Type: want, Value: c.Value})
	}
	return nil
}

// increment adds c.Delta to self's totals of a counter: those of an
// earlier change in this write (the field op at prev), or else those the
// record holds at the op's causal length.
func (p *preparer) increment(c Change, prev int) error {
	if c.Delta == 0 {
		return nil
	}
	var t Tally
	if prev >= 0 {
		t.P, t.N = p.fields[prev].P, p.fields[prev].N
	} else if f := p.view.component(c.Name, KindCounter); f != nil {
		if i, ok := slices.BinarySearchFunc(f.Counts, p.self, func(t Tally, o ReplicaID) int { return t.Origin.Compare(o) }); ok && f.Counts[i].CL == p.cl {
			t = f.Counts[i]
		}
	}
	if c.Delta > 0 {
		if t.P > math.MaxUint64-uint64(c.Delta) {
			return fmt.Errorf("%w: field %q", ErrCounterOverflow, c.Name)
		}
		t.P += uint64(c.Delta)
	} else {
		d := uint64(-(c.Delta + 1)) + 1 // |Delta| without overflowing MinInt64
		if t.N > math.MaxUint64-d {
			return fmt.Errorf("%w: field %q", ErrCounterOverflow, c.Name)
		}
		t.N += d
	}
	if prev >= 0 {
		p.fields[prev].P, p.fields[prev].N = t.P, t.N
		return nil
	}
	p.fields = append(p.fields, FieldOp{Name: c.Name, Type: Count, P: t.P, N: t.N})
	return nil
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
	i, ok := slices.BinarySearchFunc(f.Elems, v, func(e Elem, v []byte) int { return orderElems(e.Value, v) })
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
