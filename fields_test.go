package converge_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/convergedb/converge"
)

// A field name the collection does not have fails the query, update,
// index or relation that uses it, naming the valid fields and the msgpack
// name the Go name stands for.
func TestUnknownFieldsAreReportedWithSuggestions(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	tasks := coll[Task](t, db, "tasks")
	id, err := tasks.Put(ctx, "ns", &Task{Title: "a"})
	if err != nil {
		t.Fatal(err)
	}
	_, findErr := tasks.Find(ctx, "ns", converge.Where(converge.Eq("Title", "a")))
	_, orderErr := tasks.Find(ctx, "ns", converge.Query{}.OrderBy("tilte"))
	_, countErr := tasks.Count(ctx, "ns", converge.Where(converge.Or(converge.Eq("done", true), converge.Eq("DONE", true))))
	tests := []struct {
		name         string
		err          error
		want         error
		field, guess string
	}{
		{"filter by the Go name", findErr, converge.ErrQuery, "Title", "title"},
		{"order by a typo", orderErr, converge.ErrQuery, "tilte", "title"},
		{"nested filter, wrong case", countErr, converge.ErrQuery, "DONE", "done"},
		{"update", tasks.Update(ctx, "ns", id, converge.Set("Votes", 1)), converge.ErrField, "Votes", "votes"},
		{"index", tasks.EnsureIndex(ctx, "Done"), converge.ErrQuery, "Done", "done"},
		{"no guess", tasks.Update(ctx, "ns", id, converge.Set("colour", "red")), converge.ErrField, "colour", ""},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, converge.ErrField) || !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v, want ErrField and %v", tt.name, tt.err, tt.want)
			continue
		}
		fe, ok := errors.AsType[*converge.FieldError](tt.err)
		if !ok || fe.Field != tt.field || fe.Suggest != tt.guess || fe.Collection != "tasks" {
			t.Errorf("%s: %#v, want field %q, suggestion %q", tt.name, fe, tt.field, tt.guess)
		}
		if msg := tt.err.Error(); !strings.Contains(msg, "valid: id, title, done, tags, votes, $created") {
			t.Errorf("%s: %q does not list the valid names", tt.name, msg)
		}
	}
	want := `unknown field "Title" in collection tasks; did you mean "title"? valid: id, title, done, tags, votes, $created, $updated, $origin, $updatedBy, $version`
	if !strings.HasSuffix(findErr.Error(), want) {
		t.Errorf("message %q, want it to end with %q", findErr, want)
	}
}

// A Field chosen by a selector has the msgpack name of the field it
// points to, and typed filters and updates.
func TestFieldOf(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	tasks := coll[Task](t, db, "tasks")
	title := converge.FieldOf(func(t *Task) *string { return &t.Title })
	votes := converge.FieldOf(func(t *Task) *int64 { return &t.Votes })
	tags := converge.FieldOf(func(t *Task) *[]string { return &t.Tags })
	id := converge.FieldOf(func(t *Task) *string { return &t.ID })
	if title.Name() != "title" || votes.Name() != "votes" || tags.Name() != "tags" || id.Name() != converge.IDField {
		t.Fatalf("names %q %q %q %q", title.Name(), votes.Name(), tags.Name(), id.Name())
	}
	for _, s := range []string{"a", "b", "c"} {
		if _, err := tasks.Put(ctx, "ns", &Task{ID: s, Title: "t" + s, Tags: []string{s}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tasks.Update(ctx, "ns", "b", votes.Set(3), title.Set("tb2")); err != nil {
		t.Fatal(err)
	}
	got, err := tasks.Find(ctx, "ns", converge.Where(title.In("ta", "tb2"), votes.Lt(5), tags.Contains("b")).OrderBy(title.Name()))
	if err != nil || len(got) != 1 || got[0].ID != "b" || got[0].Votes != 3 {
		t.Fatalf("typed query: %+v, %v; want b with 3 votes", got, err)
	}
	bad := converge.FieldOf(func(t *Task) *converge.Meta { return &t.Meta })
	if bad.Err() == nil || !errors.Is(bad.Err(), converge.ErrField) {
		t.Fatalf("a selector of the Meta field: %v, want ErrField", bad.Err())
	}
	if _, err := tasks.Find(ctx, "ns", converge.Where(converge.FieldOf(func(t *Task) *string { return new(string) }).Eq("x"))); !errors.Is(err, converge.ErrField) {
		t.Errorf("a selector pointing elsewhere, used in a query: %v, want ErrField", err)
	}
	if err := tasks.Update(ctx, "ns", "a", converge.FieldOf(func(t *Task) *converge.Meta { return &t.Meta }).Set(converge.Meta{})); !errors.Is(err, converge.ErrField) {
		t.Errorf("a bad Field in an update: %v, want ErrField", err)
	}
}
