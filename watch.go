package converge

import (
	"context"
	"errors"
	"iter"
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
// Cancelling ctx ends the watch; the iterator then returns.
func (c *Collection[T]) Watch(ctx context.Context, ns string, q Query, opts ...WatchOption) iter.Seq2[[]T, error] {
	return func(yield func([]T, error) bool) {
		c.watch(ctx, ns, c.queryRelevant(q), opts,
			func() ([]query.Item, string, error) { return c.run(ctx, ns, q, "") },
			func(items []query.Item, _ string, err error) bool {
				if err != nil {
					return yield(nil, err) && false
				}
				v, err := c.decodeItems(ns, items)
				return yield(v, err) && keepWatching(err)
			})
	}
}

// WatchPage is Watch for one page of q: the page after cursor.
func (c *Collection[T]) WatchPage(ctx context.Context, ns string, q Query, cursor string, opts ...WatchOption) iter.Seq2[Page[T], error] {
	return func(yield func(Page[T], error) bool) {
		c.watch(ctx, ns, c.queryRelevant(q), opts,
			func() ([]query.Item, string, error) { return c.run(ctx, ns, q, cursor) },
			func(items []query.Item, next string, err error) bool {
				if err != nil {
					return yield(Page[T]{}, err) && false
				}
				v, err := c.decodeItems(ns, items)
				return yield(Page[T]{Items: v, Next: next}, err) && keepWatching(err)
			})
	}
}

// WatchRecord yields record id of ns now and after every change to it. While
// the record does not exist it yields ErrNotFound, and goes on watching.
func (c *Collection[T]) WatchRecord(ctx context.Context, ns, id string, opts ...WatchOption) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		c.watch(ctx, ns, func(coll, key string) bool { return coll == c.name && key == id }, opts,
			func() ([]query.Item, string, error) {
				st, err := c.db.log.Get(ctx, ns, c.name, id)
				if err != nil {
					return nil, "", storeErr(err)
				}
				return []query.Item{{ID: id, Rec: st}}, "", nil
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

// queryRelevant says which changes may alter the result of q: those of
// the collection, and of the collections q's filters on related records
// read.
func (c *Collection[T]) queryRelevant(q Query) func(coll, id string) bool {
	reads := map[string]bool{c.name: true}
	filterReads(q.where, reads)
	return func(coll, _ string) bool { return reads[coll] }
}

// watch is the loop shared by the watches: read and emit the current
// result, then after each relevant change read again and emit when the
// result changed. relevant filters the changes by collection and record
// id; it and read are called from the loop only, one at a time. emit gets
// each read's result (or error) and returns false to stop; a read error
// ends the watch after emit.
func (c *Collection[T]) watch(ctx context.Context, ns string, relevant func(coll, id string) bool, opts []WatchOption,
	read func() ([]query.Item, string, error), emit func([]query.Item, string, error) bool) {
	var cfg watchConfig
	for _, o := range opts {
		o(&cfg)
	}
	sub := c.db.Subscribe(ns) // before the first read: no change falls between
	defer sub.Close()
	var last [32]byte
	for first := true; ; first = false {
		if !first {
			// Wait for a relevant change.
			ch, err := sub.Next(ctx)
			if err != nil && !errors.Is(err, ErrLagged) {
				return // ctx ended or the DB closed
			}
			if err == nil && !relevant(ch.Collection, ch.ID) {
				continue
			}
			if cfg.coalesce > 0 {
				t := time.NewTimer(cfg.coalesce)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
			}
			sub.drain() // everything pending is covered by the next read
		}
		items, next, err := read()
		if err != nil {
			if ctx.Err() == nil {
				emit(nil, "", err)
			}
			return
		}
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
