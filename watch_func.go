package converge

import (
	"context"
	"errors"
	"iter"
	"reflect"
	"slices"
	"sync"
	"time"
)

// WatchFunc yields read's result now, then again after every change,
// local or from sync, to what read read, whenever the result differs
// (as [reflect.DeepEqual] compares, with the error's message) or the sync
// state of what it read changed. It watches across relations to any
// depth: read reads a record, the records it points at, theirs in turn
// (a task, its owner, the owner's profile), or a child's parent, and
// the watch follows exactly what the latest run of read read.
//
// What counts as read is what read does through the ctx it is given, in
// any namespace: a record got ([Collection.Get], [BelongsTo.Parent],
// [ManyToMany.Related]) is watched by id, even when it does not exist
// (its creation is a change); a query run ([Collection.Find],
// [Collection.Page], [Collection.PageAt], [Collection.Count],
// [Collection.All], [BelongsTo.Children], [ManyToMany.Reverse], and the
// filters on related records) watches its whole collection. Reads on
// another ctx, and other DB methods, are not watched.
//
// A transaction that changes several of the records read yields one
// result: read runs after the transaction committed, and reads all of it.
// Changes that arrive while the consumer is busy fold into one result, as
// with [Collection.Watch]; read must not write to the DB. An error of
// read is yielded with the value read returned, and the watch goes on:
// it ends only when ctx ends or the DB closes. The result's Synced is
// true once every namespace read has synced since the DB opened
// ([DB.Synced]); its SyncErr is the first error among them, in the order
// read first read them.
func WatchFunc[V any](ctx context.Context, db *DB, read func(ctx context.Context) (V, error), opts ...WatchOption) iter.Seq2[Watched[V], error] {
	return func(yield func(Watched[V], error) bool) {
		watchValue(ctx, db, "", watchOpts(opts), read, yield)
	}
}

func watchOpts(opts []WatchOption) watchConfig {
	var cfg watchConfig
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// watchValue is WatchFunc's loop, with the changes of namespace ns only
// (every namespace if ns is empty): run read with a fresh readSet, yield
// its result unless it equals the last one yielded, wait for a change to
// something read or to the sync marks, and again.
func watchValue[V any](ctx context.Context, db *DB, ns string, cfg watchConfig,
	read func(context.Context) (V, error), yield func(Watched[V], error) bool) {
	w := db.watchWaiter(ns) // before the first read: no change falls between
	defer w.close()
	var (
		reads   *readSet
		last    Watched[V]
		lastErr error
		have    bool // last holds a result yielded
	)
	for first := true; ; first = false {
		if !first {
			c, syncChanged, err := w.next(ctx)
			switch {
			case err != nil && !errors.Is(err, ErrLagged):
				return // ctx ended or the DB closed
			case syncChanged:
				m := db.syncs.markAll(reads.namespaces())
				if !have || (syncMark{last.Synced, last.SyncErr}).same(m) {
					continue
				}
				last.Synced, last.SyncErr = m.synced, m.err
				if !yield(last, lastErr) {
					return
				}
				continue
			case err == nil && !reads.has(c):
				continue
			}
			if !coalesceWait(ctx, cfg) {
				return
			}
			w.sub.drain() // everything pending is covered by the next read
		}
		reads = &readSet{}
		v, err := read(context.WithValue(ctx, readSetKey{}, reads))
		if err != nil && (ctx.Err() != nil || errors.Is(err, ErrClosed)) {
			return
		}
		m := db.syncs.markAll(reads.namespaces())
		res := Watched[V]{Value: v, Synced: m.synced, SyncErr: m.err}
		if have && errText(err) == errText(lastErr) && sameWatched(res, last) {
			continue
		}
		last, lastErr, have = res, err, true
		if !yield(res, err) {
			return
		}
	}
}

// sameWatched reports whether two results are equal: their values deeply,
// their sync states by errors' messages.
func sameWatched[V any](a, b Watched[V]) bool {
	return a.Synced == b.Synced && errText(a.SyncErr) == errText(b.SyncErr) && reflect.DeepEqual(a.Value, b.Value)
}

// coalesceWait waits cfg's coalescing delay; false means ctx ended.
func coalesceWait(ctx context.Context, cfg watchConfig) bool {
	if cfg.coalesce <= 0 {
		return true
	}
	t := time.NewTimer(cfg.coalesce)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// readSetKey is the context key of the readSet a watched function's reads
// are recorded in.
type readSetKey struct{}

// readSet is what a watched function read: records by id and whole
// collections (queries), per namespace, and the namespaces in the order
// first read. It is safe for concurrent use (read may fan out).
type readSet struct {
	mu      sync.Mutex
	records map[recordRef]struct{}
	colls   map[recordRef]struct{} // id ""
	nss     []string
}

// recordRef names a record (or, with no id, a collection) of a namespace.
type recordRef struct{ ns, coll, id string }

// trackRecord records, if ctx belongs to a watched function, that it read
// record id of collection coll in ns.
func trackRecord(ctx context.Context, ns, coll, id string) {
	if rs, ok := ctx.Value(readSetKey{}).(*readSet); ok {
		rs.add(recordRef{ns, coll, id})
	}
}

// trackCollection records, if ctx belongs to a watched function, that it
// ran a query on collection coll in ns.
func trackCollection(ctx context.Context, ns, coll string) {
	if rs, ok := ctx.Value(readSetKey{}).(*readSet); ok {
		rs.add(recordRef{ns: ns, coll: coll})
	}
}

func (rs *readSet) add(r recordRef) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if !slices.Contains(rs.nss, r.ns) {
		rs.nss = append(rs.nss, r.ns)
	}
	m := &rs.records
	if r.id == "" {
		m = &rs.colls
	}
	if *m == nil {
		*m = make(map[recordRef]struct{})
	}
	(*m)[r] = struct{}{}
}

// has reports whether change c may alter what was read: it is to a record
// read, or to a collection queried.
func (rs *readSet) has(c Change) bool {
	if rs == nil {
		return true
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if _, ok := rs.colls[recordRef{ns: c.Namespace, coll: c.Collection}]; ok {
		return true
	}
	_, ok := rs.records[recordRef{c.Namespace, c.Collection, c.ID}]
	return ok
}

// namespaces returns the namespaces read, in the order first read.
func (rs *readSet) namespaces() []string {
	if rs == nil {
		return nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Clone(rs.nss)
}
