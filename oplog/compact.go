package oplog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/crdt"
)

// # Compaction
//
// The log of a namespace holds, per origin, the ops in (horizon, vector];
// the ops at or below the horizon have been folded into base states ('B')
// and dropped. The stored state of a record is always its base state
// merged with its ops in the log, so Verify and Rebuild fold the log onto
// the base states. Compaction raises the horizon to the stable vector: ops
// that every known replica holds, which no known replica will ever ask
// for. A replica that asks for ops below the horizon (a new one, or one
// that was forgotten) gets ErrCompacted and bootstraps from a snapshot.

// ErrCompacted is returned when a peer asks for ops below the compaction
// horizon: they were folded into base states and dropped from the log, so
// the peer must bootstrap from a snapshot ([Log.Snapshot]).
var ErrCompacted = errors.New("oplog: ops compacted away: snapshot needed")

// ErrFeedTrimmed is yielded by [Log.Feed] when the changes asked for were
// dropped by compaction (see Options.FeedRetention): the consumer must
// start again from the current state.
var ErrFeedTrimmed = errors.New("oplog: change feed trimmed")

// CompactOptions tune [Log.Compact].
type CompactOptions struct {
	// Horizon is the vector to compact up to (at most the store's
	// vector). Nil means the stable vector ([Log.StableVector]) when at
	// least one peer is known, and nothing otherwise: a replica's ops
	// must reach a peer before it drops them.
	Horizon crdt.VersionVector
	// BatchOps is how many ops one batch folds and drops. Zero means
	// 10000. Each batch rewrites the base state of every record its ops
	// touch, so larger batches write less (1000 wrote 6 times the base
	// states 10000 did, folding 300,000 updates of 1,000 records); each
	// holds the write lock for one commit of that size.
	BatchOps int
	// Wait, if set, is called before each batch with its size: a rate
	// limiter. An error ends the compaction (what was done stays done).
	Wait func(ctx context.Context, ops int) error
	// Reclaim asks Pebble to compact the dropped log range, so the disk
	// space returns now rather than with later compactions.
	Reclaim bool
}

// CompactStats reports one compaction of one namespace.
type CompactStats struct {
	Namespace     string
	Before, After crdt.VersionVector // the horizons
	Ops           int                // ops dropped from the log
	Records       int                // base states written (a record once per batch)
	FeedTrimmed   int                // change feed entries dropped
	Batches       int
}

// horizonLocked returns the cached compaction horizon of ns, loading it on
// first use. Callers must not modify it.
func (l *Log) horizonLocked(ns string) (crdt.VersionVector, error) {
	if l.mu.closed {
		return nil, ErrClosed
	}
	if h, ok := l.mu.horizons[ns]; ok {
		return h, nil
	}
	h, err := l.loadSeqs(tagHorizon, ns)
	if err != nil {
		return nil, fmt.Errorf("oplog: load horizon %q: %w", ns, err)
	}
	l.mu.horizons[ns] = h
	return h, nil
}

// Horizon returns the compaction horizon of ns: the ops it covers have been
// folded into base states and dropped from the log.
func (l *Log) Horizon(ctx context.Context, ns string) (crdt.VersionVector, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("oplog: horizon: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := l.horizonLocked(ns)
	if err != nil {
		return nil, err
	}
	return h.Clone(), nil
}

// checkHorizon returns ErrCompacted if a replica holding have lacks ops of
// ns below horizon h that mine holds.
func checkHorizon(ns string, mine, have, h crdt.VersionVector) error {
	for o, top := range h {
		if have[o] < top && mine[o] > have[o] {
			return fmt.Errorf("%w: %q: ops of %v up to %d are compacted, the peer holds up to %d", ErrCompacted, ns, o, top, have[o])
		}
	}
	return nil
}

// Compact folds the ops of ns at or below the target horizon (see
// CompactOptions.Horizon) into base states and drops them from the log, in
// batches of one origin's consecutive ops. Folding reads run without the
// write lock; each batch holds it only to commit, so writers are never
// blocked longer than one commit. It also trims the change feed to
// Options.FeedRetention. Compactions of one store run one at a time.
func (l *Log) Compact(ctx context.Context, ns string, opts CompactOptions) (CompactStats, error) {
	st := CompactStats{Namespace: ns}
	if err := checkNamespace(ns); err != nil {
		return st, err
	}
	if opts.BatchOps <= 0 {
		opts.BatchOps = 10000
	}
	if err := l.acquire(ctx); err != nil {
		return st, err
	}
	defer l.release()
	l.compactMu.Lock()
	defer l.compactMu.Unlock()

	l.mu.Lock()
	vv, err := l.vectorLocked(ns)
	var h, target crdt.VersionVector
	if err == nil {
		vv = vv.Clone()
		h, err = l.horizonLocked(ns)
		h = h.Clone()
	}
	if err == nil {
		target, err = l.targetLocked(ns, vv, opts.Horizon)
	}
	l.mu.Unlock()
	if err != nil {
		return st, err
	}
	st.Before = h.Clone()
	for _, o := range target.Origins() {
		for from := h[o] + 1; from <= target[o]; {
			if l.closing() {
				return st, ErrClosed
			}
			if err := ctx.Err(); err != nil {
				return st, fmt.Errorf("oplog: compact %q: %w", ns, err)
			}
			to := min(target[o], from+uint64(opts.BatchOps)-1)
			if opts.Wait != nil {
				if err := opts.Wait(ctx, int(to-from+1)); err != nil {
					return st, fmt.Errorf("oplog: compact %q: %w", ns, err)
				}
			}
			n, err := l.compactRange(ctx, ns, crdt.Range{Origin: o, From: from, To: to})
			if err != nil {
				return st, err
			}
			h[o] = to
			st.Ops += int(to - from + 1)
			st.Records += n
			st.Batches++
			from = to + 1
		}
	}
	st.After = h
	if st.FeedTrimmed, err = l.trimFeed(ctx, ns); err != nil {
		return st, err
	}
	if opts.Reclaim && st.Ops > 0 {
		prefix := nsKey(tagLog, ns)
		if err := l.db.Compact(ctx, prefix, prefixEnd(prefix), true); err != nil {
			return st, fmt.Errorf("oplog: compact %q: reclaim: %w", ns, pebbleErr(err))
		}
	}
	if st.Ops > 0 {
		l.logger.Debug("compacted", "namespace", ns, "ops", st.Ops, "records", st.Records, "horizon", st.After)
	}
	return st, nil
}

// targetLocked returns the horizon to compact ns to: want (or the stable
// vector), at most the store's vector vv.
func (l *Log) targetLocked(ns string, vv, want crdt.VersionVector) (crdt.VersionVector, error) {
	if want == nil {
		ps, err := l.peersLocked(ns)
		if err != nil {
			return nil, err
		}
		if err := l.expireLocked(ns, ps); err != nil {
			return nil, err
		}
		if len(ps.vecs) == 0 {
			return crdt.VersionVector{}, nil
		}
		want = ps.stable(vv)
	}
	target := make(crdt.VersionVector, len(want))
	for o, seq := range want {
		if seq = min(seq, vv[o]); seq > 0 {
			target[o] = seq
		}
	}
	return target, nil
}

// compactRange folds the log's ops in rg into base states, drops them and
// raises the horizon of rg's origin to rg.To, in one batch. It returns the
// number of records whose base state it wrote.
func (l *Log) compactRange(ctx context.Context, ns string, rg crdt.Range) (int, error) {
	lo := logKey(ns, crdt.Dot{Origin: rg.Origin, Seq: rg.From})
	hi := logKey(ns, crdt.Dot{Origin: rg.Origin, Seq: rg.To + 1})
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, fmt.Errorf("oplog: compact %q: %w", ns, pebbleErr(err))
	}
	bases := make(map[stateID]*crdt.Record)
	var order []stateID
	want := rg.From
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		seq := binary.BigEndian.Uint64(k[len(k)-8:])
		op, derr := crdt.DecodeOp(it.Value())
		switch {
		case seq != want:
			derr = fmt.Errorf("seq %d where %d belongs", seq, want)
		case derr == nil && (op.Dot != crdt.Dot{Origin: rg.Origin, Seq: seq} || op.Namespace != ns):
			derr = fmt.Errorf("op %v stored under seq %d", op.Dot, seq)
		}
		if derr != nil {
			it.Close()
			return 0, fmt.Errorf("%w: compact %q: log %q: %w", ErrCorrupt, ns, k, derr)
		}
		id := stateID{op.Collection, op.Key}
		r, ok := bases[id]
		if !ok {
			if r, err = l.readState(baseKey(ns, id.coll, id.key)); err != nil {
				it.Close()
				return 0, err
			}
			bases[id] = r
			order = append(order, id)
		}
		r.Apply(&op)
		want++
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("oplog: compact %q: %w", ns, pebbleErr(err))
	}
	if want != rg.To+1 {
		return 0, fmt.Errorf("%w: compact %q: log of %v ends at %d, below the vector's %d", ErrCorrupt, ns, rg.Origin, want-1, rg.To)
	}
	b := l.db.NewBatch()
	spent := false
	defer closeUnlessSpent(b, &spent)
	var buf []byte
	for _, id := range order {
		buf = bases[id].AppendBinary(buf[:0])
		if err := b.Set(baseKey(ns, id.coll, id.key), buf, nil); err != nil {
			return 0, fmt.Errorf("oplog: compact %q: %w", ns, err)
		}
	}
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return 0, fmt.Errorf("oplog: compact %q: %w", ns, err)
	}
	var u [8]byte
	binary.BigEndian.PutUint64(u[:], rg.To)
	if err := b.Set(horizonKey(ns, rg.Origin), u[:], nil); err != nil {
		return 0, fmt.Errorf("oplog: compact %q: %w", ns, err)
	}
	// Commit under the write lock, so a reader that takes a snapshot and
	// the cached horizon together sees both before or both after.
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := l.horizonLocked(ns)
	if err != nil {
		return 0, err
	}
	// No fsync: a lost batch leaves the ops in the log and the horizon
	// where it was, which is as consistent as after it.
	spent = true
	if err := l.commitBatch(ctx, "compact", b, pebble.NoSync); err != nil {
		return 0, fmt.Errorf("oplog: compact %q: %w", ns, err)
	}
	h[rg.Origin] = rg.To
	return len(order), nil
}

// trimFeed drops the oldest changes of ns beyond Options.FeedRetention.
func (l *Log) trimFeed(ctx context.Context, ns string) (int, error) {
	if l.opts.FeedRetention < 0 {
		return 0, nil
	}
	l.mu.Lock()
	head, err := l.lastFeedLocked(ns)
	l.mu.Unlock()
	if err != nil || head <= uint64(l.opts.FeedRetention) {
		return 0, err
	}
	keep := head - uint64(l.opts.FeedRetention) + 1 // the first change kept
	prefix := nsKey(tagFeed, ns)
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: feedKey(ns, keep)})
	if err != nil {
		return 0, fmt.Errorf("oplog: trim feed %q: %w", ns, pebbleErr(err))
	}
	var first uint64
	found := it.First()
	if found {
		k := it.Key()
		if len(k) == len(prefix)+8 {
			first = binary.BigEndian.Uint64(k[len(prefix):])
		}
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("oplog: trim feed %q: %w", ns, pebbleErr(err))
	}
	if !found {
		return 0, nil
	}
	if err := l.bounded(ctx, "trim feed", func() error { return l.db.DeleteRange(prefix, feedKey(ns, keep), pebble.NoSync) }); err != nil {
		return 0, fmt.Errorf("oplog: trim feed %q: %w", ns, err)
	}
	return int(keep - first), nil
}

// closing reports whether Close has begun.
func (l *Log) closing() bool {
	l.readers.Lock()
	defer l.readers.Unlock()
	return l.readers.closing
}

// NamespaceStats counts what a namespace holds, by keyspace: the log, the
// states, the base states and the change feed (keys and values, in bytes).
type NamespaceStats struct {
	Namespace             string
	LogOps, States, Bases int
	LogBytes, StateBytes  int64
	BaseBytes             int64
	FeedChanges           int
	FeedBytes             int64
	Vector, Horizon       crdt.VersionVector
}

// Stats counts what ns holds, from one consistent snapshot. It reads every
// key of the namespace: it takes time on large stores.
func (l *Log) Stats(ctx context.Context, ns string) (NamespaceStats, error) {
	st := NamespaceStats{Namespace: ns}
	if err := l.acquire(ctx); err != nil {
		return st, err
	}
	defer l.release()
	l.mu.Lock()
	snap, mine, h, err := l.snapshotLocked(ns)
	l.mu.Unlock()
	if err != nil {
		return st, err
	}
	defer snap.Close()
	st.Vector, st.Horizon = mine, h
	for _, c := range []struct {
		tag   byte
		n     *int
		bytes *int64
	}{
		{tagLog, &st.LogOps, &st.LogBytes},
		{tagState, &st.States, &st.StateBytes},
		{tagBase, &st.Bases, &st.BaseBytes},
		{tagFeed, &st.FeedChanges, &st.FeedBytes},
	} {
		prefix := nsKey(c.tag, ns)
		it, err := snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return st, fmt.Errorf("oplog: stats %q: %w", ns, pebbleErr(err))
		}
		for it.First(); it.Valid(); it.Next() {
			*c.n++
			*c.bytes += int64(len(it.Key()) + len(it.Value()))
		}
		if err := it.Close(); err != nil {
			return st, fmt.Errorf("oplog: stats %q: %w", ns, pebbleErr(err))
		}
	}
	return st, nil
}

// DiskUsage returns the bytes of the store's files, as Pebble counts them.
func (l *Log) DiskUsage(ctx context.Context) (uint64, error) {
	if err := l.acquire(ctx); err != nil {
		return 0, err
	}
	defer l.release()
	return l.db.Metrics().DiskSpaceUsage(), nil
}
