package converge

import (
	"context"
	"fmt"
	"iter"
)

// PageNumber asks for a page by its number: page Number (from 1) of the
// pages of Size records that a query's results make. Use it with
// [Collection.PageAt] and [Collection.WatchPageAt] where a UI shows page
// numbers; cursors ([Collection.Page]) serve endless scrolling better, as
// a page number shifts when records before it come or go.
type PageNumber struct {
	Number int // from 1
	Size   int // records per page, at least 1
}

// NumberedPage is one page of a query's results, by number, with the
// totals a pager shows.
type NumberedPage[T any] struct {
	// Items are the page's records, in the query's order: none for a
	// page past the last.
	Items []T
	// Number and Size are the page asked for.
	Number, Size int
	// Total is how many records the query selects, on all pages.
	Total int
	// Pages is how many pages of Size records Total makes: 0 when there
	// are no records, so a page past it is empty.
	Pages int
}

// PageAt returns page p.Number of q's results in ns, p.Size records per
// page, with the total count and the number of pages. q's filters and
// order apply, and so do its Offset and Limit: the pages divide the
// records q returns. The page and the totals come from one read of the
// records. A page past the last has no items (it is not an error: a
// pager may show it while records are deleted). A Number or Size below 1
// is ErrQuery, as are q's errors ([Collection.Find]).
func (c *Collection[T]) PageAt(ctx context.Context, ns string, q Query, p PageNumber) (NumberedPage[T], error) {
	out := NumberedPage[T]{Number: p.Number, Size: p.Size}
	if p.Number < 1 || p.Size < 1 {
		return out, fmt.Errorf("%w: page %d of %d records: both must be at least 1", ErrQuery, p.Number, p.Size)
	}
	if q.limit < 0 || q.offset < 0 {
		return out, fmt.Errorf("%w: negative limit or offset", ErrQuery)
	}
	all := q
	all.limit, all.offset = 0, 0
	items, _, err := c.run(ctx, ns, all, "")
	if err != nil {
		return out, err
	}
	items = items[min(q.offset, len(items)):]
	if q.limit > 0 {
		items = items[:min(q.limit, len(items))]
	}
	out.Total = len(items)
	out.Pages = out.Total / p.Size // no overflow, whatever Size
	if out.Total%p.Size != 0 {
		out.Pages++
	}
	from := out.Total // a page past the last, also when (Number-1)*Size overflows
	if p.Number <= out.Pages {
		from = (p.Number - 1) * p.Size
	}
	out.Items, err = c.decodeItems(ns, items[from:from+min(p.Size, out.Total-from)])
	return out, err
}

// WatchPageAt yields page p of q's results (as [Collection.PageAt] returns
// it) now, and again whenever the page or its totals change, local
// changes and synced ones, or the namespace's sync state changes. It has
// the guarantees of [Collection.Watch]: changes that arrive while the
// consumer is busy fold into one result, errors are yielded and the watch
// goes on, and it ends when ctx ends or the DB closes.
func (c *Collection[T]) WatchPageAt(ctx context.Context, ns string, q Query, p PageNumber, opts ...WatchOption) iter.Seq2[Watched[NumberedPage[T]], error] {
	return func(yield func(Watched[NumberedPage[T]], error) bool) {
		watchValue(ctx, c.db, ns, watchOpts(opts), func(ctx context.Context) (NumberedPage[T], error) {
			return c.PageAt(ctx, ns, q, p)
		}, yield)
	}
}

// WatchCount yields how many records of ns match q's filters (as
// [Collection.Count] counts them) now, and again whenever the count
// changes or the namespace's sync state does. A change that leaves the
// count as it was yields nothing. It has the guarantees of
// [Collection.Watch].
func (c *Collection[T]) WatchCount(ctx context.Context, ns string, q Query, opts ...WatchOption) iter.Seq2[Watched[int], error] {
	return func(yield func(Watched[int], error) bool) {
		watchValue(ctx, c.db, ns, watchOpts(opts), func(ctx context.Context) (int, error) {
			return c.Count(ctx, ns, q)
		}, yield)
	}
}
