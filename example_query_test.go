package converge_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/convergedb/converge"
)

func ExampleCollection_Find() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	tasks, _ := converge.NewCollection[Task](db, "tasks")
	for i, title := range []string{"write docs", "fix bug", "ship", "review"} {
		tasks.Put(ctx, "team-1", &Task{ID: fmt.Sprint("t", i), Title: title, Votes: int64(i), Done: i%2 == 1})
	}
	// An index on done: the query below reads only the matching entries.
	if err := tasks.EnsureIndex(ctx, "done"); err != nil {
		log.Fatal(err)
	}
	q := converge.Where(converge.Eq("done", false)).OrderByDesc("votes")
	open, err := tasks.Find(ctx, "team-1", q)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range open {
		fmt.Println(t.Title, t.Votes)
	}
	plan, _ := tasks.Explain(q)
	fmt.Println(plan)
	// Output:
	// ship 2
	// write docs 0
	// index done [done = false], sort by votes desc
}

func ExampleCollection_Page() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	tasks, _ := converge.NewCollection[Task](db, "tasks")
	for i := range 5 {
		tasks.Put(ctx, "team-1", &Task{ID: fmt.Sprint("t", i)})
	}
	cursor := ""
	for {
		page, err := tasks.Page(ctx, "team-1", converge.Query{}.Limit(2), cursor)
		if err != nil {
			log.Fatal(err)
		}
		for _, t := range page.Items {
			fmt.Print(t.ID, " ")
		}
		fmt.Println("|")
		if page.Next == "" {
			break
		}
		cursor = page.Next // keep it; it stays valid while records change
	}
	// Output:
	// t0 t1 |
	// t2 t3 |
	// t4 |
}

func ExampleDB_Feed() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, done := openTemp()
	defer done()
	tasks, _ := converge.NewCollection[Task](db, "tasks")
	tasks.Put(ctx, "team-1", &Task{ID: "t1", Title: "draft"})
	tasks.Update(ctx, "team-1", "t1", converge.Set("title", "final"))

	// A consumer stores the Seq of the last change it handled and passes
	// it to Feed when it starts again: it resumes right after it.
	var last uint64
	for c, err := range db.Feed(ctx, "team-1", "tasks", last) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(c.Seq, c.Kind, c.ID, c.Fields)
		last = c.Seq
		if last == 2 {
			cancel() // a real consumer would keep tailing new changes
		}
	}
	// Output:
	// 1 created t1 [done title]
	// 2 updated t1 [title]
}

func ExampleQuery_OrderBy() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	type Event struct {
		ID   string        `msgpack:"-" converge:"id"`
		Meta converge.Meta `msgpack:"-"`
		At   time.Time     `msgpack:"at"`
	}
	events, _ := converge.NewCollection[Event](db, "events")
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	events.Put(ctx, "team-1", &Event{ID: "lunch", At: day.Add(12*time.Hour + 500*time.Millisecond)})
	events.Put(ctx, "team-1", &Event{ID: "standup", At: day.Add(9 * time.Hour)})
	events.Put(ctx, "team-1", &Event{ID: "moon landing", At: time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)})
	// Times order by instant, and range filters compare instants.
	q := converge.Where(converge.Gte("at", day.Add(-24*time.Hour))).OrderBy("at")
	recent, err := events.Find(ctx, "team-1", q)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range recent {
		fmt.Println(e.ID, e.At.UTC().Format(time.TimeOnly))
	}
	// Output:
	// standup 09:00:00
	// lunch 12:00:00
}
