package proptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
	"github.com/convergedb/converge/oplog"
)

// Model is a reference implementation of Converge's merge semantics, as
// plain as it can be: it holds a set of ops and computes each record's
// visible state from all of them at once, straight from the rules of the
// design (not incrementally, and sharing no merge code with package crdt):
//
//   - a record's causal length (CL) is the greatest CL of its ops; it
//     exists iff that is odd; only writes made at that CL are visible;
//   - Created and Updated are the least and greatest (HLC, replica) of the
//     ops at that CL;
//   - a field shows the kind written last, by (CL, HLC, replica), if that
//     write is at the record's CL;
//   - a register holds the value of the greatest (CL, HLC, replica) assign
//     (an empty or nil value leaves it unset: not visible);
//   - a set holds the elements with an add at the record's CL whose dot no
//     remove of that element lists (removes of any CL count), listed in
//     crdt.OrderValues order;
//   - a counter is the sum over origins of (greatest P − greatest N) of
//     that origin's counts at the record's CL;
//   - a max (min) register holds the greatest (least) value offered at the
//     record's CL, by crdt.CompareValues, ties broken by bytes.
//
// Ops are kept by dot, so adding an op twice is harmless; adding two
// different ops with one dot is an error. A Model is not safe for
// concurrent use.
type Model struct {
	ops map[string]map[crdt.Dot]crdt.Op // namespace → dot → op
	raw map[string]map[crdt.Dot][]byte  // their encodings, to compare
}

// NewModel returns an empty model.
func NewModel() *Model {
	return &Model{ops: make(map[string]map[crdt.Dot]crdt.Op), raw: make(map[string]map[crdt.Dot][]byte)}
}

// Add adds ops to the model's set. It returns an error if an op has the
// dot of a different op already added: a dot names one op.
func (m *Model) Add(ops ...crdt.Op) error {
	for _, op := range ops {
		enc := crdt.EncodeOp(&op)
		byDot := m.ops[op.Namespace]
		if byDot == nil {
			byDot = make(map[crdt.Dot]crdt.Op)
			m.ops[op.Namespace] = byDot
			m.raw[op.Namespace] = make(map[crdt.Dot][]byte)
		}
		if old, ok := m.raw[op.Namespace][op.Dot]; ok {
			if !bytes.Equal(old, enc) {
				return fmt.Errorf("proptest: model: two different ops with dot %v in %q: %+v and %+v", op.Dot, op.Namespace, byDot[op.Dot], op)
			}
			continue
		}
		byDot[op.Dot] = op
		m.raw[op.Namespace][op.Dot] = enc
	}
	return nil
}

// AddLog adds every op of namespace ns that db holds. Once db compacted
// ns, its log no longer holds every op and AddLog fails with an error
// wrapping converge.ErrCompacted: give the model the ops as they are
// written instead (see [Model.Add]), and check a replica against the ops
// its vector covers with [Model.Within].
func (m *Model) AddLog(ctx context.Context, db *converge.DB, ns string) error {
	for e, err := range db.Admin().Log().Missing(ctx, ns, nil) {
		if err != nil {
			return fmt.Errorf("proptest: model: read log of %s: %w", db.ReplicaID(), logErr{err})
		}
		if err := m.Add(e.Op); err != nil {
			return err
		}
	}
	return nil
}

// Ops returns the model's ops of ns, sorted by dot.
func (m *Model) Ops(ns string) []crdt.Op {
	out := slices.Collect(maps.Values(m.ops[ns]))
	slices.SortFunc(out, func(a, b crdt.Op) int { return a.Dot.Compare(b.Dot) })
	return out
}

// Within returns a model of the ops of ns that vv covers: what a replica
// holding vv must show.
func (m *Model) Within(ns string, vv crdt.VersionVector) *Model {
	out := NewModel()
	for d, op := range m.ops[ns] {
		if vv.Contains(d) {
			if out.ops[ns] == nil {
				out.ops[ns] = make(map[crdt.Dot]crdt.Op)
				out.raw[ns] = make(map[crdt.Dot][]byte)
			}
			out.ops[ns][d] = op
			out.raw[ns][d] = m.raw[ns][d]
		}
	}
	return out
}

// RecordID names a record in a namespace.
type RecordID struct{ Collection, Key string }

func (id RecordID) String() string { return id.Collection + "/" + id.Key }

// ModelRecord is a record's state as the model computes it.
type ModelRecord struct {
	CL               uint64
	Created, Updated crdt.Stamp
	// Fields are the visible fields; none when the record does not exist.
	Fields map[string]ModelField
}

// Exists reports whether the record exists (odd CL).
func (r *ModelRecord) Exists() bool { return r.CL%2 == 1 }

// ModelField is a visible field's value.
type ModelField struct {
	Kind  crdt.Kind
	Value []byte   // a register's, max's or min's msgpack-encoded value
	Elems [][]byte // a set's msgpack-encoded elements, in crdt.OrderValues order
	Count int64    // a counter's total
}

func (f ModelField) String() string {
	switch f.Kind {
	case crdt.KindSet:
		parts := make([]string, len(f.Elems))
		for i, e := range f.Elems {
			parts[i] = fmt.Sprintf("%x", e)
		}
		return fmt.Sprintf("set[%s]", strings.Join(parts, " "))
	case crdt.KindCounter:
		return fmt.Sprintf("counter(%d)", f.Count)
	}
	return fmt.Sprintf("%v(%x)", f.Kind, f.Value)
}

// Records computes the state of every record of ns that an op touched.
func (m *Model) Records(ns string) map[RecordID]*ModelRecord {
	byRecord := make(map[RecordID][]*crdt.Op)
	for _, op := range m.ops[ns] {
		id := RecordID{op.Collection, op.Key}
		byRecord[id] = append(byRecord[id], &op)
	}
	out := make(map[RecordID]*ModelRecord, len(byRecord))
	for id, ops := range byRecord {
		out[id] = computeRecord(ops)
	}
	return out
}

// write is one field op with the op that carries it.
type write struct {
	op *crdt.Op
	f  *crdt.FieldOp
}

func computeRecord(ops []*crdt.Op) *ModelRecord {
	r := &ModelRecord{Fields: make(map[string]ModelField)}
	for _, op := range ops {
		r.CL = max(r.CL, op.CL)
	}
	first := true
	for _, op := range ops {
		if op.CL != r.CL {
			continue
		}
		st := op.Stamp()
		if first || st.Compare(r.Created) < 0 {
			r.Created = st
		}
		if first || st.Compare(r.Updated) > 0 {
			r.Updated = st
		}
		first = false
	}
	if !r.Exists() {
		return r
	}
	// Every write, grouped by field name.
	byName := make(map[string][]write)
	for _, op := range ops {
		for i := range op.Fields {
			f := &op.Fields[i]
			byName[f.Name] = append(byName[f.Name], write{op, f})
		}
	}
	for name, ws := range byName {
		// The kind written last, by (CL, HLC, replica).
		var last write
		for _, w := range ws {
			if last.op == nil || w.op.Version().Compare(last.op.Version()) > 0 {
				last = w
			}
		}
		if last.op.CL != r.CL {
			continue // the field was last written before the record's (re-)creation
		}
		kind := last.f.Type.Kind()
		var of []write // writes of that kind
		for _, w := range ws {
			if w.f.Type.Kind() == kind {
				of = append(of, w)
			}
		}
		if v, ok := fieldValue(kind, r.CL, of); ok {
			r.Fields[name] = v
		}
	}
	return r
}

// fieldValue computes a field's visible value from the writes of its kind.
func fieldValue(kind crdt.Kind, cl uint64, ws []write) (ModelField, bool) {
	v := ModelField{Kind: kind}
	switch kind {
	case crdt.KindRegister:
		var win write
		for _, w := range ws {
			if w.op.CL == cl && (win.op == nil || w.op.Version().Compare(win.op.Version()) > 0) {
				win = w
			}
		}
		if win.op == nil || unset(win.f.Value) {
			return v, false
		}
		v.Value = win.f.Value
	case crdt.KindMax, crdt.KindMin:
		var best []byte
		found := false
		for _, w := range ws {
			if w.op.CL != cl {
				continue
			}
			c := crdt.CompareValues(w.f.Value, best)
			if c == 0 {
				c = bytes.Compare(w.f.Value, best)
			}
			if !found || (kind == crdt.KindMax && c > 0) || (kind == crdt.KindMin && c < 0) {
				best, found = w.f.Value, true
			}
		}
		if !found || unset(best) {
			return v, false
		}
		v.Value = best
	case crdt.KindSet:
		removed := make(map[string]map[crdt.Dot]bool) // element → removed dots
		for _, w := range ws {
			if w.f.Type != crdt.Remove {
				continue
			}
			e := string(w.f.Value)
			if removed[e] == nil {
				removed[e] = make(map[crdt.Dot]bool)
			}
			for _, d := range w.f.Dots {
				removed[e][d] = true
			}
		}
		live := make(map[string]bool)
		for _, w := range ws {
			if w.f.Type == crdt.Add && w.op.CL == cl && !removed[string(w.f.Value)][w.op.Dot] {
				live[string(w.f.Value)] = true
			}
		}
		for e := range live {
			v.Elems = append(v.Elems, []byte(e))
		}
		slices.SortFunc(v.Elems, crdt.OrderValues)
	case crdt.KindCounter:
		type pn struct{ p, n uint64 }
		tallies := make(map[crdt.ReplicaID]pn)
		for _, w := range ws {
			if w.op.CL != cl {
				continue
			}
			t := tallies[w.op.Dot.Origin]
			t.p, t.n = max(t.p, w.f.P), max(t.n, w.f.N)
			tallies[w.op.Dot.Origin] = t
		}
		for _, t := range tallies {
			v.Count += int64(t.p - t.n) // wraps on overflow, as replicas do
		}
	}
	return v, true
}

// unset reports whether a value means "no value": empty, or msgpack nil.
func unset(v []byte) bool { return len(v) == 0 || (len(v) == 1 && v[0] == 0xc0) }

// Check compares the records of namespace ns stored on db with the
// model's: the same records (deleted ones included), and for each the same
// CL, Created and Updated stamps, and visible fields (kinds and values;
// sets as element lists, in order, counters as totals). Its error lists every
// difference.
func (m *Model) Check(ctx context.Context, db *converge.DB, ns string) error {
	return m.CheckLog(ctx, db.Admin().Log(), ns)
}

// CheckLog is [Model.Check] for a store opened with package oplog.
func (m *Model) CheckLog(ctx context.Context, l *oplog.Log, ns string) error {
	want := m.Records(ns)
	var diffs []string
	seen := make(map[RecordID]bool, len(want))
	for e, err := range l.Records(ctx, ns, "") {
		if err != nil {
			return fmt.Errorf("proptest: model check of %s: %w", l.ReplicaID(), err)
		}
		id := RecordID{e.Collection, e.Key}
		seen[id] = true
		w, ok := want[id]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%v: stored (CL %d) but no op touched it", id, e.State.CL))
			continue
		}
		diffs = append(diffs, compareRecord(id, w, e.State)...)
	}
	for id := range want {
		if !seen[id] {
			diffs = append(diffs, fmt.Sprintf("%v: touched by ops but not stored", id))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	slices.Sort(diffs)
	return fmt.Errorf("proptest: replica %s differs from the model in %q:\n  %s", l.ReplicaID(), ns, strings.Join(diffs, "\n  "))
}

func compareRecord(id RecordID, want *ModelRecord, got *crdt.Record) []string {
	var diffs []string
	if got.CL != want.CL {
		diffs = append(diffs, fmt.Sprintf("%v: CL %d, model %d", id, got.CL, want.CL))
	}
	if got.Created != want.Created || got.Updated != want.Updated {
		diffs = append(diffs, fmt.Sprintf("%v: created %v updated %v, model %v and %v", id, got.Created, got.Updated, want.Created, want.Updated))
	}
	vis := got.Visible()
	gotNames := make(map[string]bool, len(vis))
	for _, fv := range vis {
		gotNames[fv.Name] = true
		w, ok := want.Fields[fv.Name]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%v: field %q visible as %v(%x), model: not visible", id, fv.Name, fv.Kind, fv.Value))
			continue
		}
		g, err := fromVisible(fv)
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("%v: field %q: %v", id, fv.Name, err))
			continue
		}
		if !equalFields(g, w) {
			diffs = append(diffs, fmt.Sprintf("%v: field %q is %v, model %v", id, fv.Name, g, w))
		}
	}
	for name, w := range want.Fields {
		if !gotNames[name] {
			diffs = append(diffs, fmt.Sprintf("%v: field %q not visible, model %v", id, name, w))
		}
	}
	return diffs
}

// fromVisible decodes a replica's visible field into a ModelField.
func fromVisible(fv crdt.FieldValue) (ModelField, error) {
	f := ModelField{Kind: fv.Kind}
	switch fv.Kind {
	case crdt.KindSet:
		r := mp.NewReader(fv.Value)
		n, err := r.ArrayHeader()
		if err != nil {
			return f, fmt.Errorf("set value %x: %w", fv.Value, err)
		}
		for range n {
			e, err := r.Raw()
			if err != nil {
				return f, fmt.Errorf("set value %x: %w", fv.Value, err)
			}
			f.Elems = append(f.Elems, e)
		}
		if r.Len() != 0 {
			return f, fmt.Errorf("set value %x: %d trailing bytes", fv.Value, r.Len())
		}
	case crdt.KindCounter:
		r := mp.NewReader(fv.Value)
		n, err := r.Int()
		if err != nil || r.Len() != 0 {
			return f, fmt.Errorf("counter value %x is not one integer (%v)", fv.Value, err)
		}
		f.Count = n
	default:
		f.Value = fv.Value
	}
	return f, nil
}

func equalFields(a, b ModelField) bool {
	return a.Kind == b.Kind && bytes.Equal(a.Value, b.Value) && a.Count == b.Count &&
		slices.EqualFunc(a.Elems, b.Elems, bytes.Equal)
}

// logErr is an error of the raw op log (converge.Admin.Log) or of the
// sync engine that also matches converge's sentinels where the layer below
// has one (ops compacted away, clock drift, closed), as the DB's own
// errors do.
type logErr struct{ error }

func (e logErr) Unwrap() []error {
	errs := []error{e.error}
	for _, s := range []struct{ below, root error }{
		{oplog.ErrCompacted, converge.ErrCompacted},
		{hlc.ErrClockDrift, converge.ErrClockDrift},
		{oplog.ErrClosed, converge.ErrClosed},
	} {
		if errors.Is(e.error, s.below) {
			errs = append(errs, s.root)
		}
	}
	return errs
}
