package converge

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
	"github.com/convergedb/converge/query"
)

// notifier fans the committed changes out to the subscriptions and
// watches of their namespace. The store's commit hook only queues the
// commit (under the store's write lock, in commit order, O(1) in the
// number of listeners); one goroutine, the dispatcher, delivers the queued
// commits in order, to the listeners of each commit's namespace only. A
// watch is woken only by a change that can alter its result (see
// [watcher]), found through indexes rather than by asking every watch.
type notifier struct {
	// listeners counts subscriptions and watches: with none, publish
	// queues nothing.
	listeners atomic.Int64
	maxQueue  int // changes queued at most; beyond, the rest overflow

	q struct {
		sync.Mutex
		seq      uint64 // commits published so far
		commits  []queuedCommit
		changes  int            // changes in commits
		overflow map[string]int // changes dropped per namespace, queue full
		closed   bool
	}
	wake chan struct{} // 1-buffered: the queue is not empty
	done chan struct{} // closed when the dispatcher ends

	// mu guards the listeners; the dispatcher holds it while it delivers.
	mu  sync.Mutex
	ns  map[string]*nsListeners
	all []*subscription // subscriptions to every namespace
	// delivered is the seq up to which the dispatcher has delivered (or
	// dropped) the commits, and stopped whether it ended; guarded by mu,
	// broadcast on batch after each batch.
	delivered uint64
	stopped   bool
	batch     sync.Cond
}

type queuedCommit struct {
	seq uint64
	c   *oplog.Commit
}

// nsListeners are the listeners of one namespace.
type nsListeners struct {
	subs []*subscription
	// The watches, by what wakes them. A watch is in exactly one of
	// anyIn[coll] (every change of coll), byAnchor (a change whose record
	// has the anchor's value) or scan[coll] (a change whose new state its
	// predicate matches), besides any[other] for the other collections
	// its filters read, and members for the records of its last result.
	anyIn    map[string]map[*watcher]struct{}
	scan     map[string]map[*watcher]struct{}
	byAnchor map[anchor]map[*watcher]struct{}
	anchors  map[string]map[string]int // coll → anchored field → watches
	members  map[member]map[*watcher]struct{}
	reading  map[*watcher]struct{} // watches re-reading: woken by any change
	funcs    map[*watcher]struct{} // watches whose own function decides
	watchers map[*watcher]struct{} // every watch
}

// anchor is an equality condition that every record a watch's predicate
// matches satisfies: field has the value whose key (crdt.AppendValueKey)
// is key.
type anchor struct{ coll, field, key string }

type member struct{ coll, id string }

func newNotifier(maxQueue int) *notifier {
	n := &notifier{maxQueue: maxQueue, wake: make(chan struct{}, 1), done: make(chan struct{}), ns: make(map[string]*nsListeners)}
	n.batch.L = &n.mu
	go n.run()
	return n
}

// publish queues c for delivery. It runs under the store's write lock and
// never blocks on a listener.
func (n *notifier) publish(c *oplog.Commit) {
	if len(c.Changes)+len(c.Ops) == 0 || n.listeners.Load() == 0 {
		return
	}
	n.q.Lock()
	n.q.seq++
	if n.q.closed {
		n.q.Unlock()
		return
	}
	if k := max(len(c.Changes), 1); n.q.changes+k > n.maxQueue {
		if n.q.overflow == nil {
			n.q.overflow = make(map[string]int)
		}
		n.q.overflow[c.Namespace] += len(c.Changes)
	} else {
		n.q.commits = append(n.q.commits, queuedCommit{n.q.seq, c})
		n.q.changes += k
	}
	n.q.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// published returns the number of commits published so far: a listener
// made now is not told of them.
func (n *notifier) published() uint64 {
	n.q.Lock()
	defer n.q.Unlock()
	return n.q.seq
}

// run is the dispatcher: it delivers what is queued until close.
func (n *notifier) run() {
	defer close(n.done)
	for range n.wake {
		n.q.Lock()
		commits, overflow, closed, upto := n.q.commits, n.q.overflow, n.q.closed, n.q.seq
		n.q.commits, n.q.overflow, n.q.changes = nil, nil, 0
		n.q.Unlock()
		n.mu.Lock()
		for ns, k := range overflow {
			n.lagged(ns, k)
		}
		for _, qc := range commits {
			n.deliver(qc)
		}
		n.delivered, n.stopped = upto, closed
		n.batch.Broadcast()
		n.mu.Unlock()
		if closed {
			return
		}
	}
}

// waitDelivered waits until the dispatcher has delivered every commit
// published before the call (or has ended).
func (n *notifier) waitDelivered() {
	want := n.published()
	n.mu.Lock()
	defer n.mu.Unlock()
	for n.delivered < want && !n.stopped {
		n.batch.Wait()
	}
}

// close stops the dispatcher once it has delivered what is queued.
func (n *notifier) close() {
	n.q.Lock()
	already := n.q.closed
	n.q.closed = true
	n.q.Unlock()
	if !already {
		n.wake <- struct{}{} // never blocks for long: the dispatcher drains it
	}
	<-n.done
}

// lagged tells the listeners of ns that k of its changes were dropped.
func (n *notifier) lagged(ns string, k int) {
	for _, list := range n.subsOf(ns) {
		for _, s := range list {
			if k > 0 {
				s.drop(k)
			}
		}
	}
	if l := n.ns[ns]; l != nil {
		markAll(l.watchers)
	}
}

func (n *notifier) subsOf(ns string) [][]*subscription {
	var out [][]*subscription
	if l := n.ns[ns]; l != nil && len(l.subs) > 0 {
		out = append(out, l.subs)
	}
	if len(n.all) > 0 {
		out = append(out, n.all)
	}
	return out
}

// deliver gives the changes of qc to the listeners of its namespace.
func (n *notifier) deliver(qc queuedCommit) {
	c := qc.c
	for _, list := range n.subsOf(c.Namespace) {
		for _, s := range list {
			if s.from >= qc.seq {
				continue // subscribed after this commit
			}
			for i := range c.Changes {
				s.push(changeOf(&c.Changes[i]))
			}
		}
	}
	l := n.ns[c.Namespace]
	if l == nil {
		return
	}
	// An op that changes nothing visible still changes its record's
	// metadata (Meta.Updated), which a result shows.
	for i := range c.Ops {
		markAll(l.members[member{c.Ops[i].Collection, c.Ops[i].Key}])
	}
	if len(c.Ops) > 0 {
		markAll(l.reading)
	}
	for i := range c.Changes {
		ch := &c.Changes[i]
		var st *crdt.Record
		if i < len(c.States) {
			st = c.States[i]
		}
		l.wakeFor(ch.Collection, ch.Key, st)
	}
}

// wakeFor marks the watches that a change of record id of coll, whose
// state is now st (nil: unknown), may concern.
func (l *nsListeners) wakeFor(coll, id string, st *crdt.Record) {
	markAll(l.anyIn[coll])
	markAll(l.members[member{coll, id}])
	markAll(l.reading)
	for w := range l.funcs {
		if w.match(coll, id) {
			w.mark()
		}
	}
	it := query.Item{ID: id, Rec: st}
	live := st != nil && st.Exists()
	for field := range l.anchors[coll] {
		if !live {
			break // a deleted record matches no result; members covers the old one
		}
		v, _ := st.Get(field)
		k, ok := anchorKey(v.Value)
		if !ok {
			continue
		}
		for w := range l.byAnchor[anchor{coll, field, k}] {
			if query.Match(w.pred, it) {
				w.mark()
			}
		}
	}
	for w := range l.scan[coll] {
		if st == nil || (live && query.Match(w.pred, it)) {
			w.mark()
		}
	}
}

func markAll(ws map[*watcher]struct{}) {
	for w := range ws {
		w.mark()
	}
}

func (l *nsListeners) empty() bool {
	return len(l.subs) == 0 && len(l.watchers) == 0
}

// listenersLocked returns the listeners of ns, made if need be.
func (n *notifier) listenersLocked(ns string) *nsListeners {
	l := n.ns[ns]
	if l == nil {
		l = &nsListeners{
			anyIn: make(map[string]map[*watcher]struct{}), scan: make(map[string]map[*watcher]struct{}),
			byAnchor: make(map[anchor]map[*watcher]struct{}), anchors: make(map[string]map[string]int),
			members: make(map[member]map[*watcher]struct{}), reading: make(map[*watcher]struct{}),
			funcs:    make(map[*watcher]struct{}),
			watchers: make(map[*watcher]struct{}),
		}
		n.ns[ns] = l
	}
	return l
}

// forgetLocked drops the listeners of ns once empty.
func (n *notifier) forgetLocked(ns string) {
	if l := n.ns[ns]; l != nil && l.empty() {
		delete(n.ns, ns)
	}
}

func addTo[K comparable](m map[K]map[*watcher]struct{}, k K, w *watcher) {
	ws := m[k]
	if ws == nil {
		ws = make(map[*watcher]struct{})
		m[k] = ws
	}
	ws[w] = struct{}{}
}

func removeFrom[K comparable](m map[K]map[*watcher]struct{}, k K, w *watcher) {
	if ws := m[k]; ws != nil {
		delete(ws, w)
		if len(ws) == 0 {
			delete(m, k)
		}
	}
}

// subscribe adds s, which is told of the commits published from now on.
func (n *notifier) subscribe(s *subscription) {
	n.listeners.Add(1)
	s.from = n.published()
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.ns == "" {
		n.all = append(n.all, s)
		return
	}
	l := n.listenersLocked(s.ns)
	l.subs = append(l.subs, s)
}

// unsubscribe removes s; it is idempotent.
func (n *notifier) unsubscribe(s *subscription) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.ns == "" {
		if i := slices.Index(n.all, s); i >= 0 {
			n.all = slices.Delete(n.all, i, i+1)
			n.listeners.Add(-1)
		}
		return
	}
	if l := n.ns[s.ns]; l != nil {
		if i := slices.Index(l.subs, s); i >= 0 {
			l.subs = slices.Delete(l.subs, i, i+1)
			n.listeners.Add(-1)
		}
		n.forgetLocked(s.ns)
	}
}

// subscriptions returns every subscription, for Close.
func (n *notifier) subscriptions() []*subscription {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := slices.Clone(n.all)
	for _, l := range n.ns {
		out = append(out, l.subs...)
	}
	return out
}
