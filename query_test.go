package converge_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/convergedb/converge"
)

type Issue struct {
	ID       string   `msgpack:"-" converge:"id"`
	Title    string   `msgpack:"title"`
	Status   string   `msgpack:"status"`
	Priority int      `msgpack:"priority"`
	Labels   []string `msgpack:"labels" converge:"set"`
	Project  string   `msgpack:"project"`
	Meta     converge.Meta
}

// withoutMeta returns records with their Meta field cleared: their
// values, without the version each was read at, to compare.
func withoutMeta[T any](xs ...T) []T {
	out := slices.Clone(xs)
	for i := range out {
		reflect.ValueOf(&out[i]).Elem().FieldByName("Meta").SetZero()
	}
	return out
}

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func issueIDs(xs []Issue) []string { return ids(xs, func(i Issue) string { return i.ID }) }

func seedIssues(t *testing.T, c *converge.Collection[Issue], n int) {
	t.Helper()
	statuses := []string{"open", "closed", "triage"}
	for i := range n {
		is := &Issue{
			ID:       fmt.Sprintf("i%03d", i),
			Title:    fmt.Sprintf("issue %d", i),
			Status:   statuses[i%3],
			Priority: i % 5,
			Labels:   []string{fmt.Sprint("l", i%4)},
		}
		if _, err := c.Put(t.Context(), "ns", is); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQueryIndexedMatchesScan(t *testing.T) {
	ctx := t.Context()
	plain := coll[Issue](t, open(t, converge.Options{}), "issues")
	indexed := coll[Issue](t, open(t, converge.Options{}), "issues")
	seedIssues(t, plain, 60)
	if err := indexed.EnsureIndex(ctx, "status"); err != nil { // before data
		t.Fatal(err)
	}
	seedIssues(t, indexed, 60)
	// Indexes added after data are built from it.
	for _, f := range [][]string{{"priority"}, {"status", "priority"}, {"labels"}} {
		if err := indexed.EnsureIndex(ctx, f...); err != nil {
			t.Fatal(err)
		}
	}
	queries := map[string]converge.Query{
		"eq":            converge.Where(converge.Eq("status", "open")),
		"eq+order":      converge.Where(converge.Eq("status", "open")).OrderByDesc("priority").Limit(5),
		"range":         converge.Where(converge.Gte("priority", 3)).OrderBy("priority"),
		"between float": converge.Where(converge.Between("priority", 1.5, 3)),
		"in":            converge.Where(converge.In("status", "closed", "triage")).OrderBy("title"),
		"contains":      converge.Where(converge.Contains("labels", "l2")),
		"startsWith":    converge.Where(converge.StartsWith("title", "issue 1")),
		"or":            converge.Where(converge.Or(converge.Eq("status", "open"), converge.Lt("priority", 1))),
		"ne":            converge.Where(converge.Ne("status", "open")).Offset(3).Limit(7),
		"all by id":     {},
	}
	for name, q := range queries {
		a, err := plain.Find(ctx, "ns", q)
		if err != nil {
			t.Fatalf("%s: scan: %v", name, err)
		}
		b, err := indexed.Find(ctx, "ns", q)
		if err != nil {
			t.Fatalf("%s: indexed: %v", name, err)
		}
		if !slices.Equal(issueIDs(a), issueIDs(b)) {
			plan, _ := indexed.Explain(q)
			t.Errorf("%s (%s): indexed %v, scan %v", name, plan, issueIDs(b), issueIDs(a))
		}
		if len(a) == 0 && name != "none" {
			t.Errorf("%s: no results; the test data should match", name)
		}
	}
	plan, err := indexed.Explain(converge.Where(converge.Eq("status", "open")))
	if err != nil || !strings.Contains(plan, "index") {
		t.Errorf("Explain(status = open) = %q, %v; want an index plan", plan, err)
	}
	plan, err = plain.Explain(converge.Where(converge.Eq("status", "open")))
	if err != nil || !strings.Contains(plan, "scan") {
		t.Errorf("Explain without index = %q, %v; want a scan", plan, err)
	}
}

func TestIndexFollowsUpdatesDeletesAndSync(t *testing.T) {
	ctx := t.Context()
	a, b := open(t, converge.Options{}), open(t, converge.Options{})
	ia, ib := coll[Issue](t, a, "issues"), coll[Issue](t, b, "issues")
	if err := ia.EnsureIndex(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	seedIssues(t, ia, 9)
	open3 := converge.Where(converge.Eq("status", "open"))
	// Update, delete, re-create: no stale entry.
	if err := ia.Update(ctx, "ns", "i000", converge.Set("status", "closed")); err != nil {
		t.Fatal(err)
	}
	if err := ia.Delete(ctx, "ns", "i003"); err != nil {
		t.Fatal(err)
	}
	got, err := ia.Find(ctx, "ns", open3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"i006"}; !slices.Equal(issueIDs(got), want) {
		t.Errorf("after update and delete: %v, want %v", issueIDs(got), want)
	}
	if _, err := ia.Put(ctx, "ns", &Issue{ID: "i003", Status: "triage"}); err != nil {
		t.Fatal(err)
	}
	// Changes from another replica reach the index through sync.
	syncPair(t, b, a, "ns")
	if err := ib.Update(ctx, "ns", "i004", converge.Set("status", "open")); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, b, "ns")
	got, err = ia.Find(ctx, "ns", open3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"i004", "i006"}; !slices.Equal(issueIDs(got), want) {
		t.Errorf("after sync: %v, want %v", issueIDs(got), want)
	}
	// Rebuild gives the same answers.
	if err := ia.RebuildIndex(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	again, err := ia.Find(ctx, "ns", open3)
	if err != nil || !slices.Equal(issueIDs(again), issueIDs(got)) {
		t.Errorf("after rebuild: %v, %v", issueIDs(again), err)
	}
}

func TestQueryPagesWithCursor(t *testing.T) {
	ctx := t.Context()
	c := coll[Issue](t, open(t, converge.Options{}), "issues")
	seedIssues(t, c, 25)
	if err := c.EnsureIndex(ctx, "priority"); err != nil {
		t.Fatal(err)
	}
	q := converge.Query{}.OrderByDesc("priority").Limit(4)
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		p, err := c.Page(ctx, "ns", q, cursor)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, issueIDs(p.Items)...)
		if page == 1 {
			// Records change between pages: the cursor stays valid.
			if _, err := c.Put(ctx, "ns", &Issue{ID: "zzz", Priority: -1}); err != nil {
				t.Fatal(err)
			}
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	all, err := c.Find(ctx, "ns", converge.Query{}.OrderByDesc("priority"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, issueIDs(all)) {
		t.Errorf("paged %v\nwant  %v", seen, issueIDs(all))
	}
	n, err := c.Count(ctx, "ns", converge.Where(converge.Eq("priority", 0)))
	if err != nil || n != 5 {
		t.Errorf("Count(priority = 0) = %d, %v; want 5", n, err)
	}
}

func TestQueryErrors(t *testing.T) {
	ctx := t.Context()
	c := coll[Issue](t, open(t, converge.Options{}), "issues")
	seedIssues(t, c, 3)
	for name, q := range map[string]converge.Query{
		"unknown field":    converge.Where(converge.Eq("nope", 1)),
		"string vs int":    converge.Where(converge.Gt("title", 3)),
		"int vs string":    converge.Where(converge.Eq("priority", "high")),
		"startsWith int":   converge.Where(converge.StartsWith("priority", "1")),
		"order by unknown": converge.Query{}.OrderBy("nope"),
		"range on a list":  converge.Where(converge.Gt("labels", "a")),
		"nil value":        converge.Where(converge.Eq("title", nil)),
		"negative limit":   converge.Query{}.Limit(-1),
	} {
		if _, err := c.Find(ctx, "ns", q); !errors.Is(err, converge.ErrQuery) {
			t.Errorf("%s: %v, want ErrQuery", name, err)
		}
	}
	for _, cur := range []string{"garbage", "AAAA", "!!!"} {
		if _, err := c.Page(ctx, "ns", converge.Query{}.Limit(1), cur); !errors.Is(err, converge.ErrQuery) {
			t.Errorf("cursor %q: %v, want ErrQuery", cur, err)
		}
	}
	p, err := c.Page(ctx, "ns", converge.Query{}.OrderBy("title").Limit(1), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Page(ctx, "ns", converge.Query{}.OrderBy("priority").Limit(1), p.Next); !errors.Is(err, converge.ErrQuery) {
		t.Errorf("a cursor of another ordering: %v, want ErrQuery", err)
	}
	if err := c.EnsureIndex(ctx, "nope"); !errors.Is(err, converge.ErrQuery) {
		t.Errorf("index on unknown field: %v, want ErrQuery", err)
	}
}

// After a burst of changes, local and from sync, the last result a watch
// emits equals a fresh query.
func TestWatchFinalStateEqualsFreshQuery(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, b := open(t, converge.Options{}), open(t, converge.Options{})
	ia, ib := coll[Issue](t, a, "issues"), coll[Issue](t, b, "issues")
	q := converge.Where(converge.Eq("status", "open")).OrderBy("priority")
	results := make(chan []Issue, 1000)
	done := make(chan error, 1)
	go func() {
		for res, err := range ia.Watch(ctx, "ns", q) {
			if err != nil {
				done <- err
				return
			}
			results <- res.Value
		}
		done <- nil
	}()
	first := <-results
	if len(first) != 0 {
		t.Fatalf("first result %v, want empty", issueIDs(first))
	}
	for i := range 30 {
		st := []string{"open", "closed"}[i%2]
		if _, err := ia.Put(ctx, "ns", &Issue{ID: fmt.Sprint("a", i%7), Status: st, Priority: i}); err != nil {
			t.Fatal(err)
		}
		if _, err := ib.Put(ctx, "ns", &Issue{ID: fmt.Sprint("b", i%5), Status: "open", Priority: -i}); err != nil {
			t.Fatal(err)
		}
	}
	syncPair(t, a, b, "ns")
	want, err := ia.Find(ctx, "ns", q)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the watch has emitted the final state.
	for {
		res := <-results
		if slices.Equal(issueIDs(res), issueIDs(want)) && fmt.Sprint(withoutMeta(res...)) == fmt.Sprint(withoutMeta(want...)) {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch ended with %v", err)
	}
}

func TestWatchRecord(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := coll[Issue](t, open(t, converge.Options{}), "issues")
	type ev struct {
		title string
		err   error
	}
	events := make(chan ev, 100)
	go func() {
		for v, err := range c.WatchRecord(ctx, "ns", "x") {
			events <- ev{v.Value.Title, err}
		}
		close(events)
	}()
	if e := <-events; !errors.Is(e.err, converge.ErrNotFound) {
		t.Fatalf("first event %+v, want ErrNotFound", e)
	}
	if _, err := c.Put(ctx, "ns", &Issue{ID: "other"}); err != nil { // irrelevant
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "ns", &Issue{ID: "x", Title: "one"}); err != nil {
		t.Fatal(err)
	}
	if e := <-events; e.err != nil || e.title != "one" {
		t.Fatalf("after put: %+v", e)
	}
	if err := c.Delete(ctx, "ns", "x"); err != nil {
		t.Fatal(err)
	}
	if e := <-events; !errors.Is(e.err, converge.ErrNotFound) {
		t.Fatalf("after delete: %+v", e)
	}
	cancel()
	for range events {
	}
}

func TestQueryEmptyOr(t *testing.T) {
	ctx := t.Context()
	c := coll[Issue](t, open(t, converge.Options{}), "issues")
	seedIssues(t, c, 2)
	for name, q := range map[string]converge.Query{
		"Or()":              converge.Where(converge.Or()),
		"Or([]Filter{}...)": converge.Where(converge.Or([]converge.Filter{}...)),
		"And(Eq, Or())":     converge.Where(converge.Eq("status", "open"), converge.Or()),
	} {
		got, err := c.Find(ctx, "ns", q)
		if !errors.Is(err, converge.ErrQuery) {
			t.Errorf("Find(%s) = %v, %v; want ErrQuery (an Or of nothing)", name, issueIDs(got), err)
		}
	}
}
