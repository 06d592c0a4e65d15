package crdt_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/vmihailenco/msgpack/v5"
)

// Two replicas write the same record concurrently; each applies its own op
// and then the other's, in opposite orders, and they converge.
func ExampleRecord_Merge() {
	alice, _ := crdt.ParseReplicaID("01HZX3J5V8Q2W6N4M7K9T1R0YA")
	bob, _ := crdt.ParseReplicaID("01HZX3J5V8Q2W6N4M7K9T1R0YB")
	op := func(origin crdt.ReplicaID, wall int64, fields ...crdt.FieldOp) *crdt.Op {
		return &crdt.Op{
			Namespace: "acme", Collection: "tasks", Key: "t1",
			Dot: crdt.Dot{Origin: origin, Seq: 1}, HLC: hlc.New(wall, 0), CL: 1, TxEnd: true,
			Fields: fields,
		}
	}
	fromAlice := op(alice, 1000,
		crdt.FieldOp{Name: "title", Type: crdt.Assign, Value: crdt.EncodeString("alice's title")},
		crdt.FieldOp{Name: "views", Type: crdt.Count, P: 2},
		crdt.FieldOp{Name: "tags", Type: crdt.Add, Value: crdt.EncodeString("urgent")},
	)
	fromBob := op(bob, 1001, // later: bob's title wins
		crdt.FieldOp{Name: "title", Type: crdt.Assign, Value: crdt.EncodeString("bob's title")},
		crdt.FieldOp{Name: "views", Type: crdt.Count, P: 3},
		crdt.FieldOp{Name: "tags", Type: crdt.Add, Value: crdt.EncodeString("home")},
	)

	a, b := &crdt.Record{}, &crdt.Record{}
	a.Merge(crdt.Delta(fromAlice))
	a.Merge(crdt.Delta(fromBob))
	b.Merge(crdt.Delta(fromBob))
	b.Merge(crdt.Delta(fromAlice))

	fmt.Println("same bytes:", string(a.Encode()) == string(b.Encode()))
	for _, f := range b.Visible() {
		var v any
		if err := msgpack.Unmarshal(f.Value, &v); err != nil {
			panic(err)
		}
		fmt.Printf("%s (%v): %v\n", f.Name, f.Kind, v)
	}
	// Output:
	// same bytes: true
	// tags (set): [home urgent]
	// title (register): bob's title
	// views (counter): 5
}

// Timestamps compare by instant, whichever msgpack form encodes them, and
// their value keys sort the same way.
func ExampleCompareValues_time() {
	noon := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	a := crdt.EncodeTime(noon)                       // whole seconds: timestamp 32
	b := crdt.EncodeTime(noon.Add(-time.Nanosecond)) // nanoseconds: timestamp 64
	fmt.Printf("% x\n% x\n", a, b)
	fmt.Println(crdt.CompareValues(b, a))
	fmt.Println(bytes.Compare(crdt.AppendValueKey(nil, b), crdt.AppendValueKey(nil, a)))
	t, _ := crdt.DecodeTime(b)
	fmt.Println(t)
	// Output:
	// d6 ff 66 32 2e c0
	// d7 ff ee 6b 27 fc 66 32 2e bf
	// -1
	// -1
	// 2024-05-01 11:59:59.999999999 +0000 UTC
}

// A text field edited on two replicas at once: each write is a splice,
// which Prepare turns into inserts and deletes of elements by id, and the
// records converge whatever order the ops arrive in.
func ExampleRecord_Prepare_text() {
	a, b := crdt.ReplicaID{1}, crdt.ReplicaID{2}
	opOf := func(origin crdt.ReplicaID, seq uint64, cl uint64, fields []crdt.FieldOp) *crdt.Op {
		return &crdt.Op{Namespace: "ns", Collection: "notes", Key: "n1", Dot: crdt.Dot{Origin: origin, Seq: seq}, HLC: hlc.New(int64(seq), 0), CL: cl, TxEnd: true, Fields: fields}
	}
	ra := &crdt.Record{}
	cl, fields, _ := ra.Prepare(a, crdt.IntentPut, []crdt.Change{{Name: "body", Type: crdt.TextSplice, Value: crdt.EncodeString("shopping list")}})
	create := opOf(a, 1, cl, fields)
	ra.Apply(create)
	rb := ra.Clone()

	_, fa, _ := ra.Prepare(a, crdt.IntentUpdate, []crdt.Change{{Name: "body", Type: crdt.TextSplice, Pos: 0, Del: 1, Value: crdt.EncodeString("S")}})
	_, fb, _ := rb.Prepare(b, crdt.IntentUpdate, []crdt.Change{{Name: "body", Type: crdt.TextSplice, Pos: 13, Value: crdt.EncodeString(": eggs")}})
	opA, opB := opOf(a, 2, cl, fa), opOf(b, 1, cl, fb)
	ra.Apply(opA)
	ra.Apply(opB)
	rb.Apply(opB)
	rb.Apply(opA)

	ta, _ := ra.Text("body")
	tb, _ := rb.Text("body")
	fmt.Println(ta)
	fmt.Println(tb)
	// Output:
	// Shopping list: eggs
	// Shopping list: eggs
}
