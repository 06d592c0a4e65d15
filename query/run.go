package query

import (
	"slices"
	"strings"
)

// tieDesc reports the direction of the final tie-break by id: that of the
// last Order entry, ascending when there is none.
func (q *Query) tieDesc() bool { return len(q.Order) > 0 && q.Order[len(q.Order)-1].Desc }

// Compare orders two items as the query returns them: by each Order field
// in turn (descending ones reversed), then by id. Field values compare by
// [crdt.CompareValues] (missing first, numbers by value across int and
// float, strings by bytes), equal numbers of different types float first
// (1.0 before 1), which is the byte order of their [crdt.AppendValueKey]
// keys. The id tie-break is ascending if the last Order entry is (or there
// is none) and descending otherwise: the order of an index whose entries
// end with the id, scanned forward or backward. Compare returns 0 only for
// items with the same id.
func (q *Query) Compare(a, b Item) int {
	for _, o := range q.Order {
		if o.Field == IDField {
			return dir(strings.Compare(a.ID, b.ID), o.Desc)
		}
		va, _ := fieldValue(a, o.Field)
		vb, _ := fieldValue(b, o.Field)
		if c := cmpValue(va, vb); c != 0 {
			return dir(c, o.Desc)
		}
	}
	return dir(strings.Compare(a.ID, b.ID), q.tieDesc())
}

func dir(c int, desc bool) int {
	if desc {
		return -c
	}
	return c
}

// position is a point in the query's order: the sort values of an item
// (one per Order entry) and its id.
type position struct {
	vals [][]byte
	id   string
}

func (q *Query) positionOf(it Item) position {
	p := position{vals: make([][]byte, len(q.Order)), id: it.ID}
	for i, o := range q.Order {
		p.vals[i], _ = fieldValue(it, o.Field)
	}
	return p
}

// comparePos is Compare over positions.
func (q *Query) comparePos(a, b *position) int {
	for i, o := range q.Order {
		if o.Field == IDField {
			return dir(strings.Compare(a.id, b.id), o.Desc)
		}
		if c := cmpValue(a.vals[i], b.vals[i]); c != 0 {
			return dir(c, o.Desc)
		}
	}
	return dir(strings.Compare(a.id, b.id), q.tieDesc())
}

// Run evaluates the query over items, as a scan plan does: it keeps the
// items Where matches, sorts them with [Query.Compare], starts after the
// cursor q.After (or skips q.Offset items on the first page), and keeps
// q.Limit items. It returns the page and the cursor of the next page, ""
// when no items follow the page. items is not modified; page shares its
// records. Run returns an error wrapping [ErrInvalid] for a query that
// [Query.Validate] (with no field check) refuses, [ErrBadCursor] for a bad
// cursor.
func (q *Query) Run(items []Item) (page []Item, next string, err error) {
	if err := q.Validate(nil); err != nil {
		return nil, "", err
	}
	var after *position
	if q.After != "" {
		c, err := q.decodeCursor(q.After)
		if err != nil {
			return nil, "", err
		}
		after = &c
	}
	type entry struct {
		it  Item
		pos position
	}
	var es []entry
	for _, it := range items {
		if !Match(q.Where, it) {
			continue
		}
		e := entry{it: it, pos: q.positionOf(it)}
		if after != nil && q.comparePos(&e.pos, after) <= 0 {
			continue
		}
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b entry) int { return q.comparePos(&a.pos, &b.pos) })
	if after == nil {
		es = es[min(q.Offset, len(es)):]
	}
	if q.Limit > 0 && len(es) > q.Limit {
		es = es[:q.Limit]
		next = q.cursorAt(&es[len(es)-1].pos)
	}
	page = make([]Item, len(es))
	for i, e := range es {
		page[i] = e.it
	}
	return page, next, nil
}
