package converge_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/convergedb/converge"
)

type relProject struct {
	ID    string `msgpack:"-" converge:"id"`
	Name  string `msgpack:"name"`
	Owner string `msgpack:"owner"`
	Meta  converge.Meta
}

type relTodo struct {
	ID      string   `msgpack:"-" converge:"id"`
	Title   string   `msgpack:"title"`
	Project string   `msgpack:"project"`
	Done    bool     `msgpack:"done"`
	Prio    int      `msgpack:"prio"`
	Labels  []string `msgpack:"labels" converge:"set"`
	Meta    converge.Meta
}

type relLabel struct {
	ID    string `msgpack:"-" converge:"id"`
	Name  string `msgpack:"name"`
	Color string `msgpack:"color"`
	Meta  converge.Meta
}

func todoIDs(xs []relTodo) []string   { return ids(xs, func(x relTodo) string { return x.ID }) }
func labelIDs(xs []relLabel) []string { return ids(xs, func(x relLabel) string { return x.ID }) }

// relDB is one replica with the collections and relations of the tests.
type relDB struct {
	db       *converge.DB
	projects *converge.Collection[relProject]
	todos    *converge.Collection[relTodo]
	labels   *converge.Collection[relLabel]
	project  *converge.BelongsTo[relTodo, relProject]
	tagged   *converge.ManyToMany[relTodo, relLabel]
}

func newRelDB(t *testing.T) *relDB {
	t.Helper()
	db := open(t, converge.Options{})
	r := &relDB{db: db,
		projects: coll[relProject](t, db, "projects"),
		todos:    coll[relTodo](t, db, "todos"),
		labels:   coll[relLabel](t, db, "labels"),
	}
	var err error
	if r.project, err = converge.NewBelongsTo(r.todos, "project", r.projects); err != nil {
		t.Fatal(err)
	}
	if r.tagged, err = converge.NewManyToMany(r.todos, "labels", r.labels); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *relDB) ensureIndexes(t *testing.T) {
	t.Helper()
	if err := r.project.EnsureIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.tagged.EnsureIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// must(f())(t) is f's value; f's error fails the test.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// seed writes the test data to ns: todo t5 points at project p9 and label
// "gone" names no label (dangling ids), t6 has no project, p4 no todos.
func (r *relDB) seed(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	for _, p := range []relProject{{"p1", "one", "ann", converge.Meta{}}, {"p2", "two", "bob", converge.Meta{}}, {"p3", "three", "ann", converge.Meta{}}, {"p4", "four", "cat", converge.Meta{}}} {
		must(r.projects.Put(ctx, "ns", &p))(t)
	}
	for _, l := range []relLabel{{"bug", "Bug", "red", converge.Meta{}}, {"ui", "UI", "blue", converge.Meta{}}, {"docs", "Docs", "red", converge.Meta{}}, {"unused", "Unused", "green", converge.Meta{}}} {
		must(r.labels.Put(ctx, "ns", &l))(t)
	}
	for _, x := range []relTodo{
		{ID: "t1", Project: "p1", Prio: 3, Labels: []string{"ui", "bug"}},
		{ID: "t2", Project: "p1", Prio: 1, Done: true, Labels: []string{"bug"}},
		{ID: "t3", Project: "p2", Prio: 2, Labels: []string{"ui", "gone"}},
		{ID: "t4", Project: "p3", Prio: 3},
		{ID: "t5", Project: "p9", Prio: 1, Labels: []string{"docs"}},
		{ID: "t6", Prio: 2},
		{ID: "t7", Project: "p1", Prio: 2, Labels: []string{"docs"}},
	} {
		x.Title = "todo " + x.ID
		must(r.todos.Put(ctx, "ns", &x))(t)
	}
}

func (r *relDB) find(t *testing.T, q converge.Query) []string {
	t.Helper()
	return todoIDs(must(r.todos.Find(t.Context(), "ns", q))(t))
}

func wantIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestBelongsTo(t *testing.T) {
	for _, indexed := range []bool{false, true} {
		t.Run(fmt.Sprint("indexed=", indexed), func(t *testing.T) {
			ctx := t.Context()
			r := newRelDB(t)
			r.seed(t)
			if indexed {
				r.ensureIndexes(t) // built from the stored records
			}
			children := func(toID string, q converge.Query) []string {
				t.Helper()
				return todoIDs(must(r.project.Children(ctx, "ns", toID, q))(t))
			}
			wantIDs(t, "Children(p1)", children("p1", converge.Query{}), "t1", "t2", "t7")
			wantIDs(t, "Children(p1, open by prio desc, limit 1)",
				children("p1", converge.Where(converge.Eq("done", false)).OrderByDesc("prio").Limit(1)), "t1")
			wantIDs(t, "Children(p4)", children("p4", converge.Query{}))
			wantIDs(t, "Children(p9), a missing parent", children("p9", converge.Query{}), "t5")
			wantIDs(t, `Children("")`, children("", converge.Query{}))

			if p, err := r.project.Parent(ctx, "ns", "t1"); err != nil || p.Name != "one" {
				t.Errorf("Parent(t1) = %+v, %v; want p1", p, err)
			}
			for _, id := range []string{"t5", "t6", "nope"} { // dangling, no key, no child
				if p, err := r.project.Parent(ctx, "ns", id); !errors.Is(err, converge.ErrNotFound) {
					t.Errorf("Parent(%s) = %+v, %v; want ErrNotFound", id, p, err)
				}
			}

			plan := must(r.todos.Explain(r.project.ChildrenQuery("p1", converge.Query{})))(t)
			if want := map[bool]string{false: "scan", true: "index project"}[indexed]; !strings.HasPrefix(plan, want) {
				t.Errorf("Explain(ChildrenQuery(p1)) = %q, want %s", plan, want)
			}

			// Nested association queries.
			ann := r.project.WhereParent(converge.Eq("owner", "ann"))
			wantIDs(t, "WhereParent(owner = ann)", r.find(t, converge.Where(ann)), "t1", "t2", "t4", "t7")
			wantIDs(t, "WhereParent(owner in (bob, cat))",
				r.find(t, converge.Where(r.project.WhereParent(converge.In("owner", "bob", "cat")))), "t3")
			none := r.project.WhereParent(converge.Eq("owner", "zed"))
			wantIDs(t, "WhereParent(owner = zed)", r.find(t, converge.Where(none)))
			wantIDs(t, "WhereParent(owner = zed) or prio = 1",
				r.find(t, converge.Where(converge.Or(none, converge.Eq("prio", 1)))), "t2", "t5")
			wantIDs(t, "WhereParent(owner = ann) and prio = 3, by title desc",
				r.find(t, converge.Where(ann, converge.Eq("prio", 3)).OrderByDesc("title")), "t4", "t1")
			wantIDs(t, "WhereParent(), an existing parent",
				r.find(t, converge.Where(r.project.WhereParent())), "t1", "t2", "t3", "t4", "t7")
			if n, err := r.todos.Count(ctx, "ns", converge.Where(ann)); err != nil || n != 4 {
				t.Errorf("Count(WhereParent(owner = ann)) = %d, %v; want 4", n, err)
			}
			if _, err := r.todos.Find(ctx, "ns", converge.Where(r.project.WhereParent(converge.Eq("nope", 1)))); !errors.Is(err, converge.ErrQuery) {
				t.Errorf("WhereParent on an unknown field: %v, want ErrQuery", err)
			}
			plan = must(r.todos.Explain(converge.Where(ann)))(t)
			if indexed && !strings.Contains(plan, "index project [project in (\"<ids from projects>\")]") {
				t.Errorf("Explain(WhereParent) = %q, want the project index with a stand-in", plan)
			}

			// A deleted parent leaves dangling keys.
			if err := r.projects.Delete(ctx, "ns", "p2"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.project.Parent(ctx, "ns", "t3"); !errors.Is(err, converge.ErrNotFound) {
				t.Errorf("Parent(t3) after deleting p2: %v, want ErrNotFound", err)
			}
			wantIDs(t, "Children(p2) after deleting p2", children("p2", converge.Query{}), "t3")
			wantIDs(t, "WhereParent(owner = bob) after deleting p2",
				r.find(t, converge.Where(r.project.WhereParent(converge.Eq("owner", "bob")))))
		})
	}
}

func TestManyToMany(t *testing.T) {
	for _, indexed := range []bool{false, true} {
		t.Run(fmt.Sprint("indexed=", indexed), func(t *testing.T) {
			ctx := t.Context()
			r := newRelDB(t)
			if indexed {
				r.ensureIndexes(t) // kept by the writes
			}
			r.seed(t)
			related := func(id string) []string {
				t.Helper()
				return labelIDs(must(r.tagged.Related(ctx, "ns", id))(t))
			}
			wantIDs(t, "Related(t1)", related("t1"), "bug", "ui")
			wantIDs(t, "Related(t3), skipping a dangling id", related("t3"), "ui")
			wantIDs(t, "Related(t4)", related("t4"))
			if _, err := r.tagged.Related(ctx, "ns", "nope"); !errors.Is(err, converge.ErrNotFound) {
				t.Errorf("Related(nope): %v, want ErrNotFound", err)
			}

			reverse := func(id string, q converge.Query) []string {
				t.Helper()
				return todoIDs(must(r.tagged.Reverse(ctx, "ns", id, q))(t))
			}
			wantIDs(t, "Reverse(bug)", reverse("bug", converge.Query{}), "t1", "t2")
			wantIDs(t, "Reverse(docs, prio >= 2)", reverse("docs", converge.Where(converge.Gte("prio", 2))), "t7")
			wantIDs(t, "Reverse(gone), a missing record", reverse("gone", converge.Query{}), "t3")
			wantIDs(t, "Reverse(unused)", reverse("unused", converge.Query{}))
			wantIDs(t, `Reverse("")`, reverse("", converge.Query{}))
			plan := must(r.todos.Explain(r.tagged.ReverseQuery("bug", converge.Query{})))(t)
			if want := map[bool]string{false: "scan", true: "index labels"}[indexed]; !strings.HasPrefix(plan, want) {
				t.Errorf("Explain(ReverseQuery(bug)) = %q, want %s", plan, want)
			}

			red := r.tagged.WhereRelated(converge.Eq("color", "red"))
			wantIDs(t, "WhereRelated(color = red)", r.find(t, converge.Where(red)), "t1", "t2", "t5", "t7")
			wantIDs(t, "WhereRelated(color = blue) by prio",
				r.find(t, converge.Where(r.tagged.WhereRelated(converge.Eq("color", "blue"))).OrderBy("prio")), "t3", "t1")
			wantIDs(t, "WhereRelated(color = purple)",
				r.find(t, converge.Where(r.tagged.WhereRelated(converge.Eq("color", "purple")))))
			wantIDs(t, "WhereRelated(color = red) and WhereParent(owner = ann)",
				r.find(t, converge.Where(red, r.project.WhereParent(converge.Eq("owner", "ann")))), "t1", "t2", "t7")
			plan = must(r.todos.Explain(converge.Where(red)))(t)
			if indexed && !strings.HasPrefix(plan, "index labels") {
				t.Errorf("Explain(WhereRelated) = %q, want the labels index", plan)
			}

			// Relations compose: todos of projects owned by ann, through a
			// relation of projects to their owner record.
			type owner struct {
				ID   string `msgpack:"-" converge:"id"`
				Team string `msgpack:"team"`
				Meta converge.Meta
			}
			owners := coll[owner](t, r.db, "owners")
			ownedBy := must(converge.NewBelongsTo(r.projects, "owner", owners))(t)
			must(owners.Put(ctx, "ns", &owner{ID: "ann", Team: "core"}))(t)
			must(owners.Put(ctx, "ns", &owner{ID: "bob", Team: "web"}))(t)
			core := r.project.WhereParent(ownedBy.WhereParent(converge.Eq("team", "core")))
			wantIDs(t, "todos of projects of owners of team core", r.find(t, converge.Where(core)), "t1", "t2", "t4", "t7")
		})
	}
}

func TestRelationDeclarationErrors(t *testing.T) {
	db := open(t, converge.Options{})
	todos := coll[relTodo](t, db, "todos")
	projects := coll[relProject](t, db, "projects")
	type numbers struct {
		ID   string `msgpack:"-" converge:"id"`
		Nums []int  `msgpack:"nums" converge:"set"`
		Ref  string `msgpack:"id"` // a stored field that queries cannot name
		Meta converge.Meta
	}
	nums := coll[numbers](t, db, "numbers")
	for name, err := range map[string]error{
		"belongs-to through an int":      func() error { _, err := converge.NewBelongsTo(todos, "prio", projects); return err }(),
		"belongs-to through a set":       func() error { _, err := converge.NewBelongsTo(todos, "labels", projects); return err }(),
		"belongs-to through no field":    func() error { _, err := converge.NewBelongsTo(todos, "nope", projects); return err }(),
		"belongs-to through id":          func() error { _, err := converge.NewBelongsTo(nums, "id", projects); return err }(),
		"many-to-many through a string":  func() error { _, err := converge.NewManyToMany(todos, "project", projects); return err }(),
		"many-to-many through int set":   func() error { _, err := converge.NewManyToMany(nums, "nums", projects); return err }(),
		"many-to-many through no field":  func() error { _, err := converge.NewManyToMany(todos, "nope", projects); return err }(),
		"many-to-many through Go's name": func() error { _, err := converge.NewManyToMany(todos, "Labels", projects); return err }(),
	} {
		if !errors.Is(err, converge.ErrSchema) {
			t.Errorf("%s: %v, want ErrSchema", name, err)
		}
	}
	other := coll[relProject](t, open(t, converge.Options{}), "projects")
	if _, err := converge.NewBelongsTo(todos, "project", other); !errors.Is(err, converge.ErrInvalid) {
		t.Errorf("collections of two DBs: %v, want ErrInvalid", err)
	}
}

func TestRelationsAfterSync(t *testing.T) {
	ctx := t.Context()
	a, b := newRelDB(t), newRelDB(t)
	a.ensureIndexes(t) // kept current by sync too
	b.seed(t)
	must(a.todos.Put(ctx, "ns", &relTodo{ID: "ta", Project: "p1", Labels: []string{"ui"}}))(t)
	syncPair(t, a.db, b.db, "ns")
	for name, r := range map[string]*relDB{"a": a, "b": b} {
		wantIDs(t, name+": Children(p1)", todoIDs(must(r.project.Children(ctx, "ns", "p1", converge.Query{}))(t)), "t1", "t2", "t7", "ta")
		if p, err := r.project.Parent(ctx, "ns", "ta"); err != nil || p.ID != "p1" {
			t.Errorf("%s: Parent(ta) = %+v, %v", name, p, err)
		}
		wantIDs(t, name+": WhereParent(owner = ann)",
			r.find(t, converge.Where(r.project.WhereParent(converge.Eq("owner", "ann")))), "t1", "t2", "t4", "t7", "ta")
		wantIDs(t, name+": Reverse(ui)", todoIDs(must(r.tagged.Reverse(ctx, "ns", "ui", converge.Query{}))(t)), "t1", "t3", "ta")
		wantIDs(t, name+": Related(ta)", labelIDs(must(r.tagged.Related(ctx, "ns", "ta"))(t)), "ui")
	}

	// A parent changed on b moves children into a's nested query.
	if err := b.projects.Update(ctx, "ns", "p3", converge.Set("owner", "bob")); err != nil {
		t.Fatal(err)
	}
	// Concurrently: b deletes p1 while a adds a child to it.
	if err := b.projects.Delete(ctx, "ns", "p1"); err != nil {
		t.Fatal(err)
	}
	must(a.todos.Put(ctx, "ns", &relTodo{ID: "tb", Project: "p1"}))(t)
	syncPair(t, a.db, b.db, "ns")
	for name, r := range map[string]*relDB{"a": a, "b": b} {
		wantIDs(t, name+": WhereParent(owner = bob)",
			r.find(t, converge.Where(r.project.WhereParent(converge.Eq("owner", "bob")))), "t3", "t4")
		if _, err := r.project.Parent(ctx, "ns", "tb"); !errors.Is(err, converge.ErrNotFound) {
			t.Errorf("%s: Parent(tb) of a concurrently deleted parent: %v, want ErrNotFound", name, err)
		}
		wantIDs(t, name+": Children(p1) of a deleted parent",
			todoIDs(must(r.project.Children(ctx, "ns", "p1", converge.Query{}))(t)), "t1", "t2", "t7", "ta", "tb")
	}
}

type event[T any] struct {
	v   T
	err error
}

// collect runs the iterator in a goroutine and sends what it yields; the
// channel closes when it returns.
// collect runs a watch and hands over its results' values, skipping the
// results that only say the sync state changed (these tests are about
// the data).
func collect[T any](seq iter.Seq2[converge.Watched[T], error]) <-chan event[T] {
	ch := make(chan event[T], 100)
	go func() {
		defer close(ch)
		var last *event[T]
		for v, err := range seq {
			e := event[T]{v.Value, err}
			if last != nil && fmt.Sprint(err) == fmt.Sprint(last.err) && reflect.DeepEqual(e.v, last.v) {
				continue
			}
			last = &e
			ch <- e
		}
	}()
	return ch
}

func next[T any](t *testing.T, ch <-chan event[T]) event[T] {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch ended")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	panic("unreachable")
}

func TestWatchWithChildren(t *testing.T) {
	ctx := t.Context()
	a, b := newRelDB(t), newRelDB(t)
	a.seed(t)
	q := converge.Where(converge.Eq("done", false)).OrderBy("prio")
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	events := collect(a.project.WatchWithChildren(wctx, "ns", "p1", q))
	expect := func(what, name string, children ...string) {
		t.Helper()
		e := next(t, events)
		if e.err != nil || e.v.Record.Name != name || !slices.Equal(todoIDs(e.v.Related), children) {
			t.Fatalf("%s: got %q %v, %v; want %q %v", what, e.v.Record.Name, todoIDs(e.v.Related), e.err, name, children)
		}
	}
	expect("first", "one", "t7", "t1")

	// Changes that do not alter the result emit nothing: the next event
	// is the next change's.
	must(a.todos.Put(ctx, "ns", &relTodo{ID: "t8", Project: "p2"}))(t)
	update(t, a.projects, "p2", converge.Set("name", "deux"))
	update(t, a.todos, "t1", converge.Set("done", true)) // a child
	expect("after a child's change", "one", "t7")
	update(t, a.projects, "p1", converge.Set("name", "uno")) // the parent
	expect("after the parent's change", "uno", "t7")
	update(t, a.todos, "t4", converge.Set("project", "p1")) // a new child
	expect("after a todo moved in", "uno", "t7", "t4")
	must(b.todos.Put(ctx, "ns", &relTodo{ID: "tb", Project: "p1", Prio: 0}))(t)
	syncPair(t, a.db, b.db, "ns")
	expect("after a child from sync", "uno", "tb", "t7", "t4")
	update(t, b.projects, "p1", converge.Set("name", "eins"))
	syncPair(t, a.db, b.db, "ns")
	expect("after the parent's change from sync", "eins", "tb", "t7", "t4")

	if err := a.projects.Delete(ctx, "ns", "p1"); err != nil {
		t.Fatal(err)
	}
	if e := next(t, events); !errors.Is(e.err, converge.ErrNotFound) || e.v.Record != (relProject{}) ||
		!slices.Equal(todoIDs(e.v.Related), []string{"tb", "t7", "t4"}) {
		t.Fatalf("after deleting the parent: %+v, %v; want ErrNotFound and its children", e.v, e.err)
	}
	must(a.projects.Put(ctx, "ns", &relProject{ID: "p1", Name: "again"}))(t)
	for i := range 5 { // a burst: the watch may fold it
		update(t, a.todos, "t7", converge.Set("prio", 9-i))
		update(t, a.todos, "t2", converge.Set("done", i%2 == 0))
	}
	parent := must(a.projects.Get(ctx, "ns", "p1"))(t)
	children := must(a.project.Children(ctx, "ns", "p1", q))(t)
	for {
		e := next(t, events)
		if e.err == nil && fmt.Sprint(withoutMeta(e.v.Record), withoutMeta(e.v.Related...)) == fmt.Sprint(withoutMeta(parent), withoutMeta(children...)) {
			break // the final state equals a fresh read
		}
	}
	stop()
	for e := range events {
		t.Errorf("event after the end: %+v", e)
	}
}

func TestWatchWithRelated(t *testing.T) {
	ctx := t.Context()
	a, b := newRelDB(t), newRelDB(t)
	a.seed(t)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	events := collect(a.tagged.WatchWithRelated(wctx, "ns", "t1"))
	expect := func(what, title string, labels ...string) {
		t.Helper()
		e := next(t, events)
		names := ids(e.v.Related, func(l relLabel) string { return l.ID + ":" + l.Name })
		if e.err != nil || e.v.Record.Title != title || !slices.Equal(names, labels) {
			t.Fatalf("%s: got %q %v, %v; want %q %v", what, e.v.Record.Title, names, e.err, title, labels)
		}
	}
	expect("first", "todo t1", "bug:Bug", "ui:UI")
	update(t, a.labels, "docs", converge.Set("name", "Documentation")) // not related
	update(t, a.todos, "t2", converge.Set("title", "other"))           // another record
	update(t, a.todos, "t1", converge.Set("title", "first"))           // the record
	expect("after the record's change", "first", "bug:Bug", "ui:UI")
	update(t, a.labels, "bug", converge.Set("name", "Defect")) // a related record
	expect("after a related record's change", "first", "bug:Defect", "ui:UI")
	update(t, a.todos, "t1", converge.AddToSet("labels", "later"), converge.RemoveFromSet("labels", "ui"))
	expect("after the set's change", "first", "bug:Defect")
	update(t, a.labels, "ui", converge.Set("name", "Interface")) // no longer related
	must(b.labels.Put(ctx, "ns", &relLabel{ID: "later", Name: "Later"}))(t)
	syncPair(t, a.db, b.db, "ns")
	expect("after a named record was created by sync", "first", "bug:Defect", "later:Later")
	update(t, b.todos, "t1", converge.AddToSet("labels", "docs"))
	syncPair(t, a.db, b.db, "ns")
	expect("after the set's change from sync", "first", "bug:Defect", "docs:Documentation", "later:Later")

	if err := a.todos.Delete(ctx, "ns", "t1"); err != nil {
		t.Fatal(err)
	}
	if e := next(t, events); !errors.Is(e.err, converge.ErrNotFound) || e.v.Record.ID != "" || len(e.v.Related) != 0 {
		t.Fatalf("after deleting the record: %+v, %v; want ErrNotFound", e.v, e.err)
	}
	must(a.todos.Put(ctx, "ns", &relTodo{ID: "t1", Title: "back", Labels: []string{"ui", "unused"}}))(t)
	update(t, a.labels, "unused", converge.Set("color", "grey"))
	rec := must(a.todos.Get(ctx, "ns", "t1"))(t)
	related := must(a.tagged.Related(ctx, "ns", "t1"))(t)
	for {
		e := next(t, events)
		if e.err == nil && fmt.Sprint(withoutMeta(e.v.Record), withoutMeta(e.v.Related...)) == fmt.Sprint(withoutMeta(rec), withoutMeta(related...)) {
			break // the final state equals a fresh read
		}
	}
	stop()
	for e := range events {
		t.Errorf("event after the end: %+v", e)
	}
}

// A watch of a query filtering on related records re-reads when only the
// related records change.
func TestWatchWhereParent(t *testing.T) {
	ctx := t.Context()
	r := newRelDB(t)
	r.seed(t)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	q := converge.Where(r.project.WhereParent(converge.Eq("owner", "ann")))
	events := collect(r.todos.Watch(wctx, "ns", q))
	if e := next(t, events); e.err != nil || !slices.Equal(todoIDs(e.v), []string{"t1", "t2", "t4", "t7"}) {
		t.Fatalf("first: %v, %v", todoIDs(e.v), e.err)
	}
	update(t, r.projects, "p2", converge.Set("owner", "ann"))
	if e := next(t, events); e.err != nil || !slices.Equal(todoIDs(e.v), []string{"t1", "t2", "t3", "t4", "t7"}) {
		t.Fatalf("after p2 changed owner: %v, %v", todoIDs(e.v), e.err)
	}
	update(t, r.projects, "p1", converge.Set("owner", "bob"))
	update(t, r.projects, "p3", converge.Set("owner", "bob"))
	for {
		e := next(t, events)
		if e.err != nil {
			t.Fatal(e.err)
		}
		if slices.Equal(todoIDs(e.v), []string{"t3"}) {
			break
		}
	}
	stop()
	for range events {
	}
}

func update[T any](t *testing.T, c *converge.Collection[T], id string, u ...converge.FieldUpdate) {
	t.Helper()
	if err := c.Update(t.Context(), "ns", id, u...); err != nil {
		t.Fatal(err)
	}
}
