package oplog

import (
	"context"
	"encoding/binary"
	"fmt"
	"iter"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/materialize"
)

// The change feed of a namespace is every visible change, local or remote,
// numbered in commit order (1, 2, 3 ...) and stored in the commit's batch:
// a consumer that keeps the number of the last change it handled resumes
// after it, across restarts, missing and repeating nothing.

// lastFeedLocked returns the number of the last change in the feed of ns.
func (l *Log) lastFeedLocked(ns string) (uint64, error) {
	if n, ok := l.mu.feeds[ns]; ok {
		return n, nil
	}
	prefix := nsKey(tagFeed, ns)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, fmt.Errorf("oplog: feed %q: %w", ns, pebbleErr(err))
	}
	var n uint64
	if it.Last() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			it.Close()
			return 0, fmt.Errorf("%w: feed key %q", ErrCorrupt, k)
		}
		n = binary.BigEndian.Uint64(k[len(prefix):])
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("oplog: feed %q: %w", ns, pebbleErr(err))
	}
	l.mu.feeds[ns] = n
	return n, nil
}

// FeedHead returns the number of the last change in the feed of ns (0 if
// none).
func (l *Log) FeedHead(ctx context.Context, ns string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("oplog: feed head: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	return l.lastFeedLocked(ns)
}

// Feed yields the stored changes of ns numbered after after, in order, up to
// the last committed when iteration begins. It stops at the first error,
// which it yields with a zero change: ErrFeedTrimmed if compaction dropped
// the changes after after.
func (l *Log) Feed(ctx context.Context, ns string, after uint64) iter.Seq2[materialize.Change, error] {
	return func(yield func(materialize.Change, error) bool) {
		if err := l.acquire(ctx); err != nil {
			yield(materialize.Change{}, err)
			return
		}
		defer l.release()
		prefix := nsKey(tagFeed, ns)
		it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: feedKey(ns, after+1), UpperBound: prefixEnd(prefix)})
		if err != nil {
			yield(materialize.Change{}, fmt.Errorf("oplog: feed %q: %w", ns, pebbleErr(err)))
			return
		}
		defer it.Close()
		want := after + 1
		for it.First(); it.Valid(); it.Next() {
			k := it.Key()
			var c materialize.Change
			if len(k) == len(prefix)+8 {
				c, err = materialize.DecodeChange(it.Value())
			} else {
				err = errBadKey
			}
			if err == nil {
				c.Namespace, c.Seq = ns, binary.BigEndian.Uint64(k[len(prefix):])
				if c.Seq != want {
					if want == after+1 && l.feedStartsAt(ctx, ns, c.Seq) {
						yield(materialize.Change{}, fmt.Errorf("%w: %q keeps the changes from %d, asked for %d on", ErrFeedTrimmed, ns, c.Seq, want))
						return
					}
					err = fmt.Errorf("feed of %q has change %d where %d belongs", ns, c.Seq, want)
				}
			}
			if err != nil {
				yield(materialize.Change{}, fmt.Errorf("%w: feed %q: %w", ErrCorrupt, k, err))
				return
			}
			if !yield(c, nil) {
				return
			}
			want++
		}
		if err := it.Error(); err != nil {
			yield(materialize.Change{}, fmt.Errorf("oplog: feed %q: %w", ns, pebbleErr(err)))
		}
	}
}

// feedStartsAt reports whether n is the first change of the feed of ns:
// the changes before it were trimmed, not lost.
func (l *Log) feedStartsAt(ctx context.Context, ns string, n uint64) bool {
	prefix := nsKey(tagFeed, ns)
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: feedKey(ns, n)})
	if err != nil {
		return false
	}
	defer it.Close()
	return !it.First() && it.Error() == nil
}
