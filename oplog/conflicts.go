package oplog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/materialize"
)

// nextConflictLocked returns the number the next conflict of ns gets: one
// more than the last stored (conflict numbers only grow, so it also counts
// every conflict ever logged in ns).
func (l *Log) nextConflictLocked(ns string) (uint64, error) {
	if n, ok := l.mu.conflicts[ns]; ok {
		return n, nil
	}
	prefix := nsKey(tagConflict, ns)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, fmt.Errorf("oplog: conflicts %q: %w", ns, pebbleErr(err))
	}
	var n uint64
	if it.Last() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			it.Close()
			return 0, fmt.Errorf("%w: conflict key %q", ErrCorrupt, k)
		}
		n = binary.BigEndian.Uint64(k[len(prefix):]) + 1
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("oplog: conflicts %q: %w", ns, pebbleErr(err))
	}
	l.mu.conflicts[ns] = n
	return n, nil
}

// logConflictsLocked adds the batch's conflicts to the ring of ns, dropping
// the oldest beyond ConflictLogSize.
func (l *Log) logConflictsLocked(b *batch) error {
	if len(b.commit.Conflicts) == 0 {
		return nil
	}
	n, err := l.nextConflictLocked(b.ns)
	if err != nil {
		return err
	}
	size := uint64(l.opts.ConflictLogSize)
	var enc []byte
	for i := range b.commit.Conflicts {
		enc = materialize.AppendConflict(enc[:0], &b.commit.Conflicts[i])
		if err := b.pb.Set(conflictKey(b.ns, n), enc, nil); err != nil {
			return fmt.Errorf("oplog: log conflict: %w", err)
		}
		if n >= size {
			if err := b.pb.Delete(conflictKey(b.ns, n-size), nil); err != nil {
				return fmt.Errorf("oplog: log conflict: %w", err)
			}
		}
		n++
	}
	// The batch may still fail to commit; then the numbers are skipped,
	// which only leaves a hole in the ring.
	l.mu.conflicts[b.ns] = n
	return nil
}

// ConflictCount returns how many conflicts were ever detected in ns.
func (l *Log) ConflictCount(ctx context.Context, ns string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("oplog: conflict count: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	return l.nextConflictLocked(ns)
}

// Conflicts returns the latest conflicts kept for ns (at most
// ConflictLogSize), oldest first.
func (l *Log) Conflicts(ctx context.Context, ns string) ([]materialize.Conflict, error) {
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.release()
	prefix := nsKey(tagConflict, ns)
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("oplog: conflicts %q: %w", ns, pebbleErr(err))
	}
	defer it.Close()
	var out []materialize.Conflict
	for it.First(); it.Valid(); it.Next() {
		c, err := materialize.DecodeConflict(bytes.Clone(it.Value()))
		if err != nil {
			return nil, fmt.Errorf("%w: conflict %q: %w", ErrCorrupt, it.Key(), err)
		}
		out = append(out, c)
	}
	return out, pebbleErr(it.Error())
}
