package converge

import (
	"context"
	"errors"
	"time"
)

// NotifyOnline tells the replicator that the device is online again (the
// app heard so from the platform: a network change, the app coming to
// the foreground). Every namespace syncs at once, the backoff after
// failed syncs starts over, and live streams waiting to reconnect
// reconnect now. It does not wait for the syncs. While paused, it
// only starts the backoff over.
func (r *Replicator) NotifyOnline() {
	r.mu.Lock()
	close(r.mu.online)
	r.mu.online = make(chan struct{})
	r.mu.Unlock()
	for _, ns := range r.Namespaces() {
		r.step(ns, func(s *namespaceSync, now time.Time) { s.Online(now) })
	}
}

// probe checks that the peer is reachable, every ProbeInterval while a
// namespace's last sync failed or a live stream waits to reconnect, and
// calls NotifyOnline when the peer comes back: at a check that succeeds
// after one failed, or at the first check that succeeds after the syncs
// began to fail (an outage shorter than a probe interval). Other checks
// that succeed change nothing: a peer that is reachable but refuses the
// syncs is retried with the backoff, not at every probe. A peer with no
// check of its own is not probed.
func (r *Replicator) probe() {
	reachable := true // the last check succeeded (or none was made)
	notified := false // NotifyOnline was called since the syncs began to fail
	for {
		if !r.offline() {
			reachable, notified = true, false
			if !waitUntil(r.ctx, time.Time{}, r.probeWake) {
				return
			}
			continue
		}
		if !waitUntil(r.ctx, time.Now().Add(r.opts.ProbeInterval), nil) {
			return
		}
		ctx, cancel := context.WithTimeout(r.ctx, r.opts.ProbeInterval)
		err := r.peer.Health(ctx)
		cancel()
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			return
		case err != nil:
			if reachable && r.ctx.Err() == nil {
				r.logger.Debug("peer unreachable", "err", err)
			}
			reachable = false
		case !reachable || !notified:
			reachable, notified = true, true
			r.logger.Debug("peer reachable: syncing")
			r.NotifyOnline()
		}
	}
}

// offline reports whether a namespace's last sync failed or a live
// stream waits to reconnect: whether the peer is worth probing.
func (r *Replicator) offline() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.paused {
		return false
	}
	if r.mu.reconnecting > 0 {
		return true
	}
	for _, s := range r.mu.plans {
		if s.status.Failures > 0 {
			return true
		}
	}
	return false
}
