package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt/seq"
	"github.com/convergedb/converge/internal/mp"
	"pgregory.net/rapid"
)

// lawOpTypes are the field op types the law generator draws; a text or
// list type stands for a splice (an insert, a delete or both).
var lawOpTypes = append(append([]FieldOpType{}, fieldOpTypes...), TextInsert, TextInsert, TextInsert, ListInsert, ListInsert)

// seqViews is the law generator's replicas' views of the text and list
// fields: each origin splices its own view, which it sometimes brings up
// to date with every splice generated so far, so that splices are
// concurrent as often as not.
type seqViews struct {
	texts map[string]*seq.Text // origin/key/name
	lists map[string]*seq.List
	// history holds every splice generated, per key/name/kind.
	history map[string][]seqWrite
}

type seqWrite struct {
	origin ReplicaID
	f      FieldOp
}

func newSeqViews() *seqViews {
	return &seqViews{texts: map[string]*seq.Text{}, lists: map[string]*seq.List{}, history: map[string][]seqWrite{}}
}

// splice draws a splice of field name (of kind) by op's origin and
// returns its field ops.
func (v *seqViews) splice(t *rapid.T, op *Op, name string, kind Kind) []FieldOp {
	field := fmt.Sprintf("%s/%s/%v", op.Key, name, kind)
	view := fmt.Sprintf("%v/%s", op.Dot.Origin, field)
	sync := rapid.Bool().Draw(t, "sync")
	self := seq.Replica(op.Dot.Origin)
	var fields []FieldOp
	if kind == KindText {
		d := v.texts[view]
		if d == nil {
			d = &seq.Text{}
			v.texts[view] = d
		}
		if sync {
			for _, w := range v.history[field] {
				applySeqWrite(t, &d.Seq, w, textContent)
			}
		}
		fields = spliceView(t, &d.Seq, self, name, kind, func() []rune {
			return []rune(rapid.StringMatching(`[ab☃]{0,3}|[ab]{1,2}`).Draw(t, "text"))
		})
	} else {
		d := v.lists[view]
		if d == nil {
			d = &seq.List{}
			v.lists[view] = d
		}
		if sync {
			for _, w := range v.history[field] {
				applySeqWrite(t, &d.Seq, w, listContent)
			}
		}
		fields = spliceView(t, &d.Seq, self, name, kind, func() [][]byte {
			return rapid.SliceOfN(rapid.SampledFrom(lawValues), 0, 3).Draw(t, "values")
		})
	}
	for _, f := range fields {
		v.history[field] = append(v.history[field], seqWrite{op.Dot.Origin, f})
	}
	return fields
}

func textContent(v []byte) []rune {
	p, _ := mp.NewReader(v).StringBytes()
	return []rune(string(p))
}

func listContent(v []byte) [][]byte {
	vals, _ := listValues(v)
	return vals
}

func applySeqWrite[E any](t *rapid.T, d *seq.Seq[E], w seqWrite, content func([]byte) []E) {
	var err error
	switch w.f.Type {
	case TextInsert, ListInsert:
		err = d.ApplyInsert(seq.Insert[E]{ID: ElemID{Replica: seq.Replica(w.origin), Clock: w.f.Clock}, Left: w.f.Left, Right: w.f.Right, Content: content(w.f.Value)})
	default:
		err = d.ApplyDelete(w.f.Spans)
	}
	if err != nil {
		t.Fatalf("replaying %+v: %v", w.f, err)
	}
}

func spliceView[E any](t *rapid.T, d *seq.Seq[E], self seq.Replica, name string, kind Kind, draw func() []E) []FieldOp {
	pos := rapid.IntRange(0, d.Len()).Draw(t, "pos")
	del := rapid.IntRange(0, min(2, d.Len()-pos)).Draw(t, "del")
	var fields []FieldOp
	spans, err := d.Delete(pos, del)
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) > 0 {
		typ := TextDelete
		if kind == KindList {
			typ = ListDelete
		}
		fields = append(fields, FieldOp{Name: name, Type: typ, Spans: spans})
	}
	content := draw()
	if len(content) == 0 {
		return fields
	}
	ins, err := d.Insert(self, pos, content)
	if err != nil {
		t.Fatal(err)
	}
	f := FieldOp{Name: name, Type: TextInsert, Clock: ins.ID.Clock, Left: ins.Left, Right: ins.Right}
	switch c := any(content).(type) {
	case []rune:
		f.Value = mp.AppendString(nil, string(c))
	case [][]byte:
		f.Type, f.Value = ListInsert, vArr(c...)
	}
	return append(fields, f)
}

// seqModelValue is the reference for a text or list field's visible
// value: the join of its inserts and deletes at the record's CL, in a
// fresh sequence (package seq is checked against its own reference).
func seqModelValue(kind Kind, ops []*Op, fos []*FieldOp) []byte {
	var text seq.Text
	var list seq.List
	for i, f := range fos {
		id := ElemID{Replica: seq.Replica(ops[i].Dot.Origin), Clock: f.Clock}
		switch f.Type {
		case TextInsert:
			_ = text.ApplyInsert(seq.Insert[rune]{ID: id, Left: f.Left, Right: f.Right, Content: textContent(f.Value)})
		case TextDelete:
			_ = text.ApplyDelete(f.Spans)
		case ListInsert:
			_ = list.ApplyInsert(seq.Insert[[]byte]{ID: id, Left: f.Left, Right: f.Right, Content: listContent(f.Value)})
		case ListDelete:
			_ = list.ApplyDelete(f.Spans)
		}
	}
	if kind == KindText {
		return mp.AppendString(nil, text.String())
	}
	return vArr(list.Elements(nil)...)
}

// splice is a text splice change.
func splice(name string, pos, del int, ins string) Change {
	c := Change{Name: name, Type: TextSplice, Pos: pos, Del: del}
	if ins != "" {
		c.Value = vStr(ins)
	}
	return c
}

// write prepares changes on r as replica self and applies the op.
func write(t *testing.T, r *Record, self ReplicaID, seqNo uint64, at int64, intent Intent, changes ...Change) *Op {
	t.Helper()
	cl, fields, err := r.Prepare(self, intent, changes)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	op := mkOp(self, seqNo, ts(at), cl, fields...)
	mustValid(t, op)
	r.Apply(op)
	return op
}

func checkText(t *testing.T, r *Record, name, want string) {
	t.Helper()
	got, ok := r.Text(name)
	if !ok || got != want {
		t.Fatalf("Text(%q) = %q, %v; want %q", name, got, ok, want)
	}
	checkGet(t, r, name, KindText, vStr(want))
}

func TestTextFieldSplices(t *testing.T) {
	a := &Record{}
	write(t, a, rA, 1, 1, IntentPut, splice("note", 0, 0, "hello world"))
	checkText(t, a, "note", "hello world")
	// Several splices in one write apply in order; typing on is one insert.
	op := write(t, a, rA, 2, 2, IntentUpdate, splice("note", 5, 6, ""), splice("note", 5, 0, ", "), splice("note", 7, 0, "you"))
	checkText(t, a, "note", "hello, you")
	if n := len(op.Fields); n != 2 {
		t.Errorf("a delete and two inserts typed on made %d field ops, want 2: %+v", n, op.Fields)
	}
	// Two replicas edit concurrently and merge.
	b := a.Clone()
	opA := write(t, a, rA, 3, 3, IntentUpdate, splice("note", 0, 0, "Oh, "))
	opB := write(t, b, rB, 1, 3, IntentUpdate, splice("note", 10, 0, "!"), splice("note", 0, 1, "H"))
	a.Apply(opB)
	b.Apply(opA)
	checkSameBytes(t, "a and b after exchanging ops", a, b)
	checkText(t, a, "note", "Oh, Hello, you!")
	// Out of range splices are refused.
	if _, _, err := a.Prepare(rA, IntentUpdate, []Change{splice("note", 99, 0, "x")}); !errors.Is(err, ErrRange) {
		t.Errorf("Prepare of a splice at 99: %v, want ErrRange", err)
	}
	if _, _, err := a.Prepare(rA, IntentUpdate, []Change{splice("note", 3, 99, "")}); !errors.Is(err, ErrRange) {
		t.Errorf("Prepare of a delete of 99: %v, want ErrRange", err)
	}
	if _, _, err := a.Prepare(rA, IntentUpdate, []Change{{Name: "note", Type: TextSplice, Value: vInt(1)}}); !errors.Is(err, ErrInvalidOp) {
		t.Errorf("Prepare of a splice inserting an int: %v, want ErrInvalidOp", err)
	}
	if _, _, err := a.Prepare(rA, IntentUpdate, []Change{{Name: "note", Type: Set, Value: vInt(1)}, splice("note", 0, 0, "x")}); !errors.Is(err, ErrInvalidOp) {
		t.Errorf("Prepare of a set and a splice of one field: %v, want ErrInvalidOp", err)
	}
	checkDecodesT(t, a)
}

func checkDecodesT(t *testing.T, r *Record) {
	t.Helper()
	enc := r.Encode()
	d, err := DecodeRecord(enc)
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	if !bytes.Equal(d.Encode(), enc) {
		t.Fatal("re-encoding differs")
	}
	if !reflect.DeepEqual(d.Visible(), r.Visible()) {
		t.Fatalf("decoded Visible() = %v, want %v", d.Visible(), r.Visible())
	}
}

func TestListFieldSplices(t *testing.T) {
	r := &Record{}
	ls := func(pos, del int, vals ...[]byte) Change {
		c := Change{Name: "items", Type: ListSplice, Pos: pos, Del: del}
		if len(vals) > 0 {
			c.Value = vArr(vals...)
		}
		return c
	}
	write(t, r, rA, 1, 1, IntentPut, ls(0, 0, vStr("milk"), vStr("eggs"), vInt(3)))
	checkGet(t, r, "items", KindList, vArr(vStr("milk"), vStr("eggs"), vInt(3)))
	// Replace is a splice of one for one.
	write(t, r, rA, 2, 2, IntentUpdate, ls(1, 1, vStr("bread")))
	elems, ok := r.ListElems("items")
	if !ok || !reflect.DeepEqual(elems, [][]byte{vStr("milk"), vStr("bread"), vInt(3)}) {
		t.Fatalf("ListElems = %x, %v", elems, ok)
	}
	// Two concurrent replaces of one element keep both new values.
	s := r.Clone()
	o1 := write(t, r, rA, 3, 3, IntentUpdate, ls(2, 1, vInt(4)))
	o2 := write(t, s, rB, 1, 3, IntentUpdate, ls(2, 1, vInt(5)))
	r.Apply(o2)
	s.Apply(o1)
	checkSameBytes(t, "after concurrent replaces", r, s)
	checkGet(t, r, "items", KindList, vArr(vStr("milk"), vStr("bread"), vInt(4), vInt(5)))
	checkDecodesT(t, r)
}

// TestTextFieldCausalLength: a re-created record starts with an empty
// text, and writes at an older causal length stay invisible.
func TestTextFieldCausalLength(t *testing.T) {
	r := &Record{}
	old := write(t, r, rA, 1, 1, IntentPut, splice("note", 0, 0, "draft"))
	late := mkOp(rB, 1, ts(2), 1, FieldOp{Name: "note", Type: TextInsert, Clock: 0, Left: ElemID{Replica: seq.Replica(rA), Clock: 4}, Value: vStr(" two")})
	write(t, r, rA, 2, 3, IntentDelete)
	if _, ok := r.Get("note"); ok {
		t.Fatal("a deleted record shows its text")
	}
	write(t, r, rA, 3, 4, IntentPut, splice("note", 0, 0, "new"))
	checkText(t, r, "note", "new")
	r.Apply(late)
	r.Apply(old)
	checkText(t, r, "note", "new")
	// The old incarnation's text is gone from the state, not just hidden.
	if f := r.component("note", KindText); f == nil || f.Text.Len() != 3 || f.At.CL != 3 {
		t.Fatalf("text component after re-create: %+v", f)
	}
	// A concurrent write to the old incarnation, merged in any order, is
	// dropped: the result does not depend on the order.
	other := apply(old, late)
	checkSameBytes(t, "r ⊔ other vs other ⊔ r", join(r, other), join(other, r))
	checkDecodesT(t, r)
}

func TestSeqOpCodec(t *testing.T) {
	good := mkOp(rA, 1, ts(1), 1,
		FieldOp{Name: "t", Type: TextInsert, Clock: 5, Left: ElemID{Replica: seq.Replica(rA), Clock: 4}, Right: ElemID{Replica: seq.Replica(rB), Clock: 0}, Value: vStr("hé")},
		FieldOp{Name: "t", Type: TextDelete, Spans: []Span{{ID: ElemID{Replica: seq.Replica(rA), Clock: 0}, N: 2}, {ID: ElemID{Replica: seq.Replica(rC), Clock: 7}, N: 1}}},
		FieldOp{Name: "l", Type: ListInsert, Clock: 0, Value: vArr(vInt(1), vStr("x"))},
		FieldOp{Name: "l", Type: ListDelete, Spans: []Span{{ID: ElemID{Replica: seq.Replica(rB), Clock: 3}, N: 4}}},
	)
	mustValid(t, good)
	enc := EncodeOp(good)
	got, err := DecodeOp(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalizeOp(&got), normalizeOp(good)) {
		t.Fatalf("round trip:\n%+v\n%+v", got, good)
	}
	// The op's own origin is written in the short form.
	if bytes.Count(enc, rA[:]) != 1 {
		t.Errorf("the op's origin appears %d times in its encoding, want once", bytes.Count(enc, rA[:]))
	}
	bad := map[string]FieldOp{
		"empty text":              {Name: "t", Type: TextInsert, Value: vStr("")},
		"text of an int":          {Name: "t", Type: TextInsert, Value: vInt(1)},
		"invalid UTF-8":           {Name: "t", Type: TextInsert, Value: []byte{0xa1, 0xff}},
		"empty list":              {Name: "l", Type: ListInsert, Value: vArr()},
		"list of a str":           {Name: "l", Type: ListInsert, Value: vStr("x")},
		"clock overflow":          {Name: "t", Type: TextInsert, Clock: seq.MaxClock - 1, Value: vStr("ab")},
		"origin inside":           {Name: "t", Type: TextInsert, Clock: 3, Left: ElemID{Replica: seq.Replica(rB), Clock: 3}, Value: vStr("ab")},
		"delete of nothing":       {Name: "t", Type: TextDelete},
		"empty span":              {Name: "t", Type: TextDelete, Spans: []Span{{ID: ElemID{Replica: seq.Replica(rA)}, N: 0}}},
		"span of no one":          {Name: "t", Type: TextDelete, Spans: []Span{{N: 1}}},
		"span beyond MaxClock":    {Name: "t", Type: TextDelete, Spans: []Span{{ID: ElemID{Replica: seq.Replica(rA), Clock: seq.MaxClock - 1}, N: 2}}},
		"a value on a delete":     {Name: "t", Type: TextDelete, Value: vStr("x"), Spans: []Span{{ID: ElemID{Replica: seq.Replica(rA)}, N: 1}}},
		"spans on an insert":      {Name: "t", Type: TextInsert, Value: vStr("x"), Spans: []Span{{ID: ElemID{Replica: seq.Replica(rA)}, N: 1}}},
		"a position on an assign": {Name: "t", Type: Assign, Value: vInt(1), Clock: 1},
	}
	for name, f := range bad {
		op := mkOp(rB, 1, ts(1), 1, f)
		if err := op.Validate(); !errors.Is(err, ErrInvalidOp) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidOp", name, err)
		}
	}
	overlap := mkOp(rB, 1, ts(1), 1,
		FieldOp{Name: "t", Type: TextInsert, Clock: 0, Value: vStr("abc")},
		FieldOp{Name: "t", Type: TextInsert, Clock: 2, Value: vStr("de")})
	if err := overlap.Validate(); !errors.Is(err, ErrInvalidOp) {
		t.Errorf("overlapping inserts: Validate() = %v, want ErrInvalidOp", err)
	}
	// The long form of the op's own origin is not canonical.
	long := bytes.Replace(EncodeOp(mkOp(rA, 1, ts(1), 1, FieldOp{Name: "t", Type: TextInsert, Left: ElemID{Replica: seq.Replica(rA), Clock: 9}, Value: vStr("x")})),
		[]byte{0x91, 0x09}, append(append([]byte{0x92, 0xc4, 0x10}, rA[:]...), 0x09), 1)
	if _, err := DecodeOp(long); !errors.Is(err, ErrInvalidOp) {
		t.Errorf("an own origin in the long form: DecodeOp() = %v, want ErrInvalidOp", err)
	}
}

// TestTextEditsConverge: records on several replicas, edited with splices
// through Prepare and exchanging ops in any order, converge on the same
// bytes, and the text is what the sequence model says.
func TestTextEditsConverge(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		reps := []ReplicaID{rA, rB, rC}[:rapid.IntRange(2, 3).Draw(t, "replicas")]
		recs := make([]*Record, len(reps))
		for i := range recs {
			recs[i] = &Record{}
		}
		var ops []*Op
		seqs := make([]uint64, len(reps))
		for range rapid.IntRange(1, 25).Draw(t, "steps") {
			i := rapid.IntRange(0, len(reps)-1).Draw(t, "replica")
			r := recs[i]
			if rapid.IntRange(0, 3).Draw(t, "sync") == 0 && len(ops) > 0 {
				r.Apply(rapid.SampledFrom(ops).Draw(t, "op"))
				continue
			}
			n := 0
			if s, ok := r.Text("note"); ok {
				n = len([]rune(s))
			}
			pos := rapid.IntRange(0, n).Draw(t, "pos")
			del := rapid.IntRange(0, n-pos).Draw(t, "del")
			c := splice("note", pos, del, rapid.StringMatching(`[xyz]{0,4}`).Draw(t, "ins"))
			cl, fields, err := r.Prepare(reps[i], IntentPut, []Change{c})
			if err != nil {
				t.Fatal(err)
			}
			seqs[i]++
			op := mkOp(reps[i], seqs[i], ts(int64(len(ops)+1)), cl, fields...)
			mustValid(t, op)
			r.Apply(op)
			ops = append(ops, op)
		}
		for _, r := range recs {
			for _, k := range rapid.Permutation(indexesN(len(ops))).Draw(t, "order") {
				r.Apply(ops[k])
			}
		}
		for i := range recs[1:] {
			checkSameBytes(t, "replicas", recs[0], recs[i+1])
		}
		var fos []*FieldOp
		var owners []*Op
		for _, op := range ops {
			for j := range op.Fields {
				owners, fos = append(owners, op), append(fos, &op.Fields[j])
			}
		}
		got, ok := recs[0].Get("note")
		if len(fos) == 0 {
			if ok {
				t.Fatalf("a text never written shows %x", got.Value)
			}
			return
		}
		if want := seqModelValue(KindText, owners, fos); !ok || !bytes.Equal(got.Value, want) {
			t.Fatalf("text %x (%v), model %x", got.Value, ok, want)
		}
	})
}

func indexesN(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestTextNoInterleaving: two replicas typing at one place of a shared
// note, one keystroke per op, keep each one's words together.
func TestTextNoInterleaving(t *testing.T) {
	base := &Record{}
	write(t, base, rC, 1, 1, IntentPut, splice("note", 0, 0, "[]"))
	a, b := base.Clone(), base.Clone()
	var ops []*Op
	for i, c := range "alpha" {
		ops = append(ops, write(t, a, rA, uint64(i+1), 2, IntentUpdate, splice("note", 1+i, 0, string(c))))
	}
	for i, c := range "BRAVO" {
		ops = append(ops, write(t, b, rB, uint64(i+1), 2, IntentUpdate, splice("note", 1+i, 0, string(c))))
	}
	for _, op := range ops {
		a.Apply(op)
		b.Apply(op)
	}
	checkSameBytes(t, "a vs b", a, b)
	got, _ := a.Text("note")
	if !strings.Contains(got, "alpha") || !strings.Contains(got, "BRAVO") {
		t.Fatalf("merged text %q interleaves the two words", got)
	}
}
