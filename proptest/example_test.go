package proptest_test

import (
	"context"
	"fmt"
	"os"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/proptest"
)

// Task is an application's collection.
type Task struct {
	ID     string   `converge:"id"`
	Title  string   `msgpack:"title"`
	Labels []string `msgpack:"labels" converge:"set"`
	Votes  int64    `msgpack:"votes" converge:"counter"`
	Meta   converge.Meta
}

// An application checks that its collection converges: three replicas
// write the same task concurrently, sync across a partition and then
// after it heals, and end with the same state, the one the reference
// model computes from their ops.
func ExampleNetwork() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "converge-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	net, err := proptest.Open(dir, 3, converge.Options{})
	if err != nil {
		panic(err)
	}
	defer net.Close()

	// Concurrent writes of one task. The replicas' manual clocks all read
	// proptest.Epoch, so the titles' HLCs tie and the greatest replica id
	// (replica 2) wins; labels and votes from every replica add up.
	for i := range net.N() {
		tasks, err := converge.NewCollection[Task](net.Replica(i), "tasks")
		if err != nil {
			panic(err)
		}
		t := &Task{ID: "t1", Title: fmt.Sprint("from ", i), Labels: []string{fmt.Sprint("l", i)}, Votes: 1}
		if _, err := tasks.Put(ctx, "team", t); err != nil {
			panic(err)
		}
	}

	net.Partition([]int{0, 1}, []int{2})
	if err := net.SyncAll(ctx, "team"); err != nil {
		panic(err)
	}
	fmt.Println("partitioned, converged:", net.CheckConverged(ctx, "team") == nil)

	net.Heal()
	if err := net.SyncAll(ctx, "team"); err != nil {
		panic(err)
	}
	fmt.Println("converged:", net.CheckConverged(ctx, "team") == nil)

	model := proptest.NewModel()
	for _, db := range net.Replicas() {
		if err := model.AddLog(ctx, db, "team"); err != nil {
			panic(err)
		}
	}
	for i, db := range net.Replicas() {
		if err := model.Check(ctx, db, "team"); err != nil {
			fmt.Println("replica", i, err)
		}
	}
	fmt.Println("ops:", len(model.Ops("team")))

	tasks, err := converge.NewCollection[Task](net.Replica(0), "tasks")
	if err != nil {
		panic(err)
	}
	t, err := tasks.Get(ctx, "team", "t1")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s, labels %v, votes %d\n", t.Title, t.Labels, t.Votes)
	// Output:
	// partitioned, converged: false
	// converged: true
	// ops: 3
	// from 2, labels [l0 l1 l2], votes 3
}
