package converge

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"reflect"
	"slices"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/query"
)

// BelongsTo relates each record of collection From (the child) to at most
// one record of collection To (the parent): a declared string field of F,
// the foreign key, holds the parent's id; empty means no parent. The
// reverse side, a parent's children (has-many), is the query on that
// field; [BelongsTo.EnsureIndex] indexes it. From and To may be the same
// collection (a tree). A BelongsTo is safe for concurrent use.
//
// Relations are declared in code, on collections of one DB; nothing about
// them is stored, and the store does not enforce them. A key may name a
// record that does not exist: one never created, deleted here, or deleted
// on another replica concurrently with the write of the key, which no
// merge can prevent. Such a dangling key is not an error of the store; the
// relations' reads skip it or report ErrNotFound, as each method says.
// Deleting a record neither deletes nor changes the records pointing at
// it.
//
// A read through a relation reads several records one after another, not
// one snapshot: a write that commits meanwhile may show in one part of the
// result and not in the other. The watches re-read after every relevant
// change, so the result they settle on is the current state.
type BelongsTo[F, T any] struct {
	from  *Collection[F]
	to    *Collection[T]
	field string
	index []int // of the field in F
}

// NewBelongsTo declares that each record of from belongs to the record of
// to whose id its field holds. field (the msgpack name) must be a declared
// plain string field of F, else the error wraps ErrSchema; from and to
// must be collections of one DB, else ErrInvalid.
func NewBelongsTo[F, T any](from *Collection[F], field string, to *Collection[T]) (*BelongsTo[F, T], error) {
	if from == nil || to == nil || from.db != to.db {
		return nil, fmt.Errorf("%w: a relation needs two collections of one DB", ErrInvalid)
	}
	sf, err := relationField(from.schema, field)
	if err != nil {
		return nil, err
	}
	if sf.kind != crdt.KindRegister || from.schema.typ.FieldByIndex(sf.index).Type.Kind() != reflect.String {
		return nil, fmt.Errorf("%w: %v: foreign key %q must be a plain string field", ErrSchema, from.schema.typ, field)
	}
	return &BelongsTo[F, T]{from: from, to: to, field: field, index: sf.index}, nil
}

// EnsureIndex makes sure From has an index on the foreign key, so that
// [BelongsTo.Children] and [BelongsTo.WhereParent] read only the records
// they need instead of scanning From. The results are the same without it.
func (r *BelongsTo[F, T]) EnsureIndex(ctx context.Context) error {
	return r.from.EnsureIndex(ctx, r.field)
}

// Parent returns the parent of record fromID of ns. It returns an error
// wrapping ErrNotFound if the child does not exist, has an empty foreign
// key, or its key names a parent that does not exist (a dangling key).
func (r *BelongsTo[F, T]) Parent(ctx context.Context, ns, fromID string) (T, error) {
	var zero T
	child, err := r.from.Get(ctx, ns, fromID)
	if err != nil {
		return zero, err
	}
	key := reflect.ValueOf(&child).Elem().FieldByIndex(r.index).String()
	if key == "" {
		return zero, errorf("converge: %s/%s/%s has no %s: %w", ns, r.from.name, fromID, r.field, ErrNotFound)
	}
	return r.to.Get(ctx, ns, key)
}

// Children returns the records of From in ns whose foreign key is toID
// and that q selects, in q's order (q's filters, order, limit and offset
// apply). It does not read the parent: the children of a parent that does
// not exist are the records that still point at it. An empty toID has no
// children.
func (r *BelongsTo[F, T]) Children(ctx context.Context, ns, toID string, q Query) ([]F, error) {
	return r.from.Find(ctx, ns, r.ChildrenQuery(toID, q))
}

// ChildrenQuery returns the query on From that [BelongsTo.Children] runs:
// q with the condition that the foreign key is toID. Use it with
// [Collection.Page], [Collection.Count], [Collection.Watch] or
// [Collection.Explain].
func (r *BelongsTo[F, T]) ChildrenQuery(toID string, q Query) Query {
	if toID == "" {
		return q.Where(r.none())
	}
	return q.Where(Eq(r.field, toID))
}

// WhereParent returns a filter on From: the records whose parent exists
// and matches every filter of fs (filters on T's fields; none: any
// existing parent). It is resolved each time a query using it runs: it
// finds the ids of the matching parents in the query's namespace and
// becomes In(field, ids...), which an index on the foreign key serves
// (up to 256 ids; beyond, the query scans From); when no parent matches
// it matches no record. Filters on T may use relations of T in turn. The
// matching ids are held in memory and each candidate is checked against
// them one by one: for a filter that many parents match, a field on the
// child may serve better. A watch of a query using it re-reads on changes
// to To as well.
func (r *BelongsTo[F, T]) WhereParent(fs ...Filter) Filter {
	return relationFilter(r.to, fs, r.none(), In(r.field, stubValue(r.to.name)),
		func(ids []any) Filter { return In(r.field, ids...) })
}

// none is a filter on From that matches no record: no string is less
// than "", and range conditions never match a missing field. An index on
// the foreign key plans it as an empty range.
func (r *BelongsTo[F, T]) none() Filter { return Lt(r.field, "") }

// WatchWithChildren yields parent toID of ns with its children that q
// selects (as [BelongsTo.Children] returns them) now, and again after
// every change, local or from sync, to the parent or to From (or to the
// collections q's filters on related records read) that alters either.
// While the parent does not exist it yields ErrNotFound, a zero Record and
// the children still pointing at toID, and goes on watching. It has the
// guarantees of [Collection.Watch]: changes that arrive while the consumer
// is busy fold into one result, writers never wait for it, and the last
// result it yields is the current state; each result carries the
// namespace's sync state ([Watched]); errors are yielded and the watch goes
// on until ctx ends or the DB closes.
func (r *BelongsTo[F, T]) WatchWithChildren(ctx context.Context, ns, toID string, q Query, opts ...WatchOption) iter.Seq2[Watched[WithRelated[T, F]], error] {
	cq := r.ChildrenQuery(toID, q)
	reads := map[string]bool{r.from.name: true}
	filterReads(cq.where, reads)
	relevant := func(coll, id string) bool { return coll == r.to.name && id == toID || reads[coll] }
	return func(yield func(Watched[WithRelated[T, F]], error) bool) {
		r.to.watch(ctx, ns, nil, "", opts,
			func() ([]query.Item, string, watchSpec, error) {
				st, err := r.to.db.log.Get(ctx, ns, r.to.name, toID)
				if err != nil {
					return nil, "", watchSpec{}, storeErr(err)
				}
				items, next, err := r.from.run(ctx, ns, cq, "")
				if err != nil {
					return nil, "", watchSpec{}, err
				}
				return append([]query.Item{{ID: toID, Rec: st}}, items...), next, watchSpec{match: relevant}, nil
			},
			func(items []query.Item, _ string, err error, m syncMark) bool {
				return emitWithRelated(yield, err, m, func() (WithRelated[T, F], error) {
					v, err := r.to.decode(ns, toID, items[0].Rec)
					rel, derr := r.from.decodeItems(ns, items[1:])
					if derr != nil {
						return WithRelated[T, F]{}, derr
					}
					return WithRelated[T, F]{Record: v, Related: rel}, err
				})
			})
	}
}

// ManyToMany relates each record of collection From to any number of
// records of collection To: a declared set field of F (tagged
// `converge:"set"`, of strings) holds their ids. Adding and removing ids
// merge as the set does: concurrent adds of different ids all survive. The
// reverse side, the From records that name a To record, is the query
// Contains(field, id); [ManyToMany.EnsureIndex] indexes it. From and To
// may be the same collection. A ManyToMany is safe for concurrent use. Ids
// that name no record are skipped, as [BelongsTo] describes.
type ManyToMany[F, T any] struct {
	from  *Collection[F]
	to    *Collection[T]
	field string
	index []int // of the set field in F
}

// NewManyToMany declares that each record of from is related to the
// records of to whose ids its set field holds. setField (the msgpack
// name) must be a declared set field of F whose elements are strings
// ([]string), else the error wraps ErrSchema; from and to must be
// collections of one DB, else ErrInvalid.
func NewManyToMany[F, T any](from *Collection[F], setField string, to *Collection[T]) (*ManyToMany[F, T], error) {
	if from == nil || to == nil || from.db != to.db {
		return nil, fmt.Errorf("%w: a relation needs two collections of one DB", ErrInvalid)
	}
	sf, err := relationField(from.schema, setField)
	if err != nil {
		return nil, err
	}
	if sf.kind != crdt.KindSet || from.schema.typ.FieldByIndex(sf.index).Type.Elem().Kind() != reflect.String {
		return nil, fmt.Errorf("%w: %v: %q must be a set field of strings (converge:\"set\")", ErrSchema, from.schema.typ, setField)
	}
	return &ManyToMany[F, T]{from: from, to: to, field: setField, index: sf.index}, nil
}

// EnsureIndex makes sure From has an index on the set field (one entry per
// id), so that [ManyToMany.Reverse] and [ManyToMany.WhereRelated] read
// only the records they need. The results are the same without it.
func (r *ManyToMany[F, T]) EnsureIndex(ctx context.Context) error {
	return r.from.EnsureIndex(ctx, r.field)
}

// Related returns the records of To that record fromID of ns names, in id
// order, skipping the ids of records that do not exist. It returns an
// error wrapping ErrNotFound if record fromID does not exist.
func (r *ManyToMany[F, T]) Related(ctx context.Context, ns, fromID string) ([]T, error) {
	st, _, items, err := r.read(ctx, ns, fromID)
	if err != nil {
		return nil, err
	}
	if !st.Exists() {
		_, err := r.from.decode(ns, fromID, st)
		return nil, err
	}
	return r.to.decodeItems(ns, items)
}

// read reads record fromID of ns (its state, which may not exist), the
// ids its set holds (distinct and sorted), and the states of the To
// records of those ids that exist.
func (r *ManyToMany[F, T]) read(ctx context.Context, ns, fromID string) (*crdt.Record, []string, []query.Item, error) {
	trackRecord(ctx, ns, r.from.name, fromID) // for WatchFunc
	st, err := r.from.db.log.Get(ctx, ns, r.from.name, fromID)
	if err != nil || !st.Exists() {
		return st, nil, nil, storeErr(err)
	}
	v, err := r.from.decode(ns, fromID, st)
	if err != nil {
		return nil, nil, nil, err
	}
	set := reflect.ValueOf(&v).Elem().FieldByIndex(r.index)
	ids := make([]string, 0, set.Len())
	for i := range set.Len() {
		if id := set.Index(i).String(); id != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var items []query.Item
	for _, id := range ids {
		trackRecord(ctx, ns, r.to.name, id)
		rst, err := r.to.db.log.Get(ctx, ns, r.to.name, id)
		if err != nil {
			return nil, nil, nil, storeErr(err)
		}
		if rst.Exists() {
			items = append(items, query.Item{ID: id, Rec: rst})
		}
	}
	return st, ids, items, nil
}

// Reverse returns the records of From in ns whose set holds toID and that
// q selects, in q's order. It does not read record toID, which need not
// exist. An empty toID has no related records.
func (r *ManyToMany[F, T]) Reverse(ctx context.Context, ns, toID string, q Query) ([]F, error) {
	return r.from.Find(ctx, ns, r.ReverseQuery(toID, q))
}

// ReverseQuery returns the query on From that [ManyToMany.Reverse] runs:
// q with the condition that the set holds toID.
func (r *ManyToMany[F, T]) ReverseQuery(toID string, q Query) Query {
	if toID == "" {
		return q.Where(r.none())
	}
	return q.Where(Contains(r.field, toID))
}

// WhereRelated returns a filter on From: the records related to at least
// one existing record of To that matches every filter of fs (none: any
// existing record). Like [BelongsTo.WhereParent] it is resolved each time
// a query using it runs, into an Or of Contains(setField, id) for each
// matching id (an index on the set field serves it, up to 256 ids;
// beyond, the query scans From); when no record of To matches, it matches
// no record.
func (r *ManyToMany[F, T]) WhereRelated(fs ...Filter) Filter {
	return relationFilter(r.to, fs, r.none(), Contains(r.field, stubValue(r.to.name)),
		func(ids []any) Filter {
			or := make([]Filter, len(ids))
			for i, id := range ids {
				or[i] = Contains(r.field, id)
			}
			return Or(or...)
		})
}

// none is a filter on From that matches no record: no id is less than
// "". The Contains lets an index on the set field plan it as a read of
// the records holding "" (normally none) instead of a scan.
func (r *ManyToMany[F, T]) none() Filter { return And(Contains(r.field, ""), Lt(IDField, "")) }

// WatchWithRelated yields record fromID of ns with the To records it
// names (as [ManyToMany.Related] returns them) now, and again after every
// change, local or from sync, that alters either: a change to the record
// (its set, or its other fields) or to a To record whose id the set holds,
// including the creation of one it named while it did not exist. While
// record fromID does not exist it yields ErrNotFound with a zero Record
// and no related records, and goes on watching. It has the guarantees of
// [Collection.Watch], and ends when ctx ends or the DB closes.
func (r *ManyToMany[F, T]) WatchWithRelated(ctx context.Context, ns, fromID string, opts ...WatchOption) iter.Seq2[Watched[WithRelated[F, T]], error] {
	return func(yield func(Watched[WithRelated[F, T]], error) bool) {
		r.from.watch(ctx, ns, nil, "", opts,
			func() ([]query.Item, string, watchSpec, error) {
				st, ids, items, err := r.read(ctx, ns, fromID)
				if err != nil {
					return nil, "", watchSpec{}, err
				}
				named := make(map[string]bool, len(ids)) // the ids the set holds
				for _, id := range ids {
					named[id] = true
				}
				relevant := func(coll, id string) bool {
					return coll == r.from.name && id == fromID || coll == r.to.name && named[id]
				}
				return append([]query.Item{{ID: fromID, Rec: st}}, items...), "", watchSpec{match: relevant}, nil
			},
			func(items []query.Item, _ string, err error, m syncMark) bool {
				return emitWithRelated(yield, err, m, func() (WithRelated[F, T], error) {
					v, err := r.from.decode(ns, fromID, items[0].Rec)
					rel, derr := r.to.decodeItems(ns, items[1:])
					if derr != nil {
						return WithRelated[F, T]{}, derr
					}
					return WithRelated[F, T]{Record: v, Related: rel}, err
				})
			})
	}
}

// WithRelated is a record with its related records, as the relation
// watches yield them. When the record does not exist the watch yields it
// with ErrNotFound and a zero Record, as [Collection.WatchRecord] does.
type WithRelated[A, B any] struct {
	Record  A
	Related []B
}

// emitWithRelated is the emit of the relation watches: it yields the
// read's error, or the decoded result (with ErrNotFound when the record
// does not exist) with the sync mark m.
func emitWithRelated[A, B any](yield func(Watched[WithRelated[A, B]], error) bool, err error, m syncMark, decode func() (WithRelated[A, B], error)) bool {
	var v WithRelated[A, B]
	if err == nil {
		v, err = decode()
	}
	return yield(Watched[WithRelated[A, B]]{Value: v, Synced: m.synced, SyncErr: m.err}, err)
}

// relationField returns the declared field a relation goes through.
func relationField(s *schema, field string) (schemaField, error) {
	if field == IDField {
		return schemaField{}, fmt.Errorf("%w: %v: a relation field cannot be named %q, which queries read as the record id", ErrSchema, s.typ, IDField)
	}
	i, ok := s.byName[field]
	if !ok {
		return schemaField{}, fmt.Errorf("%w: relation: %w", ErrSchema, s.fieldError(field))
	}
	return s.fields[i], nil
}

// lateFilter is a filter computed when a query runs, from the records of
// another collection in the query's namespace: a relation's WhereParent
// or WhereRelated.
type lateFilter struct {
	// resolve returns the filter to apply in namespace ns.
	resolve func(ctx context.Context, ns string) (Filter, error)
	// stub is a filter of the shape resolve returns, for Explain.
	stub Filter
	// reads are the collections resolve reads (also through the filters
	// it runs), for watches.
	reads []string
}

// relationFilter returns a filter resolved when the query runs: it finds
// the ids of the records of to matching fs, and becomes match(ids), or
// none if there are none.
func relationFilter[T any](to *Collection[T], fs []Filter, none, stub Filter, match func(ids []any) Filter) Filter {
	q := Where(slices.Clone(fs)...)
	reads := map[string]bool{to.name: true}
	filterReads(q.where, reads)
	return Filter{late: &lateFilter{
		stub:  stub,
		reads: slices.Sorted(maps.Keys(reads)),
		resolve: func(ctx context.Context, ns string) (Filter, error) {
			items, _, err := to.run(ctx, ns, q, "")
			if err != nil {
				return Filter{}, fmt.Errorf("converge: filter on related %s: %w", to.name, err)
			}
			if len(items) == 0 {
				return none, nil
			}
			ids := make([]any, len(items))
			for i, it := range items {
				ids[i] = it.ID
			}
			return match(ids), nil
		},
	}}
}

// stubValue stands for the ids of collection coll in Explain's plans.
func stubValue(coll string) string { return "<ids from " + coll + ">" }

// filterReads adds to reads the collections that the filters on related
// records among fs read.
func filterReads(fs []Filter, reads map[string]bool) {
	for _, f := range fs {
		if f.late != nil {
			for _, c := range f.late.reads {
				reads[c] = true
			}
		}
		filterReads(f.and, reads)
		filterReads(f.or, reads)
	}
}
