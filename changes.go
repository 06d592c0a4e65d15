package converge

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"

	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/materialize"
	"github.com/convergedb/converge/oplog"
)

// ChangeKind says what a change did to a record.
type ChangeKind = materialize.ChangeKind

// Change kinds.
const (
	Created = materialize.Created
	Updated = materialize.Updated
	Deleted = materialize.Deleted
)

// Change is one visible change to one record.
type Change struct {
	Namespace, Collection, ID string
	Kind                      ChangeKind
	Fields                    []string // fields whose visible value changed
	Origin                    string   // replica that wrote the op
	HLC                       hlc.Timestamp
	Local                     bool   // written on this replica
	Seq                       uint64 // position in the namespace's change feed (see DB.Feed)
}

type subscription struct {
	ns     string
	max    int
	from   uint64 // the notifier's commits published before it was made
	notify chan struct{}

	mu      sync.Mutex
	queue   []Change
	dropped int
	closed  bool
}

func (s *subscription) push(c Change) {
	s.mu.Lock()
	if len(s.queue) >= s.max {
		s.queue = s.queue[1:]
		s.dropped++
	}
	s.queue = append(s.queue, c)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// drop records that k changes were lost to the notifier's overflow.
func (s *subscription) drop(k int) {
	s.mu.Lock()
	s.dropped += k
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *subscription) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// publish is the store's commit hook: it runs under the store's write lock,
// in commit order, and never blocks. It calls the commit hooks and queues
// the commit for the notifier, which delivers it to subscriptions and
// watches outside the lock.
func (db *DB) publish(c *oplog.Commit) {
	if len(c.Ops) > 0 {
		db.subs.Lock()
		for _, h := range db.subs.commitHooks {
			if h.ops != nil {
				h.ops(c.Namespace, len(c.Ops), c.Local)
			} else {
				h.fn(c.Namespace)
			}
		}
		db.subs.Unlock()
	}
	db.notify.publish(c)
}

// Subscription is a feed of committed changes, from the moment it was
// made. It never blocks writers: a subscriber that falls behind by more than
// Options.ChangeBuffer changes loses the oldest and is told with ErrLagged.
// Close it when done. It is safe for use by one reader goroutine.
type Subscription struct {
	db *DB
	s  *subscription
}

// Subscribe starts a subscription to the changes committed to namespace ns
// (every namespace if ns is empty), local and remote, in commit order.
func (db *DB) Subscribe(ns string) *Subscription {
	s := &subscription{ns: ns, max: db.opts.ChangeBuffer, notify: make(chan struct{}, 1)}
	db.subs.Lock()
	defer db.subs.Unlock() // held so that Close closes s if it does not see it closed
	if db.subs.closed {
		s.closed = true
		return &Subscription{db: db, s: s}
	}
	db.notify.subscribe(s)
	return &Subscription{db: db, s: s}
}

// Next returns the next change. It blocks until there is one, ctx ends, or
// the subscription or DB is closed (ErrClosed). After changes were dropped
// it returns an error wrapping ErrLagged once, then goes on.
func (sub *Subscription) Next(ctx context.Context) (Change, error) {
	s := sub.s
	for {
		s.mu.Lock()
		if s.dropped > 0 {
			n := s.dropped
			s.dropped = 0
			s.mu.Unlock()
			return Change{}, fmt.Errorf("%w: %d changes", ErrLagged, n)
		}
		if len(s.queue) > 0 {
			c := s.queue[0]
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return c, nil
		}
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return Change{}, ErrClosed
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Change{}, fmt.Errorf("converge: next change: %w", ctx.Err())
		}
	}
}

// drain discards the changes pending, without waiting.
func (sub *Subscription) drain() {
	s := sub.s
	s.mu.Lock()
	s.queue, s.dropped = nil, 0
	s.mu.Unlock()
	select {
	case <-s.notify:
	default:
	}
}

// Close ends the subscription.
func (sub *Subscription) Close() {
	sub.db.unsubscribe(sub.s)
	sub.s.close()
}

// Changes yields the changes committed to namespace ns (every namespace if
// ns is empty) from the moment iteration begins, as a [Subscription] does,
// until ctx ends or the DB closes; it then yields that error and stops.
// ErrLagged is yielded and iteration goes on.
func (db *DB) Changes(ctx context.Context, ns string) iter.Seq2[Change, error] {
	return func(yield func(Change, error) bool) {
		sub := db.Subscribe(ns)
		defer sub.Close()
		for {
			c, err := sub.Next(ctx)
			if !yield(c, err) || (err != nil && !errors.Is(err, ErrLagged)) {
				return
			}
		}
	}
}

func (db *DB) unsubscribe(s *subscription) { db.notify.unsubscribe(s) }

// commitHook is a hook of OnCommit (fn) or OnOps (ops).
type commitHook struct {
	fn  func(ns string)
	ops func(ns string, n int, local bool)
}

// OnCommit calls fn with the namespace after every commit that adds ops to
// the log, local or remote, including commits that change nothing visible
// (a write that loses to a newer one, an update of a deleted record), which
// subscriptions do not see. It is what wakes what serves the log to
// others ([transport.Store].OnCommit: the HTTP server's live streams, the
// NATS transport's publisher). fn runs on the committing goroutine
// with a lock held: it must return at once and must not call the DB. The
// returned func unregisters it.
func (db *DB) OnCommit(fn func(ns string)) (stop func()) {
	return db.addCommitHook(&commitHook{fn: fn})
}

// OnOps calls fn after every commit that adds ops to the log, with the
// namespace, the number of ops and whether this DB wrote them (local) or
// applied them from a peer: the hook for counting ops applied. It runs as
// OnCommit's hooks do (on the committing goroutine, with a lock held: it
// must return at once and must not call the DB). The returned func
// unregisters it.
func (db *DB) OnOps(fn func(ns string, n int, local bool)) (stop func()) {
	return db.addCommitHook(&commitHook{ops: fn})
}

func (db *DB) addCommitHook(h *commitHook) (stop func()) {
	db.subs.Lock()
	db.subs.commitHooks = append(db.subs.commitHooks, h)
	db.subs.Unlock()
	return func() {
		db.subs.Lock()
		defer db.subs.Unlock()
		db.subs.commitHooks = slices.DeleteFunc(db.subs.commitHooks, func(x *commitHook) bool { return x == h })
	}
}
