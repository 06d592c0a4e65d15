package converge_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/convergedb/converge"
)

func TestDeleteAllAndDeleteAllExcept(t *testing.T) {
	ctx := t.Context()
	a, b := open(t, converge.Options{}), open(t, converge.Options{})
	tasks := coll[Task](t, a, "tasks")
	notes := coll[Task](t, a, "notes")
	for i := range 10 {
		if _, err := tasks.Put(ctx, "ns", &Task{ID: fmt.Sprint("t", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := notes.Put(ctx, "ns", &Task{ID: "n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Put(ctx, "other", &Task{ID: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, b, "ns")
	feed := a.Subscribe("ns")
	defer feed.Close()

	n, err := tasks.DeleteAllExcept(ctx, "ns", "t3", "t7", "absent")
	if err != nil || n != 8 {
		t.Fatalf("DeleteAllExcept = %d, %v; want 8 deleted", n, err)
	}
	if got := collIDs(t, tasks, "ns"); !slices.Equal(got, []string{"t3", "t7"}) {
		t.Errorf("left %v, want [t3 t7]", got)
	}
	// One transaction: one commit's changes, all in a row.
	for i := range 8 {
		c, err := feed.Next(ctx)
		if err != nil || c.Collection != "tasks" {
			t.Fatalf("change %d: %+v, %v", i, c, err)
		}
	}
	if n, err := tasks.DeleteAll(ctx, "ns"); err != nil || n != 2 {
		t.Fatalf("DeleteAll = %d, %v; want 2", n, err)
	}
	if n, err := tasks.DeleteAll(ctx, "ns"); err != nil || n != 0 {
		t.Fatalf("DeleteAll again = %d, %v; want 0", n, err)
	}
	if got := collIDs(t, notes, "ns"); len(got) != 1 {
		t.Errorf("another collection lost records: %v", got)
	}
	if got := collIDs(t, tasks, "other"); len(got) != 1 {
		t.Errorf("another namespace lost records: %v", got)
	}
	syncPair(t, a, b, "ns")
	if got := collIDs(t, coll[Task](t, b, "tasks"), "ns"); len(got) != 0 {
		t.Errorf("the peer still holds %v", got)
	}
}

func collIDs(t *testing.T, c *converge.Collection[Task], ns string) []string {
	t.Helper()
	var out []string
	for v, err := range c.All(t.Context(), ns) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v.ID)
	}
	return out
}
