package oplog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/materialize"
)

// Tx is a local transaction on one namespace, open for the duration of the
// function passed to [Log.Write]. Its reads see its own writes. A Tx must
// not be used after that function returns, nor from other goroutines.
type Tx struct {
	l      *Log
	ns     string
	next   uint64 // the sequence number of the next op
	batch  *batch
	ctx    context.Context
	failed error
	// resolution marks the ops written from now on as resolutions.
	resolution bool
}

// Namespace returns the transaction's namespace.
func (tx *Tx) Namespace() string { return tx.ns }

// MarkResolution marks the ops the transaction writes after the call as
// written by a conflict resolution policy ([crdt.Op.Resolution]): they merge
// like any other op, but the conflicts they reveal, here and on every
// replica they reach, carry Resolution and are not to be resolved again.
func (tx *Tx) MarkResolution() { tx.resolution = true }

// Get returns the state of a record as the transaction sees it: a zero
// Record (CL 0) if no op has touched it. The caller must not modify it.
func (tx *Tx) Get(coll, key string) (*crdt.Record, error) {
	if err := tx.ctx.Err(); err != nil {
		return nil, fmt.Errorf("oplog: tx get: %w", err)
	}
	return tx.batch.state(coll, key)
}

// Mutate writes one op to a record: intent and changes as in
// [crdt.Record.Prepare], which decides the op's CL and field ops from the
// record's state. It returns the op, or nil when there is nothing to write
// (an update that changes no field). It returns ErrNotFound for an update or
// delete of a record that does not exist.
func (tx *Tx) Mutate(coll, key string, intent crdt.Intent, changes []crdt.Change) (*crdt.Op, error) {
	return tx.MutateFrom(coll, key, nil, intent, changes)
}

// MutateFrom is [Tx.Mutate] for a write made from base, a state of the
// record its writer read earlier: the op records what the writer observed
// in base, as [crdt.Record.PrepareFrom] says. A nil base is the record's
// state in the transaction. base is not modified.
func (tx *Tx) MutateFrom(coll, key string, base *crdt.Record, intent crdt.Intent, changes []crdt.Change) (*crdt.Op, error) {
	if err := tx.ctx.Err(); err != nil {
		return nil, fmt.Errorf("oplog: mutate: %w", err)
	}
	if tx.failed != nil {
		return nil, tx.failed
	}
	prev, err := tx.batch.state(coll, key)
	if err != nil {
		return nil, err
	}
	cl, fields, err := prev.PrepareFrom(tx.l.replica, base, intent, changes)
	if err != nil {
		return nil, fmt.Errorf("oplog: %s/%s/%s: %w", tx.ns, coll, key, err)
	}
	if cl == prev.CL && len(fields) == 0 {
		return nil, nil
	}
	if err := tx.l.reserveLocked(tx.ns, tx.next); err != nil {
		tx.failed = err
		return nil, err
	}
	op := crdt.Op{
		Namespace:  tx.ns,
		Collection: coll,
		Key:        key,
		Dot:        crdt.Dot{Origin: tx.l.replica, Seq: tx.next},
		HLC:        tx.l.mu.clock.Now(),
		CL:         cl,
		Resolution: tx.resolution,
		Fields:     fields,
	}
	if err := op.Validate(); err != nil {
		return nil, fmt.Errorf("oplog: %s/%s/%s: %w", tx.ns, coll, key, err)
	}
	if err := tx.batch.apply(&op); err != nil {
		// The batch may hold part of the op: fail the transaction.
		tx.failed = err
		return nil, err
	}
	tx.next++
	written := tx.batch.commit.Ops[len(tx.batch.commit.Ops)-1] // a copy: the slice may grow
	return &written, nil
}

// Write runs fn in a local transaction on namespace ns and commits the ops
// it made in one batch: they get consecutive sequence numbers, the last
// marked as the transaction's end, so replicas apply all of them or none.
// If fn returns an error nothing is written and Write returns it. fn runs
// with the store's write lock held: it must not block, nor call Write.
func (l *Log) Write(ctx context.Context, ns string, fn func(tx *Tx) error) (*Commit, error) {
	if err := checkNamespace(ns); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("oplog: write: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	vv, err := l.vectorLocked(ns)
	if err != nil {
		return nil, err
	}
	b := l.newBatch(ns, true)
	b.ctx = ctx
	defer b.close()
	b.tx = Tx{l: l, ns: ns, next: vv[l.replica] + 1, batch: b, ctx: ctx}
	tx := &b.tx
	if err := fn(tx); err != nil {
		return nil, err
	}
	if tx.failed != nil {
		return nil, tx.failed
	}
	if len(b.commit.Ops) == 0 {
		return b.commit, nil
	}
	ops := b.commit.Ops
	ops[len(ops)-1].TxEnd = true
	for i := range ops {
		enc := crdt.AppendOp(b.scratch[:0], &ops[i])
		if len(enc) > l.opts.MaxOpSize {
			return nil, fmt.Errorf("%w: %s/%s/%s: %d bytes, limit %d", ErrTooLarge, ns, ops[i].Collection, ops[i].Key, len(enc), l.opts.MaxOpSize)
		}
		b.scratch = enc
		b.key = appendLogKey(b.key[:0], ns, ops[i].Dot)
		if err := b.pb.Set(b.key, enc, nil); err != nil {
			return nil, fmt.Errorf("oplog: write: %w", err)
		}
	}
	if err := l.commitLocked(b); err != nil {
		return nil, err
	}
	return b.commit, nil
}

// Gap reports ops of one origin that could not be applied because an
// earlier op of that origin is missing: the replica holds up to Have, and
// the next op offered was Next (> Have+1).
type Gap struct {
	Origin     crdt.ReplicaID
	Have, Next uint64
}

// Refusal is an op that was not applied, and why. An op refused for clock
// drift can be offered again later; the ops after it from the same origin
// wait for it.
type Refusal struct {
	Dot crdt.Dot
	Err error
}

// IngestResult reports what [Log.Ingest] did with each op it was given.
type IngestResult struct {
	Applied    int // ops applied
	Duplicates int // ops already held, skipped
	// Incomplete counts ops held back because their transaction's end
	// was not among the ops given; they are not applied.
	Incomplete int
	Gaps       []Gap
	Refused    []Refusal
	Commit     *Commit // what was applied
}

// Ingest applies ops received from peers to namespace ns, in one batch.
// It is idempotent: ops already held are skipped. Each origin's ops are
// applied in sequence order and in whole transactions: an op beyond a gap
// in its origin's sequence, or in a transaction whose end is missing, is not
// applied and is reported in the result, as is an op that fails validation
// or whose HLC is beyond the clock's drift bound (with the ops of its origin
// after it). Ingest returns an error only when nothing could be applied for
// a reason other than the ops themselves (a closed store, an I/O error).
func (l *Log) Ingest(ctx context.Context, ns string, ops []crdt.Op) (*IngestResult, error) {
	if err := checkNamespace(ns); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("oplog: ingest: %w", err)
	}
	res := &IngestResult{}
	// Sort a copy by (origin, seq): the caller's slice is left alone.
	sorted := make([]*crdt.Op, 0, len(ops))
	for i := range ops {
		op := &ops[i]
		if op.Namespace != ns {
			res.Refused = append(res.Refused, Refusal{Dot: op.Dot, Err: fmt.Errorf("%w: op of namespace %q ingested into %q", ErrNamespace, op.Namespace, ns)})
			continue
		}
		if op.Dot.Seq == 0 || op.Dot.Origin.IsZero() {
			// No place in any origin's sequence: refuse it here, or it
			// would pass for a duplicate (seq 0) or a gap.
			res.Refused = append(res.Refused, Refusal{Dot: op.Dot, Err: fmt.Errorf("%w: dot %v", crdt.ErrInvalidOp, op.Dot)})
			continue
		}
		sorted = append(sorted, op)
	}
	slices.SortStableFunc(sorted, func(a, b *crdt.Op) int { return a.Dot.Compare(b.Dot) })

	l.mu.Lock()
	defer l.mu.Unlock()
	vv, err := l.vectorLocked(ns)
	if err != nil {
		return nil, err
	}
	b := l.newBatch(ns, false)
	b.ctx = ctx
	defer b.close()
	if err := b.prefetch(sorted); err != nil {
		return nil, err
	}
	for i := 0; i < len(sorted); {
		j := i
		for j < len(sorted) && sorted[j].Dot.Origin == sorted[i].Dot.Origin {
			j++
		}
		if err := l.ingestOriginLocked(b, vv[sorted[i].Dot.Origin], sorted[i:j], res); err != nil {
			return nil, err
		}
		i = j
	}
	res.Commit = b.commit
	quarantined, err := l.quarantineLocked(b, sorted, res.Refused)
	if err != nil {
		return nil, err
	}
	if len(b.commit.Ops) == 0 {
		if quarantined {
			// Only quarantine entries: advisory, so no fsync (a lost entry
			// is written again when a sync offers the op again).
			b.spent = true
			if err := l.commitBatch(ctx, "ingest: quarantine", b.pb, pebble.NoSync); err != nil {
				return nil, fmt.Errorf("oplog: ingest: quarantine: %w", err)
			}
			l.noteQuarantineLocked(b)
			l.changedLocked(ns)
		}
		return res, nil
	}
	if err := l.commitLocked(b); err != nil {
		return nil, err
	}
	l.noteQuarantineLocked(b)
	res.Applied = len(b.commit.Ops)
	return res, nil
}

// ingestOriginLocked applies the ops of one origin, sorted by seq, beyond
// have, in whole transactions.
func (l *Log) ingestOriginLocked(b *batch, have uint64, ops []*crdt.Op, res *IngestResult) error {
	var pending []*crdt.Op // the open transaction
	next := have + 1
	for _, op := range ops {
		if op.Dot.Seq < next {
			res.Duplicates++
			continue
		}
		if op.Dot.Seq > next {
			res.Gaps = append(res.Gaps, Gap{Origin: op.Dot.Origin, Have: next - 1, Next: op.Dot.Seq})
			res.Incomplete += len(pending)
			return nil
		}
		if err := op.Validate(); err != nil {
			res.Refused = append(res.Refused, Refusal{Dot: op.Dot, Err: err})
			res.Incomplete += len(pending)
			return nil
		}
		if l.opts.MaxOpSize < crdt.MaxOpSize {
			if n := len(crdt.AppendOp(b.scratch[:0], op)); n > l.opts.MaxOpSize {
				err := fmt.Errorf("%w: %d bytes, this replica's limit is %d", ErrTooLarge, n, l.opts.MaxOpSize)
				res.Refused = append(res.Refused, Refusal{Dot: op.Dot, Err: err})
				res.Incomplete += len(pending)
				return nil
			}
		}
		if err := l.mu.clock.Check(op.HLC); err != nil {
			res.Refused = append(res.Refused, Refusal{Dot: op.Dot, Err: err})
			res.Incomplete += len(pending)
			return nil
		}
		pending = append(pending, op)
		next++
		if !op.TxEnd {
			continue
		}
		for _, p := range pending {
			if _, err := l.mu.clock.Update(p.HLC); err != nil {
				return fmt.Errorf("oplog: ingest %v: %w", p.Dot, err) // checked above: unreachable
			}
			enc := crdt.AppendOp(b.scratch[:0], p)
			b.scratch = enc
			b.key = appendLogKey(b.key[:0], b.ns, p.Dot)
			if err := b.pb.Set(b.key, enc, nil); err != nil {
				return fmt.Errorf("oplog: ingest: %w", err)
			}
			if err := b.apply(p); err != nil {
				return err
			}
		}
		pending = pending[:0]
	}
	res.Incomplete += len(pending)
	return nil
}

// batch accumulates one commit: the Pebble batch, the states it touched,
// and the Commit describing it. Batches are pooled (see newBatch): the
// maps and buffers are reused, the Commit and the states are not.
type batch struct {
	l       *Log
	ns      string
	pb      *pebble.Batch
	states  map[stateID]*crdt.Record // read or written
	written map[stateID]struct{}
	dirty   []stateID // the written states, in first-write order
	commit  *Commit
	scratch []byte     // encodings, reused
	key     []byte     // keys, reused
	heads   []crdt.Dot // per origin, the highest seq of the batch's ops
	tx      Tx         // a local write's transaction
	// quarantine entries the batch adds and removes
	quarantined, released []crdt.Dot
	// ctx bounds the commit's wait for a stalled disk; spent says the
	// commit took pb over (see Log.commitBatch).
	ctx   context.Context
	spent bool
}

type stateID struct{ coll, key string }

// batchPool holds batches between commits: a Put allocates none of the
// maps and buffers a batch needs.
var batchPool = sync.Pool{New: func() any {
	return &batch{states: make(map[stateID]*crdt.Record), written: make(map[stateID]struct{})}
}}

// maxPooledStates bounds the maps a pooled batch keeps: clearing a map
// costs its capacity, which an ingest page's batch would make large.
const maxPooledStates = 256

func (l *Log) newBatch(ns string, local bool) *batch {
	b := batchPool.Get().(*batch)
	b.l, b.ns, b.pb = l, ns, l.db.NewBatch()
	b.ctx, b.spent = context.Background(), false
	cb := &commitBuf{c: Commit{Namespace: ns, Local: local}}
	cb.c.Ops, cb.c.Changes = cb.op[:0], cb.change[:0]
	b.commit = &cb.c
	return b
}

// commitBuf is a Commit allocated with room for one op and one change:
// a write of one record allocates them once.
type commitBuf struct {
	c      Commit
	op     [1]crdt.Op
	change [1]materialize.Change
}

// close releases the Pebble batch and returns b to the pool; b must not be
// used afterwards (the Commit it made stays valid: it is not reused).
func (b *batch) close() {
	if !b.spent { // else the commit took the Pebble batch over
		_ = b.pb.Close() // a failed Close of an uncommitted batch loses nothing
	}
	if len(b.states) > maxPooledStates {
		b.states, b.written = make(map[stateID]*crdt.Record), make(map[stateID]struct{})
	} else {
		clear(b.states)
		clear(b.written)
	}
	clear(b.dirty) // drop the strings they point to
	b.dirty = b.dirty[:0]
	b.heads = b.heads[:0]
	b.quarantined, b.released = b.quarantined[:0], b.released[:0]
	b.l, b.pb, b.commit, b.tx, b.ctx = nil, nil, nil, Tx{}, nil
	if cap(b.scratch) > 1<<16 {
		b.scratch = nil
	}
	if cap(b.key) > 1<<12 {
		b.key = nil
	}
	batchPool.Put(b)
}

// stateKey returns the key of record (coll, key)'s state in b's namespace,
// in b's key buffer: valid until the next call.
func (b *batch) stateKey(coll, key string) []byte {
	b.key = appendStateKey(b.key[:0], b.ns, coll, key)
	return b.key
}

func (b *batch) state(coll, key string) (*crdt.Record, error) {
	id := stateID{coll, key}
	if r, ok := b.states[id]; ok {
		return r, nil
	}
	r, err := b.l.readState(b.stateKey(coll, key))
	if err != nil {
		return nil, err
	}
	b.states[id] = r
	return r, nil
}

// prefetch reads the states of the records ops touch with one iterator,
// seeking in key order, which costs much less than a point read per op.
func (b *batch) prefetch(ops []*crdt.Op) error {
	ids := make([]stateID, len(ops))
	for i, op := range ops {
		ids[i] = stateID{op.Collection, op.Key}
	}
	return b.prefetchIDs(ids)
}

// prefetchIDs reads the states of records ids, as prefetch does.
func (b *batch) prefetchIDs(ids []stateID) error {
	type want struct {
		id  stateID
		key []byte
	}
	wants := make([]want, 0, len(ids))
	for _, id := range ids {
		if _, ok := b.states[id]; !ok {
			wants = append(wants, want{id, stateKey(b.ns, id.coll, id.key)})
		}
	}
	if len(wants) < 2 {
		return nil
	}
	slices.SortFunc(wants, func(x, y want) int { return bytes.Compare(x.key, y.key) })
	wants = slices.CompactFunc(wants, func(x, y want) bool { return x.id == y.id })
	prefix := nsKey(tagState, b.ns)
	it, err := b.l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("oplog: read states: %w", pebbleErr(err))
	}
	for _, w := range wants {
		r := &crdt.Record{}
		found := it.SeekGE(w.key)
		if err := it.Error(); err != nil {
			// A failed seek reads as "absent", and the next seek clears
			// the error: check each one, or a damaged state would be
			// overwritten by the ops folded onto an empty record.
			it.Close()
			return fmt.Errorf("oplog: read state %q: %w", w.key, pebbleErr(err))
		}
		if found && bytes.Equal(it.Key(), w.key) {
			if r, err = decodeStored(it.Value()); err != nil {
				it.Close()
				return fmt.Errorf("%w: state %q: %w", ErrCorrupt, w.key, err)
			}
		}
		b.states[w.id] = r
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("oplog: read states: %w", pebbleErr(err))
	}
	return nil
}

// apply folds op into the batch's state of its record and records the
// effects. The op is appended to the commit.
func (b *batch) apply(op *crdt.Op) error {
	prev, err := b.state(op.Collection, op.Key)
	if err != nil {
		return err
	}
	eff := materialize.Fold(prev, op)
	eff.State.Applied = prev.Applied + 1
	if idx := b.l.mu.indexes[op.Collection]; len(idx) > 0 {
		if err := b.writeIndexes(idx, op.Collection, op.Key, prev, eff.State); err != nil {
			return fmt.Errorf("oplog: index %s/%s: %w", op.Collection, op.Key, err)
		}
	}
	id := stateID{op.Collection, op.Key}
	if _, ok := b.written[id]; !ok {
		b.written[id] = struct{}{}
		b.dirty = append(b.dirty, id)
	}
	b.states[id] = eff.State
	b.commit.Ops = append(b.commit.Ops, *op)
	if eff.Change.Kind != materialize.Unchanged {
		b.commit.Changes = append(b.commit.Changes, eff.Change)
		b.commit.States = append(b.commit.States, eff.State)
	}
	b.commit.Conflicts = append(b.commit.Conflicts, eff.Conflicts...)
	return nil
}

// commitLocked writes the batch's states, vector entries, conflicts and the
// HLC high-water mark, and commits it with the configured durability. On
// success it advances the cached vector.
func (l *Log) commitLocked(b *batch) error {
	ns := b.ns
	for _, id := range b.dirty {
		r := b.states[id]
		b.scratch = appendStored(b.scratch[:0], r)
		if err := b.pb.Set(b.stateKey(id.coll, id.key), b.scratch, nil); err != nil {
			return fmt.Errorf("oplog: commit: %w", err)
		}
	}
	vv, err := l.vectorLocked(ns)
	if err != nil {
		return err
	}
	b.collectHeads()
	var u [8]byte
	for _, h := range b.heads {
		binary.BigEndian.PutUint64(u[:], h.Seq)
		b.key = appendVectorKey(b.key[:0], ns, h.Origin)
		if err := b.pb.Set(b.key, u[:], nil); err != nil {
			return fmt.Errorf("oplog: commit: %w", err)
		}
	}
	if !l.mu.known[ns] {
		if err := b.pb.Set(nsKey(tagNamespace, ns), nil, nil); err != nil {
			return fmt.Errorf("oplog: commit: %w", err)
		}
	}
	if err := l.logConflictsLocked(b); err != nil {
		return err
	}
	feed, err := l.lastFeedLocked(ns)
	if err != nil {
		return err
	}
	for i := range b.commit.Changes {
		c := &b.commit.Changes[i]
		feed++
		c.Seq, c.Local = feed, b.commit.Local
		b.scratch = materialize.AppendChange(b.scratch[:0], c)
		b.key = appendFeedKey(b.key[:0], ns, feed)
		if err := b.pb.Set(b.key, b.scratch, nil); err != nil {
			return fmt.Errorf("oplog: commit: %w", err)
		}
	}
	b.key, _ = l.mu.clock.Last().AppendBinary(b.key[:0]) // AppendBinary cannot fail
	if err := b.pb.Set(metaHLC, b.key, nil); err != nil {
		return fmt.Errorf("oplog: commit: %w", err)
	}
	wo := pebble.Sync
	if l.opts.Durability != SyncEveryCommit {
		wo = pebble.NoSync
	}
	if err := l.commitLocal(b, wo); err != nil {
		return fmt.Errorf("oplog: commit %s: %w", ns, err)
	}
	l.commits.Add(1)
	// Committed: advance the cache before anything else can fail.
	for _, h := range b.heads {
		vv[h.Origin] = h.Seq
	}
	l.mu.known[ns] = true
	l.mu.feeds[ns] = feed
	if l.opts.OnCommit != nil {
		l.opts.OnCommit(b.commit)
	}
	l.changedLocked(ns)
	if l.opts.Durability == GroupCommit {
		// Wait for the shared fsync without blocking other writers.
		l.mu.Unlock()
		err := l.bounded(b.ctx, "group sync", l.syncer.wait)
		l.mu.Lock()
		if err != nil {
			return fmt.Errorf("oplog: commit %s: group sync: %w: %w", ns, ErrUnsynced, err)
		}
	}
	return nil
}

// collectHeads sets b.heads to the highest seq of each origin among the
// batch's ops, in the order origins first appear. Ops come grouped by
// origin (a local write has one, an ingest sorts them), so the last head
// is nearly always the one to raise.
func (b *batch) collectHeads() {
	b.heads = b.heads[:0]
	for i := range b.commit.Ops {
		d := b.commit.Ops[i].Dot
		j := len(b.heads) - 1
		for j >= 0 && b.heads[j].Origin != d.Origin {
			j--
		}
		if j < 0 {
			b.heads = append(b.heads, d)
		} else {
			b.heads[j].Seq = max(b.heads[j].Seq, d.Seq)
		}
	}
}

var errStopped = errors.New("oplog: group syncer stopped")
