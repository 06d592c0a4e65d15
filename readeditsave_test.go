package converge_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/convergedb/converge"
)

// replicaPair opens two replicas, a and b, with a Task collection each.
func replicaPair(t *testing.T) (a, b *converge.DB, ta, tb *converge.Collection[Task]) {
	t.Helper()
	a, b = open(t, converge.Options{}), open(t, converge.Options{})
	return a, b, coll[Task](t, a, "tasks"), coll[Task](t, b, "tasks")
}

func mustGet[T any](t *testing.T, c *converge.Collection[T], ns, id string) T {
	t.Helper()
	v, err := c.Get(t.Context(), ns, id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return v
}

func mustPut[T any](t *testing.T, c *converge.Collection[T], ns string, v *T) string {
	t.Helper()
	id, err := c.Put(t.Context(), ns, v)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return id
}

func checkTask(t *testing.T, who string, got Task, title string, done bool, tags []string, votes int64) {
	t.Helper()
	if got.Title != title || got.Done != done || !slices.Equal(got.Tags, tags) || got.Votes != votes {
		t.Errorf("%s: {title %q done %v tags %q votes %d}, want {title %q done %v tags %q votes %d}",
			who, got.Title, got.Done, got.Tags, got.Votes, title, done, tags, votes)
	}
}

// TestReadEditSaveKeepsOtherReplicasChanges is issue 13's lost update: A
// reads a task; meanwhile B renames it, tags it and votes, and sync brings
// that to A; A's user ticks "done" and A puts the struct it read. The
// other user's changes must survive on both replicas.
func TestReadEditSaveKeepsOtherReplicasChanges(t *testing.T) {
	ctx := t.Context()
	a, b, ta, tb := replicaPair(t)
	mustPut(t, ta, "ns", &Task{ID: "t1", Title: "draft", Tags: []string{"q4"}, Votes: 1})
	syncPair(t, a, b, "ns")

	held := mustGet(t, ta, "ns", "t1") // A shows the task

	onB := mustGet(t, tb, "ns", "t1")
	onB.Title = "final"
	onB.Tags = append(onB.Tags, "urgent")
	onB.Votes += 2
	mustPut(t, tb, "ns", &onB)
	syncPair(t, a, b, "ns")

	held.Done = true // A's user edits one other field
	if _, err := ta.Put(ctx, "ns", &held); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, b, "ns")
	for name, c := range map[string]*converge.Collection[Task]{"A": ta, "B": tb} {
		checkTask(t, name, mustGet(t, c, "ns", "t1"), "final", true, []string{"q4", "urgent"}, 3)
	}
}

// seedTask creates task t1 on a and syncs it to b.
func seedTask(t *testing.T, a, b *converge.DB, ta *converge.Collection[Task], task Task) {
	t.Helper()
	task.ID = "t1"
	mustPut(t, ta, "ns", &task)
	syncPair(t, a, b, "ns")
}

// TestPutFromBaseRegister: a register the app did not change is not
// written; one it changed is, recording the version it read, so a
// concurrent write of it is reported as a conflict.
func TestPutFromBaseRegister(t *testing.T) {
	ctx := t.Context()
	a, b, ta, tb := replicaPair(t)
	seedTask(t, a, b, ta, Task{Title: "draft"})
	held := mustGet(t, ta, "ns", "t1")
	onB := mustGet(t, tb, "ns", "t1")
	onB.Title = "B's"
	mustPut(t, tb, "ns", &onB)
	syncPair(t, a, b, "ns")

	before := len(ops(t, a, "ns"))
	mustPut(t, ta, "ns", &held) // nothing changed: nothing written
	if n := len(ops(t, a, "ns")); n != before {
		t.Errorf("Put of an unchanged struct wrote %d ops", n-before)
	}
	if held.Title != "B's" {
		t.Errorf("after Put the struct shows title %q, want the stored %q", held.Title, "B's")
	}

	again := mustGet(t, ta, "ns", "t1") // read before B's second rename
	onB.Title = "B's second"
	mustPut(t, tb, "ns", &onB)
	syncPair(t, a, b, "ns")
	again.Title = "A's"
	mustPut(t, ta, "ns", &again)
	syncPair(t, a, b, "ns")
	for name, c := range map[string]*converge.Collection[Task]{"A": ta, "B": tb} {
		if got := mustGet(t, c, "ns", "t1").Title; got != "A's" {
			t.Errorf("%s: title %q, want A's (the later write)", name, got)
		}
	}
	// A wrote over a value it had not seen: a conflict, on both replicas.
	for name, db := range map[string]*converge.DB{"A": a, "B": b} {
		cs, err := db.Conflicts(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 1 || cs[0].Field != "title" || unmsgpack(cs[0].Winner.Value) != "A's" || unmsgpack(cs[0].Loser.Value) != "B's second" {
			t.Errorf("%s: conflicts %+v, want A's over B's second", name, cs)
		}
	}
}

// TestPutFromBaseSet: Put adds what the app added and removes what it
// removed, and a remove cancels only the adds the app had read.
func TestPutFromBaseSet(t *testing.T) {
	ctx := t.Context()
	a, b, ta, tb := replicaPair(t)
	seedTask(t, a, b, ta, Task{Title: "t", Tags: []string{"x", "y", "k"}})
	held := mustGet(t, ta, "ns", "t1")
	// Meanwhile B adds z, removes y, and adds x again (an add A has not
	// seen).
	if err := tb.Update(ctx, "ns", "t1", converge.AddToSet("tags", "z", "x"), converge.RemoveFromSet("tags", "y")); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, b, "ns")
	held.Tags = []string{"y", "w"} // A removes x and k, adds w; y it leaves
	mustPut(t, ta, "ns", &held)
	syncPair(t, a, b, "ns")
	for name, c := range map[string]*converge.Collection[Task]{"A": ta, "B": tb} {
		// x: B's later add survives A's remove; y: B's remove stands
		// (A did not touch y); z: B's; w: A's; k: removed by A.
		if got := mustGet(t, c, "ns", "t1").Tags; !slices.Equal(got, []string{"w", "x", "z"}) {
			t.Errorf("%s: tags %q, want [w x z]", name, got)
		}
	}
}

// TestPutFromBaseCounter: a counter adds the difference between the
// struct's value and the value read, on top of the current total.
func TestPutFromBaseCounter(t *testing.T) {
	ctx := t.Context()
	a, b, ta, tb := replicaPair(t)
	seedTask(t, a, b, ta, Task{Votes: 10})
	up, down := mustGet(t, ta, "ns", "t1"), mustGet(t, ta, "ns", "t1")
	if err := tb.Update(ctx, "ns", "t1", converge.Increment("votes", 5)); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, b, "ns")
	up.Votes += 3
	mustPut(t, ta, "ns", &up) // 10 + 5 + 3
	if up.Votes != 18 {
		t.Errorf("after Put the struct shows %d votes, want 18", up.Votes)
	}
	down.Votes -= 4
	mustPut(t, ta, "ns", &down) // 18 - 4
	syncPair(t, a, b, "ns")
	for name, c := range map[string]*converge.Collection[Task]{"A": ta, "B": tb} {
		if got := mustGet(t, c, "ns", "t1").Votes; got != 14 {
			t.Errorf("%s: votes %d, want 14", name, got)
		}
	}
}

// TestPutAfterDeleteWritesWhole: if the record was deleted since the read,
// or deleted and re-created, the struct is written as a whole.
func TestPutAfterDeleteWritesWhole(t *testing.T) {
	ctx := t.Context()
	for _, recreate := range []bool{false, true} {
		a, b, ta, tb := replicaPair(t)
		seedTask(t, a, b, ta, Task{Title: "draft", Tags: []string{"x"}, Votes: 2})
		held := mustGet(t, ta, "ns", "t1")
		if err := tb.Delete(ctx, "ns", "t1"); err != nil {
			t.Fatal(err)
		}
		if recreate {
			mustPut(t, tb, "ns", &Task{ID: "t1", Title: "new", Tags: []string{"n"}, Votes: 7})
		}
		syncPair(t, a, b, "ns")
		held.Done = true
		mustPut(t, ta, "ns", &held)
		syncPair(t, a, b, "ns")
		for name, c := range map[string]*converge.Collection[Task]{"A": ta, "B": tb} {
			checkTask(t, fmt.Sprintf("recreated %v: %s", recreate, name), mustGet(t, c, "ns", "t1"), "draft", true, []string{"x"}, 2)
		}
	}
}

// TestPutWithoutBaseWritesWhole: a struct never read, one whose Meta was
// cleared, and one read from another record are written as a whole.
func TestPutWithoutBaseWritesWhole(t *testing.T) {
	a, b, ta, tb := replicaPair(t)
	seedTask(t, a, b, ta, Task{Title: "draft", Tags: []string{"x"}, Votes: 2})
	rename := func() {
		onB := mustGet(t, tb, "ns", "t1")
		onB.Title, onB.Tags, onB.Votes = "B's", append(onB.Tags, "b"), onB.Votes+1
		mustPut(t, tb, "ns", &onB)
		syncPair(t, a, b, "ns")
	}
	rename()
	mustPut(t, ta, "ns", &Task{ID: "t1", Title: "fresh", Tags: []string{"f"}, Votes: 1})
	checkTask(t, "never read", mustGet(t, ta, "ns", "t1"), "fresh", false, []string{"f"}, 1)

	held := mustGet(t, ta, "ns", "t1")
	rename()
	held.Meta = converge.Meta{}
	mustPut(t, ta, "ns", &held)
	checkTask(t, "Meta cleared", mustGet(t, ta, "ns", "t1"), "fresh", false, []string{"f"}, 1)

	held = mustGet(t, ta, "ns", "t1")
	held.Title = "copy"
	held.ID = "t2"
	mustPut(t, ta, "ns", &held)
	checkTask(t, "copied to t2", mustGet(t, ta, "ns", "t2"), "copy", false, []string{"f"}, 1)
	checkTask(t, "t1 after the copy", mustGet(t, ta, "ns", "t1"), "fresh", false, []string{"f"}, 1)
	held = mustGet(t, ta, "ns", "t1")
	held.ID = ""
	id := mustPut(t, ta, "ns", &held)
	checkTask(t, "copied to a new id", mustGet(t, ta, "ns", id), "fresh", false, []string{"f"}, 1)
}

// TestPutTwice: after a Put the struct holds the record as written, so a
// second Put of it writes nothing: no counter delta twice, no removed
// element back, no other replica's change reverted.
func TestPutTwice(t *testing.T) {
	ctx := t.Context()
	a, b, ta, tb := replicaPair(t)
	seedTask(t, a, b, ta, Task{Title: "draft", Tags: []string{"x", "y"}, Votes: 1})
	held := mustGet(t, ta, "ns", "t1")
	if err := tb.Update(ctx, "ns", "t1", converge.Set("title", "B's"), converge.AddToSet("tags", "z"), converge.Increment("votes", 2)); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, b, "ns")
	held.Votes++
	held.Tags = []string{"x"}
	mustPut(t, ta, "ns", &held)
	checkTask(t, "the struct after Put", held, "B's", false, []string{"x", "z"}, 4)
	n := len(ops(t, a, "ns"))
	mustPut(t, ta, "ns", &held)
	if got := len(ops(t, a, "ns")); got != n {
		t.Errorf("the second Put wrote %d ops", got-n)
	}
	checkTask(t, "after the second Put", mustGet(t, ta, "ns", "t1"), "B's", false, []string{"x", "z"}, 4)

	// Twice in one transaction: the second Put builds on the first.
	held.Votes++
	err := a.Update(ctx, "ns", func(tx *converge.Tx) error {
		if _, err := ta.Tx(tx).Put(&held); err != nil {
			return err
		}
		held.Votes++
		_, err := ta.Tx(tx).Put(&held)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkTask(t, "after two Puts in a transaction", mustGet(t, ta, "ns", "t1"), "B's", false, []string{"x", "z"}, 6)
}

// TestPutInAbortedTransaction: a Put in a transaction that does not commit
// leaves the struct as it was, so a retry writes the edit.
func TestPutInAbortedTransaction(t *testing.T) {
	ctx := t.Context()
	a, b, ta, _ := replicaPair(t)
	seedTask(t, a, b, ta, Task{Title: "draft", Tags: []string{"x"}, Votes: 1})
	held := mustGet(t, ta, "ns", "t1")
	held.Title, held.Tags, held.Votes = "edited", nil, 5
	want := held
	errAbort := errors.New("abort")
	err := a.Update(ctx, "ns", func(tx *converge.Tx) error {
		if _, err := ta.Tx(tx).Put(&held); err != nil {
			return err
		}
		if held.Votes != 5 || held.Title != "edited" {
			t.Errorf("inside the transaction the struct shows %+v", held)
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("Update = %v, want the function's error", err)
	}
	if !reflect.DeepEqual(held, want) {
		t.Fatalf("after the aborted transaction the struct is\n%+v\nwant it as before\n%+v", held, want)
	}
	checkTask(t, "after the abort", mustGet(t, ta, "ns", "t1"), "draft", false, []string{"x"}, 1)
	mustPut(t, ta, "ns", &held) // the retry
	checkTask(t, "after the retry", mustGet(t, ta, "ns", "t1"), "edited", false, nil, 5)
}

// TestPutThatFailsToCommit: a Put whose commit fails (an op too large)
// leaves the struct as it was.
func TestPutThatFailsToCommit(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{MaxOpSize: 512})
	tasks := coll[Task](t, db, "tasks")
	mustPut(t, tasks, "ns", &Task{ID: "t1", Title: "draft", Votes: 1})
	held := mustGet(t, tasks, "ns", "t1")
	held.Title = strings.Repeat("x", 1000)
	held.Votes = 2
	want := held
	if _, err := tasks.Put(ctx, "ns", &held); !errors.Is(err, converge.ErrTooLarge) {
		t.Fatalf("Put = %v, want ErrTooLarge", err)
	}
	if !reflect.DeepEqual(held, want) {
		t.Fatalf("after the failed Put the struct is\n%+v\nwant it as before\n%+v", held, want)
	}
	held.Title = "short"
	mustPut(t, tasks, "ns", &held)
	checkTask(t, "after the retry", mustGet(t, tasks, "ns", "t1"), "short", false, nil, 2)
}

// TestReadPathsCarryTheBase: records read by All, Find and a watch carry
// the version they were read at, as Get's do.
func TestReadPathsCarryTheBase(t *testing.T) {
	ctx := t.Context()
	reads := map[string]func(c *converge.Collection[Task]) Task{
		"All": func(c *converge.Collection[Task]) Task {
			for v, err := range c.All(ctx, "ns") {
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			t.Fatal("All yielded nothing")
			return Task{}
		},
		"Find": func(c *converge.Collection[Task]) Task {
			vs, err := c.Find(ctx, "ns", converge.Where(converge.Eq("title", "draft")))
			if err != nil || len(vs) != 1 {
				t.Fatalf("Find = %v, %v", vs, err)
			}
			return vs[0]
		},
		"WatchRecord": func(c *converge.Collection[Task]) Task {
			for v, err := range c.WatchRecord(ctx, "ns", "t1") {
				if err != nil {
					t.Fatal(err)
				}
				return v.Value
			}
			t.Fatal("WatchRecord yielded nothing")
			return Task{}
		},
		"Modify's transaction": func(c *converge.Collection[Task]) Task {
			var v Task
			err := c.Modify(ctx, "ns", "t1", func(x *Task) error { v = *x; return nil })
			if err != nil {
				t.Fatal(err)
			}
			return v
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			a, b, ta, tb := replicaPair(t)
			seedTask(t, a, b, ta, Task{Title: "draft", Votes: 1})
			held := read(ta)
			if err := tb.Update(ctx, "ns", "t1", converge.Set("title", "B's"), converge.Increment("votes", 1)); err != nil {
				t.Fatal(err)
			}
			syncPair(t, a, b, "ns")
			held.Done = true
			mustPut(t, ta, "ns", &held)
			checkTask(t, name, mustGet(t, ta, "ns", "t1"), "B's", true, nil, 2)
		})
	}
}

func TestModify(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	tasks := coll[Task](t, db, "tasks")
	if err := tasks.Modify(ctx, "ns", "nope", func(*Task) error { t.Error("fn called for a missing record"); return nil }); !errors.Is(err, converge.ErrNotFound) {
		t.Errorf("Modify of a missing record = %v, want ErrNotFound", err)
	}
	mustPut(t, tasks, "ns", &Task{ID: "t1", Title: "draft", Tags: []string{"x"}, Votes: 1})
	n := len(ops(t, db, "ns"))
	errNo := errors.New("no")
	if err := tasks.Modify(ctx, "ns", "t1", func(v *Task) error { v.Title = "lost"; return errNo }); !errors.Is(err, errNo) {
		t.Errorf("Modify with a failing fn = %v, want its error", err)
	}
	if err := tasks.Modify(ctx, "ns", "t1", func(v *Task) error { v.ID = "t2"; return nil }); !errors.Is(err, converge.ErrInvalid) {
		t.Errorf("Modify that changes the id = %v, want ErrInvalid", err)
	}
	if got := len(ops(t, db, "ns")); got != n {
		t.Fatalf("failed Modify calls wrote %d ops", got-n)
	}
	err := tasks.Modify(ctx, "ns", "t1", func(v *Task) error {
		v.Done, v.Votes, v.Tags = true, v.Votes+2, append(v.Tags, "y")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkTask(t, "after Modify", mustGet(t, tasks, "ns", "t1"), "draft", true, []string{"x", "y"}, 3)
	// Inside a transaction, with another write.
	err = db.Update(ctx, "ns", func(tx *converge.Tx) error {
		if err := tasks.Tx(tx).Modify("t1", func(v *Task) error { v.Votes *= 10; return nil }); err != nil {
			return err
		}
		_, err := tasks.Tx(tx).Put(&Task{ID: "t2", Title: "other"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkTask(t, "after Modify in a transaction", mustGet(t, tasks, "ns", "t1"), "draft", true, []string{"x", "y"}, 30)
}

// embeddedTask embeds Meta, as the schema allows with msgpack:"-". Its own
// Updated field shadows Meta's.
type embeddedTask struct {
	converge.Meta `msgpack:"-"`
	ID            string   `msgpack:"-" converge:"id"`
	Title         string   `msgpack:"title"`
	Updated       string   `msgpack:"Updated"`
	Tags          []string `msgpack:"tags" converge:"set"`
}

func TestMetaField(t *testing.T) {
	db := open(t, converge.Options{})
	type noMeta struct {
		ID    string
		Title string
	}
	type twoMeta struct {
		ID   string
		A, B converge.Meta
	}
	type hiddenMeta struct {
		ID string
		//lint:ignore U1000 the schema must refuse an unexported Meta
		meta converge.Meta
	}
	type embeddedUntagged struct {
		converge.Meta
		ID string
	}
	for name, err := range map[string]error{
		"no Meta":           func() error { _, err := converge.NewCollection[noMeta](db, "c"); return err }(),
		"two Metas":         func() error { _, err := converge.NewCollection[twoMeta](db, "c"); return err }(),
		"unexported Meta":   func() error { _, err := converge.NewCollection[hiddenMeta](db, "c"); return err }(),
		"embedded untagged": func() error { _, err := converge.NewCollection[embeddedUntagged](db, "c"); return err }(),
	} {
		if !errors.Is(err, converge.ErrSchema) {
			t.Errorf("%s: %v, want ErrSchema", name, err)
		}
	}
	if _, err := converge.NewCollection[noMeta](db, "c"); err == nil || !strings.Contains(err.Error(), "Meta converge.Meta") {
		t.Errorf("no Meta: %v, want a message saying what to add", err)
	}

	// An embedded Meta: filled on reads, and a read-edit-save works.
	a, b := db, open(t, converge.Options{})
	ea, eb := coll[embeddedTask](t, a, "tasks"), coll[embeddedTask](t, b, "tasks")
	mustPut(t, ea, "ns", &embeddedTask{ID: "t1", Title: "draft", Updated: "today", Tags: []string{"x"}})
	syncPair(t, a, b, "ns")
	held := mustGet(t, ea, "ns", "t1")
	if held.ID != "t1" || held.Meta.ID != "t1" || held.Collection != "tasks" || held.Meta.Updated.IsZero() || held.Updated != "today" {
		t.Errorf("read %+v: want the record's id, Meta filled and the struct's own Updated", held)
	}
	onB := mustGet(t, eb, "ns", "t1")
	onB.Title, onB.Tags = "B's", append(onB.Tags, "b")
	mustPut(t, eb, "ns", &onB)
	syncPair(t, a, b, "ns")
	held.Updated = "tomorrow"
	mustPut(t, ea, "ns", &held)
	got := mustGet(t, ea, "ns", "t1")
	if got.Title != "B's" || got.Updated != "tomorrow" || !slices.Equal(got.Tags, []string{"b", "x"}) {
		t.Errorf("after a read-edit-save: %+v", got)
	}
}

// A field whose stored encoding differs from the struct's (written by an
// app version that declared it as an int, read as a float) is not a
// change: Put does not write it back over a concurrent change.
type levelsV1 struct {
	ID    string `msgpack:"-" converge:"id"`
	Name  string `msgpack:"name"`
	Level int    `msgpack:"level"`
	Nums  []int  `msgpack:"nums" converge:"set"`
	Meta  converge.Meta
}

type levelsV2 struct {
	ID    string    `msgpack:"-" converge:"id"`
	Name  string    `msgpack:"name"`
	Level float64   `msgpack:"level"`
	Nums  []float64 `msgpack:"nums" converge:"set"`
	Meta  converge.Meta
}

func TestPutFromBaseAnotherEncoding(t *testing.T) {
	ctx := t.Context()
	a, b := open(t, converge.Options{}), open(t, converge.Options{})
	v1a, v1b, v2a := coll[levelsV1](t, a, "levels"), coll[levelsV1](t, b, "levels"), coll[levelsV2](t, a, "levels")
	mustPut(t, v1a, "ns", &levelsV1{ID: "l1", Name: "n", Level: 1, Nums: []int{1, 2}})
	syncPair(t, a, b, "ns")
	held := mustGet(t, v2a, "ns", "l1")
	if held.Level != 1 || !slices.Equal(held.Nums, []float64{1, 2}) {
		t.Fatalf("read as V2: %+v", held)
	}
	if err := v1b.Update(ctx, "ns", "l1", converge.Set("level", 2), converge.RemoveFromSet("nums", 2), converge.AddToSet("nums", 3)); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, b, "ns")
	held.Name = "renamed"
	mustPut(t, v2a, "ns", &held)
	got := mustGet(t, v1a, "ns", "l1")
	if got.Name != "renamed" || got.Level != 2 || !slices.Equal(got.Nums, []int{1, 3}) {
		t.Errorf("after V2's read-edit-save: %+v, want name renamed, level 2 and nums [1 3]", got)
	}
}
