package crdt

// Tests of tombstone collection: Merge drops what is tagged with a causal
// length below the record's, which can never be visible again.

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/convergedb/converge/hlc"
	"pgregory.net/rapid"
)

// uncollected returns the state ops produce without tombstone collection:
// the plain join of their deltas, keeping everything (what Apply did before
// collection, and what older stores hold).
func uncollected(ops ...*Op) *Record {
	r := &Record{}
	for _, op := range ops {
		r.join(delta(op))
	}
	return r
}

// checkCollected fails unless r holds nothing below its CL: no set add or
// counter tally below it, no empty set element, and no component written
// below it but a set one holding only removed dots, with the zero version.
func checkCollected(t fataler, what string, r *Record) {
	t.Helper()
	for _, f := range r.Fields {
		if f.At.CL < r.CL {
			if f.Kind != KindSet || f.At != (Version{}) || len(f.Elems) == 0 {
				t.Fatalf("%s (CL %d): stale %v component %q at %v with %d elements", what, r.CL, f.Kind, f.Name, f.At, len(f.Elems))
			}
			for _, e := range f.Elems {
				if len(e.Adds) > 0 || len(e.Removed) == 0 {
					t.Fatalf("%s (CL %d): stale set %q keeps element %x with %d adds and %d removed dots", what, r.CL, f.Name, e.Value, len(e.Adds), len(e.Removed))
				}
			}
		}
		for _, e := range f.Elems {
			if len(e.Adds) == 0 && len(e.Removed) == 0 {
				t.Fatalf("%s: set %q keeps an empty element %x", what, f.Name, e.Value)
			}
			for _, tag := range e.Adds {
				if tag.CL < r.CL {
					t.Fatalf("%s (CL %d): set %q element %x keeps add %v at CL %d", what, r.CL, f.Name, e.Value, tag.Dot, tag.CL)
				}
			}
		}
		for _, c := range f.Counts {
			if c.CL < r.CL {
				t.Fatalf("%s (CL %d): counter %q keeps %v's tally at CL %d", what, r.CL, f.Name, c.Origin, c.CL)
			}
		}
	}
}

// checkSameView fails unless a and b show the same record.
func checkSameView(t fataler, what string, a, b *Record) {
	t.Helper()
	if a.CL != b.CL || a.Created != b.Created || a.Updated != b.Updated {
		t.Fatalf("%s: CL, Created, Updated = %d, %v, %v; want %d, %v, %v", what, a.CL, a.Created, a.Updated, b.CL, b.Created, b.Updated)
	}
	if got, want := a.Visible(), b.Visible(); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: Visible() =\n%v\nwant\n%v", what, got, want)
	}
	for _, name := range lawFields {
		got, ok := a.Get(name)
		want, wantOK := b.Get(name)
		if ok != wantOK || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: Get(%q) = %v, %v; want %v, %v", what, name, got, ok, want, wantOK)
		}
		if got, want := a.SetElems(name), b.SetElems(name); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: SetElems(%q) = %x, want %x", what, name, got, want)
		}
	}
}

var changeTypes = []ChangeType{Set, Unset, AddElem, RemoveElem, Increment, OfferMax, OfferMin}

// liveRemoves returns the field ops a Prepare on the uncollected state ref
// writes, less the dots of removes whose adds are below ref's CL (dead; the
// collected state no longer holds them), and less the removes left with no
// dots.
func liveRemoves(ref *Record, fields []FieldOp) []FieldOp {
	if fields == nil {
		return nil
	}
	out := make([]FieldOp, 0, len(fields))
	for _, fo := range fields {
		if fo.Type == Remove {
			var live []Dot
			for _, d := range fo.Dots {
				if f := ref.component(fo.Name, KindSet); f != nil {
					for _, e := range f.Elems {
						if !bytes.Equal(e.Value, fo.Value) {
							continue
						}
						for _, tag := range e.Adds {
							if tag.Dot == d && tag.CL >= ref.CL {
								live = append(live, d)
							}
						}
					}
				}
			}
			if len(live) == 0 {
				continue
			}
			fo.Dots = live
		}
		out = append(out, fo)
	}
	return out
}

// TestCollectModel checks, for random histories of one record, that after
// every op the state holds nothing below its CL, that it shows exactly what
// the uncollected state of the same ops shows, that it is the collection of
// that state (so a function of the ops alone), and that local writes
// prepared on it are those prepared on the uncollected state, but for
// removes no longer listing dead adds.
func TestCollectModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops := forKey(genLawOps(1, 40).Draw(t, "history"), "k1")
		r, ref := &Record{}, &Record{}
		for i, op := range ops {
			r.Apply(op)
			ref.join(delta(op))
			what := fmt.Sprintf("after op %d", i)
			checkCollected(t, what, r)
			checkSameView(t, what, r, ref)
			c := *ref
			c.dropStale()
			checkSameBytes(t, what+": collected uncollected state", &c, r)
		}
		checkDecodes(t, "state", r)

		changes := make([]Change, rapid.IntRange(0, 4).Draw(t, "changes"))
		for i := range changes {
			changes[i] = Change{
				Name:  rapid.SampledFrom(lawFields).Draw(t, "name"),
				Type:  rapid.SampledFrom(changeTypes).Draw(t, "type"),
				Value: rapid.SampledFrom(lawValues).Draw(t, "value"),
				Delta: rapid.Int64Range(-3, 3).Draw(t, "delta"),
			}
		}
		intent := rapid.SampledFrom([]Intent{IntentPut, IntentUpdate, IntentDelete}).Draw(t, "intent")
		cl, fields, err := r.Prepare(rA, intent, changes)
		rcl, rfields, rerr := ref.Prepare(rA, intent, changes)
		if cl != rcl || fmt.Sprint(err) != fmt.Sprint(rerr) {
			// One difference is expected: a remove of an element with
			// dead adds only is a set write on the uncollected state,
			// which then rejects a write of another kind to the field
			// in the same write (or names the kinds the other way
			// round); the collected state writes nothing for it, as for
			// an element never added.
			deadOnly := func(c Change) bool {
				return c.Type == RemoveElem && len(ref.observedAdds(c.Name, c.Value)) > 0 && len(r.observedAdds(c.Name, c.Value)) == 0
			}
			if (err != nil && !errors.Is(err, ErrInvalidOp)) || !errors.Is(rerr, ErrInvalidOp) || !slices.ContainsFunc(changes, deadOnly) {
				t.Fatalf("Prepare = CL %d, %v; uncollected: CL %d, %v", cl, err, rcl, rerr)
			}
			return
		}
		if want := liveRemoves(ref, rfields); err == nil && !reflect.DeepEqual(fields, want) {
			t.Fatalf("Prepare wrote\n%+v\nwant (uncollected, without dead adds)\n%+v", fields, want)
		}
	})
}

// TestCollectConverges checks that replicas holding the same ops, received
// in different subsets and orders with duplicates, have the same bytes,
// and that the collecting merge never writes into either record's slices.
func TestCollectConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops := forKey(genLawOps(1, 40).Draw(t, "history"), "k1")
		want := apply(ops...)
		n := rapid.IntRange(1, 4).Draw(t, "replicas")
		groups := make([][]*Op, n)
		for _, op := range ops {
			owner := rapid.IntRange(0, n-1).Draw(t, "owner")
			for i := range groups {
				if i == owner || rapid.IntRange(0, 2).Draw(t, "also") == 0 {
					groups[i] = append(groups[i], op)
				}
			}
		}
		states := make([]*Record, n)
		order := make([]int, n)
		for i, g := range groups {
			if len(g) > 0 {
				g = append(g, rapid.SliceOfN(rapid.SampledFrom(g), 0, 3).Draw(t, "duplicates")...)
			}
			states[i] = apply(rapid.Permutation(g).Draw(t, "order")...)
			checkCollected(t, fmt.Sprintf("replica %d", i), states[i])
			order[i] = i
		}
		encs := make([][]byte, n)
		for i, s := range states {
			encs[i] = s.Encode()
		}
		m := &Record{}
		for _, i := range rapid.Permutation(order).Draw(t, "merge order") {
			// A shallow copy, as materialize.Fold does: collecting must
			// not write into the slices it shares with the original.
			next := *m
			before := m.Encode()
			next.Merge(states[i])
			if !bytes.Equal(m.Encode(), before) {
				t.Fatalf("Merge wrote into its receiver's original slices")
			}
			m = &next
		}
		for i, s := range states {
			if !bytes.Equal(s.Encode(), encs[i]) {
				t.Fatalf("Merge modified its argument, replica %d", i)
			}
		}
		checkSameBytes(t, "merged replicas vs all ops", m, want)
		checkCollected(t, "merged replicas", m)
	})
}

func TestCollectDeletedRecord(t *testing.T) {
	create := mkOp(rA, 1, ts(1), 1,
		assign("title", vStr("hello")), assign("n", vInt(3)),
		add("tags", vStr("x")), add("tags", vStr("y")),
		count("views", 4, 1), writeMax("hi", vInt(9)), writeMin("lo", vInt(-9)))
	r := apply(create)
	before := r.Encode()

	del := mkOp(rB, 1, ts(2), 2)
	r.Apply(del)
	stub := &Record{CL: 2, Created: del.Stamp(), Updated: del.Stamp()}
	if len(r.Fields) != 0 {
		t.Fatalf("deleted record keeps %d field components: %+v", len(r.Fields), r.Fields)
	}
	checkSameBytes(t, "deleted record", r, stub)
	if after := r.Encode(); len(after) >= len(before) {
		t.Fatalf("deleted record is %d bytes, %d before the delete", len(after), len(before))
	}
	// A late write to the old incarnation leaves nothing behind either.
	r.Apply(mkOp(rC, 1, ts(3), 1, assign("title", vStr("late")), add("tags", vStr("z")), count("views", 1, 0)))
	checkSameBytes(t, "deleted record after a late update", r, stub)

	// A re-created record holds nothing of its old incarnation: its state
	// is the re-creating op's alone.
	recreate := mkOp(rA, 2, ts(4), 3, assign("n", vInt(5)), add("tags", vStr("y")))
	r.Apply(recreate)
	checkSameBytes(t, "re-created record", r, apply(recreate))
	checkGet(t, r, "n", KindRegister, vInt(5))
	checkGet(t, r, "tags", KindSet, vArr(vStr("y")))
	for _, name := range []string{"title", "views", "hi", "lo"} {
		checkGet(t, r, name, 0, nil)
		if f := r.component(name, KindRegister); f != nil {
			t.Errorf("re-created record keeps the old %q", name)
		}
	}
	if f := r.component("tags", KindSet); f == nil || len(f.Elems) != 1 || len(f.Elems[0].Adds) != 1 || f.Elems[0].Adds[0].CL != 3 {
		t.Errorf("re-created set = %+v, want one element with one add at CL 3", f)
	}

	// The same without the delete arriving first: the re-create alone
	// makes the old incarnation stale.
	checkSameBytes(t, "create, then re-create", apply(create, recreate), apply(recreate))
	checkSameBytes(t, "re-create, then create", apply(recreate, create), apply(recreate))
}

// TestCollectKeepsRemovedDots checks that a removed dot outlives its
// incarnation (an add listed may still arrive, and nothing says at which
// CL), in a set component whose version is reset, and that replicas
// receiving the ops in any order agree on it.
func TestCollectKeepsRemovedDots(t *testing.T) {
	a1 := Dot{rA, 1}
	ops := []*Op{
		mkOp(rA, 1, ts(1), 1, add("tags", vStr("x")), assign("title", vStr("t"))),
		mkOp(rB, 1, ts(2), 1, remove("tags", vStr("x"), a1)),
		mkOp(rC, 1, ts(3), 2),
	}
	r := apply(ops...)
	want := &Record{CL: 2, Created: ops[2].Stamp(), Updated: ops[2].Stamp(), Fields: []Field{
		{Name: "tags", Kind: KindSet, Elems: []Elem{{Value: vStr("x"), Removed: []Dot{a1}}}},
	}}
	checkSameBytes(t, "deleted record with a removed dot", r, want)

	// A re-create that did not see the remove adds x again; whether the
	// remove arrives before the delete or after the re-create, all agree.
	ops = append(ops, mkOp(rC, 2, ts(4), 3, add("tags", vStr("x"))))
	first := apply(ops...)
	checkGet(t, first, "tags", KindSet, vArr(vStr("x")))
	checkGet(t, first, "title", 0, nil)
	rapid.Check(t, func(t *rapid.T) {
		checkSameBytes(t, "another order", apply(rapid.Permutation(ops).Draw(t, "order")...), first)
	})
}

func TestDecodeUncollected(t *testing.T) {
	ops := []*Op{
		mkOp(rA, 1, ts(1), 1, assign("title", vStr("hello")), add("tags", vStr("x")), count("views", 2, 0)),
		mkOp(rB, 1, ts(2), 2),
		mkOp(rA, 2, ts(3), 3, assign("n", vInt(1)), add("tags", vStr("y"))),
	}
	for i := 1; i <= len(ops); i++ {
		old := uncollected(ops[:i]...)
		enc := old.Encode()
		d, err := DecodeRecord(enc)
		if err != nil {
			t.Fatalf("%d ops: DecodeRecord of an uncollected state: %v", i, err)
		}
		if re := d.Encode(); !bytes.Equal(re, enc) {
			t.Fatalf("%d ops: re-encoding differs:\n%x\n%x", i, enc, re)
		}
		want := apply(ops[:i]...)
		checkSameView(t, fmt.Sprintf("%d ops: decoded", i), d, want)
		// The first merge collects it.
		d.Merge(&Record{})
		checkSameBytes(t, fmt.Sprintf("%d ops: decoded, merged", i), d, want)
		if i > 1 && len(enc) <= len(want.Encode()) {
			t.Errorf("%d ops: uncollected state of %d bytes, collected %d", i, len(enc), len(want.Encode()))
		}
	}
}

func TestCollectAllocatesOnlyWhenStale(t *testing.T) {
	r := apply(
		mkOp(rA, 1, ts(1), 1, assign("title", vStr("t")), add("tags", vStr("x")), count("views", 1, 0)),
		mkOp(rB, 1, ts(2), 1, remove("tags", vStr("x"), Dot{rA, 1}), add("tags", vStr("y")), count("views", 2, 1), writeMax("hi", vInt(1))),
	)
	enc := r.Encode()
	if n := testing.AllocsPerRun(100, r.dropStale); n != 0 {
		t.Errorf("dropStale on a collected record: %v allocations, want 0", n)
	}
	zero := &Record{}
	if n := testing.AllocsPerRun(100, func() { r.Merge(zero) }); n != 0 {
		t.Errorf("Merge of the zero record: %v allocations, want 0", n)
	}
	if !bytes.Equal(r.Encode(), enc) {
		t.Fatalf("record changed")
	}
}

// TestPrepareFromBase checks, for random histories of one record, a write
// prepared from a base read after a prefix of the history: with the record
// itself as the base it is Prepare; otherwise it differs from Prepare only
// in what the writer observed (the Seen of register writes and the dots
// removes list, all taken from the base, and none when the base is of
// another incarnation), and applying it keeps every add the base did not
// hold.
func TestPrepareFromBase(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops := forKey(genLawOps(1, 30).Draw(t, "history"), "k1")
		cut := rapid.IntRange(0, len(ops)).Draw(t, "base after")
		base := &Record{}
		for _, op := range ops[:cut] {
			base.Apply(op)
		}
		// The base holds set elements: a replica added some just before.
		setup := mkOp(rC, 500, hlc.New(4, 500), base.CL|1)
		for range rapid.IntRange(1, 3).Draw(t, "base elements") {
			setup.Fields = append(setup.Fields, add(rapid.SampledFrom(lawFields).Draw(t, "name"), rapid.SampledFrom(lawValues).Draw(t, "value")))
		}
		base.Apply(setup)
		r := base.Clone()
		for _, op := range ops[cut:] {
			r.Apply(op)
		}
		// Since the base, another replica added again some of the
		// elements the base holds.
		var elems []Change
		for _, f := range base.Fields {
			for _, e := range f.Elems {
				elems = append(elems, Change{Name: f.Name, Type: RemoveElem, Value: e.Value})
				if r.Exists() && rapid.Bool().Draw(t, "added again") {
					r.Apply(mkOp(rC, uint64(1000+len(elems)), hlc.New(50, uint16(len(elems))), r.CL, add(f.Name, e.Value)))
				}
			}
		}
		// One change per field (two kinds in one write are refused);
		// removes of the base's elements, which meet those adds.
		var changes []Change
		for _, name := range lawFields {
			c := Change{
				Name:  name,
				Type:  rapid.SampledFrom(changeTypes).Draw(t, "type"),
				Value: rapid.SampledFrom(lawValues).Draw(t, "value"),
				Delta: rapid.Int64Range(-3, 3).Draw(t, "delta"),
			}
			var mine []Change
			for _, e := range elems {
				if e.Name == name {
					mine = append(mine, e)
				}
			}
			if len(mine) > 0 && rapid.Bool().Draw(t, "remove a base element") {
				c = rapid.SampledFrom(mine).Draw(t, "remove")
			}
			if rapid.Bool().Draw(t, "change") {
				changes = append(changes, c)
			}
		}
		intent := rapid.SampledFrom([]Intent{IntentPut, IntentUpdate}).Draw(t, "intent")
		cl, fields, err := r.Prepare(rA, intent, changes)
		scl, sfields, serr := r.PrepareFrom(rA, r, intent, changes)
		if cl != scl || fmt.Sprint(err) != fmt.Sprint(serr) || !reflect.DeepEqual(fields, sfields) {
			t.Fatalf("PrepareFrom(r) = %d %+v %v, Prepare = %d %+v %v", scl, sfields, serr, cl, fields, err)
		}
		bcl, bfields, berr := r.PrepareFrom(rA, base, intent, changes)
		if err != nil || berr != nil {
			// Both fail alike, but for a remove that is a set write
			// from one view and nothing from the other, which decides
			// whether a write of another kind to its field is refused.
			isRemove := func(c Change) bool { return c.Type == RemoveElem }
			if (err == nil) != (berr == nil) && !(errors.Is(cmp.Or(err, berr), ErrInvalidOp) && slices.ContainsFunc(changes, isRemove)) {
				t.Fatalf("PrepareFrom(base): %v; Prepare: %v", berr, err)
			}
			return
		}
		if bcl != cl {
			t.Fatalf("PrepareFrom(base) CL %d, Prepare CL %d", bcl, cl)
		}
		observed := base
		if base.CL != cl {
			observed = &Record{CL: cl}
		}
		for _, fo := range bfields {
			switch fo.Type {
			case Assign:
				var want hlc.Timestamp
				if f := observed.current(fo.Name); f != nil {
					want = f.At.HLC
				}
				if fo.Seen != want {
					t.Fatalf("assign %q records Seen %v, base held %v", fo.Name, fo.Seen, want)
				}
			case Remove:
				if want := observed.observedAdds(fo.Name, fo.Value); !reflect.DeepEqual(fo.Dots, want) {
					t.Fatalf("remove %q %x lists %v, base held %v", fo.Name, fo.Value, fo.Dots, want)
				}
			}
		}
		// The ops but for what was observed are Prepare's.
		strip := func(fs []FieldOp) []FieldOp {
			var out []FieldOp
			for _, f := range fs {
				if f.Type == Remove {
					continue
				}
				f.Seen = 0
				out = append(out, f)
			}
			return out
		}
		if !reflect.DeepEqual(strip(bfields), strip(fields)) {
			t.Fatalf("PrepareFrom(base) wrote\n%+v\nPrepare\n%+v", bfields, fields)
		}
		op := mkOp(rA, 1000, hlc.New(100, 0), bcl, bfields...)
		mustValid(t, op)
		after := r.Clone()
		after.Apply(op)
		for _, f := range r.Fields {
			if f.Kind != KindSet {
				continue
			}
			for _, e := range f.Elems {
				seen := observed.observedAdds(f.Name, e.Value)
				for _, a := range e.Adds {
					if a.CL < after.CL || slices.Contains(seen, a.Dot) {
						continue
					}
					if !slices.Contains(after.observedAdds(f.Name, e.Value), a.Dot) {
						t.Fatalf("add %v of %q %x, which the base did not hold, was removed", a.Dot, f.Name, e.Value)
					}
				}
			}
		}
	})
}
