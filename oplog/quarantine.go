package oplog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
)

// Quarantine kinds: why an op could not be applied.
const (
	// QuarantineInvalid: the op fails validation here (a malformed write,
	// or one from a newer version this replica does not understand). It is
	// applied only if a retry (after an upgrade, say) finds it valid.
	QuarantineInvalid = "invalid"
	// QuarantineClockDrift: the op's HLC is beyond the drift bound of our
	// clock. It is applied when a later sync offers it within the bound,
	// which removes the entry.
	QuarantineClockDrift = "clock-drift"
)

// Quarantined is an op a replica refused to apply, kept with the reason so
// an operator can see it, retry it or discard it. The ops after it from
// the same origin wait for it; other origins' ops are not affected.
type Quarantined struct {
	Dot    crdt.Dot
	Kind   string // QuarantineInvalid or QuarantineClockDrift
	Reason string
	At     time.Time // when it was first refused
	Op     []byte    // the op's encoding
	// Waiting counts the ops of the same origin after it that known peers
	// hold (see Peers): they wait for it, since an origin's ops apply in
	// sequence order, and are not kept here. It is computed when read.
	Waiting uint64
}

// quarantineKey is 'Q' ns origin(16) seq(8).
func quarantineKey(ns string, d crdt.Dot) []byte {
	k := nsKey(tagQuarantine, ns)
	k = append(k, d.Origin[:]...)
	return binary.BigEndian.AppendUint64(k, d.Seq)
}

const quarantineVersion = 1

func appendQuarantined(b []byte, q *Quarantined) []byte {
	b = mp.AppendArrayHeader(b, 5)
	b = mp.AppendUint(b, quarantineVersion)
	b = mp.AppendString(b, q.Kind)
	b = mp.AppendString(b, q.Reason)
	b = mp.AppendInt(b, q.At.UnixMilli())
	return mp.AppendBytes(b, q.Op)
}

func decodeQuarantined(k, v []byte, prefixLen int) (Quarantined, error) {
	var q Quarantined
	bad := func(what string) (Quarantined, error) {
		return q, fmt.Errorf("%w: quarantine entry %x: %s", ErrCorrupt, k, what)
	}
	if len(k) != prefixLen+16+8 {
		return bad("key length")
	}
	copy(q.Dot.Origin[:], k[prefixLen:])
	q.Dot.Seq = binary.BigEndian.Uint64(k[prefixLen+16:])
	r := mp.NewReader(v)
	if n, err := r.ArrayHeader(); err != nil || n != 5 {
		return bad("header")
	}
	if ver, err := r.Uint(); err != nil || ver != quarantineVersion {
		return bad("version")
	}
	var err error
	if q.Kind, err = r.String(); err != nil {
		return bad("kind")
	}
	if q.Reason, err = r.String(); err != nil {
		return bad("reason")
	}
	ms, err := r.Int()
	if err != nil {
		return bad("time")
	}
	q.At = time.UnixMilli(ms)
	op, err := r.Bytes()
	if err != nil || r.Len() != 0 {
		return bad("op")
	}
	q.Op = slices.Clone(op)
	return q, nil
}

// quarantineKind classifies a refusal, or "" for refusals that are not
// quarantined (another namespace's op: hostile, not ours to keep).
func quarantineKind(err error) string {
	switch {
	case errors.Is(err, hlc.ErrClockDrift):
		return QuarantineClockDrift
	case errors.Is(err, ErrNamespace):
		return ""
	default:
		return QuarantineInvalid
	}
}

// quarantinedLocked returns the set of quarantined dots of ns, loading it
// on first use.
func (l *Log) quarantinedLocked(ns string) (map[crdt.Dot]struct{}, error) {
	if set, ok := l.mu.quarantine[ns]; ok {
		return set, nil
	}
	prefix := nsKey(tagQuarantine, ns)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("oplog: quarantine %q: %w", ns, err)
	}
	defer it.Close()
	set := make(map[crdt.Dot]struct{})
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+24 {
			return nil, fmt.Errorf("%w: quarantine key %x", ErrCorrupt, k)
		}
		var d crdt.Dot
		copy(d.Origin[:], k[len(prefix):])
		d.Seq = binary.BigEndian.Uint64(k[len(prefix)+16:])
		set[d] = struct{}{}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("oplog: quarantine %q: %w", ns, err)
	}
	l.mu.quarantine[ns] = set
	return set, nil
}

// quarantineLocked adds the batch's refusals to the quarantine and removes
// the entries of ops the batch applies. It reports whether it wrote
// anything.
func (l *Log) quarantineLocked(b *batch, ops []*crdt.Op, refused []Refusal) (bool, error) {
	set, err := l.quarantinedLocked(b.ns)
	if err != nil {
		return false, err
	}
	wrote := false
	byDot := make(map[crdt.Dot]*crdt.Op, len(refused))
	if len(refused) > 0 {
		for _, op := range ops {
			byDot[op.Dot] = op
		}
	}
	for _, r := range refused {
		kind := quarantineKind(r.Err)
		op := byDot[r.Dot]
		if kind == "" || op == nil {
			continue
		}
		if _, held := set[r.Dot]; held {
			continue
		}
		if len(set)+len(b.quarantined) >= l.opts.QuarantineLimit {
			l.logger.Warn("quarantine full: refused op not kept", "ns", b.ns, "dot", r.Dot, "limit", l.opts.QuarantineLimit, "err", r.Err)
			continue
		}
		q := Quarantined{Dot: r.Dot, Kind: kind, Reason: r.Err.Error(), At: time.UnixMilli(l.opts.Clock()), Op: crdt.AppendOp(nil, op)}
		if err := b.pb.Set(quarantineKey(b.ns, r.Dot), appendQuarantined(nil, &q), nil); err != nil {
			return false, fmt.Errorf("oplog: quarantine: %w", err)
		}
		b.quarantined = append(b.quarantined, r.Dot)
		wrote = true
	}
	if len(set) > 0 {
		for i := range b.commit.Ops {
			d := b.commit.Ops[i].Dot
			if _, held := set[d]; held {
				if err := b.pb.Delete(quarantineKey(b.ns, d), nil); err != nil {
					return false, fmt.Errorf("oplog: quarantine: %w", err)
				}
				b.released = append(b.released, d)
				wrote = true
			}
		}
	}
	return wrote, nil
}

// noteQuarantineLocked updates the in-memory set after b committed.
func (l *Log) noteQuarantineLocked(b *batch) {
	set := l.mu.quarantine[b.ns]
	if set == nil {
		return
	}
	for _, d := range b.quarantined {
		set[d] = struct{}{}
	}
	for _, d := range b.released {
		delete(set, d)
	}
}

// Quarantine lists the ops of ns this replica refused to apply, in dot
// order.
func (l *Log) Quarantine(ctx context.Context, ns string) ([]Quarantined, error) {
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.release()
	prefix := nsKey(tagQuarantine, ns)
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("oplog: quarantine %q: %w", ns, err)
	}
	defer it.Close()
	var out []Quarantined
	for it.First(); it.Valid(); it.Next() {
		q, err := decodeQuarantined(it.Key(), it.Value(), len(prefix))
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("oplog: quarantine %q: %w", ns, err)
	}
	if len(out) == 0 {
		return out, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ps, err := l.peersLocked(ns)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Waiting = waitingBehind(out[i].Dot, ps.vecs)
	}
	return out, nil
}

// waitingBehind counts the ops of d's origin after d that some known peer
// holds.
func waitingBehind(d crdt.Dot, peers map[crdt.ReplicaID]crdt.VersionVector) uint64 {
	var top uint64
	for _, vv := range peers {
		top = max(top, vv[d.Origin])
	}
	if top <= d.Seq {
		return 0
	}
	return top - d.Seq
}

// RetryQuarantine offers the quarantined ops of ns to Ingest again: those
// that now apply (after an upgrade, or once the clock caught up) leave the
// quarantine, with the ops behind them that arrive later.
func (l *Log) RetryQuarantine(ctx context.Context, ns string) (*IngestResult, error) {
	qs, err := l.Quarantine(ctx, ns)
	if err != nil {
		return nil, err
	}
	ops := make([]crdt.Op, 0, len(qs))
	var still []Refusal
	for _, q := range qs {
		op, err := crdt.DecodeOp(q.Op) // decoding validates
		if errors.Is(err, crdt.ErrInvalidOp) {
			still = append(still, Refusal{Dot: q.Dot, Err: err}) // still invalid here
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: quarantined op %v: %w", ErrCorrupt, q.Dot, err)
		}
		ops = append(ops, op)
	}
	res, err := l.Ingest(ctx, ns, ops)
	if err != nil {
		return nil, err
	}
	res.Refused = append(res.Refused, still...)
	return res, nil
}

// ErrNotQuarantined: Discard was given a dot that is not in the quarantine.
var ErrNotQuarantined = errors.New("oplog: op not in quarantine")

// DiscardQuarantined removes an op from the quarantine without applying
// it. The op is not lost to the fleet (its origin and other replicas hold
// it, and a later sync may offer it again); the ops after it from the same
// origin still wait for it.
func (l *Log) DiscardQuarantined(ctx context.Context, ns string, d crdt.Dot) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("oplog: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	set, err := l.quarantinedLocked(ns)
	if err != nil {
		return err
	}
	if _, held := set[d]; !held {
		return fmt.Errorf("%w: %v in %q", ErrNotQuarantined, d, ns)
	}
	if err := l.bounded(ctx, "discard", func() error { return l.db.Delete(quarantineKey(ns, d), pebble.Sync) }); err != nil {
		return fmt.Errorf("oplog: discard %v: %w", d, err)
	}
	delete(set, d)
	l.changedLocked(ns)
	return nil
}

// QuarantineStats summarizes the quarantine of a namespace.
type QuarantineStats struct {
	// Ops counts the quarantined ops.
	Ops int
	// Waiting counts the ops held back behind them: per origin with a
	// quarantined op, the ops after its first one that known peers hold.
	Waiting uint64
}

// QuarantineStats returns how many ops of ns are quarantined and how many
// wait behind them, from what the Log keeps in memory (no scan of the
// quarantine).
func (l *Log) QuarantineStats(ns string) (QuarantineStats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return QuarantineStats{}, ErrClosed
	}
	set, err := l.quarantinedLocked(ns)
	if err != nil || len(set) == 0 {
		return QuarantineStats{}, err
	}
	ps, err := l.peersLocked(ns)
	if err != nil {
		return QuarantineStats{}, err
	}
	first := make(map[crdt.ReplicaID]uint64) // origin -> its first quarantined seq
	for d := range set {
		if s, ok := first[d.Origin]; !ok || d.Seq < s {
			first[d.Origin] = d.Seq
		}
	}
	st := QuarantineStats{Ops: len(set)}
	for o, seq := range first {
		st.Waiting += waitingBehind(crdt.Dot{Origin: o, Seq: seq}, ps.vecs)
	}
	return st, nil
}

// QuarantineCount returns how many ops of ns are quarantined.
func (l *Log) QuarantineCount(ns string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	set, err := l.quarantinedLocked(ns)
	return len(set), err
}
