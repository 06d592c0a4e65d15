package crdt

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/convergedb/converge/crdt/seq"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
	"github.com/convergedb/converge/internal/sortedmerge"
)

// Record is the merged state of one record. The zero Record is the state of
// a record no op has touched (CL 0: absent).
//
// A Record is normalized: Fields sorted by (Name, Kind) with one entry per
// pair, set elements sorted by [OrderValues], dots and counts sorted, and no add
// whose dot was removed. And its tombstones are collected: it holds nothing
// tagged with a causal length below CL, which could never be visible again:
//   - no set add (Tag) and no counter Tally below CL;
//   - no set element left with neither adds nor removed dots;
//   - no component (Field) whose version At is below CL, except a set
//     component that still holds removed dots, which are kept (an add they
//     cancel may still arrive); its At is then the zero Version.
//
// Every method keeps it so, which is what makes its encoding canonical.
// [DecodeRecord] also accepts states whose tombstones were not collected
// (stored before collection existed); the next Merge or Apply collects them.
type Record struct {
	// CL is the causal length: odd while the record exists.
	CL uint64
	// Created and Updated are the least and greatest stamps of the ops
	// at the current CL.
	Created, Updated Stamp
	Fields           []Field
	// Applied counts the ops (and snapshot states) this replica has
	// applied to the record, so it grows with every change. It is local
	// to the replica: not part of the state's encoding or hash, not
	// merged (Merge and Apply leave it as it was), and two replicas
	// holding the same state may differ in it. The store keeps it.
	Applied uint64
}

// Field is the state of one component of a field: the writes of one kind to
// one field name.
type Field struct {
	Name string
	Kind Kind
	// At is the version of the latest write to this component (for a
	// register, the winning write).
	At Version
	// Seen is, for a register, the HLC the winning write replaced.
	Seen hlc.Timestamp
	// Value is the register's, max's or min's value; empty means unset.
	Value []byte
	// Elems are a set's elements.
	Elems []Elem
	// Counts are a counter's per-origin totals.
	Counts []Tally
	// Text is a text component's sequence; List a list component's. A
	// record never modifies them: merges build new ones.
	Text *seq.Text
	List *seq.List
}

// Elem is one value of a set field with its live adds and the removed dots.
type Elem struct {
	Value   []byte
	Adds    []Tag // sorted by dot; none of their dots is in Removed
	Removed []Dot // sorted
}

// Tag is one add of a set element: its dot and the CL it was made at.
type Tag struct {
	Dot Dot
	CL  uint64
}

// Tally is one origin's totals in a counter, at causal length CL.
type Tally struct {
	Origin ReplicaID
	CL     uint64
	P, N   uint64
}

// Exists reports whether the record exists (odd causal length).
func (r *Record) Exists() bool { return r.CL%2 == 1 }

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	c := *r
	c.Fields = make([]Field, len(r.Fields))
	for i, f := range r.Fields {
		f.Value = bytes.Clone(f.Value)
		f.Counts = slices.Clone(f.Counts)
		if f.Text != nil {
			f.Text = f.Text.Clone()
		}
		if f.List != nil {
			f.List = f.List.Clone()
		}
		if f.Elems != nil {
			elems := make([]Elem, len(f.Elems))
			for j, e := range f.Elems {
				elems[j] = Elem{Value: bytes.Clone(e.Value), Adds: slices.Clone(e.Adds), Removed: slices.Clone(e.Removed)}
			}
			f.Elems = elems
		}
		c.Fields[i] = f
	}
	return &c
}

func compareFieldKey(a, b *Field) int {
	if c := cmp.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return cmp.Compare(int(a.Kind), int(b.Kind))
}

// Merge joins o into r: afterwards r is the least upper bound of both, with
// its tombstones collected (see [Record]). Merge is commutative, associative
// and idempotent. Afterwards r may share slices with o. Merge never writes
// into the backing arrays of either record's slices (it builds new ones), so
// a shallow copy of a Record is a safe starting point for a merge that must
// leave the original intact.
func (r *Record) Merge(o *Record) {
	r.join(o)
	r.dropStale()
}

// join is Merge without collecting tombstones: the plain join of the two
// states, keeping everything either holds.
func (r *Record) join(o *Record) {
	switch {
	case o.CL > r.CL:
		r.CL, r.Created, r.Updated = o.CL, o.Created, o.Updated
	case o.CL == r.CL:
		if o.Created.Compare(r.Created) < 0 {
			r.Created = o.Created
		}
		if o.Updated.Compare(r.Updated) > 0 {
			r.Updated = o.Updated
		}
	}
	if len(o.Fields) == 0 {
		return
	}
	if len(r.Fields) == 0 {
		r.Fields = o.Fields // shared, never written into (see Merge)
		return
	}
	r.Fields = sortedmerge.Union(r.Fields, o.Fields,
		func(x, y Field) int { return compareFieldKey(&x, &y) },
		func(x, y Field) Field { x.merge(&y); return x })
}

// dropStale collects r's tombstones: it removes what is tagged with a causal
// length below r.CL, which can never be visible again since CL only grows
// and only parts at the current CL are visible. It drops set adds and
// counter tallies below CL, set elements left without adds and removed
// dots, and components written below CL. Removed dots are kept (their add
// may still arrive, at any CL), so a set component written below CL that
// holds some stays, with the zero Version: its version cannot matter any
// more, and resetting it keeps the result a function of the joined state
// alone, whatever was collected before the join. So the collected join is
// still a join, and equal ops give equal bytes.
//
// dropStale allocates only when something is stale, and never writes into
// the backing arrays of r's slices, which may be shared with other records.
func (r *Record) dropStale() {
	i := 0
	for i < len(r.Fields) && !r.Fields[i].hasStale(r.CL) {
		i++
	}
	if i == len(r.Fields) {
		return
	}
	out := make([]Field, i, len(r.Fields))
	copy(out, r.Fields[:i])
	for _, f := range r.Fields[i:] {
		if f.hasStale(r.CL) {
			var keep bool
			if f, keep = f.withoutStale(r.CL); !keep {
				continue
			}
		}
		out = append(out, f)
	}
	r.Fields = out
}

// hasStale reports whether f holds anything dropStale removes or resets at
// causal length cl.
func (f *Field) hasStale(cl uint64) bool {
	if f.At.CL < cl {
		switch f.Kind {
		case KindSet:
			if f.At != (Version{}) || len(f.Elems) == 0 {
				return true
			}
		case KindCounter:
			if f.At != (Version{}) || len(f.Counts) == 0 {
				return true
			}
		default:
			return true
		}
	}
	switch f.Kind {
	case KindSet:
		return slices.ContainsFunc(f.Elems, func(e Elem) bool { return e.hasStale(cl) })
	case KindCounter:
		return slices.ContainsFunc(f.Counts, func(t Tally) bool { return t.CL < cl })
	}
	return false
}

// withoutStale returns f without its parts below causal length cl, in new
// slices, and whether anything of it is left to keep.
func (f Field) withoutStale(cl uint64) (Field, bool) {
	switch f.Kind {
	case KindSet:
		if slices.ContainsFunc(f.Elems, func(e Elem) bool { return e.hasStale(cl) }) {
			elems := make([]Elem, 0, len(f.Elems))
			for _, e := range f.Elems {
				if e.hasStale(cl) {
					e.Adds = dropStaleTags(e.Adds, cl)
					if len(e.Adds) == 0 && len(e.Removed) == 0 {
						continue
					}
				}
				elems = append(elems, e)
			}
			f.Elems = nil
			if len(elems) > 0 {
				f.Elems = elems
			}
		}
	case KindCounter:
		var counts []Tally
		for _, t := range f.Counts {
			if t.CL >= cl {
				counts = append(counts, t)
			}
		}
		f.Counts = counts
	}
	if f.At.CL < cl {
		// Only removed dots (or, in a hostile state, parts tagged above
		// the component's version) can keep a component written below cl.
		if len(f.Elems) == 0 && len(f.Counts) == 0 {
			return f, false
		}
		f.At, f.Seen, f.Value = Version{}, 0, nil
	}
	return f, true
}

// hasStale reports whether e has an add below causal length cl, or is empty.
func (e *Elem) hasStale(cl uint64) bool {
	if len(e.Adds) == 0 && len(e.Removed) == 0 {
		return true
	}
	return slices.ContainsFunc(e.Adds, func(t Tag) bool { return t.CL < cl })
}

// dropStaleTags returns the tags at causal length cl or above, in a new
// slice (nil if none).
func dropStaleTags(tags []Tag, cl uint64) []Tag {
	var out []Tag
	for _, t := range tags {
		if t.CL >= cl {
			out = append(out, t)
		}
	}
	return out
}

func (f *Field) merge(o *Field) {
	switch f.Kind {
	case KindRegister:
		if o.At.Compare(f.At) > 0 {
			f.At, f.Seen, f.Value = o.At, o.Seen, o.Value
		}
		return
	case KindMax, KindMin:
		switch {
		case o.At.CL > f.At.CL:
			f.Value = o.Value
		case o.At.CL == f.At.CL:
			c := orderRegister(o.Value, f.Value)
			if (f.Kind == KindMax && c > 0) || (f.Kind == KindMin && c < 0) {
				f.Value = o.Value
			}
		}
	case KindSet:
		f.Elems = mergeElems(f.Elems, o.Elems)
	case KindCounter:
		f.Counts = mergeCounts(f.Counts, o.Counts)
	case KindText, KindList:
		f.mergeSeq(o)
	}
	if o.At.Compare(f.At) > 0 {
		f.At = o.At
	}
}

func mergeElems(a, b []Elem) []Elem {
	return sortedmerge.Union(a, b,
		func(x, y Elem) int { return orderElems(x.Value, y.Value) },
		func(x, y Elem) Elem {
			removed := unionDots(x.Removed, y.Removed)
			return Elem{Value: x.Value, Adds: unionTags(x.Adds, y.Adds, removed), Removed: removed}
		})
}

func unionDots(a, b []Dot) []Dot {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	return sortedmerge.Union(a, b, Dot.Compare, func(x, _ Dot) Dot { return x })
}

// unionTags returns the union of a and b, by dot, without the removed dots.
// A dot is one op, so one dot has one CL in honest input; if hostile input
// gives two, the larger wins, which keeps the union a join.
func unionTags(a, b []Tag, removed []Dot) []Tag {
	out := make([]Tag, 0, len(a)+len(b))
	add := func(t Tag) {
		if _, gone := slices.BinarySearchFunc(removed, t.Dot, Dot.Compare); gone {
			return
		}
		if n := len(out); n > 0 && out[n-1].Dot == t.Dot {
			out[n-1].CL = max(out[n-1].CL, t.CL)
			return
		}
		out = append(out, t)
	}
	// Equal dots meet in add, whichever order they come in.
	sortedmerge.Walk(a, b, func(x, y Tag) int { return x.Dot.Compare(y.Dot) },
		add, add, func(x, y Tag) { add(x); add(y) })
	return out
}

func mergeCounts(a, b []Tally) []Tally {
	return sortedmerge.Union(a, b,
		func(x, y Tally) int { return x.Origin.Compare(y.Origin) },
		func(x, y Tally) Tally {
			switch {
			case y.CL > x.CL:
				x = y
			case y.CL == x.CL:
				x.P, x.N = max(x.P, y.P), max(x.N, y.N)
			}
			return x
		})
}

// isNil reports whether v is empty or the msgpack nil: both mean unset.
func isNil(v []byte) bool { return len(v) == 0 || (len(v) == 1 && v[0] == 0xc0) }

// Delta returns the state that op alone produces: applying op to a record
// is r.Merge(Delta(op)). The result aliases op's values. op should be valid
// ([Op.Validate]); an invalid op still yields a normalized record.
func Delta(op *Op) *Record {
	r := delta(op)
	// Everything in a delta is at the op's CL; only a remove that lists
	// no dots leaves something to drop, an empty element.
	r.dropStale()
	return r
}

// delta is Delta without collecting tombstones.
func delta(op *Op) *Record {
	r := &Record{}
	deltaInto(r, op)
	return r
}

// deltaInto sets r to delta(op).
func deltaInto(r *Record, op *Op) {
	st := op.Stamp()
	at := Version{CL: op.CL, Stamp: st}
	*r = Record{CL: op.CL, Created: st, Updated: st}
	if len(op.Fields) == 0 {
		return
	}
	fields := make([]Field, 0, len(op.Fields))
	for i := range op.Fields {
		fo := &op.Fields[i]
		f := Field{Name: fo.Name, Kind: fo.Type.Kind(), At: at}
		switch fo.Type {
		case Assign:
			f.Seen = fo.Seen
			if !isNil(fo.Value) {
				f.Value = fo.Value
			}
		case WriteMax, WriteMin:
			f.Value = fo.Value
		case Add:
			f.Elems = []Elem{{Value: fo.Value, Adds: []Tag{{Dot: op.Dot, CL: op.CL}}}}
		case Remove:
			dots := slices.Clone(fo.Dots)
			slices.SortFunc(dots, Dot.Compare)
			f.Elems = []Elem{{Value: fo.Value, Removed: slices.Compact(dots)}}
		case Count:
			f.Counts = []Tally{{Origin: op.Dot.Origin, CL: op.CL, P: fo.P, N: fo.N}}
		case TextInsert, TextDelete, ListInsert, ListDelete:
			var ok bool
			if f, ok = seqDelta(op, fo, at); !ok {
				continue
			}
		default:
			continue
		}
		fields = append(fields, f)
	}
	slices.SortStableFunc(fields, func(a, b Field) int { return compareFieldKey(&a, &b) })
	if distinctPlain(fields) {
		// One entry per component and no set to normalize (a local
		// write's usual op): the sorted entries are the delta's fields.
		r.Fields = fields
		return
	}
	r.Fields = make([]Field, 0, len(fields))
	// Combine the entries of one component (a set's several adds and
	// removes), and normalize the elements: the one-field records merged
	// here are each normalized.
	for _, f := range fields {
		n := len(r.Fields)
		if n > 0 && compareFieldKey(&r.Fields[n-1], &f) == 0 {
			if f.Kind.isSeq() {
				// Fresh sequences of this op alone: join in place,
				// without the copy a merge of shared states makes.
				r.Fields[n-1].joinSeqOwned(&f)
				continue
			}
			r.Fields[n-1].merge(&f)
			continue
		}
		if f.Kind == KindSet {
			f.Elems = mergeElems(nil, f.Elems)
		}
		r.Fields = append(r.Fields, f)
	}
}

// distinctPlain reports whether sorted fields holds one entry per
// component and no set component.
func distinctPlain(fields []Field) bool {
	for i := range fields {
		if fields[i].Kind == KindSet || (i > 0 && compareFieldKey(&fields[i-1], &fields[i]) == 0) {
			return false
		}
	}
	return true
}

// Apply applies op to r: r.Merge(Delta(op)).
func (r *Record) Apply(op *Op) {
	// r.Merge(delta(op)) is the same: Merge collects the delta's tombstones
	// with r's.
	var d Record
	deltaInto(&d, op)
	r.Merge(&d)
}

// current returns the component of field name that is visible: the one
// written last, if written at the record's current CL. It returns nil when
// the field has no visible component.
func (r *Record) current(name string) *Field {
	var best *Field
	lo, _ := slices.BinarySearchFunc(r.Fields, name, func(f Field, n string) int { return cmp.Compare(f.Name, n) })
	for i := lo; i < len(r.Fields) && r.Fields[i].Name == name; i++ {
		if best == nil || r.Fields[i].At.Compare(best.At) > 0 {
			best = &r.Fields[i]
		}
	}
	if best == nil || best.At.CL != r.CL || !r.Exists() {
		return nil
	}
	return best
}

// FieldValue is a visible field: its name, kind and msgpack-encoded value.
type FieldValue struct {
	Name  string
	Kind  Kind
	Value []byte
}

// Get returns the visible value of field name, msgpack-encoded: a register's,
// max's or min's value, a set's elements as an array in [OrderValues]
// order, a counter's total as an integer, a text as a str, or a list's
// elements as an array, in order. ok is false when the record
// does not exist or the field has no visible value.
func (r *Record) Get(name string) (v FieldValue, ok bool) {
	f := r.current(name)
	if f == nil {
		return FieldValue{}, false
	}
	return r.visible(f)
}

// Has reports whether field name has a visible value: whether [Record.Get]
// would return ok, without building the value.
func (r *Record) Has(name string) bool {
	f := r.current(name)
	if f == nil {
		return false
	}
	switch f.Kind {
	case KindRegister, KindMax, KindMin:
		return !isNil(f.Value)
	}
	return true // as visible says
}

func (r *Record) visible(f *Field) (FieldValue, bool) {
	v := FieldValue{Name: f.Name, Kind: f.Kind}
	switch f.Kind {
	case KindRegister, KindMax, KindMin:
		if isNil(f.Value) {
			return FieldValue{}, false
		}
		v.Value = f.Value
	case KindSet:
		elems := r.visibleElems(f)
		b := mp.AppendArrayHeader(nil, len(elems))
		for _, e := range elems {
			b = append(b, e.Value...)
		}
		v.Value = b
	case KindCounter:
		v.Value = mp.AppendInt(nil, r.counterTotal(f))
	case KindText, KindList:
		v.Value = f.seqValue()
	}
	return v, true
}

// Visible returns the record's visible fields, sorted by name. It returns
// nil for a record that does not exist.
func (r *Record) Visible() []FieldValue {
	if !r.Exists() {
		return nil
	}
	var out []FieldValue
	for i := 0; i < len(r.Fields); {
		name := r.Fields[i].Name
		if f := r.current(name); f != nil {
			if v, ok := r.visible(f); ok {
				out = append(out, v)
			}
		}
		for i < len(r.Fields) && r.Fields[i].Name == name {
			i++
		}
	}
	return out
}

// visibleElems returns the elements of set f with an add at the record's CL.
func (r *Record) visibleElems(f *Field) []*Elem {
	var out []*Elem
	for i := range f.Elems {
		e := &f.Elems[i]
		for _, t := range e.Adds {
			if t.CL == r.CL {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

func (r *Record) counterTotal(f *Field) int64 {
	var total int64
	for _, c := range f.Counts {
		if c.CL == r.CL {
			// Totals wrap on overflow, identically on every replica.
			total += int64(c.P - c.N)
		}
	}
	return total
}
