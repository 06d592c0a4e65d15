package converge_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/convergedb/converge"
)

// Records carry their metadata as fields a query can filter, order and
// index by: no createdAt or version fields kept by hand.
func Example_metadataFields() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "converge-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// A clock that ticks a second per reading, so that no two writes
	// share a millisecond and the output is stable.
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	db, err := converge.Open(dir, converge.Options{Clock: func() int64 { now += 1000; return now }})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	tasks, _ := converge.NewCollection[Task](db, "tasks")
	if err := tasks.EnsureIndex(ctx, converge.UpdatedField); err != nil {
		log.Fatal(err)
	}
	for _, title := range []string{"design", "build", "ship"} {
		if _, err := tasks.Put(ctx, "team-1", &Task{ID: title, Title: title}); err != nil {
			log.Fatal(err)
		}
	}
	if err := tasks.Update(ctx, "team-1", "design", converge.Set("done", true)); err != nil {
		log.Fatal(err)
	}
	recent, err := tasks.Find(ctx, "team-1", converge.Query{}.OrderByDesc(converge.UpdatedField).Limit(2))
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range recent {
		fmt.Printf("%s version %d\n", t.ID, t.Meta.Version)
	}
	edited, _ := tasks.Count(ctx, "team-1", converge.Where(converge.Gt(converge.VersionField, 1)))
	fmt.Println("edited since created:", edited)
	// Output:
	// design version 2
	// ship version 1
	// edited since created: 1
}

// A misspelt field, or a Go field name where the msgpack name belongs,
// fails with the valid names; a Field chosen by a selector cannot be
// misspelt.
func ExampleFieldOf() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	tasks, _ := converge.NewCollection[Task](db, "tasks")
	_, err := tasks.Find(ctx, "team-1", converge.Where(converge.Eq("Title", "ship")))
	var fe *converge.FieldError
	if errors.As(err, &fe) {
		fmt.Printf("%q: did you mean %q?\n", fe.Field, fe.Suggest)
	}

	title := converge.FieldOf(func(t *Task) *string { return &t.Title })
	if _, err := tasks.Put(ctx, "team-1", &Task{ID: "t1", Title: "ship"}); err != nil {
		log.Fatal(err)
	}
	found, err := tasks.Find(ctx, "team-1", converge.Where(title.Eq("ship")).OrderBy(title.Name()))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(title.Name(), len(found))
	// Output:
	// "Title": did you mean "title"?
	// title 1
}

// A collection can have its own conflict policy; a typed resolver sees
// the records with each side's value of the field in conflict.
func ExampleResolveWith() {
	db, done := openTemp()
	defer done()
	tasks, _ := converge.NewCollection[Task](db, "tasks")
	tasks.SetConflictPolicy(converge.ResolveWith(func(field string, local, remote Task) Task {
		if field == "done" && local.Done {
			return local // done on either side stays done
		}
		return remote
	}))
	fmt.Println(tasks.ConflictPolicy())
	// Output: custom
}
