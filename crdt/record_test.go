package crdt

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
)

// fieldWant is a field's expected visible value; a nil value means none.
type fieldWant struct {
	name  string
	kind  Kind
	value []byte
}

// recordCase is a set of ops and what the record they produce shows.
type recordCase struct {
	name    string
	ops     []*Op
	cl      uint64
	visible []fieldWant // every visible field, sorted by name
	absent  []string    // fields that must not be visible
}

// runRecordCases applies each case's ops in order, in reverse and merged
// one by one from deltas, and checks the record each time.
func runRecordCases(t *testing.T, cases []recordCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, op := range tc.ops {
				mustValid(t, op)
			}
			r := apply(tc.ops...)
			checkRecord(t, r, tc)
			rev := slices.Clone(tc.ops)
			slices.Reverse(rev)
			checkSameBytes(t, "reversed", apply(rev...), r)
			deltas := make([]*Record, len(tc.ops))
			for i, op := range tc.ops {
				deltas[i] = Delta(op)
			}
			checkSameBytes(t, "merged deltas", merged(deltas...), r)
		})
	}
}

func checkRecord(t *testing.T, r *Record, tc recordCase) {
	t.Helper()
	if r.CL != tc.cl {
		t.Errorf("CL = %d, want %d", r.CL, tc.cl)
	}
	if got, want := r.Exists(), tc.cl%2 == 1; got != want {
		t.Errorf("Exists() = %v, want %v", got, want)
	}
	var want []FieldValue
	for _, f := range tc.visible {
		want = append(want, FieldValue{Name: f.name, Kind: f.kind, Value: f.value})
		checkGet(t, r, f.name, f.kind, f.value)
	}
	if got := r.Visible(); !reflect.DeepEqual(got, want) {
		t.Errorf("Visible() =\n%v\nwant\n%v", got, want)
	}
	for _, name := range tc.absent {
		checkGet(t, r, name, 0, nil)
	}
}

func TestRecordExistence(t *testing.T) {
	create := mkOp(rA, 1, ts(1), 1, assign("f", vInt(1)))
	del := mkOp(rB, 1, ts(2), 2)
	// A updates concurrently with B's delete, with a later HLC.
	concurrentUpdate := mkOp(rA, 2, ts(3), 1, assign("f", vInt(2)), assign("g", vInt(3)))
	recreate := mkOp(rB, 2, ts(4), 3, assign("h", vInt(4)))
	runRecordCases(t, []recordCase{
		{name: "untouched", cl: 0, absent: []string{"f"}},
		{name: "create", ops: []*Op{create}, cl: 1, visible: []fieldWant{{"f", KindRegister, vInt(1)}}},
		{name: "create without fields", ops: []*Op{mkOp(rA, 1, ts(1), 1)}, cl: 1},
		{
			name: "update",
			ops:  []*Op{create, mkOp(rA, 2, ts(2), 1, assignSeen("f", vInt(9), ts(1)))},
			cl:   1, visible: []fieldWant{{"f", KindRegister, vInt(9)}},
		},
		{name: "delete", ops: []*Op{create, del}, cl: 2, absent: []string{"f"}},
		{name: "delete of an unseen record", ops: []*Op{del}, cl: 2, absent: []string{"f"}},
		{
			name: "update concurrent with delete loses",
			ops:  []*Op{create, del, concurrentUpdate},
			cl:   2, absent: []string{"f", "g"},
		},
		{
			name: "re-created record starts empty",
			ops:  []*Op{create, del, concurrentUpdate, recreate},
			cl:   3, visible: []fieldWant{{"h", KindRegister, vInt(4)}}, absent: []string{"f", "g"},
		},
		{
			name: "concurrent creates agree",
			ops: []*Op{
				mkOp(rA, 1, ts(10), 1, assign("x", vInt(1)), assign("t", vStr("A"))),
				mkOp(rB, 1, ts(11), 1, assign("y", vInt(2)), assign("t", vStr("B"))),
			},
			cl: 1,
			visible: []fieldWant{
				{"t", KindRegister, vStr("B")},
				{"x", KindRegister, vInt(1)},
				{"y", KindRegister, vInt(2)},
			},
		},
		{
			name: "concurrent deletes agree",
			ops:  []*Op{create, del, mkOp(rC, 1, ts(5), 2)},
			cl:   2, absent: []string{"f"},
		},
		{
			name: "concurrent re-creates agree",
			ops: []*Op{
				create, del,
				mkOp(rA, 2, ts(5), 3, assign("a", vInt(1))),
				mkOp(rC, 1, ts(6), 3, assign("c", vInt(3))),
			},
			cl: 3, visible: []fieldWant{{"a", KindRegister, vInt(1)}, {"c", KindRegister, vInt(3)}}, absent: []string{"f"},
		},
		{
			name: "a higher CL wins over a later HLC",
			ops: []*Op{
				mkOp(rA, 1, ts(1), 3, assign("f", vInt(3))),
				mkOp(rB, 1, ts(100), 1, assign("f", vInt(1)), assign("g", vInt(1))),
			},
			cl: 3, visible: []fieldWant{{"f", KindRegister, vInt(3)}}, absent: []string{"g"},
		},
		{
			name: "delete then re-create then delete",
			ops:  []*Op{create, del, recreate, mkOp(rA, 3, ts(9), 4)},
			cl:   4, absent: []string{"f", "h"},
		},
	})
}

func TestRecordStamps(t *testing.T) {
	a := mkOp(rA, 1, ts(10), 1)
	b := mkOp(rB, 1, ts(5), 1)
	c := mkOp(rC, 1, ts(20), 1)
	del := mkOp(rA, 2, ts(15), 2)
	tests := []struct {
		name             string
		ops              []*Op
		created, updated Stamp
	}{
		{"one", []*Op{a}, a.Stamp(), a.Stamp()},
		{"least and greatest", []*Op{a, b, c}, b.Stamp(), c.Stamp()},
		{"any order", []*Op{c, a, b}, b.Stamp(), c.Stamp()},
		{"only the current CL", []*Op{a, b, del}, del.Stamp(), del.Stamp()},
		{"older CL ignored", []*Op{del, c}, del.Stamp(), del.Stamp()},
	}
	for _, tt := range tests {
		r := apply(tt.ops...)
		if r.Created != tt.created || r.Updated != tt.updated {
			t.Errorf("%s: Created, Updated = %v, %v; want %v, %v", tt.name, r.Created, r.Updated, tt.created, tt.updated)
		}
	}
}

func TestRecordRegister(t *testing.T) {
	runRecordCases(t, []recordCase{
		{
			name: "later HLC wins",
			ops:  []*Op{mkOp(rB, 1, ts(1), 1, assign("f", vInt(1))), mkOp(rA, 1, ts(2), 1, assign("f", vInt(2)))},
			cl:   1, visible: []fieldWant{{"f", KindRegister, vInt(2)}},
		},
		{
			name: "equal HLCs: the greater replica id wins",
			ops:  []*Op{mkOp(rB, 1, ts(5), 1, assign("f", vStr("B"))), mkOp(rA, 1, ts(5), 1, assign("f", vStr("A")))},
			cl:   1, visible: []fieldWant{{"f", KindRegister, vStr("B")}},
		},
		{
			name: "equal HLCs, other order",
			ops:  []*Op{mkOp(rA, 1, ts(5), 1, assign("f", vStr("A"))), mkOp(rC, 1, ts(5), 1, assign("f", vStr("C"))), mkOp(rB, 1, ts(5), 1, assign("f", vStr("B")))},
			cl:   1, visible: []fieldWant{{"f", KindRegister, vStr("C")}},
		},
		{
			name: "unset",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, assign("f", vInt(1))), mkOp(rA, 2, ts(2), 1, assign("f", nil))},
			cl:   1, absent: []string{"f"},
		},
		{
			name: "msgpack nil unsets",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, assign("f", vInt(1))), mkOp(rA, 2, ts(2), 1, assign("f", vNil))},
			cl:   1, absent: []string{"f"},
		},
		{
			name: "set after unset",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, assign("f", nil)), mkOp(rA, 2, ts(2), 1, assign("f", vTrue))},
			cl:   1, visible: []fieldWant{{"f", KindRegister, vTrue}},
		},
		{
			name: "an older unset loses",
			ops:  []*Op{mkOp(rA, 1, ts(3), 1, assign("f", vInt(1))), mkOp(rB, 1, ts(2), 1, assign("f", nil))},
			cl:   1, visible: []fieldWant{{"f", KindRegister, vInt(1)}},
		},
	})
	// The winner keeps the HLC it replaced.
	r := apply(mkOp(rA, 1, ts(1), 1, assign("f", vInt(1))), mkOp(rB, 1, ts(2), 1, assignSeen("f", vInt(2), ts(1))))
	f := r.component("f", KindRegister)
	if f == nil || f.Seen != ts(1) || f.At != (Version{CL: 1, Stamp: Stamp{ts(2), rB}}) {
		t.Errorf("register = %+v, want Seen %v At 1/%v@%v", f, ts(1), ts(2), rB)
	}
}

func TestRecordSet(t *testing.T) {
	a1 := Dot{rA, 1}
	addA := mkOp(rA, 1, ts(1), 1, add("s", vStr("x")))
	removeA := mkOp(rB, 2, ts(3), 1, remove("s", vStr("x"), a1)) // B observed A's add
	addC := mkOp(rC, 1, ts(2), 1, add("s", vStr("x")))           // concurrent with the remove
	runRecordCases(t, []recordCase{
		{
			name: "add",
			ops:  []*Op{addA},
			cl:   1, visible: []fieldWant{{"s", KindSet, vArr(vStr("x"))}},
		},
		{
			name: "remove of an observed add removes it",
			ops:  []*Op{addA, removeA},
			cl:   1, visible: []fieldWant{{"s", KindSet, vArr()}},
		},
		{
			name: "remove before its add (tombstone)",
			ops:  []*Op{removeA, addA},
			cl:   1, visible: []fieldWant{{"s", KindSet, vArr()}},
		},
		{
			name: "add concurrent with remove survives",
			ops:  []*Op{addA, removeA, addC},
			cl:   1, visible: []fieldWant{{"s", KindSet, vArr(vStr("x"))}},
		},
		{
			name: "add concurrent with remove survives, any order",
			ops:  []*Op{addC, removeA, addA},
			cl:   1, visible: []fieldWant{{"s", KindSet, vArr(vStr("x"))}},
		},
		{
			name: "removing both adds",
			ops:  []*Op{addA, addC, mkOp(rB, 2, ts(4), 1, remove("s", vStr("x"), a1, Dot{rC, 1}))},
			cl:   1, visible: []fieldWant{{"s", KindSet, vArr()}},
		},
		{
			name: "a remove affects only its element",
			ops:  []*Op{addA, mkOp(rB, 1, ts(2), 1, add("s", vStr("y"))), mkOp(rC, 1, ts(3), 1, remove("s", vStr("y"), a1))},
			cl:   1, visible: []fieldWant{{"s", KindSet, vArr(vStr("x"), vStr("y"))}},
		},
		{
			name: "elements in value order",
			ops: []*Op{
				mkOp(rA, 1, ts(1), 1, add("s", vStr("b")), add("s", vInt(300)), add("s", vStr("a"))),
				mkOp(rB, 1, ts(2), 1, add("s", vInt(1)), add("s", vNil)),
			},
			cl: 1, visible: []fieldWant{{"s", KindSet, vArr(vNil, vInt(1), vInt(300), vStr("a"), vStr("b"))}},
		},
		{
			name: "adds at an old CL are invisible",
			ops: []*Op{
				addA, mkOp(rB, 1, ts(2), 2),
				mkOp(rB, 2, ts(3), 3, add("s", vStr("y"))),
			},
			cl: 3, visible: []fieldWant{{"s", KindSet, vArr(vStr("y"))}},
		},
		{
			name: "re-add after re-create",
			ops: []*Op{
				addA, mkOp(rB, 1, ts(2), 2),
				mkOp(rB, 2, ts(3), 3, add("s", vStr("x"))),
			},
			cl: 3, visible: []fieldWant{{"s", KindSet, vArr(vStr("x"))}},
		},
		{
			name: "add and remove in one op",
			ops:  []*Op{addA, mkOp(rB, 1, ts(2), 1, remove("s", vStr("x"), a1), add("s", vStr("z")))},
			cl:   1, visible: []fieldWant{{"s", KindSet, vArr(vStr("z"))}},
		},
	})
	r := apply(addA, addC)
	if got, want := r.SetElems("s"), [][]byte{vStr("x")}; !reflect.DeepEqual(got, want) {
		t.Errorf("SetElems = %x, want %x", got, want)
	}
	if e := r.component("s", KindSet).Elems[0]; len(e.Adds) != 2 {
		t.Errorf("element x has adds %v, want two", e.Adds)
	}
	if got := r.SetElems("nope"); got != nil {
		t.Errorf("SetElems of a missing field = %x", got)
	}
	if got := apply(mkOp(rA, 1, ts(1), 1, assign("s", vInt(1)))).SetElems("s"); got != nil {
		t.Errorf("SetElems of a register = %x", got)
	}
}

func TestRecordCounter(t *testing.T) {
	runRecordCases(t, []recordCase{
		{
			name: "two origins sum",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, count("c", 3, 0)), mkOp(rB, 1, ts(2), 1, count("c", 5, 0))},
			cl:   1, visible: []fieldWant{{"c", KindCounter, vInt(8)}},
		},
		{
			name: "decrements",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, count("c", 3, 0)), mkOp(rB, 1, ts(2), 1, count("c", 0, 5))},
			cl:   1, visible: []fieldWant{{"c", KindCounter, vInt(-2)}},
		},
		{
			name: "an origin's totals grow",
			ops: []*Op{
				mkOp(rA, 1, ts(1), 1, count("c", 3, 0)),
				mkOp(rA, 2, ts(2), 1, count("c", 4, 1)),
				mkOp(rB, 1, ts(3), 1, count("c", 5, 2)),
			},
			cl: 1, visible: []fieldWant{{"c", KindCounter, vInt(6)}},
		},
		{
			name: "stale totals arriving late change nothing",
			ops: []*Op{
				mkOp(rA, 2, ts(2), 1, count("c", 4, 1)),
				mkOp(rA, 1, ts(1), 1, count("c", 3, 0)),
			},
			cl: 1, visible: []fieldWant{{"c", KindCounter, vInt(3)}},
		},
		{
			name: "re-create resets the counter",
			ops: []*Op{
				mkOp(rA, 1, ts(1), 1, count("c", 10, 0)),
				mkOp(rB, 1, ts(2), 1, count("c", 7, 0)),
				mkOp(rB, 2, ts(3), 2),
				mkOp(rA, 2, ts(4), 3, count("c", 1, 0)),
			},
			cl: 3, visible: []fieldWant{{"c", KindCounter, vInt(1)}},
		},
		{
			name: "deleted counter is invisible",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, count("c", 10, 0)), mkOp(rB, 2, ts(3), 2)},
			cl:   2, absent: []string{"c"},
		},
		{
			name: "totals wrap identically",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, count("c", math.MaxUint64, 0))},
			cl:   1, visible: []fieldWant{{"c", KindCounter, vInt(-1)}},
		},
	})
}

func TestRecordMaxMin(t *testing.T) {
	runRecordCases(t, []recordCase{
		{
			name: "max keeps the greatest",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, writeMax("m", vInt(3))), mkOp(rB, 1, ts(2), 1, writeMax("m", vInt(9))), mkOp(rC, 1, ts(3), 1, writeMax("m", vInt(5)))},
			cl:   1, visible: []fieldWant{{"m", KindMax, vInt(9)}},
		},
		{
			name: "min keeps the least",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, writeMin("m", vInt(3))), mkOp(rB, 1, ts(2), 1, writeMin("m", vInt(9))), mkOp(rC, 1, ts(3), 1, writeMin("m", vInt(5)))},
			cl:   1, visible: []fieldWant{{"m", KindMin, vInt(3)}},
		},
		{
			name: "max across int and float",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, writeMax("m", vInt(2))), mkOp(rB, 1, ts(2), 1, writeMax("m", vFloat(2.5))), mkOp(rC, 1, ts(3), 1, writeMax("m", vInt(1)))},
			cl:   1, visible: []fieldWant{{"m", KindMax, vFloat(2.5)}},
		},
		{
			name: "min across int and float",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, writeMin("m", vInt(2))), mkOp(rB, 1, ts(2), 1, writeMin("m", vFloat(1.5))), mkOp(rC, 1, ts(3), 1, writeMin("m", vInt(-1)))},
			cl:   1, visible: []fieldWant{{"m", KindMin, vInt(-1)}},
		},
		{
			name: "max of 1 and 1.0 is decided by bytes",
			ops:  []*Op{mkOp(rA, 1, ts(2), 1, writeMax("m", vInt(1))), mkOp(rB, 1, ts(1), 1, writeMax("m", vFloat(1)))},
			cl:   1, visible: []fieldWant{{"m", KindMax, vFloat(1)}},
		},
		{
			name: "min of 1 and 1.0 is decided by bytes",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, writeMin("m", vFloat(1))), mkOp(rB, 1, ts(2), 1, writeMin("m", vInt(1)))},
			cl:   1, visible: []fieldWant{{"m", KindMin, vInt(1)}},
		},
		{
			name: "max beyond float precision",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, writeMax("m", vInt(1<<53+3))), mkOp(rB, 1, ts(2), 1, writeMax("m", vFloat(0x1p53+4)))},
			cl:   1, visible: []fieldWant{{"m", KindMax, vFloat(0x1p53 + 4)}},
		},
		{
			name: "min beyond float precision",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, writeMin("m", vInt(1<<53+3))), mkOp(rB, 1, ts(2), 1, writeMin("m", vFloat(0x1p53+4)))},
			cl:   1, visible: []fieldWant{{"m", KindMin, vInt(1<<53 + 3)}},
		},
		{
			name: "max: numbers below strings",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, writeMax("m", vStr("a"))), mkOp(rB, 1, ts(2), 1, writeMax("m", vInt(1000)))},
			cl:   1, visible: []fieldWant{{"m", KindMax, vStr("a")}},
		},
		{
			name: "max of nil is no value",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, writeMax("m", vNil))},
			cl:   1, absent: []string{"m"},
		},
		{
			name: "re-create restarts max",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, writeMax("m", vInt(100))), mkOp(rB, 1, ts(2), 2), mkOp(rA, 2, ts(3), 3, writeMax("m", vInt(5)))},
			cl:   3, visible: []fieldWant{{"m", KindMax, vInt(5)}},
		},
		{
			name: "re-create restarts min",
			ops:  []*Op{mkOp(rA, 2, ts(3), 3, writeMin("m", vInt(5))), mkOp(rA, 1, ts(1), 1, writeMin("m", vInt(-100))), mkOp(rB, 1, ts(2), 2)},
			cl:   3, visible: []fieldWant{{"m", KindMin, vInt(5)}},
		},
	})
}

func TestRecordKinds(t *testing.T) {
	runRecordCases(t, []recordCase{
		{
			name: "set written after register",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, assign("f", vInt(1))), mkOp(rB, 1, ts(2), 1, add("f", vInt(2)))},
			cl:   1, visible: []fieldWant{{"f", KindSet, vArr(vInt(2))}},
		},
		{
			name: "register written after set",
			ops:  []*Op{mkOp(rB, 1, ts(2), 1, assign("f", vInt(1))), mkOp(rA, 1, ts(1), 1, add("f", vInt(2)))},
			cl:   1, visible: []fieldWant{{"f", KindRegister, vInt(1)}},
		},
		{
			name: "max then counter then register",
			ops: []*Op{
				mkOp(rA, 1, ts(1), 1, writeMax("f", vInt(5))),
				mkOp(rA, 2, ts(2), 1, count("f", 2, 0)),
				mkOp(rB, 1, ts(3), 1, assign("f", vStr("r"))),
			},
			cl: 1, visible: []fieldWant{{"f", KindRegister, vStr("r")}},
		},
		{
			name: "equal HLCs: the greater replica's kind shows",
			ops:  []*Op{mkOp(rB, 1, ts(2), 1, count("f", 2, 0)), mkOp(rA, 1, ts(2), 1, writeMin("f", vInt(1)))},
			cl:   1, visible: []fieldWant{{"f", KindCounter, vInt(2)}},
		},
		{
			name: "a remove is a set write",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, assign("f", vInt(1))), mkOp(rB, 1, ts(2), 1, remove("f", vInt(1), Dot{rC, 1}))},
			cl:   1, visible: []fieldWant{{"f", KindSet, vArr()}},
		},
		{
			name: "an unset register still shadows the set",
			ops:  []*Op{mkOp(rA, 1, ts(1), 1, add("f", vInt(1))), mkOp(rB, 1, ts(2), 1, assign("f", nil))},
			cl:   1, absent: []string{"f"},
		},
		{
			name: "a later CL wins over a later HLC",
			ops:  []*Op{mkOp(rA, 1, ts(9), 1, add("f", vInt(1))), mkOp(rB, 1, ts(2), 2), mkOp(rB, 2, ts(3), 3, count("f", 1, 0))},
			cl:   3, visible: []fieldWant{{"f", KindCounter, vInt(1)}},
		},
	})
	r := apply(mkOp(rA, 1, ts(1), 1, assign("f", vInt(1))), mkOp(rB, 1, ts(2), 1, add("f", vInt(2)), writeMax("g", vInt(1))))
	if len(r.Fields) != 3 {
		t.Errorf("record has %d field components, want 3 (a register and a set for f, a max for g): %+v", len(r.Fields), r.Fields)
	}
}

func TestMergeIdentityAndArgument(t *testing.T) {
	for i, r := range sampleRecords() {
		enc := r.Encode()
		c := r.Clone()
		c.Merge(&Record{})
		checkSameBytes(t, "merge with the zero record", c, r)
		z := &Record{}
		z.Merge(r)
		checkSameBytes(t, "zero merged with r", z, r)
		other := sampleRecords()[(i+1)%len(sampleRecords())]
		c.Merge(other)
		if !bytes.Equal(r.Encode(), enc) {
			t.Errorf("record %d changed after merging its clone", i)
		}
		oenc := other.Encode()
		d := other.Clone()
		d.Merge(r)
		if !bytes.Equal(r.Encode(), enc) || !bytes.Equal(other.Encode(), oenc) {
			t.Errorf("record %d: Merge modified its argument", i)
		}
	}
}

func TestGetVisibleAbsentRecord(t *testing.T) {
	for _, r := range []*Record{{}, apply(mkOp(rA, 1, ts(1), 1, assign("f", vInt(1))), mkOp(rA, 2, ts(2), 2))} {
		if v := r.Visible(); v != nil {
			t.Errorf("Visible() of a record that does not exist = %v", v)
		}
		if v, ok := r.Get("f"); ok {
			t.Errorf("Get of a record that does not exist = %v", v)
		}
	}
}

func TestPrepare(t *testing.T) {
	const self = 0x0a
	created := apply(mkOp(rA, 1, ts(1), 1,
		assign("title", vStr("a")),
		add("tags", vStr("x")),
		count("n", 5, 1),
	), mkOp(rB, 1, ts(2), 1,
		add("tags", vStr("x")),
		add("tags", vStr("y")),
		count("n", 7, 0),
	))
	deleted := created.Clone()
	deleted.Apply(mkOp(rB, 2, ts(3), 2))
	tests := []struct {
		name       string
		r          *Record
		intent     Intent
		changes    []Change
		wantCL     uint64
		wantFields []FieldOp
		wantErr    error
	}{
		{"update absent", &Record{}, IntentUpdate, []Change{{Name: "f", Type: Set, Value: vInt(1)}}, 0, nil, ErrNotFound},
		{"delete absent", &Record{}, IntentDelete, nil, 0, nil, ErrNotFound},
		{"update deleted", deleted, IntentUpdate, []Change{{Name: "f", Type: Set, Value: vInt(1)}}, 0, nil, ErrNotFound},
		{"delete deleted", deleted, IntentDelete, nil, 0, nil, ErrNotFound},
		{"put absent creates", &Record{}, IntentPut, []Change{{Name: "f", Type: Set, Value: vInt(1)}}, 1, []FieldOp{assign("f", vInt(1))}, nil},
		{
			"put deleted re-creates empty", deleted, IntentPut,
			[]Change{{Name: "title", Type: Set, Value: vStr("b")}, {Name: "tags", Type: RemoveElem, Value: vStr("x")}, {Name: "n", Type: Increment, Delta: 2}},
			3, []FieldOp{assign("title", vStr("b")), count("n", 2, 0)}, nil,
		},
		{"put existing updates", created, IntentPut, []Change{{Name: "z", Type: Set, Value: vInt(1)}}, 1, []FieldOp{assign("z", vInt(1))}, nil},
		{"delete existing", created, IntentDelete, []Change{{Name: "ignored", Type: Set, Value: vInt(1)}}, 2, nil, nil},
		{
			"assign records the replaced HLC", created, IntentUpdate,
			[]Change{{Name: "title", Type: Set, Value: vStr("b")}, {Name: "new", Type: Set, Value: vStr("c")}},
			1, []FieldOp{assignSeen("title", vStr("b"), ts(1)), assign("new", vStr("c"))}, nil,
		},
		{
			"assign over another kind records its HLC", created, IntentUpdate,
			[]Change{{Name: "tags", Type: Set, Value: vInt(1)}},
			1, []FieldOp{assignSeen("tags", vInt(1), ts(2))}, nil,
		},
		{
			"unset", created, IntentUpdate,
			[]Change{{Name: "title", Type: Unset}, {Name: "t2", Type: Set, Value: vNil}, {Name: "t3", Type: Unset, Value: vInt(1)}},
			1, []FieldOp{assignSeen("title", nil, ts(1)), assign("t2", nil), assign("t3", nil)}, nil,
		},
		{
			"remove lists the observed adds", created, IntentUpdate,
			[]Change{{Name: "tags", Type: RemoveElem, Value: vStr("x")}, {Name: "tags", Type: RemoveElem, Value: vStr("y")}},
			1, []FieldOp{remove("tags", vStr("x"), Dot{rA, 1}, Dot{rB, 1}), remove("tags", vStr("y"), Dot{rB, 1})}, nil,
		},
		{
			"remove of an absent element writes nothing", created, IntentUpdate,
			[]Change{{Name: "tags", Type: RemoveElem, Value: vStr("q")}, {Name: "nope", Type: RemoveElem, Value: vStr("x")}},
			1, []FieldOp{}, nil,
		},
		{
			"add", created, IntentUpdate,
			[]Change{{Name: "tags", Type: AddElem, Value: vStr("x")}},
			1, []FieldOp{add("tags", vStr("x"))}, nil,
		},
		{
			"increment carries self's totals", created, IntentUpdate,
			[]Change{{Name: "n", Type: Increment, Delta: 3}},
			1, []FieldOp{count("n", 8, 1)}, nil,
		},
		{
			"decrement", created, IntentUpdate,
			[]Change{{Name: "n", Type: Increment, Delta: -4}},
			1, []FieldOp{count("n", 5, 5)}, nil,
		},
		{
			"zero increment writes nothing", created, IntentUpdate,
			[]Change{{Name: "n", Type: Increment, Delta: 0}},
			1, []FieldOp{}, nil,
		},
		{
			"increment of a new counter", created, IntentUpdate,
			[]Change{{Name: "m", Type: Increment, Delta: -1}},
			1, []FieldOp{count("m", 0, 1)}, nil,
		},
		{
			"decrement by MinInt64", &Record{}, IntentPut,
			[]Change{{Name: "m", Type: Increment, Delta: math.MinInt64}},
			1, []FieldOp{count("m", 0, 1<<63)}, nil,
		},
		{
			"offers", created, IntentUpdate,
			[]Change{{Name: "hi", Type: OfferMax, Value: vInt(1)}, {Name: "lo", Type: OfferMin, Value: vInt(2)}},
			1, []FieldOp{writeMax("hi", vInt(1)), writeMin("lo", vInt(2))}, nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.r.Encode()
			self := rid(self)
			cl, fields, err := tt.r.Prepare(self, tt.intent, tt.changes)
			if !bytes.Equal(tt.r.Encode(), before) {
				t.Errorf("Prepare modified the record")
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Prepare = %d, %v, %v; want error %v", cl, fields, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if cl != tt.wantCL {
				t.Errorf("cl = %d, want %d", cl, tt.wantCL)
			}
			if len(fields) != 0 || len(tt.wantFields) != 0 {
				if !reflect.DeepEqual(fields, tt.wantFields) {
					t.Errorf("fields =\n%+v\nwant\n%+v", fields, tt.wantFields)
				}
			}
			// The prepared op is valid, and applying it does what was meant.
			op := mkOp(self, 9, ts(100), cl, fields...)
			mustValid(t, op)
		})
	}
}

func TestPrepareErrors(t *testing.T) {
	r := apply(mkOp(rA, 1, ts(1), 1, count("n", math.MaxUint64-1, math.MaxUint64)))
	if _, _, err := r.Prepare(rA, IntentUpdate, []Change{{Name: "n", Type: Increment, Delta: 2}}); !errors.Is(err, ErrCounterOverflow) {
		t.Errorf("increment past MaxUint64 = %v, want ErrCounterOverflow", err)
	}
	if _, fields, err := r.Prepare(rA, IntentUpdate, []Change{{Name: "n", Type: Increment, Delta: 1}}); err != nil || fields[0].P != math.MaxUint64 {
		t.Errorf("increment to MaxUint64 = %+v, %v", fields, err)
	}
	if _, _, err := r.Prepare(rA, IntentUpdate, []Change{{Name: "n", Type: Increment, Delta: -1}}); !errors.Is(err, ErrCounterOverflow) {
		t.Errorf("decrement past MaxUint64 = %v, want ErrCounterOverflow", err)
	}
	// Another origin's totals are its own.
	if _, fields, err := r.Prepare(rB, IntentUpdate, []Change{{Name: "n", Type: Increment, Delta: -1}}); err != nil || !reflect.DeepEqual(fields, []FieldOp{count("n", 0, 1)}) {
		t.Errorf("decrement by another origin = %+v, %v", fields, err)
	}
	if _, _, err := r.Prepare(rA, Intent(0), nil); err == nil {
		t.Errorf("unknown intent accepted")
	}
	if _, _, err := r.Prepare(rA, Intent(9), nil); err == nil {
		t.Errorf("unknown intent accepted")
	}
	if _, _, err := r.Prepare(rA, IntentUpdate, []Change{{Name: "f", Type: ChangeType(0)}}); err == nil {
		t.Errorf("unknown change type accepted")
	}
	if _, _, err := r.Prepare(rA, IntentUpdate, []Change{{Name: "f", Type: ChangeType(99)}}); err == nil {
		t.Errorf("unknown change type accepted")
	}
}

// TestPrepareApply writes through Prepare on two replicas and checks what
// the merged record shows.
func TestPrepareApply(t *testing.T) {
	type replica struct {
		id  ReplicaID
		seq uint64
		r   *Record
	}
	var now int64
	write := func(t *testing.T, p *replica, intent Intent, changes ...Change) *Op {
		t.Helper()
		cl, fields, err := p.r.Prepare(p.id, intent, changes)
		if err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		p.seq++
		now++
		op := mkOp(p.id, p.seq, hlc.New(now, 0), cl, fields...)
		mustValid(t, op)
		p.r.Apply(op)
		return op
	}
	a := &replica{id: rA, r: &Record{}}
	b := &replica{id: rB, r: &Record{}}
	sync := func(ops ...*Op) {
		for _, op := range ops {
			a.r.Apply(op)
			b.r.Apply(op)
		}
	}
	sync(write(t, a, IntentPut, Change{Name: "tags", Type: AddElem, Value: vStr("x")}, Change{Name: "n", Type: Increment, Delta: 2}))
	// Concurrently: A removes x, B adds x again and increments.
	opA := write(t, a, IntentUpdate, Change{Name: "tags", Type: RemoveElem, Value: vStr("x")}, Change{Name: "n", Type: Increment, Delta: 1})
	opB := write(t, b, IntentUpdate, Change{Name: "tags", Type: AddElem, Value: vStr("x")}, Change{Name: "n", Type: Increment, Delta: 10})
	sync(opA, opB)
	checkSameBytes(t, "replicas", a.r, b.r)
	checkGet(t, a.r, "tags", KindSet, vArr(vStr("x")))
	checkGet(t, a.r, "n", KindCounter, vInt(13))
	// A removes what it now observes: x is gone.
	sync(write(t, a, IntentUpdate, Change{Name: "tags", Type: RemoveElem, Value: vStr("x")}))
	checkGet(t, b.r, "tags", KindSet, vArr())
	// B deletes, A concurrently updates: the delete wins. A re-creates.
	opB = write(t, b, IntentDelete)
	opA = write(t, a, IntentUpdate, Change{Name: "n", Type: Increment, Delta: 100})
	sync(opB, opA)
	if a.r.Exists() {
		t.Fatalf("record exists after a delete")
	}
	sync(write(t, a, IntentPut, Change{Name: "n", Type: Increment, Delta: 1}))
	checkSameBytes(t, "replicas", a.r, b.r)
	checkGet(t, b.r, "n", KindCounter, vInt(1))
	checkGet(t, b.r, "tags", 0, nil)
	if got, want := b.r.CL, uint64(3); got != want {
		t.Errorf("CL = %d, want %d", got, want)
	}
}

func TestEncodeHelpersAreMsgpack(t *testing.T) {
	if !bytes.Equal(EncodeInt(-5), mp.AppendInt(nil, -5)) || !bytes.Equal(EncodeString("x"), mp.AppendString(nil, "x")) {
		t.Errorf("EncodeInt/EncodeString differ from mp")
	}
}

// TestPrepareFrom writes from a base the writer read earlier: what it
// observed comes from the base, its causal length and counter totals from
// the record as it is now.
func TestPrepareFrom(t *testing.T) {
	const self = 0x0a
	// base: what A read. Since then B renamed, added x again and counted.
	base := apply(mkOp(rA, 1, ts(1), 1,
		assign("title", vStr("a")),
		add("tags", vStr("x")),
		count("n", 5, 0),
	))
	now := base.Clone()
	now.Apply(mkOp(rB, 1, ts(2), 1,
		assignSeen("title", vStr("b"), ts(1)),
		add("tags", vStr("x")),
		add("tags", vStr("y")),
		count("n", 7, 0),
	))
	now.Apply(mkOp(rA, 2, ts(3), 1, count("n", 6, 0)))
	deleted := now.Clone()
	deleted.Apply(mkOp(rB, 2, ts(4), 2))
	recreated := deleted.Clone()
	recreated.Apply(mkOp(rB, 3, ts(5), 3, assign("title", vStr("c")), add("tags", vStr("x"))))
	tests := []struct {
		name       string
		r, base    *Record
		intent     Intent
		changes    []Change
		wantCL     uint64
		wantFields []FieldOp
	}{
		{
			"assign records the HLC the writer saw", now, base, IntentUpdate,
			[]Change{{Name: "title", Type: Set, Value: vStr("z")}},
			1, []FieldOp{assignSeen("title", vStr("z"), ts(1))},
		},
		{
			"remove lists only the adds the writer saw", now, base, IntentUpdate,
			[]Change{{Name: "tags", Type: RemoveElem, Value: vStr("x")}, {Name: "tags", Type: RemoveElem, Value: vStr("y")}},
			1, []FieldOp{remove("tags", vStr("x"), Dot{rA, 1})},
		},
		{
			"increment raises the current totals", now, base, IntentUpdate,
			[]Change{{Name: "n", Type: Increment, Delta: 2}},
			1, []FieldOp{count("n", 8, 0)},
		},
		{
			"nil base is the record", now, nil, IntentUpdate,
			[]Change{{Name: "title", Type: Set, Value: vStr("z")}, {Name: "tags", Type: RemoveElem, Value: vStr("y")}},
			1, []FieldOp{assignSeen("title", vStr("z"), ts(2)), remove("tags", vStr("y"), Dot{rB, 1})},
		},
		{
			"a base before a delete saw nothing of the re-created record", deleted, base, IntentPut,
			[]Change{{Name: "title", Type: Set, Value: vStr("z")}, {Name: "tags", Type: RemoveElem, Value: vStr("x")}},
			3, []FieldOp{assign("title", vStr("z"))},
		},
		{
			"a base of an earlier incarnation saw nothing of this one", recreated, base, IntentPut,
			[]Change{{Name: "title", Type: Set, Value: vStr("z")}, {Name: "tags", Type: RemoveElem, Value: vStr("x")}},
			3, []FieldOp{assign("title", vStr("z"))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			beforeR, beforeBase := tt.r.Encode(), []byte(nil)
			if tt.base != nil {
				beforeBase = tt.base.Encode()
			}
			cl, fields, err := tt.r.PrepareFrom(rid(self), tt.base, tt.intent, tt.changes)
			if err != nil {
				t.Fatalf("PrepareFrom: %v", err)
			}
			if !bytes.Equal(tt.r.Encode(), beforeR) || (tt.base != nil && !bytes.Equal(tt.base.Encode(), beforeBase)) {
				t.Errorf("PrepareFrom modified a record")
			}
			if cl != tt.wantCL {
				t.Errorf("cl = %d, want %d", cl, tt.wantCL)
			}
			if !reflect.DeepEqual(fields, tt.wantFields) {
				t.Errorf("fields =\n%+v\nwant\n%+v", fields, tt.wantFields)
			}
			mustValid(t, mkOp(rid(self), 9, ts(100), cl, fields...))
		})
	}
	// Applied, the remove keeps B's concurrent add of x: add wins.
	_, fields, err := now.PrepareFrom(rA, base, IntentUpdate, []Change{{Name: "tags", Type: RemoveElem, Value: vStr("x")}})
	if err != nil {
		t.Fatal(err)
	}
	after := now.Clone()
	after.Apply(mkOp(rA, 3, ts(6), 1, fields...))
	checkGet(t, after, "tags", KindSet, vArr(vStr("x"), vStr("y")))
}
