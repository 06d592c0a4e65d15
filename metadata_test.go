package converge_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/convergedb/converge"
)

func taskIDs(ts []Task) []string { return ids(ts, func(t Task) string { return t.ID }) }

// Meta.Version grows with every change a replica applies to the record,
// its own and those sync brings, and never with a save that changes
// nothing.
func TestMetaVersionGrowsWithEveryAppliedChange(t *testing.T) {
	ctx := t.Context()
	a, b := open(t, converge.Options{}), open(t, converge.Options{})
	ta, tb := coll[Task](t, a, "tasks"), coll[Task](t, b, "tasks")
	v := Task{ID: "x", Title: "one"}
	if _, err := ta.Put(ctx, "ns", &v); err != nil {
		t.Fatal(err)
	}
	if v.Meta.Version != 1 {
		t.Fatalf("after the creating Put: version %d, want 1", v.Meta.Version)
	}
	v.Title = "two"
	if _, err := ta.Put(ctx, "ns", &v); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.Put(ctx, "ns", &v); err != nil { // nothing changed: no op
		t.Fatal(err)
	}
	if v.Meta.Version != 2 {
		t.Fatalf("after an edit and an empty save: version %d, want 2", v.Meta.Version)
	}
	syncPair(t, b, a, "ns")
	got, err := tb.Get(ctx, "ns", "x")
	if err != nil || got.Meta.Version != 2 {
		t.Fatalf("on b after sync: version %d, %v; want 2 (two ops applied)", got.Meta.Version, err)
	}
	if err := tb.Update(ctx, "ns", "x", converge.Increment("votes", 1)); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, b, "ns")
	got, err = ta.Get(ctx, "ns", "x")
	if err != nil || got.Meta.Version != 3 || got.Votes != 1 {
		t.Fatalf("on a after b's remote change: version %d votes %d, %v; want 3, 1", got.Meta.Version, got.Votes, err)
	}
	if err := ta.Delete(ctx, "ns", "x"); err != nil {
		t.Fatal(err)
	}
	v = Task{ID: "x", Title: "again"}
	if _, err := ta.Put(ctx, "ns", &v); err != nil {
		t.Fatal(err)
	}
	if v.Meta.Version != 5 {
		t.Fatalf("after delete and re-create: version %d, want 5 (it never goes back)", v.Meta.Version)
	}
}

// The metadata fields filter, order and index like declared fields, with
// the types of their Meta values: times by instant, strings, numbers.
func TestMetadataFieldsInQueriesAndIndexes(t *testing.T) {
	ctx := t.Context()
	now := int64(1_800_000_000_000)
	db := open(t, converge.Options{Clock: func() int64 { return now }})
	tasks := coll[Task](t, db, "tasks")
	for _, id := range []string{"c", "a", "b"} {
		now += 1000
		if _, err := tasks.Put(ctx, "ns", &Task{ID: id, Title: id}); err != nil {
			t.Fatal(err)
		}
	}
	now += 1000
	if err := tasks.Update(ctx, "ns", "c", converge.Set("done", true)); err != nil {
		t.Fatal(err)
	}
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	for _, indexed := range []bool{false, true} {
		if indexed {
			if err := tasks.EnsureIndex(ctx, converge.UpdatedField); err != nil {
				t.Fatal(err)
			}
			if err := tasks.EnsureIndex(ctx, converge.CreatedField); err != nil {
				t.Fatal(err)
			}
		}
		check := func(name string, q converge.Query, want ...string) {
			t.Helper()
			got, err := tasks.Find(ctx, "ns", q)
			if err != nil {
				t.Fatalf("%s (indexed %v): %v", name, indexed, err)
			}
			if !slices.Equal(taskIDs(got), want) {
				t.Errorf("%s (indexed %v): %v, want %v", name, indexed, taskIDs(got), want)
			}
		}
		check("by created", converge.Query{}.OrderBy(converge.CreatedField), "c", "a", "b")
		check("by updated desc", converge.Query{}.OrderByDesc(converge.UpdatedField), "c", "b", "a")
		check("updated after", converge.Where(converge.Gt(converge.UpdatedField, t0.Add(2500*time.Millisecond))), "b", "c")
		// An instant in another zone is the same instant.
		zone := time.FixedZone("x", 3*3600)
		check("created at", converge.Where(converge.Eq(converge.CreatedField, t0.Add(2*time.Second).In(zone))), "a")
		check("version", converge.Where(converge.Gte(converge.VersionField, 2)), "c")
		check("origin", converge.Where(converge.Eq(converge.OriginField, db.ReplicaID())), "a", "b", "c")
		if plan, err := tasks.Explain(converge.Query{}.OrderBy(converge.UpdatedField)); err != nil || (indexed && !strings.Contains(plan, converge.UpdatedField)) {
			t.Errorf("plan (indexed %v): %q, %v", indexed, plan, err)
		}
	}
	if _, err := tasks.Find(ctx, "ns", converge.Where(converge.Gt(converge.UpdatedField, "yesterday"))); !errors.Is(err, converge.ErrQuery) {
		t.Errorf("a time field compared with a string: %v, want ErrQuery", err)
	}
}

// A struct field may not take a metadata field's name.
func TestMetadataFieldNamesAreReserved(t *testing.T) {
	type Bad struct {
		ID   string `converge:"id"`
		When int64  `msgpack:"$created"`
		Meta converge.Meta
	}
	if _, err := converge.NewCollection[Bad](open(t, converge.Options{}), "bad"); !errors.Is(err, converge.ErrSchema) {
		t.Errorf("a field named $created: %v, want ErrSchema", err)
	}
}
