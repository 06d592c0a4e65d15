package converge

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/convergedb/converge/crdt"
)

// Status returns the replication status of ns.
func (r *Replicator) Status(ctx context.Context, ns string) (Status, error) {
	r.mu.Lock()
	plan, ok := r.mu.plans[ns]
	var s Status
	if ok {
		s = plan.status
	}
	r.mu.Unlock()
	if !ok {
		return Status{}, fmt.Errorf("%w: namespace %q is not replicated", ErrInvalid, ns)
	}
	mine, err := r.db.log.Vector(ctx, ns)
	if err != nil {
		return s, storeErr(fmt.Errorf("converge: status %q: %w", ns, err))
	}
	acked, err := r.acknowledged(ctx, ns)
	if err != nil {
		return s, storeErr(fmt.Errorf("converge: status %q: %w", ns, err))
	}
	if ours := mine[r.db.log.ReplicaID()]; ours > acked {
		s.Pending = ours - acked
	}
	q, err := r.db.log.QuarantineStats(ns)
	if err != nil {
		return s, storeErr(fmt.Errorf("converge: status %q: %w", ns, err))
	}
	s.Quarantined, s.QuarantineWaiting = q.Ops, q.Waiting
	if s.Pending > 0 && !s.LastSync.IsZero() {
		s.Lag = time.Since(s.LastSync)
	}
	return s, nil
}

// acknowledged returns how many of this replica's own ops of ns the peer
// is known to hold. It never counts an op the peer may lack:
//
//   - once a sync in this run named the peer that answered, it is what that
//     peer acknowledged, as the DB keeps it ([Admin.Peers]: persisted, and
//     merged with what the peer said in syncs it started);
//   - after a sync with a peer that did not name itself, it is the vector
//     that peer answered;
//   - before either (a replicator just opened, perhaps offline), it is the
//     least that any peer that ever answered a sync of this DB's acknowledged
//     (0 if there is none): the replicator's peer is one of them, unless
//     it is new.
func (r *Replicator) acknowledged(ctx context.Context, ns string) (uint64, error) {
	self := r.db.log.ReplicaID()
	r.mu.Lock()
	id, answered := r.mu.plans[ns].peerID, r.mu.plans[ns].peerVV
	r.mu.Unlock()
	if !id.IsZero() {
		seq, known, err := r.db.log.PeerHolds(ctx, ns, id, self)
		if err != nil || known {
			return seq, err
		}
		return answered[self], nil // forgotten since (Admin.ForgetPeer)
	}
	if answered != nil {
		return answered[self], nil
	}
	ups, err := r.db.log.Upstreams(ctx, ns)
	if err != nil || len(ups) == 0 {
		return 0, err
	}
	var least uint64
	for i, up := range ups {
		seq, _, err := r.db.log.PeerHolds(ctx, ns, up, self)
		if err != nil {
			return 0, err
		}
		if i == 0 || seq < least {
			least = seq
		}
	}
	return least, nil
}

// notePeer records that peer answered a sync of ns, so that the
// replicator reopened counts pending ops against what it holds.
func (r *Replicator) notePeer(ns string, peer crdt.ReplicaID) {
	if peer.IsZero() {
		return
	}
	if err := r.db.log.NoteUpstream(r.ctx, ns, peer); err != nil && r.ctx.Err() == nil {
		// Advisory: the next sync records it again.
		r.logger.Debug("recording the peer failed", "namespace", ns, "peer", peer, "err", err)
	}
}

// Statuses yields the status of every replicated namespace now, then a
// namespace's status again whenever any field of it but Lag changes (Lag
// grows with the clock; it is computed as of each yield), until ctx ends
// or the replicator (or its DB) closes. Pending changes with local writes,
// paused or not, and with what the peer acknowledges; Quarantined and
// QuarantineWaiting with the quarantine and what peers hold. A slow
// reader gets the latest status, not every intermediate one.
func (r *Replicator) Statuses(ctx context.Context) iter.Seq[Status] {
	return func(yield func(Status) bool) {
		w := make(chan struct{}, 1)
		r.watchers.Lock()
		r.watchers.set[w] = struct{}{}
		r.watchers.Unlock()
		defer func() {
			r.watchers.Lock()
			delete(r.watchers.set, w)
			r.watchers.Unlock()
		}()
		last := make(map[string]Status)
		for {
			for _, ns := range r.Namespaces() {
				s, err := r.Status(ctx, ns)
				if errors.Is(err, ErrInvalid) {
					continue // removed meanwhile
				}
				if err != nil {
					return
				}
				if prev, ok := last[ns]; ok && sameStatus(prev, s) {
					continue
				}
				last[ns] = s
				if !yield(s) {
					return
				}
			}
			select {
			case <-w:
			case <-ctx.Done():
				return
			case <-r.ctx.Done():
				return
			}
		}
	}
}

// sameStatus reports whether a and b agree on every field but Lag;
// errors are compared by message.
func sameStatus(a, b Status) bool {
	if errText(a.LastError) != errText(b.LastError) {
		return false
	}
	a.Lag, b.Lag, a.LastError, b.LastError = 0, 0, nil, nil
	return a == b
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// wakeWatchers wakes the status streams. It never blocks.
func (r *Replicator) wakeWatchers() {
	r.watchers.Lock()
	defer r.watchers.Unlock()
	for w := range r.watchers.set {
		signal(w)
	}
}

// namespaceChanged is the DB's notice that what a status of ns reads
// changed (a commit, the quarantine, what a peer holds). It runs with the
// store's lock held and never blocks.
func (r *Replicator) namespaceChanged(ns string) {
	if _, ok := r.namespace(ns); ok {
		r.wakeWatchers()
	}
}

// applyCounts counts what a replicator applied to one namespace.
type applyCounts struct {
	Applied, Conflicts, Refused, Resolved int
}

func (c applyCounts) minus(d applyCounts) applyCounts {
	return applyCounts{c.Applied - d.Applied, c.Conflicts - d.Conflicts, c.Refused - d.Refused, c.Resolved - d.Resolved}
}

// applyTally is what a replicator applied, per namespace, since it
// opened: its syncs' pages and its live stream's batches. A sync reports
// the difference over its run.
type applyTally struct {
	mu     sync.Mutex
	counts map[string]applyCounts
}

func (t *applyTally) add(ns string, c applyCounts) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.counts[ns]
	cur.Applied += c.Applied
	cur.Conflicts += c.Conflicts
	cur.Refused += c.Refused
	cur.Resolved += c.Resolved
	t.counts[ns] = cur
}

func (t *applyTally) get(ns string) applyCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[ns]
}

// own registers r as opened on db, so that Close closes it first. It
// fails with ErrClosed once db is closed.
func (db *DB) own(r *Replicator) error {
	db.subs.Lock()
	defer db.subs.Unlock()
	if db.subs.closed {
		return errorf("converge: open replicator: %w", ErrClosed)
	}
	if db.subs.replicators == nil {
		db.subs.replicators = make(map[*Replicator]struct{})
	}
	db.subs.replicators[r] = struct{}{}
	return nil
}

// disown forgets r, closed on its own.
func (db *DB) disown(r *Replicator) {
	db.subs.Lock()
	defer db.subs.Unlock()
	delete(db.subs.replicators, r)
}

// changed is the store's OnChange hook: it tells the replicators that
// what their statuses of ns read changed, and calls the Admin.OnChange
// hooks. It runs with the store's lock held.
func (db *DB) changed(ns string) {
	db.markDirty(ns)
	db.subs.Lock()
	defer db.subs.Unlock()
	for r := range db.subs.replicators {
		r.namespaceChanged(ns)
	}
	for _, h := range db.subs.changeHooks {
		h.fn(ns)
	}
}
