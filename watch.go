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
// after every change, local or from sync, that alters it, and after every
// change of the namespace's sync state ([Watched]: Synced, SyncErr).
// Changes that arrive while the consumer is busy are folded into one new
// result, so a slow consumer never blocks writers and always gets the
// final state. A watch reads again only after a change that can alter its
// result: one of a record in its last result, or of a record whose new
// state matches q's filter (with an Offset, any change of the collection),
// or any change of a collection that q's filters on related records read.
// An error (a malformed query, a record that does not fit T,
// a failed read) is yielded and the watch goes on: the next change reads
// again, and an error is not yielded twice in a row. The watch ends when
// ctx ends or the DB closes, and the iterator then returns.
func (c *Collection[T]) Watch(ctx context.Context, ns string, q Query, opts ...WatchOption) iter.Seq2[Watched[[]T], error] {
	return func(yield func(Watched[[]T], error) bool) {
		c.watch(ctx, ns, c.relatedReads(q), "", opts, c.watchRead(ctx, ns, q, ""),
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
		c.watch(ctx, ns, c.relatedReads(q), "", opts, c.watchRead(ctx, ns, q, cursor),
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
		c.watch(ctx, ns, nil, id, opts,
			func() ([]query.Item, string, watchSpec, error) {
				st, err := c.db.log.Get(ctx, ns, c.name, id)
				if err != nil {
					return nil, "", watchSpec{}, storeErr(err)
				}
				return []query.Item{{ID: id, Rec: st}}, "", watchSpec{}, nil
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
// when the result changed, and emit the last result again when the
// namespace's sync mark changed. The notifier decides which changes wake
// the watch (see [watcher]): those of c's collection that the spec each
// read returns selects (of record only, if record is set), and every
// change of the collections others. read is called from the loop only,
// one at a time. emit gets each read's result (or error) with the sync
// mark and returns false to stop. A read error is emitted (but not the
// same one twice in a row) and the watch goes on; it ends when ctx ends or
// the DB closes.
func (c *Collection[T]) watch(ctx context.Context, ns string, others []string, record string, opts []WatchOption,
	read func() ([]query.Item, string, watchSpec, error), emit func([]query.Item, string, error, syncMark) bool) {
	cfg := watchOpts(opts)
	w := c.db.notify.watch(ns, c.name, others, record)
	defer w.close()
	sw := c.db.syncSignal()
	defer sw.close()
	var (
		last     [32]byte // the fingerprint of the last result emitted
		lastErr  error    // or its error
		lastMark syncMark
		items    []query.Item
		next     string
	)
	for first := true; ; first = false {
		if !first {
			changed, ok := c.db.waitWatch(ctx, w, sw)
			if !ok {
				return // ctx ended or the DB closed
			}
			if !changed {
				if m := c.db.syncs.mark(ns); !m.same(lastMark) {
					lastMark = m
					if !emit(items, next, lastErr, m) {
						return
					}
				}
				continue
			}
			if !coalesceWait(ctx, cfg) {
				return
			}
		}
		w.beginRead() // every change delivered from now on wakes it again
		m := c.db.syncs.mark(ns)
		var (
			err  error
			spec watchSpec
		)
		items, next, spec, err = read()
		if err != nil {
			spec = watchSpec{all: true} // any change may end the error
		}
		w.endRead(spec)
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

// waitWatch waits for w to be woken by a change (changed) or sw by a
// change of a sync mark. It returns ok false if ctx ended or the DB closed
// first.
func (db *DB) waitWatch(ctx context.Context, w *watcher, sw *syncWaiter) (changed, ok bool) {
	select {
	case <-w.notify:
		return true, true
	case <-sw.ch:
		return false, true
	case <-ctx.Done():
		return false, false
	case <-db.done:
		return false, false
	}
}
