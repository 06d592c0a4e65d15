package converge

import (
	"context"
	"errors"
	"sync"
)

// Watched is what a watch yields: the watched value (a query's records, a
// page, a record, a count, a record with its related records) and the
// sync state of the namespace it reads, so that a UI can tell "loading"
// (nothing synced yet: an empty list may only mean the data has not
// arrived) from "synced", and show a sync error without losing the data.
//
// A watch yields a new Watched when the value changes and also when only
// the sync state changes. Sync errors never end a watch: it ends when its
// context ends or the DB closes (or the loop breaks).
type Watched[V any] struct {
	// Value is the watched value as of this result.
	Value V
	// Synced reports whether a sync of the namespace with a peer has
	// completed since the DB was opened (see [DB.Synced]). It is false
	// until the first successful sync, then true until the DB closes.
	Synced bool
	// SyncErr is the error of the latest sync of the namespace, nil before
	// the first one ends and after a success (see [DB.Synced]). It is a
	// transient state, shown while the replicator retries.
	SyncErr error
}

// syncMark is what the DB knows of a namespace's syncs since it opened.
type syncMark struct {
	synced bool
	err    error
}

// same reports whether m and o say the same; errors compare by message.
func (m syncMark) same(o syncMark) bool {
	return m.synced == o.synced && errText(m.err) == errText(o.err)
}

// join returns the mark of reading both namespaces: synced when both are,
// the first error.
func (m syncMark) join(o syncMark) syncMark {
	if m.err == nil {
		m.err = o.err
	}
	m.synced = m.synced && o.synced
	return m
}

// syncTracker keeps, per namespace, whether a sync with a peer completed
// since the DB opened and the latest sync's error; the replicators and
// [DB.SyncWith] feed it, the watches read it and wait on it. It is safe for
// concurrent use.
type syncTracker struct {
	mu      sync.Mutex
	marks   map[string]syncMark
	waiters map[*syncWaiter]struct{}
}

// done records the outcome of a sync of ns: success (err nil) or failure.
// A sync cancelled by its caller (context.Canceled) is no outcome. It
// wakes the waiters when the namespace's mark changes.
func (t *syncTracker) done(ns string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.marks == nil {
		t.marks = make(map[string]syncMark)
	}
	old := t.marks[ns]
	m := syncMark{synced: old.synced || err == nil, err: err}
	t.marks[ns] = m
	if m.same(old) {
		return
	}
	for w := range t.waiters {
		w.wake()
	}
}

// mark returns what is known of the syncs of ns.
func (t *syncTracker) mark(ns string) syncMark {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.marks[ns]
}

// markAll returns the mark of reading every namespace of nss: synced when
// all are (a read of no namespace is not), the first error in nss's order.
func (t *syncTracker) markAll(nss []string) syncMark {
	if len(nss) == 0 {
		return syncMark{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := syncMark{synced: true}
	for _, ns := range nss {
		m = m.join(t.marks[ns])
	}
	return m
}

// Synced reports whether a sync of namespace ns with a peer has completed
// since the DB was opened, and the error of the latest sync of ns (nil
// before the first ends, and after a success). The syncs that count are
// those this replica runs: its replicators' (background syncs and
// [Replicator.SyncNow]) and [DB.SyncWith]'s, with any peer. A sync the
// caller cancelled (context.Canceled), or cut short by Pause or Close,
// changes neither. A sync a peer runs against this replica (a hub serving
// clients) does not count: a hub's own namespaces are never "synced"
// in this sense. The watches carry both ([Watched]).
func (db *DB) Synced(ns string) (synced bool, lastErr error) {
	m := db.syncs.mark(ns)
	return m.synced, m.err
}

// syncWaiter is a watch's wait for its next event: a change committed or
// a sync outcome that changed a namespace's mark.
type syncWaiter struct {
	t   *syncTracker
	sub *Subscription // nil for a syncSignal
	ch  chan struct{} // 1-buffered, for a syncSignal: a sync mark changed

	mu      sync.Mutex
	pending bool               // a sync mark changed since the last next
	cancel  context.CancelFunc // of the wait in progress, if any
}

func (w *syncWaiter) wake() {
	if w.ch != nil {
		select {
		case w.ch <- struct{}{}:
		default:
		}
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = true
	if w.cancel != nil {
		w.cancel()
	}
}

// watchWaiter subscribes to the changes of ns (every namespace if ns is
// empty) and to the sync marks. Close it when done.
func (db *DB) watchWaiter(ns string) *syncWaiter {
	w := &syncWaiter{t: &db.syncs, sub: db.Subscribe(ns)}
	db.syncs.mu.Lock()
	if db.syncs.waiters == nil {
		db.syncs.waiters = make(map[*syncWaiter]struct{})
	}
	db.syncs.waiters[w] = struct{}{}
	db.syncs.mu.Unlock()
	return w
}

// syncSignal registers a waiter for the changes of sync marks only, on
// its channel ch. Close it when done.
func (db *DB) syncSignal() *syncWaiter {
	w := &syncWaiter{t: &db.syncs, ch: make(chan struct{}, 1)}
	db.syncs.mu.Lock()
	if db.syncs.waiters == nil {
		db.syncs.waiters = make(map[*syncWaiter]struct{})
	}
	db.syncs.waiters[w] = struct{}{}
	db.syncs.mu.Unlock()
	return w
}

func (w *syncWaiter) close() {
	w.t.mu.Lock()
	delete(w.t.waiters, w)
	w.t.mu.Unlock()
	if w.sub != nil {
		w.sub.Close()
	}
}

// next waits for the next change (returned as the subscription's Next
// returns it, ErrLagged included) or a change of a sync mark (syncChanged,
// with a zero Change). Any other error ends the watch: ctx ended or the DB
// closed.
func (w *syncWaiter) next(ctx context.Context) (c Change, syncChanged bool, err error) {
	w.mu.Lock()
	if w.pending {
		w.pending = false
		w.mu.Unlock()
		return Change{}, true, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	w.mu.Unlock()
	c, err = w.sub.Next(wctx)
	w.mu.Lock()
	w.cancel = nil
	if err != nil && ctx.Err() == nil && w.pending {
		// The wait was cut short by a sync mark changing, not by ctx.
		w.pending = false
		w.mu.Unlock()
		cancel()
		return Change{}, true, nil
	}
	w.mu.Unlock()
	cancel()
	return c, false, err
}
