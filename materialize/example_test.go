package materialize_test

import (
	"fmt"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/materialize"
	"github.com/vmihailenco/msgpack/v5"
)

// Alice creates a task; Bob, who has not seen it, writes the same title
// concurrently. Folding Bob's op into Alice's state updates the title (his
// write is later) and reports the conflict.
func ExampleFold() {
	alice, _ := crdt.ParseReplicaID("01HZX3J5V8Q2W6N4M7K9T1R0YA")
	bob, _ := crdt.ParseReplicaID("01HZX3J5V8Q2W6N4M7K9T1R0YB")
	op := func(origin crdt.ReplicaID, wall int64, fields ...crdt.FieldOp) *crdt.Op {
		return &crdt.Op{
			Namespace: "acme", Collection: "tasks", Key: "t1",
			Dot: crdt.Dot{Origin: origin, Seq: 1}, HLC: hlc.New(wall, 0), CL: 1, TxEnd: true,
			Fields: fields,
		}
	}
	create := op(alice, 1000,
		crdt.FieldOp{Name: "title", Type: crdt.Assign, Value: crdt.EncodeString("write the docs")},
		crdt.FieldOp{Name: "status", Type: crdt.Assign, Value: crdt.EncodeString("todo")},
	)
	concurrent := op(bob, 1001, // Seen is zero: bob replaced no title he knew of
		crdt.FieldOp{Name: "title", Type: crdt.Assign, Value: crdt.EncodeString("rewrite the docs")},
	)

	eff := materialize.Fold(nil, create)
	fmt.Println(eff.Change.Kind, eff.Change.Fields)

	eff = materialize.Fold(eff.State, concurrent)
	fmt.Println(eff.Change.Kind, eff.Change.Fields)
	for _, c := range eff.Conflicts {
		var winner, loser string
		if err := msgpack.Unmarshal(c.Winner.Value, &winner); err != nil {
			panic(err)
		}
		if err := msgpack.Unmarshal(c.Loser.Value, &loser); err != nil {
			panic(err)
		}
		fmt.Printf("conflict on %s/%s.%s: %q beat %q\n", c.Collection, c.Key, c.Field, winner, loser)
	}
	// Output:
	// created [status title]
	// updated [title]
	// conflict on tasks/t1.title: "rewrite the docs" beat "write the docs"
}
