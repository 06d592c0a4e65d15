package oplog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"iter"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/crdt"
)

// Missing yields the ops of ns that the store holds and a replica with
// vector have lacks, in (origin, seq) order, each with its encoding. It
// reads a consistent snapshot taken when iteration starts. It stops at the
// first error, which it yields with a zero op. Yielded slices are the
// caller's.
func (l *Log) Missing(ctx context.Context, ns string, have crdt.VersionVector) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if err := l.acquire(ctx); err != nil {
			yield(Entry{}, err)
			return
		}
		defer l.release()
		l.mu.Lock()
		snap, mine, h, err := l.snapshotLocked(ns)
		l.mu.Unlock()
		if err != nil {
			yield(Entry{}, err)
			return
		}
		defer snap.Close()
		if err := checkHorizon(ns, mine, have, h); err != nil {
			yield(Entry{}, err)
			return
		}
		l.scan(ctx, snap, ns, mine, have, yield)
	}
}

// snapshotLocked returns a snapshot of the store, and the vector and the
// compaction horizon of ns it holds.
func (l *Log) snapshotLocked(ns string) (*pebble.Snapshot, crdt.VersionVector, crdt.VersionVector, error) {
	vv, err := l.vectorLocked(ns)
	if err != nil {
		return nil, nil, nil, err
	}
	h, err := l.horizonLocked(ns)
	if err != nil {
		return nil, nil, nil, err
	}
	return l.db.NewSnapshot(), vv.Clone(), h.Clone(), nil
}

// scan yields the ops of ns in snap that mine holds and have lacks.
func (l *Log) scan(ctx context.Context, snap *pebble.Snapshot, ns string, mine, have crdt.VersionVector, yield func(Entry, error) bool) {
	for _, rg := range mine.Missing(have) {
		if !l.scanRange(ctx, snap, ns, rg, yield) {
			return
		}
	}
}

// Entry is one op of the log with its stored encoding.
type Entry struct {
	Op  crdt.Op
	Raw []byte
}

// scanRange yields the ops of one origin in rg; false means stop.
func (l *Log) scanRange(ctx context.Context, snap *pebble.Snapshot, ns string, rg crdt.Range, yield func(Entry, error) bool) bool {
	lo := logKey(ns, crdt.Dot{Origin: rg.Origin, Seq: rg.From})
	hi := logKey(ns, crdt.Dot{Origin: rg.Origin, Seq: rg.To})
	it, err := snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(hi)})
	if err != nil {
		return yield(Entry{}, fmt.Errorf("oplog: scan %q: %w", ns, pebbleErr(err)))
	}
	defer it.Close()
	want := rg.From
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return yield(Entry{}, fmt.Errorf("oplog: scan %q: %w", ns, err))
		}
		k := it.Key()
		seq := binary.BigEndian.Uint64(k[len(k)-8:])
		if seq != want {
			return yield(Entry{}, fmt.Errorf("%w: log of %v in %q has seq %d where %d belongs", ErrCorrupt, rg.Origin, ns, seq, want))
		}
		raw := bytes.Clone(it.Value())
		op, err := crdt.DecodeOp(raw)
		if err == nil && (op.Dot != crdt.Dot{Origin: rg.Origin, Seq: seq} || op.Namespace != ns) {
			err = fmt.Errorf("op %v stored under %v", op.Dot, crdt.Dot{Origin: rg.Origin, Seq: seq})
		}
		if err != nil {
			return yield(Entry{}, fmt.Errorf("%w: log %q: %w", ErrCorrupt, k, err))
		}
		if !yield(Entry{Op: op, Raw: raw}, nil) {
			return false
		}
		want++
	}
	if err := it.Error(); err != nil {
		return yield(Entry{}, fmt.Errorf("oplog: scan %q: %w", ns, pebbleErr(err)))
	}
	if want != rg.To+1 {
		return yield(Entry{}, fmt.Errorf("%w: log of %v in %q ends at %d, vector says %d", ErrCorrupt, rg.Origin, ns, want-1, rg.To))
	}
	return true
}

// PageLimits bound one page of ops. Zero fields mean the defaults.
type PageLimits struct {
	MaxOps   int // default 1000
	MaxBytes int // encoded bytes; default 1 MiB
}

// Page is a bounded run of the ops a peer lacks.
type Page struct {
	Entries []Entry
	Bytes   int  // total encoded size
	More    bool // more ops are missing beyond this page
}

// Page returns the first page of the ops of ns that a replica with vector
// have lacks. A page ends at a transaction boundary, so a receiver can apply
// it whole; a single transaction larger than the limits makes a larger
// page. Call again with the receiver's new vector for the next page.
func (l *Log) Page(ctx context.Context, ns string, have crdt.VersionVector, lim PageLimits) (*Page, error) {
	if lim.MaxOps <= 0 {
		lim.MaxOps = 1000
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = 1 << 20
	}
	p := &Page{}
	txStart := 0 // index in p.Entries of the open transaction's first op
	for e, err := range l.Missing(ctx, ns, have) {
		if err != nil {
			return nil, err
		}
		n := len(p.Entries)
		if n > 0 && (p.Entries[n-1].Op.TxEnd || p.Entries[n-1].Op.Dot.Origin != e.Op.Dot.Origin) {
			// e starts a transaction.
			if n >= lim.MaxOps || p.Bytes >= lim.MaxBytes {
				p.More = true
				break
			}
			txStart = n
		}
		if txStart > 0 && (n+1 > lim.MaxOps || p.Bytes+len(e.Raw) > lim.MaxBytes) {
			// The open transaction does not fit after the ones before
			// it: end the page before it. Only a page's first
			// transaction may exceed the limits.
			for _, d := range p.Entries[txStart:] {
				p.Bytes -= len(d.Raw)
			}
			p.Entries = p.Entries[:txStart]
			p.More = true
			break
		}
		p.Entries = append(p.Entries, e)
		p.Bytes += len(e.Raw)
	}
	return p, nil
}

// RecordEntry is one record of a listing.
type RecordEntry struct {
	Collection, Key string
	State           *crdt.Record
}

// Records yields the states of the records of collection coll in ns (all
// collections if coll is empty), in key order, deleted ones included. It
// stops at the first error, which it yields with a zero entry.
func (l *Log) Records(ctx context.Context, ns, coll string) iter.Seq2[RecordEntry, error] {
	return func(yield func(RecordEntry, error) bool) {
		if err := l.acquire(ctx); err != nil {
			yield(RecordEntry{}, err)
			return
		}
		defer l.release()
		nsPrefix := nsKey(tagState, ns)
		prefix := nsPrefix
		if coll != "" {
			prefix = appendString(slices.Clone(nsPrefix), coll)
		}
		it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			yield(RecordEntry{}, fmt.Errorf("oplog: records %q: %w", ns, pebbleErr(err)))
			return
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			c, k, err := splitStateKey(it.Key(), len(nsPrefix))
			if err != nil {
				yield(RecordEntry{}, fmt.Errorf("%w: %w", ErrCorrupt, err))
				return
			}
			r, err := decodeStored(it.Value())
			if err != nil {
				yield(RecordEntry{}, fmt.Errorf("%w: state %s/%s/%s: %w", ErrCorrupt, ns, c, k, err))
				return
			}
			if !yield(RecordEntry{Collection: c, Key: k, State: r}, nil) {
				return
			}
		}
		if err := it.Error(); err != nil {
			yield(RecordEntry{}, fmt.Errorf("oplog: records %q: %w", ns, pebbleErr(err)))
		}
	}
}

// StateHash hashes the stored state of ns (every record, deleted ones
// included, in key order) and returns the digest and the record count.
// Replicas holding the same ops have equal hashes.
func (l *Log) StateHash(ctx context.Context, ns string) (string, int, error) {
	if err := l.acquire(ctx); err != nil {
		return "", 0, err
	}
	defer l.release()
	return hashStored(ctx, l.db, ns)
}

type iterReader interface {
	NewIterWithContext(context.Context, *pebble.IterOptions) (*pebble.Iterator, error)
}

func hashStored(ctx context.Context, r iterReader, ns string) (string, int, error) {
	prefix := nsKey(tagState, ns)
	it, err := r.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return "", 0, fmt.Errorf("oplog: state hash %q: %w", ns, pebbleErr(err))
	}
	defer it.Close()
	h := crdt.NewStateHash()
	for it.First(); it.Valid(); it.Next() {
		c, k, err := splitStateKey(it.Key(), len(prefix))
		if err != nil {
			return "", 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		_, state := splitStored(it.Value()) // the applied count is local
		h.Add(c, k, state)
	}
	if err := it.Error(); err != nil {
		return "", 0, fmt.Errorf("oplog: state hash %q: %w", ns, pebbleErr(err))
	}
	return h.Sum(), h.Records(), nil
}

// rebuild folds every op of the log of ns in snap onto the base states.
func (l *Log) rebuild(ctx context.Context, snap *pebble.Snapshot, ns string, mine, horizon crdt.VersionVector) (map[stateID]*crdt.Record, error) {
	states, err := readBases(ctx, snap, ns)
	if err != nil {
		return nil, err
	}
	var scanErr error
	l.scan(ctx, snap, ns, mine, horizon, func(e Entry, err error) bool {
		if err != nil {
			scanErr = err
			return false
		}
		id := stateID{e.Op.Collection, e.Op.Key}
		r := states[id]
		if r == nil {
			r = &crdt.Record{}
			states[id] = r
		}
		r.Apply(&e.Op)
		return true
	})
	return states, scanErr
}

// readBases reads the base states of ns in snap.
func readBases(ctx context.Context, snap *pebble.Snapshot, ns string) (map[stateID]*crdt.Record, error) {
	states := make(map[stateID]*crdt.Record)
	prefix := nsKey(tagBase, ns)
	it, err := snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("oplog: base states %q: %w", ns, pebbleErr(err))
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		c, k, err := splitStateKey(it.Key(), len(prefix))
		if err != nil {
			return nil, fmt.Errorf("%w: base %w", ErrCorrupt, err)
		}
		r, err := crdt.DecodeRecord(it.Value())
		if err != nil {
			return nil, fmt.Errorf("%w: base state %s/%s/%s: %w", ErrCorrupt, ns, c, k, err)
		}
		states[stateID{c, k}] = r
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("oplog: base states %q: %w", ns, pebbleErr(err))
	}
	return states, nil
}

func hashStates(states map[stateID]*crdt.Record) (string, int) {
	ids := make([]stateID, 0, len(states))
	for id := range states {
		ids = append(ids, id)
	}
	// Key order: the encoded state keys sort as (collection, key) strings.
	slices.SortFunc(ids, func(a, b stateID) int {
		if c := cmp.Compare(a.coll, b.coll); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	h := crdt.NewStateHash()
	var buf []byte
	for _, id := range ids {
		buf = states[id].AppendBinary(buf[:0])
		h.Add(id.coll, id.key, buf)
	}
	return h.Sum(), h.Records()
}

// Verification compares a namespace's stored state with the state rebuilt
// from its log.
type Verification struct {
	Namespace             string
	StoredHash, LogHash   string
	StoredCount, LogCount int
}

// OK reports whether the stored state is the state the log produces.
func (v Verification) OK() bool { return v.StoredHash == v.LogHash && v.StoredCount == v.LogCount }

// Verify rebuilds the state of ns from its base states and log, in memory,
// and compares its hash with the stored state's, both read from one
// snapshot.
func (l *Log) Verify(ctx context.Context, ns string) (Verification, error) {
	v := Verification{Namespace: ns}
	if err := l.acquire(ctx); err != nil {
		return v, err
	}
	defer l.release()
	l.mu.Lock()
	snap, mine, h, err := l.snapshotLocked(ns)
	l.mu.Unlock()
	if err != nil {
		return v, err
	}
	defer snap.Close()
	if v.StoredHash, v.StoredCount, err = hashStored(ctx, snap, ns); err != nil {
		return v, err
	}
	states, err := l.rebuild(ctx, snap, ns, mine, h)
	if err != nil {
		return v, err
	}
	v.LogHash, v.LogCount = hashStates(states)
	return v, nil
}

// keepApplied carries the applied counts of the stored states of ns to
// the rebuilt states, counting one more where the rebuild changes one, so
// that a record's count never goes back.
func keepApplied(l *Log, ns string, states map[stateID]*crdt.Record) error {
	for id, r := range states {
		old, err := l.readState(stateKey(ns, id.coll, id.key))
		if err != nil {
			// A stored state that does not decode is what a rebuild
			// repairs: its count is lost, and restarts above the log's.
			r.Applied = 1
			continue
		}
		r.Applied = old.Applied
		if !bytes.Equal(old.Encode(), r.Encode()) {
			r.Applied++
		}
	}
	return nil
}

// Rebuild replaces the stored state of ns with the state rebuilt from its
// base states and log, in one batch, holding the write lock.
func (l *Log) Rebuild(ctx context.Context, ns string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	snap, mine, h, err := l.snapshotLocked(ns)
	if err != nil {
		return err
	}
	states, err := l.rebuild(ctx, snap, ns, mine, h)
	snap.Close()
	if err != nil {
		return err
	}
	b := l.db.NewBatch()
	spent := false
	defer closeUnlessSpent(b, &spent)
	prefix := nsKey(tagState, ns)
	if err := keepApplied(l, ns, states); err != nil {
		return err
	}
	if err := b.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
		return fmt.Errorf("oplog: rebuild %q: %w", ns, err)
	}
	var buf []byte
	for id, r := range states {
		buf = appendStored(buf[:0], r)
		if err := b.Set(stateKey(ns, id.coll, id.key), buf, nil); err != nil {
			return fmt.Errorf("oplog: rebuild %q: %w", ns, err)
		}
	}
	spent = true
	if err := l.commitBatch(ctx, "rebuild", b, pebble.Sync); err != nil {
		return fmt.Errorf("oplog: rebuild %q: %w", ns, err)
	}
	l.logger.Info("rebuilt state from log", "namespace", ns, "records", len(states))
	return nil
}
