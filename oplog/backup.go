package oplog

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Checkpoint writes a consistent copy of the store to dest, a directory
// that must not exist (on the store's file system), while the store keeps
// serving reads and writes: Pebble's checkpoint, which hard-links the
// immutable files where it can and copies the rest. The copy holds every
// commit that returned before Checkpoint was called.
//
// The copy has no DotsFile, on purpose: a store opened from it may lack
// ops its replica handed out after the copy was taken, so it continues
// under a new replica id ([Log.IdentityChange]) and never reuses a dot.
// Restore by putting the copy where the store lives (the old store moved
// away) and opening it.
func (l *Log) Checkpoint(ctx context.Context, dest string) error {
	if err := l.acquire(ctx); err != nil {
		return fmt.Errorf("oplog: checkpoint: %w", err)
	}
	defer l.release()
	if err := l.db.Checkpoint(dest, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("oplog: checkpoint to %s: %w", dest, pebbleErr(err))
	}
	l.logger.Info("checkpoint written", "dest", dest)
	return nil
}
