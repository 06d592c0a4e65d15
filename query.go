package converge

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/materialize"
	"github.com/convergedb/converge/query"
)

// IDField names the record id in filters and orderings.
const IDField = query.IDField

// Filter is a predicate on a collection's fields. Build filters with [Eq],
// [Ne], [Gt], [Gte], [Lt], [Lte], [Between], [In], [Contains],
// [StartsWith], [And] and [Or]. Values are checked against the field's Go
// type when the query runs.
type Filter struct {
	field  string
	op     query.Op
	values []any
	and    []Filter
	or     []Filter
	isOr   bool // an Or, even of no filters
	// late, when set, makes this a filter computed when the query runs,
	// from other records of its namespace (a relation's WhereParent or
	// WhereRelated; see relation.go).
	late *lateFilter
	// err, when set, is returned by the query using the filter (a
	// [Field] that FieldOf could not resolve).
	err error
}

// Eq matches records whose field equals v (numbers compare by value, so 1
// equals 1.0).
func Eq(field string, v any) Filter { return cond(field, query.Eq, v) }

// Ne matches records whose field differs from v (or is missing).
func Ne(field string, v any) Filter { return cond(field, query.Ne, v) }

// Gt matches records whose field is greater than v, as Go's > compares
// them (so never NaN; a NaN v, or a field of a type with no order, is
// ErrQuery).
func Gt(field string, v any) Filter { return cond(field, query.Gt, v) }

// Gte matches records whose field is at least v.
func Gte(field string, v any) Filter { return cond(field, query.Gte, v) }

// Lt matches records whose field is less than v.
func Lt(field string, v any) Filter { return cond(field, query.Lt, v) }

// Lte matches records whose field is at most v.
func Lte(field string, v any) Filter { return cond(field, query.Lte, v) }

// Between matches records whose field is in [lo, hi].
func Between(field string, lo, hi any) Filter { return cond(field, query.Between, lo, hi) }

// In matches records whose field equals one of vs.
func In(field string, vs ...any) Filter { return cond(field, query.In, vs...) }

// Contains matches records whose set field holds v, or whose string field
// contains the string v.
func Contains(field string, v any) Filter { return cond(field, query.Contains, v) }

// StartsWith matches records whose string field starts with prefix.
func StartsWith(field, prefix string) Filter { return cond(field, query.StartsWith, prefix) }

// And matches records that match every filter.
func And(fs ...Filter) Filter { return Filter{and: fs} }

// Or matches records that match at least one filter.
func Or(fs ...Filter) Filter { return Filter{or: fs, isOr: true} }

func cond(field string, op query.Op, vs ...any) Filter {
	return Filter{field: field, op: op, values: vs}
}

// Query selects, orders and pages records of a collection. The zero Query
// selects every record in id order. Queries are values: each method returns
// a modified copy.
type Query struct {
	where  []Filter
	order  []query.Order
	limit  int
	offset int
}

// Where returns a query of the records matching every filter.
func Where(fs ...Filter) Query { return Query{where: fs} }

// Where returns q with more filters, all of which must match.
func (q Query) Where(fs ...Filter) Query {
	q.where = append(q.where[:len(q.where):len(q.where)], fs...)
	return q
}

// OrderBy returns q ordered (next) by field, ascending, as Go orders the
// field's values: numbers numerically, strings and byte slices by bytes,
// false before true, time.Time by instant; a missing field first. A field
// whose type has no order (a struct, map, interface, set, or a slice of
// other than bytes) makes the query fail with an error wrapping ErrQuery
// when it runs.
func (q Query) OrderBy(field string) Query {
	q.order = append(q.order[:len(q.order):len(q.order)], query.Order{Field: field})
	return q
}

// OrderByDesc returns q ordered (next) by field, descending (see
// [Query.OrderBy]).
func (q Query) OrderByDesc(field string) Query {
	q.order = append(q.order[:len(q.order):len(q.order)], query.Order{Field: field, Desc: true})
	return q
}

// Limit returns q returning at most n records (0: no limit).
func (q Query) Limit(n int) Query { q.limit = n; return q }

// Offset returns q skipping its first n records.
func (q Query) Offset(n int) Query { q.offset = n; return q }

// compile turns q into a query.Query for collection schema s: values are
// encoded and checked against the fields' types. late turns each filter
// computed at run time into the filter it stands for.
func (s *schema) compile(q Query, cursor string, late func(*lateFilter) (Filter, error)) (*query.Query, error) {
	if q.limit < 0 || q.offset < 0 {
		return nil, fmt.Errorf("%w: negative limit or offset", ErrQuery)
	}
	out := &query.Query{Order: q.order, Limit: q.limit, Offset: q.offset, After: cursor}
	if len(q.where) > 0 {
		p, err := s.compileFilter(And(q.where...), late)
		if err != nil {
			return nil, err
		}
		out.Where = p
	}
	for _, o := range q.order {
		if err := s.checkOrderable(o.Field); err != nil {
			return nil, err
		}
	}
	if err := out.Validate(func(f string) bool { _, err := s.fieldType(f); return err == nil }); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	return out, nil
}

func (s *schema) compileFilter(f Filter, late func(*lateFilter) (Filter, error)) (query.Pred, error) {
	switch {
	case f.err != nil:
		return nil, fmt.Errorf("%w: %w", ErrQuery, f.err)
	case f.late != nil:
		g, err := late(f.late)
		if err != nil {
			return nil, err
		}
		return s.compileFilter(g, late)
	case f.isOr:
		// An Or of no filters matches nothing; the query package refuses
		// it as a malformed query rather than return an empty result.
		preds := make([]query.Pred, 0, len(f.or))
		for _, g := range f.or {
			p, err := s.compileFilter(g, late)
			if err != nil {
				return nil, err
			}
			preds = append(preds, p)
		}
		return &query.Or{Preds: preds}, nil
	case f.and != nil || f.field == "":
		preds := make([]query.Pred, 0, len(f.and))
		for _, g := range f.and {
			p, err := s.compileFilter(g, late)
			if err != nil {
				return nil, err
			}
			preds = append(preds, p)
		}
		return &query.And{Preds: preds}, nil
	}
	ft, err := s.fieldType(f.field)
	if err != nil {
		return nil, err
	}
	if s.isSet(f.field) && f.op != query.Eq && f.op != query.Ne && f.op != query.Contains {
		return nil, fmt.Errorf("%w: field %q is a set: use Contains, Eq or Ne", ErrQuery, f.field)
	}
	c := &query.Cond{Field: f.field, Op: f.op, Values: make([][]byte, len(f.values))}
	for i, v := range f.values {
		if err := checkComparable(f.field, ft, f.op, v); err != nil {
			return nil, err
		}
		if c.Values[i], err = encodeValue(v); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrQuery, err)
		}
	}
	return c, nil
}

// fieldType returns the Go type of a field, the element type for a set
// field, or string for the id; the type of a metadata field's values.
// An unknown field is ErrQuery wrapping a *FieldError (ErrField).
func (s *schema) fieldType(name string) (reflect.Type, error) {
	if name == IDField {
		return reflect.TypeFor[string](), nil
	}
	if t, ok := metaFieldTypes[name]; ok {
		return t, nil
	}
	i, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %w", ErrQuery, s.fieldError(name))
	}
	return s.typ.FieldByIndex(s.fields[i].index).Type, nil
}

// Page is one page of a query's results.
type Page[T any] struct {
	Items []T
	// Next is the cursor of the next page, "" on the last page. It stays
	// valid while records change: the next page starts after the last
	// record of this one, in the query's order.
	Next string
}

// indexes returns the collection's indexes for the planner.
func (c *Collection[T]) indexes() []query.Index {
	defs := c.db.log.Indexes(c.name)
	out := make([]query.Index, len(defs))
	for i, d := range defs {
		out[i] = query.Index{Name: d.Name, Fields: d.Fields}
		for _, f := range d.Fields {
			if j, ok := c.schema.byName[f]; ok && c.schema.fields[j].kind == crdt.KindSet {
				out[i].Sets = append(out[i].Sets, f)
			}
		}
	}
	return out
}

// run executes q (with cursor) in ns and returns the page of items and the
// next cursor.
func (c *Collection[T]) run(ctx context.Context, ns string, q Query, cursor string) ([]query.Item, string, error) {
	trackCollection(ctx, ns, c.name) // for WatchFunc
	qq, err := c.compileIn(ctx, ns, q, cursor)
	if err != nil {
		return nil, "", err
	}
	return c.runCompiled(ctx, ns, qq, cursor)
}

// compileIn compiles q (with cursor) for ns, resolving its filters on
// related records there.
func (c *Collection[T]) compileIn(ctx context.Context, ns string, q Query, cursor string) (*query.Query, error) {
	return c.schema.compile(q, cursor, func(l *lateFilter) (Filter, error) { return l.resolve(ctx, ns) })
}

// runScan runs qq in ns over every record of the collection, for a query
// no index serves.
func (c *Collection[T]) runScan(ctx context.Context, ns string, qq *query.Query) ([]query.Item, string, error) {
	var items []query.Item
	for e, err := range c.db.log.Records(ctx, ns, c.name) {
		if err != nil {
			return nil, "", storeErr(err)
		}
		if e.State.Exists() {
			items = append(items, query.Item{ID: e.Key, Rec: e.State})
		}
	}
	page, next, err := qq.Run(items)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrQuery, err)
	}
	return page, next, nil
}

// runCompiled executes the compiled query qq (with cursor) in ns and
// returns the page of items and the next cursor.
func (c *Collection[T]) runCompiled(ctx context.Context, ns string, qq *query.Query, cursor string) ([]query.Item, string, error) {
	if _, err := qq.AfterCursor(query.Item{}); err != nil && cursor != "" {
		return nil, "", fmt.Errorf("%w: %w", ErrQuery, err)
	}
	plan := qq.Plan(c.indexes())
	if plan.Index == "" {
		return c.runScan(ctx, ns, qq)
	}
	idx := materialize.Index{Name: plan.Index}
	for _, d := range c.db.log.Indexes(c.name) {
		if d.Name == plan.Index {
			idx = d
		}
	}
	seen := make(map[string]bool)
	var candidates []query.Item
	var page []query.Item
	skip := qq.Offset
	if qq.After != "" {
		skip = 0 // the cursor holds the position; Offset applies to the first page
	}
	ranges := plan.Ranges
	if plan.Reverse {
		ranges = slices.Clone(ranges)
		slices.Reverse(ranges)
	}
	for _, rg := range ranges {
		for e, err := range c.db.log.IndexScan(ctx, ns, c.name, idx, rg.Lo, rg.Hi, plan.Reverse) {
			if err != nil {
				return nil, "", storeErr(err)
			}
			if seen[e.Key] {
				continue
			}
			seen[e.Key] = true
			st, err := c.db.log.Get(ctx, ns, c.name, e.Key)
			if err != nil {
				return nil, "", storeErr(err)
			}
			it := query.Item{ID: e.Key, Rec: st}
			if !st.Exists() || !query.Match(qq.Where, it) {
				continue
			}
			if !plan.Ordered {
				candidates = append(candidates, it)
				continue
			}
			// Ordered: entries come in the query's order; stream.
			if after, err := qq.AfterCursor(it); err != nil {
				return nil, "", fmt.Errorf("%w: %w", ErrQuery, err)
			} else if !after {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			if qq.Limit > 0 && len(page) == qq.Limit {
				return page, qq.CursorFor(page[len(page)-1]), nil
			}
			page = append(page, it)
		}
	}
	if plan.Ordered {
		return page, "", nil
	}
	page, next, err := qq.Run(candidates)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrQuery, err)
	}
	return page, next, nil
}

// decodeItems decodes items into Ts. The records that do not decode are
// left out and reported by a *RecordErrors, returned with the others.
func (c *Collection[T]) decodeItems(ns string, items []query.Item) ([]T, error) {
	out := make([]T, 0, len(items))
	var bad *RecordErrors
	for _, it := range items {
		v, err := c.decode(ns, it.ID, it.Rec)
		if err != nil {
			if bad == nil {
				bad = &RecordErrors{Namespace: ns, Collection: c.name}
			}
			bad.add(it.ID, err)
			continue
		}
		out = append(out, v)
	}
	return out, bad.orNil()
}

// Find returns the records of namespace ns that q selects, in q's order.
// It returns an error wrapping ErrQuery for an unknown field or a value
// that cannot be compared with its field. Records that do not fit T (nor
// its migrations) are left out and reported by a *[RecordErrors], which
// Find returns with the records that do.
func (c *Collection[T]) Find(ctx context.Context, ns string, q Query) ([]T, error) {
	items, _, err := c.run(ctx, ns, q, "")
	if err != nil {
		return nil, err
	}
	return c.decodeItems(ns, items)
}

// Page returns the page of q's results after cursor ("" for the first
// page), of at most q's limit records, and the cursor of the next page.
// A malformed cursor, or one made for another ordering, is ErrQuery.
func (c *Collection[T]) Page(ctx context.Context, ns string, q Query, cursor string) (Page[T], error) {
	items, next, err := c.run(ctx, ns, q, cursor)
	if err != nil {
		return Page[T]{}, err
	}
	v, err := c.decodeItems(ns, items)
	return Page[T]{Items: v, Next: next}, err
}

// Count returns how many records of ns match q's filters (ignoring its
// limit and offset).
func (c *Collection[T]) Count(ctx context.Context, ns string, q Query) (int, error) {
	q.limit, q.offset = 0, 0
	items, _, err := c.run(ctx, ns, q, "")
	return len(items), err
}

// Explain says how q would run: which index and ranges, or a scan, and
// whether the results need sorting. Explain reads no records, so a filter
// on related records ([BelongsTo.WhereParent], [ManyToMany.WhereRelated])
// is planned with a stand-in for the ids it resolves to when the query
// runs, shown as "<ids from collection>": the plan shows the index
// choice, not the number of ranges the actual ids give.
func (c *Collection[T]) Explain(q Query) (string, error) {
	qq, err := c.schema.compile(q, "", func(l *lateFilter) (Filter, error) { return l.stub, nil })
	if err != nil {
		return "", err
	}
	return qq.Plan(c.indexes()).String(), nil
}

// EnsureIndex makes sure the collection has an index on fields (a compound
// index if several), in every namespace, building it from the stored
// records if it is new. Indexes are local to this replica and kept current
// by every write and every sync, in the same batch.
func (c *Collection[T]) EnsureIndex(ctx context.Context, fields ...string) error {
	idx, err := c.indexDef(fields)
	if err != nil {
		return err
	}
	if err := c.db.log.EnsureIndex(ctx, c.name, idx); err != nil {
		return storeErr(fmt.Errorf("converge: %w", err))
	}
	return nil
}

// RebuildIndex rebuilds the index on fields from the stored records.
func (c *Collection[T]) RebuildIndex(ctx context.Context, fields ...string) error {
	idx, err := c.indexDef(fields)
	if err != nil {
		return err
	}
	if err := c.db.log.RebuildIndex(ctx, c.name, idx.Name); err != nil {
		return storeErr(fmt.Errorf("converge: %w", err))
	}
	return nil
}

func (c *Collection[T]) indexDef(fields []string) (materialize.Index, error) {
	if len(fields) == 0 {
		return materialize.Index{}, fmt.Errorf("%w: an index needs fields", ErrInvalid)
	}
	for _, f := range fields {
		if _, ok := c.schema.byName[f]; !ok && !crdt.IsMetaField(f) {
			return materialize.Index{}, fmt.Errorf("%w: index: %w", ErrQuery, c.schema.fieldError(f))
		}
	}
	return materialize.Index{Name: strings.Join(fields, ","), Fields: fields}, nil
}

// fingerprint identifies a result: the ids and states of its items, with
// their applied counts (Meta.Version), which the state's encoding leaves
// out: an op that changes nothing else (one that loses to a newer write)
// still changes the Version a result shows.
func fingerprint(items []query.Item, next string) [32]byte {
	h := sha256.New()
	var buf []byte
	for _, it := range items {
		buf = crdt.EncodeString(it.ID)
		h.Write(buf)
		if it.Rec == nil {
			h.Write([]byte{0})
			continue
		}
		h.Write([]byte{1})
		h.Write(binary.BigEndian.AppendUint64(nil, it.Rec.Applied))
		h.Write(it.Rec.Encode())
	}
	h.Write([]byte(next))
	var out [32]byte
	h.Sum(out[:0])
	return out
}
