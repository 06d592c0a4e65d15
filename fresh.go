package converge

import (
	"context"
	"errors"
	"fmt"
)

// Syncer syncs a namespace with a peer at once: [Replicator] is one.
type Syncer interface {
	SyncNow(ctx context.Context, ns string) (SyncResult, error)
}

// FreshCollection reads a collection fresh from a peer: each read first
// syncs its namespace with the peer (both ways, one [Syncer.SyncNow]),
// bounded by the read's ctx, then reads the local store, which then
// holds everything the peer held when it answered. It is the one-shot
// "remote: true" read of apps that want what the server has now; the
// live way is a Watch with a replicator running.
//
// When the sync fails (offline, ctx ended, the peer refused), a read
// returns what the local store holds with an error wrapping ErrStale and
// the sync's error: the caller decides whether stale data will do
// (errors.Is(err, ErrStale)) or not. If the local read fails too, both
// errors are joined. The local read runs even when ctx has ended (it
// does not block on the network).
type FreshCollection[T any] struct {
	c *Collection[T]
	s Syncer
}

// Fresh returns the collection's reads fresh from the peer of s (a
// [Replicator] replicating the namespaces read).
func (c *Collection[T]) Fresh(s Syncer) FreshCollection[T] { return FreshCollection[T]{c: c, s: s} }

// sync syncs ns, returning an error wrapping ErrStale if it failed.
func (f FreshCollection[T]) sync(ctx context.Context, ns string) error {
	if _, err := f.s.SyncNow(ctx, ns); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrStale, ns, err)
	}
	return nil
}

// Get syncs ns with the peer, then reads record id (see
// [FreshCollection] for a sync that fails).
func (f FreshCollection[T]) Get(ctx context.Context, ns, id string) (T, error) {
	stale := f.sync(ctx, ns)
	v, err := f.c.Get(context.WithoutCancel(ctx), ns, id)
	return v, errors.Join(stale, err)
}

// Find syncs ns with the peer, then runs q (see [FreshCollection] for a
// sync that fails).
func (f FreshCollection[T]) Find(ctx context.Context, ns string, q Query) ([]T, error) {
	stale := f.sync(ctx, ns)
	v, err := f.c.Find(context.WithoutCancel(ctx), ns, q)
	return v, errors.Join(stale, err)
}
