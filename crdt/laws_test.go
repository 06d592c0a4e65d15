package crdt

// Property tests of the record's laws over a small space of ops: three
// replicas, one collection, two keys, three field names and a small pool
// of values, so that writes collide, removes meet their adds, and deletes
// and re-creates interleave with updates.

import (
	"bytes"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
	"pgregory.net/rapid"
)

var (
	lawReplicas = []ReplicaID{rA, rB, rC}
	lawKeys     = []string{"k1", "k2"}
	lawFields   = []string{"f1", "f2", "f3"}
	// lawValues holds values that compare equal but differ in bytes (1
	// and 1.0), nil, and one of each class.
	lawValues = [][]byte{vNil, vFalse, vTrue, vInt(0), vInt(1), vInt(-1), vFloat(1), vFloat(0.5), vStr("a"), vStr("b"), vBin(1), vArr(vInt(1))}
)

// addRef is a generated add, for removes to refer to.
type addRef struct {
	key, name string
	value     []byte
	dot       Dot
}

// genLawOps draws a history of valid ops over the small space.
func genLawOps(minLen, maxLen int) *rapid.Generator[[]*Op] {
	return rapid.Custom(func(t *rapid.T) []*Op {
		n := rapid.IntRange(minLen, maxLen).Draw(t, "ops")
		seqs := map[ReplicaID]uint64{}
		var adds []addRef
		views := newSeqViews()
		ops := make([]*Op, 0, n)
		for range n {
			origin := rapid.SampledFrom(lawReplicas).Draw(t, "origin")
			seqs[origin]++
			seq := seqs[origin]
			// A replica never reuses an HLC: the logical part is the
			// sequence number. Other replicas may hit the same HLC.
			at := hlc.New(rapid.Int64Range(1, 4).Draw(t, "wall"), uint16(seq))
			op := &Op{
				Namespace: "ns", Collection: "c",
				Key:   rapid.SampledFrom(lawKeys).Draw(t, "key"),
				Dot:   Dot{Origin: origin, Seq: seq},
				HLC:   at,
				CL:    rapid.SampledFrom([]uint64{1, 1, 1, 2, 3, 3, 4, 5}).Draw(t, "cl"),
				TxEnd: true,
			}
			if !op.IsDelete() {
				op.Fields = genLawFields(t, op, &adds, views)
			}
			if err := op.Validate(); err != nil {
				t.Fatalf("generated an invalid op %+v: %v", op, err)
			}
			ops = append(ops, op)
		}
		return ops
	})
}

func genLawFields(t *rapid.T, op *Op, adds *[]addRef, views *seqViews) []FieldOp {
	var fields []FieldOp
	kinds := map[string]Kind{} // field name -> kind written by this op
	n := rapid.IntRange(0, 4).Draw(t, "fields")
	for range n {
		typ := rapid.SampledFrom(lawOpTypes).Draw(t, "type")
		f := FieldOp{Name: rapid.SampledFrom(lawFields).Draw(t, "name"), Type: typ}
		if typ.Kind().isSeq() {
			// A splice on the origin's view of the field: an insert, a
			// delete, or both.
			if prev, ok := kinds[f.Name]; ok && prev != typ.Kind() {
				continue
			}
			kinds[f.Name] = typ.Kind()
			fields = append(fields, views.splice(t, op, f.Name, typ.Kind())...)
			continue
		}
		switch typ {
		case Assign:
			if rapid.IntRange(0, 4).Draw(t, "unset") > 0 {
				f.Value = rapid.SampledFrom(lawValues).Draw(t, "value")
			}
			if rapid.Bool().Draw(t, "seen") {
				f.Seen = hlc.New(rapid.Int64Range(1, 4).Draw(t, "seenWall"), 0)
			}
		case Add, WriteMax, WriteMin:
			f.Value = rapid.SampledFrom(lawValues).Draw(t, "value")
		case Count:
			f.P = rapid.Uint64Range(0, 5).Draw(t, "p")
			f.N = rapid.Uint64Range(0, 5).Draw(t, "n")
		case Remove:
			var mine []addRef
			for _, a := range *adds {
				if a.key == op.Key {
					mine = append(mine, a)
				}
			}
			if len(mine) > 0 && rapid.IntRange(0, 4).Draw(t, "observed") > 0 {
				// Remove an element added earlier, with some of its adds.
				a := rapid.SampledFrom(mine).Draw(t, "element")
				f.Name, f.Value = a.name, a.value
				for _, o := range mine {
					if o.name == a.name && bytes.Equal(o.value, a.value) && rapid.IntRange(0, 3).Draw(t, "observe") > 0 {
						f.Dots = append(f.Dots, o.dot)
					}
				}
			} else {
				// A remove of adds not generated (yet, or ever).
				f.Value = rapid.SampledFrom(lawValues).Draw(t, "value")
				f.Dots = append(f.Dots, Dot{Origin: rapid.SampledFrom(lawReplicas).Draw(t, "origin"), Seq: rapid.Uint64Range(1, 3).Draw(t, "seq")})
			}
		}
		k := typ.Kind()
		if prev, ok := kinds[f.Name]; ok && (prev != k || !k.repeatable()) {
			continue // one write per field, but for sets
		}
		kinds[f.Name] = k
		if typ == Add {
			*adds = append(*adds, addRef{key: op.Key, name: f.Name, value: f.Value, dot: op.Dot})
		}
		fields = append(fields, f)
	}
	return fields
}

// states applies ops to one record per key.
func states(ops []*Op) map[string]*Record {
	out := map[string]*Record{}
	for _, op := range ops {
		r := out[op.Key]
		if r == nil {
			r = &Record{}
			out[op.Key] = r
		}
		r.Apply(op)
	}
	return out
}

// forKey returns the ops on key.
func forKey(ops []*Op, key string) []*Op {
	var out []*Op
	for _, op := range ops {
		if op.Key == key {
			out = append(out, op)
		}
	}
	return out
}

// subset draws a subsequence of ops.
func subset(t *rapid.T, ops []*Op, label string) []*Op {
	var out []*Op
	for _, op := range ops {
		if rapid.Bool().Draw(t, label) {
			out = append(out, op)
		}
	}
	return out
}

func join(a, b *Record) *Record {
	c := a.Clone()
	c.Merge(b)
	return c
}

func checkDecodes(t *rapid.T, what string, r *Record) {
	t.Helper()
	enc := r.Encode()
	d, err := DecodeRecord(enc)
	if err != nil {
		t.Fatalf("%s is not a normalized record: %v\n%x", what, err, enc)
	}
	if re := d.Encode(); !bytes.Equal(re, enc) {
		t.Fatalf("%s re-encodes differently:\n%x\n%x", what, enc, re)
	}
}

// TestMergeLaws checks that Merge is a join: commutative, associative and
// idempotent, on states built from random subsets of one history.
func TestMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops := forKey(genLawOps(1, 30).Draw(t, "history"), "k1")
		a := apply(subset(t, ops, "a")...)
		b := apply(subset(t, ops, "b")...)
		c := apply(subset(t, ops, "c")...)
		ab, ba := join(a, b), join(b, a)
		checkSameBytes(t, "a⊔b vs b⊔a", ab, ba)
		checkSameBytes(t, "(a⊔b)⊔c vs a⊔(b⊔c)", join(ab, c), join(a, join(b, c)))
		checkSameBytes(t, "a⊔a vs a", join(a, a), a)
		checkSameBytes(t, "(a⊔b)⊔a vs a⊔b", join(ab, a), ab)
		checkSameBytes(t, "(a⊔b)⊔b vs a⊔b", join(ab, b), ab)
		checkDecodes(t, "a⊔b", ab)
		if !reflect.DeepEqual(ab.Visible(), ba.Visible()) {
			t.Fatalf("a⊔b and b⊔a show different fields")
		}
		// Merge does not modify its argument.
		encB := b.Encode()
		a.Merge(b)
		if !bytes.Equal(b.Encode(), encB) {
			t.Fatalf("Merge modified its argument")
		}
	})
}

// TestApplyAnyOrder checks that applying a history in any order, with any
// duplicates, gives the same bytes for every record.
func TestApplyAnyOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops := genLawOps(1, 30).Draw(t, "history")
		dups := rapid.SliceOfN(rapid.SampledFrom(ops), 0, 10).Draw(t, "duplicates")
		shuffled := rapid.Permutation(append(slices.Clone(ops), dups...)).Draw(t, "order")
		want, got := states(ops), states(shuffled)
		if len(want) != len(got) {
			t.Fatalf("%d records, want %d", len(got), len(want))
		}
		for k, w := range want {
			checkSameBytes(t, "record "+k, got[k], w)
		}
	})
}

// TestDeltaMerge checks that Apply is Merge of Delta, that deltas are
// normalized records, and that the state of a history is the join of the
// states of any split of it.
func TestDeltaMerge(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops := forKey(genLawOps(1, 30).Draw(t, "history"), "k2")
		r := &Record{}
		for _, op := range ops {
			d := Delta(op)
			checkDecodes(t, "Delta(op)", d)
			viaDelta := r.Clone()
			viaDelta.Merge(d)
			r.Apply(op)
			checkSameBytes(t, "Merge(Delta(op)) vs Apply(op)", viaDelta, r)
			checkSameBytes(t, "Delta(op) vs zero.Apply(op)", d, apply(op))
		}
		i := rapid.IntRange(0, len(ops)).Draw(t, "split")
		checkSameBytes(t, "apply(ops[:i]) ⊔ apply(ops[i:]) vs apply(ops)", join(apply(ops[:i]...), apply(ops[i:]...)), r)
		checkDecodes(t, "state", r)
	})
}

// TestRecordCodecLaws checks that a state decodes to a record with the
// same bytes, which merges and reads like the original.
func TestRecordCodecLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops := forKey(genLawOps(1, 30).Draw(t, "history"), "k1")
		r := apply(subset(t, ops, "r")...)
		x := apply(subset(t, ops, "x")...)
		enc := r.Encode()
		d, err := DecodeRecord(enc)
		if err != nil {
			t.Fatalf("DecodeRecord(Encode()): %v\n%x", err, enc)
		}
		if re := d.Encode(); !bytes.Equal(re, enc) {
			t.Fatalf("re-encoding differs:\n%x\n%x", enc, re)
		}
		checkSameBytes(t, "decoded ⊔ x vs r ⊔ x", join(d, x), join(r, x))
		checkSameBytes(t, "x ⊔ decoded vs x ⊔ r", join(x, d), join(x, r))
		if !reflect.DeepEqual(d.Visible(), r.Visible()) {
			t.Fatalf("decoded Visible() = %v, want %v", d.Visible(), r.Visible())
		}
		checkDecodes(t, "decoded ⊔ x", join(d, x))
	})
}

// TestCloneIsDeep checks that no change to a clone reaches the original.
func TestCloneIsDeep(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops := forKey(genLawOps(1, 30).Draw(t, "history"), "k1")
		r := apply(ops...)
		enc := r.Encode()
		// Merging into a clone leaves the original alone.
		m := r.Clone()
		checkSameBytes(t, "clone", m, r)
		m.Merge(apply(subset(t, ops, "more")...))
		m.Apply(mkOp(rC, 99, hlc.New(9, 0), r.CL|1, assign("f1", vInt(7)), add("f2", vInt(7)), count("f3", 9, 9)))
		if got := r.Encode(); !bytes.Equal(got, enc) {
			t.Fatalf("merging into the clone changed the original:\n%x\n%x", got, enc)
		}
		// So does writing into every byte and slice of a clone. (Only a
		// fresh clone: a merged one may alias the merged records.)
		c := r.Clone()
		for i := range c.Fields {
			f := &c.Fields[i]
			f.Name += "x"
			f.At.CL++
			for j := range f.Value {
				f.Value[j] ^= 0xff
			}
			for j := range f.Elems {
				e := &f.Elems[j]
				for k := range e.Value {
					e.Value[k] ^= 0xff
				}
				for k := range e.Adds {
					e.Adds[k].CL++
					e.Adds[k].Dot.Seq++
				}
				for k := range e.Removed {
					e.Removed[k].Seq++
				}
			}
			for j := range f.Counts {
				f.Counts[j].P++
				f.Counts[j].Origin[0]++
			}
		}
		c.CL++
		if got := r.Encode(); !bytes.Equal(got, enc) {
			t.Fatalf("changing the clone changed the original:\n%x\n%x", got, enc)
		}
	})
}

// TestRecordModel checks the record against a naive reference: what the
// doc comments say a set of ops shows, computed from the ops directly.
func TestRecordModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops := genLawOps(1, 30).Draw(t, "history")
		for key, r := range states(ops) {
			m := newModel(forKey(ops, key))
			if r.CL != m.cl {
				t.Fatalf("record %s: CL = %d, want %d", key, r.CL, m.cl)
			}
			if r.Created != m.created || r.Updated != m.updated {
				t.Fatalf("record %s: Created, Updated = %v, %v; want %v, %v", key, r.Created, r.Updated, m.created, m.updated)
			}
			if got, want := r.Visible(), m.visible(); !reflect.DeepEqual(got, want) {
				t.Fatalf("record %s: Visible() =\n%v\nwant\n%v", key, got, want)
			}
			for _, name := range lawFields {
				got, ok := r.Get(name)
				want, wantOK := m.get(name)
				if ok != wantOK || !reflect.DeepEqual(got, want) {
					t.Fatalf("record %s: Get(%q) = %v, %v; want %v, %v", key, name, got, ok, want, wantOK)
				}
			}
		}
	})
}

// model computes what a set of ops on one record shows, from the ops.
type model struct {
	ops              []*Op
	cl               uint64
	created, updated Stamp
}

type modelWrite struct {
	op *Op
	f  *FieldOp
}

func newModel(ops []*Op) *model {
	m := &model{ops: ops}
	for _, op := range ops {
		m.cl = max(m.cl, op.CL)
	}
	for _, op := range ops {
		if op.CL != m.cl {
			continue
		}
		if s := op.Stamp(); m.created.IsZero() || s.Compare(m.created) < 0 {
			m.created = s
		}
		if s := op.Stamp(); s.Compare(m.updated) > 0 {
			m.updated = s
		}
	}
	return m
}

func (m *model) writes(name string) []modelWrite {
	var out []modelWrite
	for _, op := range m.ops {
		for i := range op.Fields {
			if op.Fields[i].Name == name {
				out = append(out, modelWrite{op, &op.Fields[i]})
			}
		}
	}
	return out
}

// get returns the visible value of field name: the kind written last, by
// (CL, HLC, replica), if that write is at the record's current CL.
func (m *model) get(name string) (FieldValue, bool) {
	if m.cl%2 == 0 {
		return FieldValue{}, false
	}
	ws := m.writes(name)
	if len(ws) == 0 {
		return FieldValue{}, false
	}
	last := ws[0]
	for _, w := range ws[1:] {
		if w.op.Version().Compare(last.op.Version()) > 0 {
			last = w
		}
	}
	if last.op.CL != m.cl {
		return FieldValue{}, false
	}
	kind := last.f.Type.Kind()
	v := FieldValue{Name: name, Kind: kind}
	switch kind {
	case KindRegister:
		// The last write overall is the last assign.
		if isNil(last.f.Value) {
			return FieldValue{}, false
		}
		v.Value = last.f.Value
	case KindMax, KindMin:
		// The greatest (least) value written at the current CL, values
		// that compare equal ordered by bytes.
		var best []byte
		found := false
		for _, w := range ws {
			if w.f.Type.Kind() != kind || w.op.CL != m.cl {
				continue
			}
			c := orderRegister(w.f.Value, best)
			if !found || (kind == KindMax && c > 0) || (kind == KindMin && c < 0) {
				best, found = w.f.Value, true
			}
		}
		if isNil(best) {
			return FieldValue{}, false
		}
		v.Value = best
	case KindSet:
		// An element shows if one of its adds is at the current CL and
		// no remove of the element lists that add's dot.
		removed := map[string][]Dot{}
		for _, w := range ws {
			if w.f.Type == Remove {
				removed[string(w.f.Value)] = append(removed[string(w.f.Value)], w.f.Dots...)
			}
		}
		live := map[string]bool{}
		for _, w := range ws {
			if w.f.Type == Add && w.op.CL == m.cl && !slices.Contains(removed[string(w.f.Value)], w.op.Dot) {
				live[string(w.f.Value)] = true
			}
		}
		var elems []string
		for e := range live {
			elems = append(elems, e)
		}
		slices.SortFunc(elems, func(a, b string) int { return OrderValues([]byte(a), []byte(b)) })
		b := []byte{}
		for _, e := range elems {
			b = append(b, e...)
		}
		v.Value = append(mp.AppendArrayHeader(nil, len(elems)), b...)
	case KindCounter:
		// Each origin's totals at its greatest CL, the greatest of
		// each; only totals at the current CL count.
		type tally struct{ cl, p, n uint64 }
		tallies := map[ReplicaID]tally{}
		for _, w := range ws {
			if w.f.Type != Count {
				continue
			}
			o := w.op.Dot.Origin
			t, ok := tallies[o]
			switch {
			case !ok || w.op.CL > t.cl:
				t = tally{w.op.CL, w.f.P, w.f.N}
			case w.op.CL == t.cl:
				t.p, t.n = max(t.p, w.f.P), max(t.n, w.f.N)
			}
			tallies[o] = t
		}
		var total int64
		for _, t := range tallies {
			if t.cl == m.cl {
				total += int64(t.p) - int64(t.n)
			}
		}
		v.Value = EncodeInt(total)
	case KindText, KindList:
		// The inserts and deletes at the current CL, joined.
		var ops []*Op
		var fos []*FieldOp
		for _, w := range ws {
			if w.f.Type.Kind() == kind && w.op.CL == m.cl {
				ops, fos = append(ops, w.op), append(fos, w.f)
			}
		}
		v.Value = seqModelValue(kind, ops, fos)
	}
	return v, true
}

func (m *model) visible() []FieldValue {
	if m.cl%2 == 0 {
		return nil
	}
	var out []FieldValue
	names := map[string]bool{}
	for _, op := range m.ops {
		for _, f := range op.Fields {
			names[f.Name] = true
		}
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		if v, ok := m.get(n); ok {
			out = append(out, v)
		}
	}
	return out
}
