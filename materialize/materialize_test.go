package materialize_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/materialize"
	"pgregory.net/rapid"
)

// Fixed replica ids, in byte order: rA < rB < rC.
var (
	rA = rid(0x0a)
	rB = rid(0x0b)
	rC = rid(0x0c)
)

func rid(b byte) crdt.ReplicaID {
	var r crdt.ReplicaID
	r[0], r[15] = 0x01, b
	return r
}

// ts is the HLC timestamp at wall ms with logical 0.
func ts(wall int64) hlc.Timestamp { return hlc.New(wall, 0) }

func str(s string) []byte { return crdt.EncodeString(s) }

// mkOp returns an op on record ns/c/k.
func mkOp(origin crdt.ReplicaID, seq uint64, at hlc.Timestamp, cl uint64, fields ...crdt.FieldOp) *crdt.Op {
	return &crdt.Op{
		Namespace:  "ns",
		Collection: "c",
		Key:        "k",
		Dot:        crdt.Dot{Origin: origin, Seq: seq},
		HLC:        at,
		CL:         cl,
		TxEnd:      true,
		Fields:     fields,
	}
}

func assign(name string, v []byte) crdt.FieldOp {
	return crdt.FieldOp{Name: name, Type: crdt.Assign, Value: v}
}

func assignSeen(name string, v []byte, seen hlc.Timestamp) crdt.FieldOp {
	return crdt.FieldOp{Name: name, Type: crdt.Assign, Value: v, Seen: seen}
}

func add(name string, v []byte) crdt.FieldOp {
	return crdt.FieldOp{Name: name, Type: crdt.Add, Value: v}
}

func remove(name string, v []byte, dots ...crdt.Dot) crdt.FieldOp {
	return crdt.FieldOp{Name: name, Type: crdt.Remove, Value: v, Dots: dots}
}

func count(name string, p, n uint64) crdt.FieldOp {
	return crdt.FieldOp{Name: name, Type: crdt.Count, P: p, N: n}
}

func writeMax(name string, v []byte) crdt.FieldOp {
	return crdt.FieldOp{Name: name, Type: crdt.WriteMax, Value: v}
}

func writeMin(name string, v []byte) crdt.FieldOp {
	return crdt.FieldOp{Name: name, Type: crdt.WriteMin, Value: v}
}

// fold folds ops, in order, into a record no op has touched.
func fold(t testing.TB, ops ...*crdt.Op) *crdt.Record {
	t.Helper()
	var r *crdt.Record
	for _, op := range ops {
		mustValid(t, op)
		r = materialize.Fold(r, op).State
	}
	return r
}

type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

func mustValid(t fataler, op *crdt.Op) {
	t.Helper()
	if err := op.Validate(); err != nil {
		t.Fatalf("invalid test op %+v: %v", op, err)
	}
}

func TestChangeKindString(t *testing.T) {
	for k, want := range map[materialize.ChangeKind]string{
		materialize.Unchanged: "unchanged",
		materialize.Created:   "created",
		materialize.Updated:   "updated",
		materialize.Deleted:   "deleted",
		9:                     "change(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("ChangeKind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

func TestFoldChange(t *testing.T) {
	// The record's first incarnation: alice creates it at 100.
	create := mkOp(rA, 1, ts(100), 1,
		assign("title", str("write the docs")),
		assign("status", str("todo")),
		add("tags", str("q4")),
		count("votes", 2, 0),
		writeMax("prio", crdt.EncodeInt(3)),
	)
	allFields := []string{"prio", "status", "tags", "title", "votes"}
	del := mkOp(rB, 1, ts(200), 2)

	tests := []struct {
		name       string
		setup      []*crdt.Op // folded into an untouched record first
		op         *crdt.Op
		wantKind   materialize.ChangeKind
		wantFields []string
		// wantConflicts counts the conflicts; most ops here saw what they
		// replace (Seen), as Record.Prepare would set it.
		wantConflicts int
	}{
		{
			name:       "create",
			op:         create,
			wantKind:   materialize.Created,
			wantFields: allFields,
		},
		{
			// Unset registers are not visible; a set with no element
			// added is, as an empty array.
			name: "create skips unset fields",
			op: mkOp(rA, 1, ts(100), 1,
				assign("title", str("t")),
				assign("note", nil),
				assign("other", []byte{0xc0}), // the msgpack nil unsets too
				remove("tags", str("x"), crdt.Dot{Origin: rB, Seq: 9}),
			),
			wantKind:   materialize.Created,
			wantFields: []string{"tags", "title"},
		},
		{
			name:       "update one of several fields",
			setup:      []*crdt.Op{create},
			op:         mkOp(rB, 1, ts(150), 1, assignSeen("status", str("done"), ts(100))),
			wantKind:   materialize.Updated,
			wantFields: []string{"status"},
		},
		{
			name:  "update several fields of several kinds",
			setup: []*crdt.Op{create},
			op: mkOp(rB, 1, ts(150), 1,
				count("votes", 1, 0),
				add("tags", str("urgent")),
				assignSeen("title", str("write more docs"), ts(100)),
				writeMax("prio", crdt.EncodeInt(1)),        // loses: 1 < 3
				assignSeen("status", str("todo"), ts(100)), // same value: no visible change
			),
			wantKind:   materialize.Updated,
			wantFields: []string{"tags", "title", "votes"},
		},
		{
			name:       "update adds a new field",
			setup:      []*crdt.Op{create},
			op:         mkOp(rA, 2, ts(150), 1, assign("assignee", str("alice"))),
			wantKind:   materialize.Updated,
			wantFields: []string{"assignee"},
		},
		{
			name:       "unset a field",
			setup:      []*crdt.Op{create},
			op:         mkOp(rA, 2, ts(150), 1, assignSeen("title", nil, ts(100))),
			wantKind:   materialize.Updated,
			wantFields: []string{"title"},
		},
		{
			name:       "remove the observed add",
			setup:      []*crdt.Op{create},
			op:         mkOp(rB, 1, ts(150), 1, remove("tags", str("q4"), create.Dot)),
			wantKind:   materialize.Updated,
			wantFields: []string{"tags"},
		},
		{
			// Concurrent with the create (B's clock is behind): both
			// registers' writes conflict, and lose.
			name:          "update loses every LWW merge",
			setup:         []*crdt.Op{create},
			op:            mkOp(rB, 1, ts(50), 1, assign("title", str("old")), assign("status", str("stale"))),
			wantKind:      materialize.Unchanged,
			wantConflicts: 2,
		},
		{
			name:     "same value written again",
			setup:    []*crdt.Op{create},
			op:       mkOp(rA, 2, ts(150), 1, assign("title", str("write the docs"))),
			wantKind: materialize.Unchanged,
		},
		{
			name:     "add of an element already visible",
			setup:    []*crdt.Op{create},
			op:       mkOp(rB, 1, ts(150), 1, add("tags", str("q4"))),
			wantKind: materialize.Unchanged,
		},
		{
			name:     "max offered below the current",
			setup:    []*crdt.Op{create},
			op:       mkOp(rB, 1, ts(150), 1, writeMax("prio", crdt.EncodeInt(2))),
			wantKind: materialize.Unchanged,
		},
		{
			name:     "counter increment of zero",
			setup:    []*crdt.Op{create},
			op:       mkOp(rA, 2, ts(150), 1, count("votes", 2, 0)), // alice's totals unchanged
			wantKind: materialize.Unchanged,
		},
		{
			name:       "delete",
			setup:      []*crdt.Op{create},
			op:         del,
			wantKind:   materialize.Deleted,
			wantFields: allFields,
		},
		{
			name:     "delete again (another replica's concurrent delete)",
			setup:    []*crdt.Op{create, del},
			op:       mkOp(rC, 1, ts(190), 2),
			wantKind: materialize.Unchanged,
		},
		{
			name:     "delete of an untouched record",
			op:       mkOp(rA, 1, ts(100), 2),
			wantKind: materialize.Unchanged,
		},
		{
			name:     "field write at an older CL after a delete",
			setup:    []*crdt.Op{create, del},
			op:       mkOp(rA, 2, ts(300), 1, assignSeen("title", str("late"), ts(100))),
			wantKind: materialize.Unchanged,
		},
		{
			name:     "update at an older CL of a re-created record",
			setup:    []*crdt.Op{create, del, mkOp(rB, 2, ts(250), 3, assign("title", str("new")))},
			op:       mkOp(rA, 2, ts(300), 1, assign("title", str("late"))),
			wantKind: materialize.Unchanged,
		},
		{
			name:       "re-create after delete",
			setup:      []*crdt.Op{create, del},
			op:         mkOp(rB, 2, ts(250), 3, assign("title", str("new")), add("tags", str("fresh"))),
			wantKind:   materialize.Created,
			wantFields: []string{"tags", "title"},
		},
		{
			// A replica that saw the delete re-creates; the op reaches a
			// replica that never saw the delete: the record existed and
			// still does, but only the new fields are visible.
			name:       "re-create reaches a replica that missed the delete",
			setup:      []*crdt.Op{create},
			op:         mkOp(rB, 2, ts(250), 3, assign("title", str("new")), add("tags", str("q4"))),
			wantKind:   materialize.Updated,
			wantFields: []string{"prio", "status", "title", "votes"}, // tags is [q4] before and after
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := fold(t, tt.setup...)
			mustValid(t, tt.op)
			eff := materialize.Fold(prev, tt.op)
			c := eff.Change
			if c.Kind != tt.wantKind {
				t.Errorf("Change.Kind = %v, want %v", c.Kind, tt.wantKind)
			}
			if !slices.Equal(c.Fields, tt.wantFields) {
				t.Errorf("Change.Fields = %q, want %q", c.Fields, tt.wantFields)
			}
			if c.Namespace != tt.op.Namespace || c.Collection != tt.op.Collection || c.Key != tt.op.Key {
				t.Errorf("Change names %s/%s/%s, want %s/%s/%s", c.Namespace, c.Collection, c.Key, tt.op.Namespace, tt.op.Collection, tt.op.Key)
			}
			if c.Dot != tt.op.Dot || c.HLC != tt.op.HLC {
				t.Errorf("Change Dot, HLC = %v, %v, want %v, %v", c.Dot, c.HLC, tt.op.Dot, tt.op.HLC)
			}
			if eff.State == nil {
				t.Fatalf("Effect.State = nil")
			}
			// The state is what applying the op to a copy gives.
			want := &crdt.Record{}
			if prev != nil {
				want = prev.Clone()
			}
			want.Apply(tt.op)
			if got, want := eff.State.Encode(), want.Encode(); !bytes.Equal(got, want) {
				t.Errorf("State = %x, want %x", got, want)
			}
			if len(eff.Conflicts) != tt.wantConflicts {
				t.Errorf("Conflicts = %+v, want %d", eff.Conflicts, tt.wantConflicts)
			}
		})
	}
}

func TestFoldCreateVisibleFields(t *testing.T) {
	// Created lists exactly the visible fields of the new state, sorted.
	op := mkOp(rA, 1, ts(100), 1,
		assign("z", str("1")), assign("a", str("2")), count("m", 0, 1), writeMin("b", crdt.EncodeInt(-4)))
	eff := materialize.Fold(nil, op)
	var want []string
	for _, f := range eff.State.Visible() {
		want = append(want, f.Name)
	}
	if eff.Change.Kind != materialize.Created || !slices.Equal(eff.Change.Fields, want) {
		t.Errorf("Change = %v %q, want created %q", eff.Change.Kind, eff.Change.Fields, want)
	}
	if !slices.IsSorted(eff.Change.Fields) {
		t.Errorf("Change.Fields = %q, not sorted", eff.Change.Fields)
	}
}

func TestFoldIdempotent(t *testing.T) {
	create := mkOp(rA, 1, ts(100), 1, assign("title", str("a")), add("tags", str("x")), count("n", 1, 0))
	tests := []struct {
		name  string
		setup []*crdt.Op
		op    *crdt.Op
	}{
		{"create", nil, create},
		{"update", []*crdt.Op{create}, mkOp(rB, 1, ts(150), 1, assign("title", str("b")), remove("tags", str("x"), create.Dot))},
		{"losing update", []*crdt.Op{create}, mkOp(rB, 1, ts(50), 1, assign("title", str("b")))},
		{"delete", []*crdt.Op{create}, mkOp(rB, 1, ts(150), 2)},
		{"re-create", []*crdt.Op{create, mkOp(rB, 1, ts(150), 2)}, mkOp(rC, 1, ts(160), 3, writeMin("m", str("q")))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := materialize.Fold(fold(t, tt.setup...), tt.op)
			again := materialize.Fold(first.State, tt.op)
			if again.Change.Kind != materialize.Unchanged || len(again.Change.Fields) != 0 {
				t.Errorf("second Fold: Change = %v %q, want unchanged, no fields", again.Change.Kind, again.Change.Fields)
			}
			if got, want := again.State.Encode(), first.State.Encode(); !bytes.Equal(got, want) {
				t.Errorf("second Fold: State = %x, want %x", got, want)
			}
		})
	}
}

func TestFoldConflicts(t *testing.T) {
	// Two replicas both assign "title" at CL 1; neither saw the other.
	opA := mkOp(rA, 1, ts(100), 1, assign("title", str("from A")))
	opB := mkOp(rB, 1, ts(200), 1, assign("title", str("from B")))
	opBSameHLC := mkOp(rB, 1, ts(100), 1, assign("title", str("from B"))) // rA < rB: B wins the tie
	opAUnset := mkOp(rA, 2, ts(300), 1, assign("title", nil))

	write := func(op *crdt.Op) materialize.Write {
		return materialize.Write{Version: op.Version(), Value: op.Fields[0].Value}
	}
	tests := []struct {
		name         string
		setup        []*crdt.Op
		op           *crdt.Op
		winner, lost *crdt.Op // nil: no conflict
	}{
		{name: "B into A: B later", setup: []*crdt.Op{opA}, op: opB, winner: opB, lost: opA},
		{name: "A into B: B later", setup: []*crdt.Op{opB}, op: opA, winner: opB, lost: opA},
		{name: "B into A: same HLC, replica breaks the tie", setup: []*crdt.Op{opA}, op: opBSameHLC, winner: opBSameHLC, lost: opA},
		{name: "A into B: same HLC, replica breaks the tie", setup: []*crdt.Op{opBSameHLC}, op: opA, winner: opBSameHLC, lost: opA},
		{name: "concurrent unset wins", setup: []*crdt.Op{opB}, op: opAUnset, winner: opAUnset, lost: opB},
		{
			name:  "B saw A's value",
			setup: []*crdt.Op{opA},
			op:    mkOp(rB, 1, ts(200), 1, assignSeen("title", str("from B"), opA.HLC)),
		},
		{
			name:  "A into B, B saw A's value",
			setup: []*crdt.Op{mkOp(rB, 1, ts(200), 1, assignSeen("title", str("from B"), opA.HLC))},
			op:    opA,
		},
		{
			name:  "same value, concurrently",
			setup: []*crdt.Op{opA},
			op:    mkOp(rB, 1, ts(200), 1, assign("title", str("from A"))),
		},
		{
			name:  "same value, concurrently, other order",
			setup: []*crdt.Op{mkOp(rB, 1, ts(200), 1, assign("title", str("from A")))},
			op:    opA,
		},
		{
			name:  "both unset, one as msgpack nil",
			setup: []*crdt.Op{mkOp(rA, 1, ts(100), 1, assign("title", nil))},
			op:    mkOp(rB, 1, ts(200), 1, assign("title", []byte{0xc0})),
		},
		{
			name:  "write at a later CL",
			setup: []*crdt.Op{opA},
			op:    mkOp(rB, 1, ts(200), 3, assign("title", str("from B"))),
		},
		{
			name:  "write at an earlier CL",
			setup: []*crdt.Op{mkOp(rB, 1, ts(200), 3, assign("title", str("from B")))},
			op:    opA,
		},
		{
			name:  "the same write again",
			setup: []*crdt.Op{opA},
			op:    opA,
		},
		{
			name:  "different fields",
			setup: []*crdt.Op{opA},
			op:    mkOp(rB, 1, ts(200), 1, assign("status", str("from B"))),
		},
		{
			name:  "concurrent writes to a max register",
			setup: []*crdt.Op{mkOp(rA, 1, ts(100), 1, writeMax("title", str("a")))},
			op:    mkOp(rB, 1, ts(200), 1, writeMax("title", str("b"))),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := fold(t, tt.setup...)
			mustValid(t, tt.op)
			eff := materialize.Fold(prev, tt.op)
			if tt.winner == nil {
				if len(eff.Conflicts) != 0 {
					t.Errorf("Conflicts = %+v, want none", eff.Conflicts)
				}
				return
			}
			if len(eff.Conflicts) != 1 {
				t.Fatalf("Conflicts = %+v, want exactly one", eff.Conflicts)
			}
			c := eff.Conflicts[0]
			if c.Namespace != "ns" || c.Collection != "c" || c.Key != "k" || c.Field != "title" {
				t.Errorf("Conflict names %s/%s/%s.%s, want ns/c/k.title", c.Namespace, c.Collection, c.Key, c.Field)
			}
			checkWrite(t, "Winner", c.Winner, write(tt.winner))
			checkWrite(t, "Loser", c.Loser, write(tt.lost))
			if c.Winner.Version.Compare(c.Loser.Version) <= 0 {
				t.Errorf("Winner %v is not after Loser %v", c.Winner.Version, c.Loser.Version)
			}
			// The state holds the winner's write.
			v, ok := eff.State.Get("title")
			if len(c.Winner.Value) == 0 {
				if ok {
					t.Errorf("state title = %x, want unset", v.Value)
				}
			} else if !ok || !bytes.Equal(v.Value, c.Winner.Value) {
				t.Errorf("state title = %x (visible %v), want the winner's %x", v.Value, ok, c.Winner.Value)
			}
		})
	}
}

func checkWrite(t *testing.T, what string, got, want materialize.Write) {
	t.Helper()
	if got.Version != want.Version || !bytes.Equal(got.Value, want.Value) {
		t.Errorf("%s = %v %x, want %v %x", what, got.Version, got.Value, want.Version, want.Value)
	}
}

func TestFoldConflictUnsetAsMsgpackNil(t *testing.T) {
	// An Assign may carry the msgpack nil for an unset; the register stores
	// it as empty, and a Write's Value is "empty for an unset", so the
	// conflict must not carry the 0xc0 either (it would not survive
	// AppendConflict/DecodeConflict, which read a nil value as empty).
	prev := fold(t, mkOp(rA, 1, ts(100), 1, assign("title", str("a"))))
	eff := materialize.Fold(prev, mkOp(rB, 1, ts(200), 1, assign("title", []byte{0xc0})))
	if len(eff.Conflicts) != 1 {
		t.Fatalf("Conflicts = %+v, want one", eff.Conflicts)
	}
	if w := eff.Conflicts[0].Winner; len(w.Value) != 0 {
		t.Errorf("Winner.Value = %x, want empty (an unset)", w.Value)
	}
}

func TestFoldConflictOtherFieldsUnaffected(t *testing.T) {
	// An op with several fields reports a conflict only for the register
	// written concurrently with a different value.
	a := mkOp(rA, 1, ts(100), 1, assign("title", str("a")), assign("status", str("todo")), add("tags", str("x")))
	b := mkOp(rB, 1, ts(200), 1, assign("title", str("b")), assign("status", str("todo")), add("tags", str("y")), assign("new", str("n")))
	eff := materialize.Fold(fold(t, a), b)
	var fields []string
	for _, c := range eff.Conflicts {
		fields = append(fields, c.Field)
	}
	if !slices.Equal(fields, []string{"title"}) {
		t.Errorf("conflicts on %q, want [title]", fields)
	}
}

// encodeOf returns r's encoding; nil encodes as the untouched record.
func encodeOf(r *crdt.Record) []byte {
	if r == nil {
		return (&crdt.Record{}).Encode()
	}
	return r.Encode()
}

func TestFoldDoesNotModifyPrev(t *testing.T) {
	// Fold shallow-copies prev and relies on Record.Merge never writing
	// into its inputs' backing arrays. Fold ops of every field op type into
	// states holding fields of every kind, and check prev is intact.
	d1 := crdt.Dot{Origin: rA, Seq: 1}
	ops := []*crdt.Op{
		mkOp(rA, 1, ts(100), 1,
			assign("r", str("a")), add("s", str("x")), add("s", str("y")), count("c", 1, 0),
			writeMax("mx", crdt.EncodeInt(5)), writeMin("mn", crdt.EncodeInt(5))),
		mkOp(rB, 1, ts(110), 1, assign("r", str("b"))),
		mkOp(rB, 2, ts(120), 1, add("s", str("x")), add("s", str("z"))),
		mkOp(rC, 1, ts(130), 1, remove("s", str("x"), d1)),
		mkOp(rA, 2, ts(140), 1, count("c", 3, 1)),
		mkOp(rC, 2, ts(150), 1, count("c", 0, 2)),
		mkOp(rB, 3, ts(160), 1, writeMax("mx", crdt.EncodeInt(9))),
		mkOp(rB, 4, ts(170), 1, writeMin("mn", crdt.EncodeInt(1))),
		mkOp(rA, 3, ts(180), 1, writeMax("mx", crdt.EncodeInt(2)), writeMin("mn", crdt.EncodeInt(7))),
		mkOp(rA, 4, ts(190), 2),
		mkOp(rC, 3, ts(200), 1, add("s", str("w")), count("c", 5, 0)),
		mkOp(rB, 5, ts(210), 3, assign("r", str("c")), add("s", str("x")), remove("s", str("y"), d1), count("c", 1, 1)),
		mkOp(rA, 5, ts(220), 3, writeMax("mx", crdt.EncodeInt(1)), writeMin("mn", crdt.EncodeInt(1))),
	}
	var state *crdt.Record
	for i, op := range ops {
		mustValid(t, op)
		before := encodeOf(state)
		var clone *crdt.Record
		if state != nil {
			clone = state.Clone()
		}
		eff := materialize.Fold(state, op)
		if after := encodeOf(state); !bytes.Equal(after, before) {
			t.Fatalf("op %d: Fold modified prev:\nbefore %x\nafter  %x", i, before, after)
		}
		// The state from the untouched original is the same as from a deep copy.
		if got, want := eff.State.Encode(), materialize.Fold(clone, op).State.Encode(); !bytes.Equal(got, want) {
			t.Fatalf("op %d: Fold(prev) = %x, Fold(clone of prev) = %x", i, got, want)
		}
		// Folding every other op into the same prev leaves it intact too.
		for j, other := range ops {
			materialize.Fold(state, other)
			if after := encodeOf(state); !bytes.Equal(after, before) {
				t.Fatalf("op %d then op %d: Fold modified prev", i, j)
			}
		}
		state = eff.State
	}
}

// Generators of ops on a small space: three replicas, two field names,
// a few values, HLCs and causal lengths (mostly 1), so ops collide often:
// the merges that could write into a shared backing array are those of two
// components of one (name, kind), and of one element or counter origin.

var (
	genNames  = rapid.SampledFrom([]string{"a", "b"})
	genOrigin = rapid.SampledFrom([]crdt.ReplicaID{rA, rB, rC})
	genCL     = rapid.SampledFrom([]uint64{1, 1, 1, 1, 2, 3, 3, 4})
)

func genValue(t *rapid.T, label string) []byte {
	return crdt.EncodeInt(rapid.Int64Range(0, 2).Draw(t, label))
}

func genFieldOp(t *rapid.T, name string) crdt.FieldOp {
	typ := crdt.FieldOpType(rapid.IntRange(int(crdt.Assign), int(crdt.WriteMin)).Draw(t, "type"))
	fo := crdt.FieldOp{Name: name, Type: typ}
	switch typ {
	case crdt.Assign:
		switch rapid.IntRange(0, 5).Draw(t, "unset") {
		case 0: // unset
		case 1:
			fo.Value = []byte{0xc0} // unset, as the msgpack nil
		default:
			fo.Value = genValue(t, "value")
		}
		fo.Seen = ts(rapid.Int64Range(0, 6).Draw(t, "seen")) // ts(0) is 0: saw nothing
	case crdt.Add, crdt.WriteMax, crdt.WriteMin:
		fo.Value = genValue(t, "value")
	case crdt.Remove:
		fo.Value = genValue(t, "value")
		n := rapid.IntRange(0, 3).Draw(t, "ndots")
		for range n {
			fo.Dots = append(fo.Dots, crdt.Dot{Origin: genOrigin.Draw(t, "dot origin"), Seq: rapid.Uint64Range(1, 6).Draw(t, "dot seq")})
		}
	case crdt.Count:
		fo.P = rapid.Uint64Range(0, 5).Draw(t, "p")
		fo.N = rapid.Uint64Range(0, 5).Draw(t, "n")
	}
	return fo
}

func genOp(t *rapid.T) *crdt.Op {
	op := mkOp(
		genOrigin.Draw(t, "origin"),
		rapid.Uint64Range(1, 6).Draw(t, "seq"),
		ts(rapid.Int64Range(1, 6).Draw(t, "hlc")),
		genCL.Draw(t, "cl"),
	)
	if op.IsDelete() {
		return op
	}
	names := rapid.SliceOfNDistinct(genNames, 0, 2, rapid.ID[string]).Draw(t, "names")
	for _, name := range names {
		op.Fields = append(op.Fields, genFieldOp(t, name))
	}
	mustValid(t, op)
	return op
}

// refChange computes what Fold's Change should say by comparing every
// visible field of the two states.
func refChange(prev, next *crdt.Record) (materialize.ChangeKind, []string) {
	was, is := prev.Exists(), next.Exists()
	var kind materialize.ChangeKind
	switch {
	case !was && is:
		kind = materialize.Created
	case was && !is:
		kind = materialize.Deleted
	case !was && !is:
		return materialize.Unchanged, nil
	}
	vis := func(r *crdt.Record) map[string]crdt.FieldValue {
		m := map[string]crdt.FieldValue{}
		for _, f := range r.Visible() {
			m[f.Name] = f
		}
		return m
	}
	a, b := vis(prev), vis(next)
	var fields []string
	for name, fa := range a {
		if fb, ok := b[name]; !ok || fa.Kind != fb.Kind || !bytes.Equal(fa.Value, fb.Value) {
			fields = append(fields, name)
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			fields = append(fields, name)
		}
	}
	slices.Sort(fields)
	if kind == materialize.Unchanged && len(fields) > 0 {
		kind = materialize.Updated
	}
	return kind, fields
}

func TestFoldProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var state *crdt.Record
		// Every state so far and its encoding: each op is also folded into
		// the earlier states, to exercise more merges of shared slices.
		var history []*crdt.Record
		var encs [][]byte
		steps := rapid.IntRange(5, 30).Draw(t, "steps")
		for i := range steps {
			op := genOp(t)
			enc := encodeOf(state)
			eff := materialize.Fold(state, op)

			// Fold never modifies prev.
			if got := encodeOf(state); !bytes.Equal(got, enc) {
				t.Fatalf("step %d: Fold modified prev:\nbefore %x\nafter  %x", i, enc, got)
			}
			for j, h := range history {
				materialize.Fold(h, op)
				if got := encodeOf(h); !bytes.Equal(got, encs[j]) {
					t.Fatalf("step %d: Fold modified the state of step %d:\nbefore %x\nafter  %x", i, j, encs[j], got)
				}
			}
			history, encs = append(history, state), append(encs, enc)
			// The state is prev with op applied.
			want, prev := &crdt.Record{}, &crdt.Record{}
			if state != nil {
				want, prev = state.Clone(), state
			}
			want.Apply(op)
			if got := eff.State.Encode(); !bytes.Equal(got, want.Encode()) {
				t.Fatalf("step %d: State = %x, want %x", i, got, want.Encode())
			}
			// The change is the difference of what readers see.
			kind, fields := refChange(prev, eff.State)
			if eff.Change.Kind != kind || !slices.Equal(eff.Change.Fields, fields) {
				t.Fatalf("step %d: Change = %v %q, want %v %q", i, eff.Change.Kind, eff.Change.Fields, kind, fields)
			}
			// Conflicts are pairs of different values at one CL, the
			// winner the greater write and the one the state now holds.
			for _, c := range eff.Conflicts {
				if c.Winner.Version.CL != c.Loser.Version.CL || c.Winner.Version.CL != op.CL {
					t.Fatalf("step %d: conflict across CLs: %+v", i, c)
				}
				if c.Winner.Version.Compare(c.Loser.Version) <= 0 {
					t.Fatalf("step %d: winner %v not after loser %v", i, c.Winner.Version, c.Loser.Version)
				}
				if bytes.Equal(c.Winner.Value, c.Loser.Value) {
					t.Fatalf("step %d: conflict of equal values: %+v", i, c)
				}
				if c.Winner.Version != op.Version() && c.Loser.Version != op.Version() {
					t.Fatalf("step %d: conflict %+v does not involve op %v", i, c, op.Version())
				}
				var reg *crdt.Field
				for j := range eff.State.Fields {
					if f := &eff.State.Fields[j]; f.Name == c.Field && f.Kind == crdt.KindRegister {
						reg = f
					}
				}
				if reg == nil || reg.At != c.Winner.Version {
					t.Fatalf("step %d: conflict winner %v is not the register's write (%+v)", i, c.Winner.Version, reg)
				}
				// A conflict survives its encoding.
				dec, err := materialize.DecodeConflict(materialize.AppendConflict(nil, &c))
				if err != nil {
					t.Fatalf("step %d: DecodeConflict: %v", i, err)
				}
				checkSameConflict(t, dec, c)
			}
			// Folding the op again changes nothing.
			again := materialize.Fold(eff.State, op)
			if again.Change.Kind != materialize.Unchanged || !bytes.Equal(again.State.Encode(), eff.State.Encode()) {
				t.Fatalf("step %d: second Fold: Change %v, state changed: %v", i, again.Change.Kind, !bytes.Equal(again.State.Encode(), eff.State.Encode()))
			}
			state = eff.State
		}
	})
}

func checkSameConflict(t fataler, got, want materialize.Conflict) {
	t.Helper()
	if got.Namespace != want.Namespace || got.Collection != want.Collection || got.Key != want.Key || got.Field != want.Field ||
		got.Winner.Version != want.Winner.Version || !bytes.Equal(got.Winner.Value, want.Winner.Value) ||
		got.Loser.Version != want.Loser.Version || !bytes.Equal(got.Loser.Value, want.Loser.Value) {
		t.Fatalf("conflict = %s, want %s", showConflict(got), showConflict(want))
	}
}

func showConflict(c materialize.Conflict) string {
	return fmt.Sprintf("{%s/%s/%s.%s winner %v %x loser %v %x}", c.Namespace, c.Collection, c.Key, c.Field,
		c.Winner.Version, c.Winner.Value, c.Loser.Version, c.Loser.Value)
}

// TestFoldText: a text edit is a change of its field, reported with the
// new visible text; an edit that arrives twice, or an insert waiting for
// an origin that has not arrived, changes nothing visible.
func TestFoldText(t *testing.T) {
	prev := &crdt.Record{}
	splice := func(r *crdt.Record, self crdt.ReplicaID, seq uint64, intent crdt.Intent, pos, del int, ins string) *crdt.Op {
		c := crdt.Change{Name: "note", Type: crdt.TextSplice, Pos: pos, Del: del}
		if ins != "" {
			c.Value = str(ins)
		}
		cl, fields, err := r.Prepare(self, intent, []crdt.Change{c})
		if err != nil {
			t.Fatal(err)
		}
		return mkOp(self, seq, ts(int64(seq)), cl, fields...)
	}
	create := splice(prev, rA, 1, crdt.IntentPut, 0, 0, "hello")
	eff := materialize.Fold(prev, create)
	if eff.Change.Kind != materialize.Created {
		t.Fatalf("create: %v", eff.Change.Kind)
	}
	edit := splice(eff.State, rA, 2, crdt.IntentUpdate, 5, 0, " world")
	eff2 := materialize.Fold(eff.State, edit)
	if eff2.Change.Kind != materialize.Updated || !slices.Equal(eff2.Change.Fields, []string{"note"}) {
		t.Fatalf("edit: %v %v", eff2.Change.Kind, eff2.Change.Fields)
	}
	if got, _ := eff2.State.Text("note"); got != "hello world" {
		t.Fatalf("text %q", got)
	}
	if again := materialize.Fold(eff2.State, edit); again.Change.Kind != materialize.Unchanged {
		t.Fatalf("the same edit again: %v", again.Change.Kind)
	}
	// rB's insert after an element only rC has: it waits.
	waiting := mkOp(rB, 1, ts(9), create.CL, crdt.FieldOp{Name: "note", Type: crdt.TextInsert, Left: crdt.ElemID{Replica: [16]byte(rC), Clock: 0}, Value: str("!")})
	if w := materialize.Fold(eff2.State, waiting); w.Change.Kind != materialize.Unchanged {
		t.Fatalf("an insert waiting for its origin: %v", w.Change.Kind)
	}
	// Fold left its input as it was.
	if got, _ := eff.State.Text("note"); got != "hello" {
		t.Fatalf("Fold changed its input: %q", got)
	}
}
