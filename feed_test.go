package converge_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/convergedb/converge"
)

// A consumer that stores the Seq of the last change it handled resumes
// exactly there after a restart: nothing missed, nothing repeated.
func TestFeedResumesAcrossRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db, err := converge.Open(dir, converge.Options{Durability: converge.NoSync})
	if err != nil {
		t.Fatal(err)
	}
	tasks := coll[Task](t, db, "tasks")
	notes := coll[Task](t, db, "notes")
	for i := range 5 {
		if _, err := tasks.Put(ctx, "ns", &Task{ID: fmt.Sprint("t", i), Title: "x"}); err != nil {
			t.Fatal(err)
		}
		if _, err := notes.Put(ctx, "ns", &Task{ID: fmt.Sprint("n", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Consume three task changes, remember the position, stop.
	var got []string
	var pos uint64
	for c, err := range db.Feed(ctx, "ns", "tasks", 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c.ID)
		pos = c.Seq
		if len(got) == 3 {
			break
		}
	}
	db.Close()

	db, err = converge.Open(dir, converge.Options{Durability: converge.NoSync})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tasks = coll[Task](t, db, "tasks")
	if err := tasks.Delete(ctx, "ns", "t0"); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var kinds []converge.ChangeKind
	for c, err := range db.Feed(fctx, "ns", "tasks", pos) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Seq <= pos {
			t.Fatalf("change %d repeated (resumed after %d)", c.Seq, pos)
		}
		got = append(got, c.ID)
		kinds = append(kinds, c.Kind)
		if len(got) == 6 {
			// Now tail: a change committed after the stored ones arrive.
			go func() {
				if _, err := tasks.Put(ctx, "ns", &Task{ID: "live"}); err != nil {
					t.Error(err)
				}
			}()
		}
		if len(got) == 7 {
			cancel()
		}
	}
	want := []string{"t0", "t1", "t2", "t3", "t4", "t0", "live"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("feed = %v, want %v", got, want)
	}
	if kinds[2] != converge.Deleted {
		t.Errorf("the delete came through as %v", kinds[2])
	}
	head, err := db.FeedHead(ctx, "ns")
	if err != nil || head != 12 {
		t.Errorf("FeedHead = %d, %v; want 12 (5 tasks, 5 notes, a delete, a put)", head, err)
	}
}
