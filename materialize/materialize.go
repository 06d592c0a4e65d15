// Package materialize folds ops into record state and returns the effects
// as values: the new state, the change a reader would see, and the
// conflicts the op revealed. It is pure and deterministic, like the rest of
// the core; the store ([github.com/convergedb/converge/oplog]) reads a
// record's state, calls [Fold], and writes what comes back in one batch.
//
// Usage:
//
//	eff := materialize.Fold(prev, &op) // prev is nil for an untouched record
//	// write eff.State, record eff.Conflicts, publish eff.Change
package materialize

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/sortedmerge"
)

// ChangeKind says how an op changed what readers of a record see.
type ChangeKind uint8

const (
	// Unchanged: the op changed nothing visible (it lost every merge, or
	// touched a deleted record).
	Unchanged ChangeKind = iota
	// Created: the record did not exist and now does.
	Created
	// Updated: the record existed and still does, with other field values.
	Updated
	// Deleted: the record existed and no longer does.
	Deleted
)

func (k ChangeKind) String() string {
	switch k {
	case Unchanged:
		return "unchanged"
	case Created:
		return "created"
	case Updated:
		return "updated"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("change(%d)", uint8(k))
}

// Change is what one op did to a record, as a reader sees it.
type Change struct {
	Namespace, Collection, Key string
	Kind                       ChangeKind
	// Fields names the fields whose visible value changed, sorted.
	Fields []string
	// Dot and HLC identify the op; Dot.Origin is the replica that wrote it.
	Dot crdt.Dot
	HLC hlc.Timestamp
	// Seq is the change's position in its namespace's change feed,
	// assigned by the store when it commits the change (0 before).
	Seq uint64
	// Local is set by the store for changes written on this replica.
	Local bool
}

// Conflict is a pair of concurrent writes of different values to one
// register: neither writer saw the other's value. The merge already chose the winner; a conflict is
// a report, for a conflict feed or a resolution policy.
type Conflict struct {
	Namespace, Collection, Key, Field string
	Winner, Loser                     Write
	// Resolution reports that the op whose arrival revealed the conflict
	// was written by a resolution policy ([crdt.Op.Resolution]): such a
	// conflict is never resolved again. It is not kept in the stored
	// conflict log (see [AppendConflict]).
	Resolution bool
}

// Write is one side of a [Conflict].
type Write struct {
	Version crdt.Version // (CL, HLC, replica) of the write
	Value   []byte       // msgpack-encoded; empty for an unset
}

// Effect is the result of folding one op into a record.
type Effect struct {
	// State is the record's new state. Fold never modifies the state it
	// was given; State is a new value.
	State     *crdt.Record
	Change    Change
	Conflicts []Conflict
}

// Fold applies op to prev (nil for a record no op has touched yet) and
// returns the effects. Folding an op a second time yields the same State
// and an Unchanged change.
func Fold(prev *crdt.Record, op *crdt.Op) Effect {
	if prev == nil {
		prev = &crdt.Record{}
	}
	// A shallow copy suffices: Merge never writes into the backing arrays
	// of either record's slices, so prev stays as it was.
	next := *prev
	next.Apply(op)
	eff := Effect{State: &next}
	eff.Conflicts = conflicts(prev, op)
	eff.Change = diff(prev, &next, op)
	eff.Change.Namespace, eff.Change.Collection, eff.Change.Key = op.Namespace, op.Collection, op.Key
	eff.Change.Dot, eff.Change.HLC = op.Dot, op.HLC
	return eff
}

// FoldState merges a record state received whole (a snapshot's) into prev
// (nil for a record no op has touched yet) and returns the effects: the
// new state and the visible change, which carries no dot. Snapshots
// report no conflicts.
func FoldState(prev, delta *crdt.Record, ns, coll, key string) Effect {
	if prev == nil {
		prev = &crdt.Record{}
	}
	next := *prev
	next.Merge(delta)
	eff := Effect{State: &next}
	eff.Change = diff(prev, &next, nil)
	eff.Change.Namespace, eff.Change.Collection, eff.Change.Key = ns, coll, key
	eff.Change.HLC = next.Updated.HLC
	return eff
}

// conflicts finds the register writes of op concurrent with prev's values.
func conflicts(prev *crdt.Record, op *crdt.Op) []Conflict {
	var out []Conflict
	ver := op.Version()
	for i := range op.Fields {
		fo := &op.Fields[i]
		if fo.Type != crdt.Assign {
			continue
		}
		cur := registerOf(prev, fo.Name)
		if cur == nil || cur.At.CL != op.CL || cur.At == ver || bytes.Equal(cur.Value, normalizeNil(fo.Value)) {
			// Same write, another incarnation, or the same value: no
			// disagreement to report.
			continue
		}
		in := Write{Version: ver, Value: normalizeNil(fo.Value)}
		have := Write{Version: cur.At, Value: cur.Value}
		if ver.Compare(cur.At) > 0 {
			if fo.Seen < cur.At.HLC {
				out = append(out, newConflict(op, fo.Name, in, have))
			}
		} else if cur.Seen < op.HLC {
			out = append(out, newConflict(op, fo.Name, have, in))
		}
	}
	return out
}

func newConflict(op *crdt.Op, field string, winner, loser Write) Conflict {
	return Conflict{Namespace: op.Namespace, Collection: op.Collection, Key: op.Key, Field: field, Winner: winner, Loser: loser, Resolution: op.Resolution}
}

func registerOf(r *crdt.Record, name string) *crdt.Field {
	for i := range r.Fields {
		if f := &r.Fields[i]; f.Name == name && f.Kind == crdt.KindRegister {
			return f
		}
	}
	return nil
}

// diff compares what readers see of two states of one record, the second
// made by applying op to the first (nil: by merging a whole state).
func diff(prev, next *crdt.Record, op *crdt.Op) Change {
	was, is := prev.Exists(), next.Exists()
	var c Change
	switch {
	case !was && is:
		c.Kind = Created
	case was && !is:
		c.Kind = Deleted
	case !was && !is:
		return c
	}
	if !was || !is {
		// Created or deleted: every field visible in the state that
		// exists changed.
		c.Fields = visibleNames(next)
		if !is {
			c.Fields = visibleNames(prev)
		}
		return c
	}
	if prev.CL == next.CL && op != nil {
		// Same incarnation: only the fields op wrote can have changed.
		for i := range op.Fields {
			name := op.Fields[i].Name
			if i > 0 && slices.ContainsFunc(op.Fields[:i], func(f crdt.FieldOp) bool { return f.Name == name }) {
				continue
			}
			a, aok := prev.Get(name)
			b, bok := next.Get(name)
			if aok != bok || a.Kind != b.Kind || !bytes.Equal(a.Value, b.Value) {
				c.Fields = append(c.Fields, name)
			}
		}
		slices.Sort(c.Fields)
		if len(c.Fields) > 0 {
			c.Kind = Updated
		}
		return c
	}
	changed := func(f crdt.FieldValue) { c.Fields = append(c.Fields, f.Name) }
	sortedmerge.Walk(prev.Visible(), next.Visible(),
		func(x, y crdt.FieldValue) int { return strings.Compare(x.Name, y.Name) },
		changed, changed,
		func(x, y crdt.FieldValue) {
			if x.Kind != y.Kind || !bytes.Equal(x.Value, y.Value) {
				changed(x)
			}
		})
	if c.Kind == Unchanged && len(c.Fields) > 0 {
		c.Kind = Updated
	}
	return c
}

// visibleNames returns the names of r's visible fields, sorted, without
// building their values (r.Visible does).
func visibleNames(r *crdt.Record) []string {
	var out []string
	for i := 0; i < len(r.Fields); {
		name := r.Fields[i].Name
		if r.Has(name) {
			if out == nil {
				out = make([]string, 0, len(r.Fields)-i)
			}
			out = append(out, name)
		}
		for i < len(r.Fields) && r.Fields[i].Name == name {
			i++
		}
	}
	return out
}

// normalizeNil maps the msgpack nil to empty, as registers store an unset.
func normalizeNil(v []byte) []byte {
	if len(v) == 1 && v[0] == 0xc0 {
		return nil
	}
	return v
}
