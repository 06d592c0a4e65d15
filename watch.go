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
// after every change, local or from sync, that alters it, and after every
// change of the namespace's sync state ([Watched]: Synced, SyncErr).
// Changes that arrive while the consumer is busy are folded into one new
// result, so a slow consumer never blocks writers and always gets the
// final state. An error (a malformed query, a record that does not fit T,
// a failed read) is yielded and the watch goes on: the next change reads
// again, and an error is not yielded twice in a row. The watch ends when
// ctx ends or the DB closes, and the iterator then returns.
func (c *Collection[T]) Watch(ctx context.Context, ns string, q Query, opts ...WatchOption) iter.Seq2[Watched[[]T], error] {
	return func(yield func(Watched[[]T], error) bool) {
		c.watch(ctx, ns, c.queryRelevant(q), opts,
			func() ([]query.Item, string, error) { return c.run(ctx, ns, q, "") },
			func(items []query.Item, _ string, err error, m syncMark) bool {
				if err != nil {
					return yield(Watched[[]T]{Synced: m.synced, SyncErr: m.err}, err)
				}
				v, err := c.decodeItems(ns, items)
				return yield(Watched[[]T]{Value: v, Synced: m.synced, SyncErr: m.err}, err)
			})
	}
}

// WatchPage is Watch for one page of q: the page after cursor.
func (c *Collection[T]) WatchPage(ctx context.Context, ns string, q Query, cursor string, opts ...WatchOption) iter.Seq2[Watched[Page[T]], error] {
	return func(yield func(Watched[Page[T]], error) bool) {
		c.watch(ctx, ns, c.queryRelevant(q), opts,
			func() ([]query.Item, string, error) { return c.run(ctx, ns, q, cursor) },
			func(items []query.Item, next string, err error, m syncMark) bool {
				if err != nil {
					return yield(Watched[Page[T]]{Synced: m.synced, SyncErr: m.err}, err)
				}
				v, err := c.decodeItems(ns, items)
				return yield(Watched[Page[T]]{Value: Page[T]{Items: v, Next: next}, Synced: m.synced, SyncErr: m.err}, err)
			})
	}
}

// WatchRecord yields record id of ns now and after every change to it (and
// to the namespace's sync state), as [Collection.Watch] does. While the
// record does not exist it yields ErrNotFound, and goes on watching.
func (c *Collection[T]) WatchRecord(ctx context.Context, ns, id string, opts ...WatchOption) iter.Seq2[Watched[T], error] {
	return func(yield func(Watched[T], error) bool) {
		c.watch(ctx, ns, func(coll, key string) bool { return coll == c.name && key == id }, opts,
			func() ([]query.Item, string, error) {
				st, err := c.db.log.Get(ctx, ns, c.name, id)
				if err != nil {
					return nil, "", storeErr(err)
				}
				return []query.Item{{ID: id, Rec: st}}, "", nil
			},
			func(items []query.Item, _ string, err error, m syncMark) bool {
				var v T
				if err == nil {
					v, err = c.decode(ns, id, items[0].Rec)
				}
				return yield(Watched[T]{Value: v, Synced: m.synced, SyncErr: m.err}, err)
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
// result changed, and emit the last result again when the namespace's
// sync mark changed. relevant filters the changes by collection and
// record id; it and read are called from the loop only, one at a time.
// emit gets each read's result (or error) with the sync mark and returns
// false to stop. A read error is emitted (but not the same one twice in a
// row) and the watch goes on; it ends when ctx ends or the DB closes.
func (c *Collection[T]) watch(ctx context.Context, ns string, relevant func(coll, id string) bool, opts []WatchOption,
	read func() ([]query.Item, string, error), emit func([]query.Item, string, error, syncMark) bool) {
	cfg := watchOpts(opts)
	w := c.db.watchWaiter(ns) // before the first read: no change falls between
	defer w.close()
	var (
		last     [32]byte // the fingerprint of the last result emitted
		lastErr  error    // or its error
		lastMark syncMark
		items    []query.Item
		next     string
	)
	for first := true; ; first = false {
		if !first {
			// Wait for a relevant change, or a change of the sync mark.
			ch, syncChanged, err := w.next(ctx)
			switch {
			case err != nil && !errors.Is(err, ErrLagged):
				return // ctx ended or the DB closed
			case syncChanged:
				if m := c.db.syncs.mark(ns); !m.same(lastMark) {
					lastMark = m
					if !emit(items, next, lastErr, m) {
						return
					}
				}
				continue
			case err == nil && !relevant(ch.Collection, ch.ID):
				continue
			}
			if !coalesceWait(ctx, cfg) {
				return
			}
			w.sub.drain() // everything pending is covered by the next read
		}
		m := c.db.syncs.mark(ns)
		var err error
		items, next, err = read()
		if err != nil && (ctx.Err() != nil || errors.Is(err, ErrClosed)) {
			return
		}
		fp := fingerprint(items, next)
		if !first && fp == last && errText(err) == errText(lastErr) && m.same(lastMark) {
			continue
		}
		last, lastErr, lastMark = fp, err, m
		if !emit(items, next, err, m) {
			return
		}
	}
}
