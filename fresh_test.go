package converge_test

import (
	"context"
	"errors"
	"testing"

	"github.com/convergedb/converge"
)

// TestFreshReads: over real HTTP on loopback, a fresh Get or Find sees
// what the hub holds when it is asked; with the hub gone, or ctx ended,
// it returns the local data and an error wrapping ErrStale.
func TestFreshReads(t *testing.T) {
	ctx := t.Context()
	h := startHub(t, t.TempDir())
	hubTasks := coll[Task](t, h.db, "tasks")
	if _, err := hubTasks.Put(ctx, "ns", &Task{ID: "old", Title: "before"}); err != nil {
		t.Fatal(err)
	}
	c := startClient(t, h.ts.URL)
	fresh := c.tasks.Fresh(c.rep)
	for i, title := range []string{"one", "two", "three"} {
		if _, err := hubTasks.Put(ctx, "ns", &Task{ID: "new", Title: title}); err != nil {
			t.Fatal(err)
		}
		got, err := fresh.Get(ctx, "ns", "new")
		if err != nil || got.Title != title {
			t.Fatalf("round %d: fresh Get = %+v, %v; want the hub's %q", i, got, err, title)
		}
	}
	if _, err := hubTasks.Put(ctx, "ns", &Task{ID: "newest"}); err != nil {
		t.Fatal(err)
	}
	all, err := fresh.Find(ctx, "ns", converge.Query{})
	if err != nil || len(all) != 3 {
		t.Fatalf("fresh Find = %d records, %v; want the hub's 3", len(all), err)
	}

	// The context ended: the local data, stale.
	done, cancel := context.WithCancel(ctx)
	cancel()
	got, err := fresh.Get(done, "ns", "old")
	if !errors.Is(err, converge.ErrStale) || !errors.Is(err, context.Canceled) || got.Title != "before" {
		t.Errorf("fresh Get with ctx ended = %+v, %v; want the local record and ErrStale", got, err)
	}
	// The hub gone: the local data, stale; a record absent locally is
	// both stale and not found.
	h.stop()
	all, err = fresh.Find(ctx, "ns", converge.Query{})
	if !errors.Is(err, converge.ErrStale) || len(all) != 3 {
		t.Errorf("fresh Find offline = %d records, %v; want 3 and ErrStale", len(all), err)
	}
	if _, err := fresh.Get(ctx, "ns", "never"); !errors.Is(err, converge.ErrStale) || !errors.Is(err, converge.ErrNotFound) {
		t.Errorf("fresh Get of an absent record offline: %v, want ErrStale and ErrNotFound", err)
	}
}
