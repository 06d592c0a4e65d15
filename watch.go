package converge

import (
	"context"
	"errors"
	"iter"
	"maps"
	"slices"
	"time"

	"github.com/convergedb/converge/query"
)

// WatchOption tunes a watch.
type WatchOption func(*watchConfig)

type watchConfig struct {
	coalesce time.Duration
}

// Coalesce makes a watch wait d after a change before it re-reads, so a
// burst of changes yields one result. The default, 0, re-reads as soon as
// the consumer is ready, which already folds together every change that
// arrived while it was busy.
func Coalesce(d time.Duration) WatchOption { return func(c *watchConfig) { c.coalesce = d } }

// Watch yields the current result of q in namespace ns, then a new result
// after every change, local or from sync, that alters it. Changes that
// arrive while the consumer is busy are folded into one new result, so a
// slow consumer never blocks writers and always gets the final state.
// A watch re-reads only after a change that can alter its result: one of
// a record in its last result, or of a record whose new state matches
// q's filter (with an Offset, any change of the collection), or any
// change of a collection that q's filters on related records read.
// Cancelling ctx ends the watch; the iterator then returns.
func (c *Collection[T]) Watch(ctx context.Context, ns string, q Query, opts ...WatchOption) iter.Seq2[[]T, error] {
	return func(yield func([]T, error) bool) {
		c.watch(ctx, ns, c.relatedReads(q), "", opts, c.watchRead(ctx, ns, q, ""),
			func(items []query.Item, _ string, err error) bool {
				if err != nil {
					return yield(nil, err) && false
				}
				v, err := c.decodeItems(ns, items)
				return yield(v, err) && err == nil
			})
	}
}

// WatchPage is Watch for one page of q: the page after cursor.
func (c *Collection[T]) WatchPage(ctx context.Context, ns string, q Query, cursor string, opts ...WatchOption) iter.Seq2[Page[T], error] {
	return func(yield func(Page[T], error) bool) {
		c.watch(ctx, ns, c.relatedReads(q), "", opts, c.watchRead(ctx, ns, q, cursor),
			func(items []query.Item, next string, err error) bool {
				if err != nil {
					return yield(Page[T]{}, err) && false
				}
				v, err := c.decodeItems(ns, items)
				return yield(Page[T]{Items: v, Next: next}, err) && err == nil
			})
	}
}

// WatchRecord yields record id of ns now and after every change to it. While
// the record does not exist it yields ErrNotFound, and goes on watching.
func (c *Collection[T]) WatchRecord(ctx context.Context, ns, id string, opts ...WatchOption) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		c.watch(ctx, ns, nil, id, opts,
			func() ([]query.Item, string, watchSpec, error) {
				st, err := c.db.log.Get(ctx, ns, c.name, id)
				if err != nil {
					return nil, "", watchSpec{}, err
				}
				return []query.Item{{ID: id, Rec: st}}, "", watchSpec{}, nil
			},
			func(items []query.Item, _ string, err error) bool {
				var v T
				if err != nil {
					return yield(v, err) && false
				}
				v, err = c.decode(ns, id, items[0].Rec)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return yield(v, err) && false
				}
				return yield(v, err)
			})
	}
}

// watchRead returns the read of a watch of q (with cursor) in ns: the
// page, the next cursor and what may alter them.
func (c *Collection[T]) watchRead(ctx context.Context, ns string, q Query, cursor string) func() ([]query.Item, string, watchSpec, error) {
	return func() ([]query.Item, string, watchSpec, error) {
		qq, err := c.compileIn(ctx, ns, q, cursor)
		if err != nil {
			return nil, "", watchSpec{}, err
		}
		items, next, err := c.runCompiled(ctx, ns, qq, cursor)
		if err != nil {
			return nil, "", watchSpec{}, err
		}
		return items, next, specOf(qq, items), nil
	}
}

// relatedReads returns the collections other than c's that q's filters
// on related records read: any change to them may alter q's result.
func (c *Collection[T]) relatedReads(q Query) []string {
	reads := map[string]bool{}
	filterReads(q.where, reads)
	delete(reads, c.name)
	return slices.Sorted(maps.Keys(reads))
}

// watch is the loop shared by the watches: read and emit the current
// result, then after each change that may alter it read again and emit
// when the result changed. The notifier decides which changes wake the
// watch (see [watcher]): those of c's collection that the spec each read
// returns selects (of record only, if record is set), and every change of
// the collections others. read is called from the loop only, one at a
// time. emit gets each read's result (or error) and returns false to stop;
// a read error ends the watch after emit.
func (c *Collection[T]) watch(ctx context.Context, ns string, others []string, record string, opts []WatchOption,
	read func() ([]query.Item, string, watchSpec, error), emit func([]query.Item, string, error) bool) {
	var cfg watchConfig
	for _, o := range opts {
		o(&cfg)
	}
	w := c.db.notify.watch(ns, c.name, others, record)
	defer w.close()
	var last [32]byte
	for first := true; ; first = false {
		if !first && !c.db.waitWatch(ctx, w, cfg.coalesce) {
			return // ctx ended or the DB closed
		}
		w.beginRead() // every change delivered from now on wakes it again
		items, next, spec, err := read()
		if err != nil {
			w.endRead(watchSpec{all: true})
			if ctx.Err() == nil {
				emit(nil, "", err)
			}
			return
		}
		w.endRead(spec)
		fp := fingerprint(items, next)
		if !first && fp == last {
			continue
		}
		last = fp
		if !emit(items, next, nil) {
			return
		}
	}
}

// waitWatch waits for w to be woken, then for the coalescing delay. It
// returns false if ctx ended or the DB closed first.
func (db *DB) waitWatch(ctx context.Context, w *watcher, coalesce time.Duration) bool {
	select {
	case <-w.notify:
	case <-ctx.Done():
		return false
	case <-db.done:
		return false
	}
	if coalesce <= 0 {
		return true
	}
	t := time.NewTimer(coalesce)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-db.done:
		return false
	}
}
