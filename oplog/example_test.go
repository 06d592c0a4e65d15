package oplog_test

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// A local write is one transaction: its ops go into the log and its
// record states into the store in one Pebble batch. A second store
// ingests the ops as a peer would.
func Example() {
	ctx := context.Background()
	a, err := oplog.Open("a", oplog.Options{FS: vfs.NewMem()}) // a real directory in production
	if err != nil {
		panic(err)
	}
	defer a.Close()
	commit, err := a.Write(ctx, "team", func(tx *oplog.Tx) error {
		_, err := tx.Mutate("tasks", "t1", crdt.IntentPut, []crdt.Change{
			{Name: "title", Type: crdt.Set, Value: crdt.EncodeString("ship it")},
			{Name: "tags", Type: crdt.AddElem, Value: crdt.EncodeString("q4")},
		})
		return err
	})
	if err != nil {
		panic(err)
	}

	b, err := oplog.Open("b", oplog.Options{FS: vfs.NewMem()})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	res, err := b.Ingest(ctx, "team", commit.Ops)
	if err != nil {
		panic(err)
	}
	rec, err := b.Get(ctx, "team", "tasks", "t1")
	if err != nil {
		panic(err)
	}
	title, _ := rec.Get("title")
	var s string
	_ = msgpack.Unmarshal(title.Value, &s)
	vv, _ := b.Vector(ctx, "team")
	fmt.Println("applied:", res.Applied, "title:", s, "ops held:", vv.Sum())
	// Output: applied: 1 title: ship it ops held: 1
}
