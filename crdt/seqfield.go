package crdt

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/convergedb/converge/crdt/seq"
	"github.com/convergedb/converge/internal/mp"
)

// Text and list fields: a component of kind KindText holds a [seq.Text],
// one of kind KindList a [seq.List]. An op inserts runs of elements
// (TextInsert, ListInsert) and deletes ranges of them (TextDelete,
// ListDelete); its delta is a sequence holding only those, and merging it
// into a record is the sequences' join. A component belongs to one causal
// length (the CL of its version): a sequence written at a later CL
// replaces it whole, and one written at an earlier CL is dropped, so a
// re-created record starts with an empty text, and writes at an older CL
// are invisible, as for every other kind.
//
// A record never modifies a sequence it holds: a merge builds a new one
// (a clone, joined with the other). So records that share a sequence
// (a shallow copy, a merge's argument) stay independent.

// validateSeqOp checks the text and list parts of field op i of op: ids
// and spans within bounds, an insert's content well formed and its ids
// disjoint from the other inserts of the op into the same field, and none
// of these parts on other op types.
func validateSeqOp(op *Op, i int) error {
	f := &op.Fields[i]
	isInsert := f.Type == TextInsert || f.Type == ListInsert
	isDelete := f.Type == TextDelete || f.Type == ListDelete
	if !isInsert && (f.Clock != 0 || !f.Left.IsZero() || !f.Right.IsZero() || f.Left.Clock != 0 || f.Right.Clock != 0) {
		return fmt.Errorf("insert position on a %v", f.Type)
	}
	if !isDelete && len(f.Spans) > 0 {
		return fmt.Errorf("spans on a %v", f.Type)
	}
	switch {
	case isInsert:
		n, err := insertLen(f)
		if err != nil {
			return err
		}
		if f.Clock >= seq.MaxClock || uint64(n) > seq.MaxClock-f.Clock {
			return fmt.Errorf("%d elements from clock %d", n, f.Clock)
		}
		self := seq.Replica(op.Dot.Origin)
		for _, o := range [2]ElemID{f.Left, f.Right} {
			if o.IsZero() && o.Clock != 0 || o.Clock >= seq.MaxClock {
				return fmt.Errorf("invalid origin %v", o)
			}
			if o.Replica == self && o.Clock >= f.Clock && o.Clock-f.Clock < uint64(n) {
				return fmt.Errorf("origin %v inside the insert", o)
			}
		}
		for j := range i {
			g := &op.Fields[j]
			if g.Name == f.Name && g.Type == f.Type {
				m, _ := insertLen(g)
				if f.Clock < g.Clock+uint64(m) && g.Clock < f.Clock+uint64(n) {
					return fmt.Errorf("inserts with overlapping clocks")
				}
			}
		}
	case isDelete:
		if len(f.Spans) == 0 {
			return errors.New("a delete of nothing")
		}
		for _, sp := range f.Spans {
			if sp.ID.IsZero() || sp.N == 0 || sp.ID.Clock >= seq.MaxClock || sp.N > seq.MaxClock-sp.ID.Clock {
				return fmt.Errorf("invalid span %v+%d", sp.ID, sp.N)
			}
		}
	}
	return nil
}

// insertLen returns the number of elements an insert's Value holds: code
// points of a non-empty str for text, values of a non-empty array for a
// list.
func insertLen(f *FieldOp) (int, error) {
	r := mp.NewReader(f.Value)
	if f.Type == TextInsert {
		p, err := r.StringBytes()
		if err != nil || r.Len() != 0 {
			return 0, errors.New("text insert of a value that is not one str")
		}
		if !utf8.Valid(p) {
			return 0, errors.New("text insert of invalid UTF-8")
		}
		if n := utf8.RuneCount(p); n > 0 {
			return n, nil
		}
		return 0, errors.New("text insert of nothing")
	}
	n, err := r.ArrayHeader()
	if err != nil {
		return 0, errors.New("list insert of a value that is not an array")
	}
	if n == 0 {
		return 0, errors.New("list insert of nothing")
	}
	return n, nil
}

// seqDelta returns the component that the text or list field op f of op
// alone produces, at version at, or false if f is malformed.
func seqDelta(op *Op, f *FieldOp, at Version) (Field, bool) {
	out := Field{Name: f.Name, Kind: f.Type.Kind(), At: at}
	self := seq.Replica(op.Dot.Origin)
	var err error
	switch f.Type {
	case TextInsert:
		p, _ := mp.NewReader(f.Value).StringBytes()
		out.Text = &seq.Text{}
		err = out.Text.ApplyInsert(seq.Insert[rune]{ID: ElemID{Replica: self, Clock: f.Clock}, Left: f.Left, Right: f.Right, Content: []rune(string(p))})
	case TextDelete:
		out.Text = &seq.Text{}
		err = out.Text.ApplyDelete(f.Spans)
	case ListInsert:
		var vals [][]byte
		if vals, err = listValues(f.Value); err == nil {
			out.List = &seq.List{}
			err = out.List.ApplyInsert(seq.Insert[[]byte]{ID: ElemID{Replica: self, Clock: f.Clock}, Left: f.Left, Right: f.Right, Content: vals})
		}
	case ListDelete:
		out.List = &seq.List{}
		err = out.List.ApplyDelete(f.Spans)
	}
	return out, err == nil
}

// listValues splits a msgpack array into its values (aliasing v).
func listValues(v []byte) ([][]byte, error) {
	r := mp.NewReader(v)
	n, err := r.ArrayHeader()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for i := range out {
		if out[i], err = r.Raw(); err != nil {
			return nil, err
		}
	}
	if r.Len() != 0 {
		return nil, errors.New("trailing bytes after the array")
	}
	return out, nil
}

// mergeSeq joins o's sequence into f's, both components of one text or
// list field: the one at the later causal length wins whole, and at the
// same one the two sequences are joined, in a new sequence.
func (f *Field) mergeSeq(o *Field) {
	switch {
	case o.At.CL > f.At.CL:
		f.Text, f.List = o.Text, o.List
	case o.At.CL < f.At.CL:
	case f.Kind == KindText:
		t := &seq.Text{}
		if f.Text != nil {
			t = f.Text.Clone()
		}
		if o.Text != nil {
			t.Merge(o.Text)
		}
		f.Text = t
	default:
		l := &seq.List{}
		if f.List != nil {
			l = f.List.Clone()
		}
		if o.List != nil {
			l.Merge(o.List)
		}
		f.List = l
	}
}

// joinSeqOwned joins o's sequence into f's in place: both are deltas of
// one op (same version), which nothing else holds.
func (f *Field) joinSeqOwned(o *Field) {
	if f.Kind == KindText {
		f.Text.Merge(o.Text)
	} else {
		f.List.Merge(o.List)
	}
}

// seqValue returns the visible value of a text component (a msgpack str)
// or a list component (a msgpack array).
func (f *Field) seqValue() []byte {
	if f.Kind == KindText {
		if f.Text == nil {
			return mp.AppendString(nil, "")
		}
		return mp.AppendString(nil, f.Text.String())
	}
	if f.List == nil {
		return mp.AppendArrayHeader(nil, 0)
	}
	elems := f.List.Elements(nil)
	size := 0
	for _, e := range elems {
		size += len(e)
	}
	b := mp.AppendArrayHeader(make([]byte, 0, size+5), len(elems))
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

// appendSeqState appends the state of a text or list component.
func (f *Field) appendSeqState(b []byte) []byte {
	if f.Kind == KindText {
		t := f.Text
		if t == nil {
			t = &seq.Text{}
		}
		return t.AppendBinary(b)
	}
	l := f.List
	if l == nil {
		l = &seq.List{}
	}
	return l.AppendBinary(b)
}

// seqState decodes the state of a text or list component into f.
func (d *decoder) seqState(f *Field) error {
	raw, err := d.r.Raw()
	if err != nil {
		return err
	}
	if f.Kind == KindText {
		f.Text, err = seq.DecodeText(raw)
	} else {
		f.List, err = seq.DecodeList(raw)
	}
	return err
}

// Text returns the visible text of text field name. ok is false when the
// record does not exist or the field has no visible text.
func (r *Record) Text(name string) (text string, ok bool) {
	f := r.current(name)
	if f == nil || f.Kind != KindText {
		return "", false
	}
	if f.Text == nil {
		return "", true
	}
	return f.Text.String(), true
}

// ListElems returns the visible elements of list field name, each
// msgpack-encoded, in order. ok is false when the record does not exist or
// the field has no visible list.
func (r *Record) ListElems(name string) (elems [][]byte, ok bool) {
	f := r.current(name)
	if f == nil || f.Kind != KindList {
		return nil, false
	}
	if f.List == nil {
		return nil, true
	}
	return f.List.Elements(nil), true
}

// splicing is the work of Prepare on one text or list field: a copy of
// its sequence, edited by the write's splices in order, and the inserts
// and deleted spans they made.
type splicing struct {
	name  string
	kind  Kind
	text  *seq.Text
	list  *seq.List
	texts []seq.Insert[rune]
	lists []seq.Insert[[]byte]
	spans []Span
}

// prepareSplices appends to fields the ops of the text and list splices
// among changes, applied in order to a copy of each field's sequence in
// view (the record as the write sees it).
func (view *Record) prepareSplices(self ReplicaID, changes []Change, fields []FieldOp) ([]FieldOp, error) {
	var work []*splicing
	for _, c := range changes {
		if c.Type != TextSplice && c.Type != ListSplice {
			continue
		}
		kind := KindText
		if c.Type == ListSplice {
			kind = KindList
		}
		i := slices.IndexFunc(work, func(w *splicing) bool { return w.name == c.Name })
		if i < 0 {
			if j := slices.IndexFunc(fields, func(f FieldOp) bool { return f.Name == c.Name }); j >= 0 {
				return nil, fmt.Errorf("%w: field %q changed as a %v and a %v in one write", ErrInvalidOp, c.Name, fields[j].Type.Kind(), kind)
			}
			work = append(work, view.startSplicing(c.Name, kind))
			i = len(work) - 1
		}
		w := work[i]
		if w.kind != kind {
			return nil, fmt.Errorf("%w: field %q changed as a %v and a %v in one write", ErrInvalidOp, c.Name, w.kind, kind)
		}
		if err := w.splice(seq.Replica(self), &c); err != nil {
			return nil, fmt.Errorf("crdt: field %q: %w", c.Name, err)
		}
	}
	for _, w := range work {
		fields = w.appendOps(fields)
	}
	return fields, nil
}

// startSplicing copies field name's sequence of the given kind at the
// record's CL (an empty one if it has none).
func (view *Record) startSplicing(name string, kind Kind) *splicing {
	w := &splicing{name: name, kind: kind, text: &seq.Text{}, list: &seq.List{}}
	if f := view.component(name, kind); f != nil && f.At.CL == view.CL {
		if f.Text != nil {
			w.text = f.Text.Clone()
		}
		if f.List != nil {
			w.list = f.List.Clone()
		}
	}
	return w
}

func (w *splicing) splice(self seq.Replica, c *Change) error {
	var spans []Span
	var err error
	if w.kind == KindText {
		spans, err = w.text.Delete(c.Pos, c.Del)
	} else {
		spans, err = w.list.Delete(c.Pos, c.Del)
	}
	if err != nil {
		return err
	}
	w.spans = append(w.spans, spans...)
	if len(c.Value) == 0 {
		return nil
	}
	if w.kind == KindText {
		p, err := mp.NewReader(c.Value).StringBytes()
		if err != nil || !utf8.Valid(p) {
			return fmt.Errorf("%w: a text splice inserts a value that is not a UTF-8 str", ErrInvalidOp)
		}
		if len(p) == 0 {
			return nil
		}
		ins, err := w.text.Insert(self, c.Pos, []rune(string(p)))
		if err != nil {
			return err
		}
		w.texts = appendInsert(w.texts, ins)
		return nil
	}
	if err := checkValue(c.Value); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidOp, err)
	}
	vals, err := listValues(c.Value)
	if err != nil {
		return fmt.Errorf("%w: a list splice inserts a value that is not an array", ErrInvalidOp)
	}
	if len(vals) == 0 {
		return nil
	}
	ins, err := w.list.Insert(self, c.Pos, vals)
	if err != nil {
		return err
	}
	w.lists = appendInsert(w.lists, ins)
	return nil
}

// appendInsert appends ins, or extends the last insert if ins continues
// it (typing on in one write).
func appendInsert[E any](inss []seq.Insert[E], ins seq.Insert[E]) []seq.Insert[E] {
	if n := len(inss); n > 0 {
		p := &inss[n-1]
		end := p.ID.Clock + uint64(len(p.Content))
		if ins.ID.Replica == p.ID.Replica && ins.ID.Clock == end && ins.Left == (ElemID{Replica: p.ID.Replica, Clock: end - 1}) && ins.Right == p.Right {
			p.Content = append(p.Content[:len(p.Content):len(p.Content)], ins.Content...)
			return inss
		}
	}
	return append(inss, ins)
}

// appendOps appends the field ops of w's splices: one insert per run of
// inserted elements, and one delete of every span.
func (w *splicing) appendOps(fields []FieldOp) []FieldOp {
	for _, ins := range w.texts {
		fields = append(fields, FieldOp{Name: w.name, Type: TextInsert, Clock: ins.ID.Clock, Left: ins.Left, Right: ins.Right, Value: mp.AppendString(nil, string(ins.Content))})
	}
	for _, ins := range w.lists {
		size := 5
		for _, v := range ins.Content {
			size += len(v)
		}
		b := mp.AppendArrayHeader(make([]byte, 0, size), len(ins.Content))
		for _, v := range ins.Content {
			b = append(b, v...)
		}
		fields = append(fields, FieldOp{Name: w.name, Type: ListInsert, Clock: ins.ID.Clock, Left: ins.Left, Right: ins.Right, Value: b})
	}
	if len(w.spans) > 0 {
		typ := TextDelete
		if w.kind == KindList {
			typ = ListDelete
		}
		fields = append(fields, FieldOp{Name: w.name, Type: typ, Spans: mergeSpans(w.spans)})
	}
	return fields
}

// mergeSpans sorts spans by id and merges those that touch.
func mergeSpans(spans []Span) []Span {
	spans = slices.Clone(spans)
	slices.SortFunc(spans, func(a, b Span) int { return a.ID.Compare(b.ID) })
	out := spans[:0]
	for _, sp := range spans {
		if n := len(out); n > 0 && out[n-1].ID.Replica == sp.ID.Replica && out[n-1].ID.Clock+out[n-1].N >= sp.ID.Clock {
			out[n-1].N = max(out[n-1].ID.Clock+out[n-1].N, sp.ID.Clock+sp.N) - out[n-1].ID.Clock
			continue
		}
		out = append(out, sp)
	}
	return out
}
