package converge

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/materialize"
	"github.com/convergedb/converge/oplog"
)

// ErrLagged is yielded by [DB.Changes] when the subscriber fell more than
// Options.ChangeBuffer changes behind and the oldest were dropped. The
// subscription goes on with the newer changes; re-read what you cache.
var ErrLagged = errors.New("converge: change subscriber lagged, changes dropped")

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
	Local                     bool // written on this replica
}

type subscription struct {
	ns     string
	max    int
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
// in commit order, and never blocks.
func (db *DB) publish(c *oplog.Commit) {
	if len(c.Changes) == 0 {
		return
	}
	db.subs.Lock()
	defer db.subs.Unlock()
	for _, s := range db.subs.list {
		if s.ns != "" && s.ns != c.Namespace {
			continue
		}
		for _, ch := range c.Changes {
			s.push(Change{
				Namespace:  ch.Namespace,
				Collection: ch.Collection,
				ID:         ch.Key,
				Kind:       ch.Kind,
				Fields:     ch.Fields,
				Origin:     ch.Dot.Origin.String(),
				HLC:        ch.HLC,
				Local:      c.Local,
			})
		}
	}
}

// Changes yields the changes committed to namespace ns (every namespace if
// ns is empty) from the moment iteration begins, local and remote, in commit
// order, until ctx ends (it then yields ctx's error) or the DB closes. A
// subscriber never blocks writers: one that falls behind by more than
// Options.ChangeBuffer changes loses the oldest and is told with ErrLagged.
func (db *DB) Changes(ctx context.Context, ns string) iter.Seq2[Change, error] {
	return func(yield func(Change, error) bool) {
		s := &subscription{ns: ns, max: db.opts.ChangeBuffer, notify: make(chan struct{}, 1)}
		db.subs.Lock()
		db.subs.list = append(db.subs.list, s)
		db.subs.Unlock()
		defer db.unsubscribe(s)
		for {
			s.mu.Lock()
			q, dropped, closed := s.queue, s.dropped, s.closed
			s.queue, s.dropped = nil, 0
			s.mu.Unlock()
			if dropped > 0 && !yield(Change{}, fmt.Errorf("%w: %d", ErrLagged, dropped)) {
				return
			}
			for _, c := range q {
				if !yield(c, nil) {
					return
				}
			}
			if closed {
				return
			}
			if len(q) > 0 {
				continue
			}
			select {
			case <-s.notify:
			case <-ctx.Done():
				yield(Change{}, ctx.Err())
				return
			}
		}
	}
}

func (db *DB) unsubscribe(s *subscription) {
	db.subs.Lock()
	defer db.subs.Unlock()
	for i, x := range db.subs.list {
		if x == s {
			db.subs.list = append(db.subs.list[:i], db.subs.list[i+1:]...)
			return
		}
	}
}
