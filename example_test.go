package converge_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

type Task struct {
	ID    string   `msgpack:"-" converge:"id"`
	Title string   `msgpack:"title"`
	Done  bool     `msgpack:"done"`
	Tags  []string `msgpack:"tags" converge:"set"`
	Votes int64    `msgpack:"votes" converge:"counter"`
	Meta  converge.Meta
}

// openTemp opens a replica in a fresh temp dir; the returned func closes it
// and removes the dir.
func openTemp() (*converge.DB, func()) {
	dir, err := os.MkdirTemp("", "converge-example-")
	if err != nil {
		log.Fatal(err)
	}
	db, err := converge.Open(dir, converge.Options{})
	if err != nil {
		log.Fatal(err)
	}
	return db, func() { db.Close(); os.RemoveAll(dir) }
}

func ExampleCollection() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	tasks, err := converge.NewCollection[Task](db, "tasks")
	if err != nil {
		log.Fatal(err)
	}
	id, err := tasks.Put(ctx, "team-1", &Task{ID: "t1", Title: "ship it", Tags: []string{"q4"}})
	if err != nil {
		log.Fatal(err)
	}
	err = tasks.Update(ctx, "team-1", id,
		converge.Set("done", true),
		converge.AddToSet("tags", "release"),
		converge.Increment("votes", 2))
	if err != nil {
		log.Fatal(err)
	}
	t, err := tasks.Get(ctx, "team-1", id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %q done=%v tags=%v votes=%d\n", t.ID, t.Title, t.Done, t.Tags, t.Votes)
	// Output: t1 "ship it" done=true tags=[q4 release] votes=2
}

func ExampleDB_Update() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	tasks, _ := converge.NewCollection[Task](db, "tasks")
	// Both records commit in one batch and replicate as one unit.
	err := db.Update(ctx, "team-1", func(tx *converge.Tx) error {
		for _, title := range []string{"design", "build"} {
			if _, err := tasks.Tx(tx).Put(&Task{ID: title, Title: title}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	for t, err := range tasks.All(ctx, "team-1") {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(t.ID)
	}
	// Output:
	// build
	// design
}

func ExampleDB_SyncWith() {
	ctx := context.Background()
	alice, doneA := openTemp()
	defer doneA()
	bob, doneB := openTemp()
	defer doneB()
	ta, _ := converge.NewCollection[Task](alice, "tasks")
	tb, _ := converge.NewCollection[Task](bob, "tasks")

	// Offline, both vote on the same task and tag it.
	ta.Put(ctx, "team-1", &Task{ID: "t1", Title: "ship it", Votes: 1, Tags: []string{"alice"}})
	tb.Put(ctx, "team-1", &Task{ID: "t1", Title: "ship it", Votes: 2, Tags: []string{"bob"}})

	// Sync: bob's replica talks to alice's through the in-memory transport.
	if _, err := bob.SyncWith(ctx, transport.NewMemPeer(alice.SyncStore(), transport.Limits{}), "team-1"); err != nil {
		log.Fatal(err)
	}
	a, _ := ta.Get(ctx, "team-1", "t1")
	b, _ := tb.Get(ctx, "team-1", "t1")
	fmt.Println(a.Votes, a.Tags)
	fmt.Println(b.Votes, b.Tags)
	// Output:
	// 3 [alice bob]
	// 3 [alice bob]
}

func ExampleDB_Subscribe() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	tasks, _ := converge.NewCollection[Task](db, "tasks")

	sub := db.Subscribe("team-1")
	defer sub.Close()
	tasks.Put(ctx, "team-1", &Task{ID: "t1", Title: "draft"})
	tasks.Update(ctx, "team-1", "t1", converge.Set("title", "final"), converge.Increment("votes", 1))
	tasks.Delete(ctx, "team-1", "t1")
	for range 3 {
		c, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(c.Kind, c.ID, c.Fields, c.Local)
	}
	// Output:
	// created t1 [done title] true
	// updated t1 [title votes] true
	// deleted t1 [done title votes] true
}

func ExampleCollection_Modify() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	tasks, _ := converge.NewCollection[Task](db, "tasks")
	tasks.Put(ctx, "team-1", &Task{ID: "t1", Title: "ship it", Votes: 1})

	// Read, edit and write in one local transaction.
	err := tasks.Modify(ctx, "team-1", "t1", func(t *Task) error {
		t.Done = true
		t.Votes++
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	t, _ := tasks.Get(ctx, "team-1", "t1")
	fmt.Println(t.Title, t.Done, t.Votes)
	// Output: ship it true 2
}

// A struct read with Get remembers the version it was read at, so Put
// writes only what the app changed: another replica's concurrent changes
// survive.
func ExampleCollection_Put_readEditSave() {
	ctx := context.Background()
	alice, doneA := openTemp()
	defer doneA()
	bob, doneB := openTemp()
	defer doneB()
	ta, _ := converge.NewCollection[Task](alice, "tasks")
	tb, _ := converge.NewCollection[Task](bob, "tasks")
	sync := func() {
		if _, err := bob.SyncWith(ctx, transport.NewMemPeer(alice.SyncStore(), transport.Limits{}), "team-1"); err != nil {
			log.Fatal(err)
		}
	}
	ta.Put(ctx, "team-1", &Task{ID: "t1", Title: "draft", Votes: 1})
	sync()

	t, _ := ta.Get(ctx, "team-1", "t1") // alice's app shows the task

	// Meanwhile bob renames it, tags it and votes.
	tb.Update(ctx, "team-1", "t1", converge.Set("title", "final"), converge.AddToSet("tags", "urgent"), converge.Increment("votes", 2))
	sync()

	t.Done = true // alice ticks it off and saves the struct she read
	if _, err := ta.Put(ctx, "team-1", &t); err != nil {
		log.Fatal(err)
	}
	sync()
	b, _ := tb.Get(ctx, "team-1", "t1")
	fmt.Println(t.Title, t.Done, t.Tags, t.Votes) // Put refreshed t
	fmt.Println(b.Title, b.Done, b.Tags, b.Votes)
	// Output:
	// final true [urgent] 3
	// final true [urgent] 3
}
