package converge

import (
	"context"
	"errors"
	"iter"
	"reflect"
)

// WithParent is a record with its parent, as [BelongsTo.WatchWithParent]
// yields it.
type WithParent[F, T any] struct {
	Record F
	// Parent is the record the foreign key names, zero when HasParent is
	// false.
	Parent T
	// HasParent is false when the foreign key is empty or names a record
	// that does not exist (a dangling key).
	HasParent bool
}

// WatchWithParent yields record fromID of ns (the child) with its parent
// now, and again after every change, local or from sync, to either: to the
// child (its foreign key among its fields: the watch then follows the new
// parent) or to the parent the key names, including its creation while the
// key dangles. While the child does not exist it yields ErrNotFound, and
// goes on watching. A transaction that changes both yields one result. It
// has the guarantees of [Collection.Watch]. To watch further (the parent's
// own parent, or records it names), use [WatchFunc].
func (r *BelongsTo[F, T]) WatchWithParent(ctx context.Context, ns, fromID string, opts ...WatchOption) iter.Seq2[Watched[WithParent[F, T]], error] {
	return func(yield func(Watched[WithParent[F, T]], error) bool) {
		watchValue(ctx, r.from.db, ns, watchOpts(opts), func(ctx context.Context) (WithParent[F, T], error) {
			return r.withParent(ctx, ns, fromID)
		}, yield)
	}
}

// withParent reads child fromID of ns and its parent, if it has one.
func (r *BelongsTo[F, T]) withParent(ctx context.Context, ns, fromID string) (WithParent[F, T], error) {
	var out WithParent[F, T]
	child, err := r.from.Get(ctx, ns, fromID)
	if err != nil {
		return out, err
	}
	out.Record = child
	key := reflect.ValueOf(&child).Elem().FieldByIndex(r.index).String()
	if key == "" {
		return out, nil
	}
	parent, err := r.to.Get(ctx, ns, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return out, nil
	case err != nil:
		return out, err
	}
	out.Parent, out.HasParent = parent, true
	return out, nil
}
