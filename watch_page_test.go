package converge_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/convergedb/converge"
)

func TestPageAt(t *testing.T) {
	ctx := t.Context()
	c := coll[Issue](t, open(t, converge.Options{}), "issues")
	for i := range 7 {
		must(c.Put(ctx, "ns", &Issue{ID: fmt.Sprint("i", i), Status: "open", Priority: 10 - i}))(t)
	}
	must(c.Put(ctx, "ns", &Issue{ID: "closed", Status: "closed"}))(t)
	q := converge.Where(converge.Eq("status", "open")).OrderBy("priority")
	for _, tc := range []struct {
		name        string
		q           converge.Query
		p           converge.PageNumber
		ids         []string
		total, pges int
	}{
		{"first", q, converge.PageNumber{Number: 1, Size: 3}, []string{"i6", "i5", "i4"}, 7, 3},
		{"middle", q, converge.PageNumber{Number: 2, Size: 3}, []string{"i3", "i2", "i1"}, 7, 3},
		{"last, short", q, converge.PageNumber{Number: 3, Size: 3}, []string{"i0"}, 7, 3},
		{"past the last", q, converge.PageNumber{Number: 4, Size: 3}, nil, 7, 3},
		{"far past the last", q, converge.PageNumber{Number: math.MaxInt, Size: math.MaxInt}, nil, 7, 1},
		{"one page of all", q, converge.PageNumber{Number: 1, Size: 100}, []string{"i6", "i5", "i4", "i3", "i2", "i1", "i0"}, 7, 1},
		{"q's offset and limit first", q.Offset(1).Limit(4), converge.PageNumber{Number: 2, Size: 3}, []string{"i2"}, 4, 2},
		{"no records", converge.Where(converge.Eq("status", "none")), converge.PageNumber{Number: 1, Size: 3}, nil, 0, 0},
		{"indexed order", converge.Query{}.OrderByDesc(converge.IDField), converge.PageNumber{Number: 1, Size: 2}, []string{"i6", "i5"}, 8, 4},
	} {
		p, err := c.PageAt(ctx, "ns", tc.q, tc.p)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := issueIDs(p.Items); !slices.Equal(got, tc.ids) || p.Total != tc.total || p.Pages != tc.pges || p.Number != tc.p.Number || p.Size != tc.p.Size {
			t.Errorf("%s: PageAt = %v total %d pages %d (number %d size %d); want %v total %d pages %d",
				tc.name, got, p.Total, p.Pages, p.Number, p.Size, tc.ids, tc.total, tc.pges)
		}
	}
	for _, p := range []converge.PageNumber{{0, 3}, {1, 0}, {-1, 3}} {
		if _, err := c.PageAt(ctx, "ns", q, p); !errors.Is(err, converge.ErrQuery) {
			t.Errorf("PageAt(%+v) = %v, want ErrQuery", p, err)
		}
	}
	if _, err := c.PageAt(ctx, "ns", converge.Where(converge.Eq("nope", 1)), converge.PageNumber{Number: 1, Size: 1}); !errors.Is(err, converge.ErrQuery) {
		t.Errorf("PageAt on an unknown field = %v, want ErrQuery", err)
	}
}

// TestWatchPageAt: a watched page updates its items and its totals, and
// yields nothing for a change that alters neither.
func TestWatchPageAt(t *testing.T) {
	ctx := t.Context()
	c := coll[Issue](t, open(t, converge.Options{}), "issues")
	for i := range 5 {
		must(c.Put(ctx, "ns", &Issue{ID: fmt.Sprint("i", i), Status: "open", Priority: i}))(t)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	q := converge.Where(converge.Eq("status", "open")).OrderBy("priority")
	results := watchAll(c.WatchPageAt(wctx, "ns", q, converge.PageNumber{Number: 2, Size: 2}))
	expect := func(what string, ids []string, total, pages int) {
		t.Helper()
		w := nextResult(t, results)
		if w.err != nil || !slices.Equal(issueIDs(w.Value.Items), ids) || w.Value.Total != total || w.Value.Pages != pages {
			t.Fatalf("%s: %v total %d pages %d, %v; want %v total %d pages %d", what,
				issueIDs(w.Value.Items), w.Value.Total, w.Value.Pages, w.err, ids, total, pages)
		}
	}
	expect("first", []string{"i2", "i3"}, 5, 3)
	must(c.Put(ctx, "ns", &Issue{ID: "x", Status: "closed"}))(t) // not selected: no result
	must(c.Put(ctx, "ns", &Issue{ID: "i5", Status: "open", Priority: 9}))(t)
	expect("a record on page 3", []string{"i2", "i3"}, 6, 3) // the totals changed
	update(t, c, "i4", converge.Set("priority", -1))
	expect("a record moved to page 1", []string{"i1", "i2"}, 6, 3)
	update(t, c, "i0", converge.Set("status", "closed"))
	expect("a record left", []string{"i2", "i3"}, 5, 3)
}

// TestWatchCount: a live count yields when the count changes, and only
// then.
func TestWatchCount(t *testing.T) {
	ctx := t.Context()
	c := coll[Issue](t, open(t, converge.Options{}), "issues")
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	results := watchAll(c.WatchCount(wctx, "ns", converge.Where(converge.Eq("status", "open"))))
	expect := func(what string, n int) {
		t.Helper()
		if w := nextResult(t, results); w.err != nil || w.Value != n {
			t.Fatalf("%s: count %d, %v; want %d", what, w.Value, w.err, n)
		}
	}
	expect("first", 0)
	must(c.Put(ctx, "ns", &Issue{ID: "a", Status: "open"}))(t)
	expect("one open", 1)
	update(t, c, "a", converge.Set("title", "renamed"))          // the count stays
	must(c.Put(ctx, "ns", &Issue{ID: "b", Status: "closed"}))(t) // the count stays
	must(c.Put(ctx, "ns", &Issue{ID: "c", Status: "open"}))(t)
	expect("two open", 2)
	if err := c.Delete(ctx, "ns", "a"); err != nil {
		t.Fatal(err)
	}
	expect("one deleted", 1)
}
