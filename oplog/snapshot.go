package oplog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/materialize"
)

// # Snapshots
//
// A replica that lacks ops below a peer's compaction horizon bootstraps
// from the peer's states instead: Snapshot reads them in pages, each with
// the vector the store held when it was read; InstallSnapshot merges a
// page into the receiver's states (a join: idempotent, in any order, so a
// page installed twice or a crash between pages does no harm); once every
// page is in, FinishSnapshot raises the receiver's vector to the pointwise
// minimum of the pages' vectors, which every page's states cover. The
// ordinary sync then brings the ops after it.

// SnapshotRecord is one record of a snapshot: its key and its encoded state
// ([crdt.Record.AppendBinary]).
type SnapshotRecord struct {
	Collection, Key string
	State           []byte
}

// SnapshotCursor is where a snapshot page starts: after this record.
type SnapshotCursor struct{ Collection, Key string }

// SnapshotPage is one page of a namespace's states, in key order.
type SnapshotPage struct {
	// Vector is the store's vector when the page was read: the page's
	// states hold at least these ops. A snapshot made of several pages
	// stands for the pointwise minimum of its pages' vectors.
	Vector  crdt.VersionVector
	Records []SnapshotRecord
	Bytes   int  // encoded states in the page
	More    bool // more records follow; ask again after the last one
}

// Snapshot returns a page of the states of ns, deleted records' included,
// after the cursor (nil: from the first record), bounded by lim (MaxOps
// counts records; a page holds at least one record).
func (l *Log) Snapshot(ctx context.Context, ns string, after *SnapshotCursor, lim PageLimits) (*SnapshotPage, error) {
	if err := checkNamespace(ns); err != nil {
		return nil, err
	}
	if lim.MaxOps <= 0 {
		lim.MaxOps = 1000
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = 1 << 20
	}
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.release()
	l.mu.Lock()
	snap, mine, _, err := l.snapshotLocked(ns)
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	prefix := nsKey(tagState, ns)
	lower := prefix
	if after != nil {
		// The least key after the cursor's: keys are prefix-free, so
		// appending a zero byte sorts right after it and before the next.
		lower = append(stateKey(ns, after.Collection, after.Key), 0)
	}
	it, err := snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("oplog: snapshot %q: %w", ns, pebbleErr(err))
	}
	defer it.Close()
	p := &SnapshotPage{Vector: mine}
	for it.First(); it.Valid(); it.Next() {
		_, state := splitStored(it.Value()) // the applied count is local
		if len(p.Records) >= lim.MaxOps || (len(p.Records) > 0 && p.Bytes+len(state) > lim.MaxBytes) {
			p.More = true
			break
		}
		c, k, err := splitStateKey(it.Key(), len(prefix))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		p.Records = append(p.Records, SnapshotRecord{Collection: c, Key: k, State: bytes.Clone(state)})
		p.Bytes += len(state)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("oplog: snapshot %q: %w", ns, pebbleErr(err))
	}
	return p, nil
}

// InstallSnapshot merges snapshot states, received from a peer, into ns:
// states, base states, indexes and the change feed, in one batch. A state
// that does not decode, or a stamp beyond the clock's drift bound, refuses
// the whole page (an error wrapping crdt.ErrInvalidRecord or
// hlc.ErrClockDrift), and nothing is written. It does not move the vector:
// call FinishSnapshot once every page is installed.
func (l *Log) InstallSnapshot(ctx context.Context, ns string, recs []SnapshotRecord) (*Commit, error) {
	if err := checkNamespace(ns); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("oplog: install snapshot: %w", err)
	}
	type incoming struct {
		id    stateID
		state *crdt.Record
	}
	in := make([]incoming, 0, len(recs))
	ids := make([]stateID, 0, len(recs))
	for _, r := range recs {
		if r.Collection == "" || len(r.Collection) > crdt.MaxNameLen || r.Key == "" || len(r.Key) > crdt.MaxNameLen {
			return nil, fmt.Errorf("oplog: install snapshot %q: %w: record %q/%q: names must be 1 to %d bytes", ns, crdt.ErrInvalidRecord, r.Collection, r.Key, crdt.MaxNameLen)
		}
		st, err := crdt.DecodeRecord(r.State)
		if err != nil {
			return nil, fmt.Errorf("oplog: install snapshot %q: record %s/%s: %w", ns, r.Collection, r.Key, err)
		}
		in = append(in, incoming{stateID{r.Collection, r.Key}, st})
		ids = append(ids, stateID{r.Collection, r.Key})
	}
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	for _, r := range in {
		if err := l.mu.clock.Check(r.state.Updated.HLC); err != nil {
			return nil, fmt.Errorf("oplog: install snapshot %q: record %s/%s: %w", ns, r.id.coll, r.id.key, err)
		}
	}
	b := l.newBatch(ns, false)
	defer b.close()
	if err := b.prefetchIDs(ids); err != nil {
		return nil, err
	}
	for _, r := range in {
		if err := b.applyState(r.id, r.state); err != nil {
			return nil, err
		}
	}
	// The base state of every record the snapshot touched is its whole
	// new state: base merged with the log is then still the state (the
	// merge is idempotent), and FinishSnapshot may drop log ops of these
	// records below the snapshot's vector.
	for _, id := range b.dirty {
		b.scratch = b.states[id].AppendBinary(b.scratch[:0])
		if err := b.pb.Set(baseKey(ns, id.coll, id.key), b.scratch, nil); err != nil {
			return nil, fmt.Errorf("oplog: install snapshot: %w", err)
		}
	}
	for _, r := range in {
		l.mu.clock.Observe(r.state.Updated.HLC)
	}
	if err := l.commitLocked(b); err != nil {
		return nil, err
	}
	return b.commit, nil
}

// applyState merges a whole state into the batch's state of a record and
// records the effects, as apply does for an op.
func (b *batch) applyState(id stateID, delta *crdt.Record) error {
	prev, err := b.state(id.coll, id.key)
	if err != nil {
		return err
	}
	eff := materialize.FoldState(prev, delta, b.ns, id.coll, id.key)
	if !bytes.Equal(prev.Encode(), eff.State.Encode()) {
		eff.State.Applied = prev.Applied + 1
	}
	if idx := b.l.mu.indexes[id.coll]; len(idx) > 0 {
		if err := b.writeIndexes(idx, id.coll, id.key, prev, eff.State); err != nil {
			return fmt.Errorf("oplog: index %s/%s: %w", id.coll, id.key, err)
		}
	}
	if _, ok := b.written[id]; !ok {
		b.written[id] = struct{}{}
		b.dirty = append(b.dirty, id)
	}
	b.states[id] = eff.State
	if eff.Change.Kind != materialize.Unchanged {
		b.commit.Changes = append(b.commit.Changes, eff.Change)
		b.commit.States = append(b.commit.States, eff.State)
	}
	return nil
}

// FinishSnapshot raises the vector of ns to cover vv, the vector a fully
// installed snapshot stands for (the pointwise minimum of its pages'
// vectors). Where vv passes what the log holds of an origin, the horizon
// rises to vv and the log's ops of that origin below it are dropped (the
// installed states hold them); quarantined ops it covers are released.
func (l *Log) FinishSnapshot(ctx context.Context, ns string, vv crdt.VersionVector) error {
	if err := checkNamespace(ns); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("oplog: finish snapshot: %w", err)
	}
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	mine, err := l.vectorLocked(ns)
	if err != nil {
		return err
	}
	h, err := l.horizonLocked(ns)
	if err != nil {
		return err
	}
	quarantined, err := l.quarantinedLocked(ns)
	if err != nil {
		return err
	}
	b := l.db.NewBatch()
	spent := false
	defer closeUnlessSpent(b, &spent)
	raised := crdt.VersionVector{}
	var u [8]byte
	for _, o := range vv.Origins() {
		top := vv[o]
		if top <= mine[o] {
			continue
		}
		lo := logKey(ns, crdt.Dot{Origin: o, Seq: h[o] + 1})
		hi := logKey(ns, crdt.Dot{Origin: o, Seq: mine[o] + 1})
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return fmt.Errorf("oplog: finish snapshot: %w", err)
		}
		binary.BigEndian.PutUint64(u[:], top)
		if err := b.Set(horizonKey(ns, o), u[:], nil); err != nil {
			return fmt.Errorf("oplog: finish snapshot: %w", err)
		}
		if err := b.Set(vectorKey(ns, o), u[:], nil); err != nil {
			return fmt.Errorf("oplog: finish snapshot: %w", err)
		}
		raised[o] = top
	}
	if len(raised) == 0 {
		return nil
	}
	var released []crdt.Dot
	for d := range quarantined {
		if d.Seq <= raised[d.Origin] {
			released = append(released, d)
			if err := b.Delete(quarantineKey(ns, d), nil); err != nil {
				return fmt.Errorf("oplog: finish snapshot: %w", err)
			}
		}
	}
	if !l.mu.known[ns] {
		if err := b.Set(nsKey(tagNamespace, ns), nil, nil); err != nil {
			return fmt.Errorf("oplog: finish snapshot: %w", err)
		}
	}
	spent = true
	if err := l.commitBatch(ctx, "finish snapshot", b, pebble.Sync); err != nil {
		return fmt.Errorf("oplog: finish snapshot %q: %w", ns, err)
	}
	for o, top := range raised {
		mine[o], h[o] = top, top
	}
	for _, d := range released {
		delete(quarantined, d)
	}
	l.mu.known[ns] = true
	l.changedLocked(ns)
	l.logger.Info("installed snapshot", "namespace", ns, "vector", vv, "released", len(released))
	return nil
}
