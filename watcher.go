package converge

import (
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/query"
)

// watcher is a watch's registration with the notifier. A change of record
// r of the watched collection can alter the result only if r is in the
// last result (members) or r's new state matches the query's predicate:
// a record in neither the old nor the new result moves no other record in
// or out of a page that starts at the beginning or at a cursor (an Offset
// is the exception: such a watch is woken by every change). While the
// watch re-reads, every change of the namespace wakes it, so that none
// falls between the result it reads and the members it then registers.
//
// The fields are guarded by the notifier's mu, except notify.
type watcher struct {
	n      *notifier
	ns     string
	coll   string
	others []string // other collections: their every change wakes it
	record string   // set: a watch of this one record (WatchRecord)

	mode    watchMode
	pred    query.Pred
	match   func(coll, id string) bool
	anchor  anchor
	members []string

	notify chan struct{} // 1-buffered: a change may have altered the result
}

type watchMode uint8

const (
	modeNone   watchMode = iota // not registered for coll yet
	modeAll                     // every change of coll
	modeAnchor                  // changes whose record has the anchor's value
	modeScan                    // changes whose new state pred matches
	modeRecord                  // changes of record only
	modeFunc                    // changes match selects, of any collection
)

// watchSpec is what a read of a watch tells the notifier: which changes of
// its collection may alter the result it read.
type watchSpec struct {
	all  bool       // every change
	pred query.Pred // else: those whose new state matches pred, or of ids
	ids  []string   // the records of the result
	// match, if set, decides instead, for any change of the namespace,
	// from its collection and record id. It is called by the notifier.
	match func(coll, id string) bool
}

// specOf returns the spec of a result read by the compiled query qq.
func specOf(qq *query.Query, items []query.Item) watchSpec {
	if qq.Offset > 0 && qq.After == "" {
		return watchSpec{all: true}
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return watchSpec{pred: qq.Where, ids: ids}
}

func (w *watcher) mark() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// watch registers a watcher of collection coll of ns (and of every change
// of others), in the re-reading state: call beginRead/endRead around each
// read, and close when done.
func (n *notifier) watch(ns, coll string, others []string, record string) *watcher {
	w := &watcher{n: n, ns: ns, coll: coll, others: others, record: record, notify: make(chan struct{}, 1)}
	n.listeners.Add(1)
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.listenersLocked(ns)
	l.watchers[w] = struct{}{}
	for _, o := range others {
		addTo(l.anyIn, o, w)
	}
	if record != "" {
		w.mode = modeRecord
		addTo(l.members, member{coll, record}, w)
	}
	return w
}

// beginRead puts w in the re-reading state and clears its pending wake:
// the read about to start covers the changes delivered so far.
func (w *watcher) beginRead() {
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	w.n.listenersLocked(w.ns).reading[w] = struct{}{}
	select {
	case <-w.notify:
	default:
	}
}

// endRead registers what the read found and leaves the re-reading state.
func (w *watcher) endRead(s watchSpec) {
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	l := w.n.listenersLocked(w.ns)
	delete(l.reading, w)
	if w.mode == modeRecord {
		return
	}
	w.unregisterLocked(l)
	switch {
	case s.match != nil:
		w.mode, w.match = modeFunc, s.match
		l.funcs[w] = struct{}{}
		return
	case s.all:
		w.mode = modeAll
		addTo(l.anyIn, w.coll, w)
		return
	case anchorOf(s.pred, w.coll, &w.anchor):
		w.mode = modeAnchor
		addTo(l.byAnchor, w.anchor, w)
		fields := l.anchors[w.coll]
		if fields == nil {
			fields = make(map[string]int)
			l.anchors[w.coll] = fields
		}
		fields[w.anchor.field]++
	default:
		w.mode = modeScan
		addTo(l.scan, w.coll, w)
	}
	w.pred = s.pred
	w.members = s.ids
	for _, id := range w.members {
		addTo(l.members, member{w.coll, id}, w)
	}
}

// unregisterLocked removes what endRead registered.
func (w *watcher) unregisterLocked(l *nsListeners) {
	switch w.mode {
	case modeAll:
		removeFrom(l.anyIn, w.coll, w)
	case modeAnchor:
		removeFrom(l.byAnchor, w.anchor, w)
		if fields := l.anchors[w.coll]; fields != nil {
			if fields[w.anchor.field]--; fields[w.anchor.field] <= 0 {
				delete(fields, w.anchor.field)
			}
			if len(fields) == 0 {
				delete(l.anchors, w.coll)
			}
		}
	case modeScan:
		removeFrom(l.scan, w.coll, w)
	case modeRecord:
		removeFrom(l.members, member{w.coll, w.record}, w)
	case modeFunc:
		delete(l.funcs, w)
	}
	for _, id := range w.members {
		removeFrom(l.members, member{w.coll, id}, w)
	}
	w.mode, w.pred, w.match, w.members = modeNone, nil, nil, nil
}

// close unregisters w.
func (w *watcher) close() {
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	if l := w.n.ns[w.ns]; l != nil {
		w.unregisterLocked(l)
		delete(l.reading, w)
		delete(l.watchers, w)
		for _, o := range w.others {
			removeFrom(l.anyIn, o, w)
		}
		w.n.forgetLocked(w.ns)
	}
	w.n.listeners.Add(-1)
}

// anchorOf finds in p a top-level equality condition with one present
// value, which every record p matches satisfies, and sets *a to it.
func anchorOf(p query.Pred, coll string, a *anchor) bool {
	switch p := p.(type) {
	case *query.Cond:
		if p == nil || p.Op != query.Eq || len(p.Values) != 1 || p.Field == query.IDField {
			return false
		}
		k, ok := anchorKey(p.Values[0])
		if ok {
			*a = anchor{coll, p.Field, k}
		}
		return ok
	case *query.And:
		if p == nil {
			return false
		}
		for _, q := range p.Preds {
			if anchorOf(q, coll, a) {
				return true
			}
		}
	}
	return false
}

// anchorKey returns the key under which the watches anchored on value v
// are found: equal values (crdt.CompareValues) have one key. Numbers keep
// only their float part, which equal numbers of different types share
// (different numbers may share it too: the predicate then decides).
// Missing, nil and composite values are not anchors (ok false).
func anchorKey(v []byte) (key string, ok bool) {
	if len(v) == 0 {
		return "", false
	}
	k := crdt.AppendValueKey(nil, v)
	switch k[0] {
	case 0x03, 0x04, 0x06, 0x07, 0x08: // false, true, string, binary, time
		return string(k), true
	case 0x05: // number: the tag and the 8-byte float part
		return string(k[:9]), true
	}
	return "", false
}
