package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
)

// modelStore is a [Store] small enough to read in a transcript: replicas
// are named by one letter, ops by their dot ("b3": the third op of b),
// and every op writes a record of its own (so a snapshot holds one
// record per op, its state the op's name).
//
// The encoding of an op is its name, and a "+" when its transaction goes
// on with the next op ("b1+ b2+ b3" is one transaction of three ops). The
// session never looks inside ops; the model store applies them as the
// real one does: per origin in sequence order, whole transactions only,
// an op beyond a gap not at all, an op held already as a duplicate.
type modelStore struct {
	name    string
	id      crdt.ReplicaID
	vv      crdt.VersionVector
	log     []modelOp          // in (origin, seq) order
	horizon crdt.VersionVector // the log holds no op at or below it
	records map[string][]byte  // by key
	peers   map[crdt.ReplicaID]crdt.VersionVector
	refuse  map[crdt.ReplicaID]bool // origins whose ops it refuses, as beyond the clock bound
	// noSnapshots makes it unable to serve or install snapshots.
	noSnapshots bool
	// churn makes it write an op and compact its log after serving the
	// last page of a snapshot: a responder compacting faster than
	// snapshots install.
	churn bool
}

// modelOp is one op of a modelStore.
type modelOp struct {
	dot   crdt.Dot
	txEnd bool // the last op of its transaction
}

// modelID is the replica id of the replica named name (one letter).
func modelID(name string) crdt.ReplicaID { return crdt.ReplicaID{0: name[0]} }

// modelName is the name of the replica id.
func modelName(id crdt.ReplicaID) string { return string(id[0]) }

func newModelStore(name string) *modelStore {
	return &modelStore{
		name: name, id: modelID(name),
		vv: crdt.VersionVector{}, horizon: crdt.VersionVector{},
		records: map[string][]byte{}, peers: map[crdt.ReplicaID]crdt.VersionVector{},
		refuse: map[crdt.ReplicaID]bool{},
	}
}

func (op modelOp) String() string { return fmt.Sprintf("%s%d", modelName(op.dot.Origin), op.dot.Seq) }

func (op modelOp) encode() []byte {
	if op.txEnd {
		return []byte(op.String())
	}
	return []byte(op.String() + "+")
}

func decodeModelOp(b []byte) (modelOp, bool) {
	s := string(b)
	if len(s) < 2 || s[0] < 'a' || s[0] > 'z' {
		return modelOp{}, false
	}
	body, cont := strings.CutSuffix(s[1:], "+")
	seq, err := strconv.ParseUint(body, 10, 64)
	if err != nil || seq == 0 {
		return modelOp{}, false
	}
	return modelOp{dot: crdt.Dot{Origin: modelID(s[:1]), Seq: seq}, txEnd: !cont}, true
}

// recordKey is the key of the record op writes: zero-padded, so that
// keys sort as the ops of an origin do.
func recordKey(d crdt.Dot) string { return fmt.Sprintf("%s%03d", modelName(d.Origin), d.Seq) }

// write appends n ops of the store's own, one transaction if tx, else one
// each, and returns them.
func (m *modelStore) write(n int, tx bool) []modelOp {
	ops := make([]modelOp, n)
	for i := range ops {
		ops[i] = modelOp{dot: crdt.Dot{Origin: m.id, Seq: m.vv[m.id] + uint64(i) + 1}, txEnd: !tx || i == n-1}
	}
	m.commit(ops)
	return ops
}

// commit adds a whole transaction of ops to the log, the records and the
// vector.
func (m *modelStore) commit(ops []modelOp) {
	for _, op := range ops {
		m.log = append(m.log, op)
		m.records[recordKey(op.dot)] = []byte(op.String())
		m.vv[op.dot.Origin] = max(m.vv[op.dot.Origin], op.dot.Seq)
	}
	slices.SortFunc(m.log, func(x, y modelOp) int { return x.dot.Compare(y.dot) })
}

// compact folds the whole log into the records: the horizon is the
// vector.
func (m *modelStore) compact() {
	m.horizon = m.vv.Clone()
	m.log = nil
}

func (m *modelStore) Self() crdt.ReplicaID { return m.id }

func (m *modelStore) Vector(context.Context, string) (crdt.VersionVector, error) {
	return m.vv.Clone(), nil
}

// Missing pages through the log in (origin, seq) order, stopping at the
// first transaction boundary at or beyond lim.
func (m *modelStore) Missing(_ context.Context, _ string, have crdt.VersionVector, lim Limits) ([][]byte, bool, error) {
	if !have.Covers(m.horizon) {
		return nil, false, fmt.Errorf("%w: %s compacted its log up to %v", ErrSnapshotNeeded, m.name, m.horizon)
	}
	lim = lim.withDefaults()
	var ops [][]byte
	size := 0
	for i, op := range m.log {
		if op.dot.Seq <= have[op.dot.Origin] {
			continue
		}
		b := op.encode()
		ops = append(ops, b)
		size += len(b)
		if op.txEnd && (len(ops) >= lim.MaxOps || size >= lim.MaxBytes) {
			return ops, m.lacks(have, i+1), nil
		}
	}
	return ops, false, nil
}

// lacks reports whether the log from index from on holds an op beyond
// have.
func (m *modelStore) lacks(have crdt.VersionVector, from int) bool {
	return slices.ContainsFunc(m.log[from:], func(op modelOp) bool { return op.dot.Seq > have[op.dot.Origin] })
}

func (m *modelStore) Apply(_ context.Context, _ string, raw [][]byte) (Applied, error) {
	var a Applied
	note := func(reason string, err error) {
		if a.Reason == "" {
			a.Reason, a.Err = reason, err
		}
	}
	var tx []modelOp // the transaction being received
	dropTx := func() {
		if len(tx) > 0 {
			a.Refused += len(tx)
			note(fmt.Sprintf("transaction of %v incomplete", tx[0]), nil)
			tx = nil
		}
	}
	for _, b := range raw {
		op, ok := decodeModelOp(b)
		if !ok {
			a.Refused++
			note(fmt.Sprintf("malformed op %q", b), nil)
			continue
		}
		if len(tx) > 0 && tx[0].dot.Origin != op.dot.Origin {
			dropTx()
		}
		o := op.dot.Origin
		switch next := m.vv[o] + uint64(len(tx)) + 1; {
		case m.refuse[o]:
			a.Refused++
			err := fmt.Errorf("op %v: %w", op, hlc.ErrClockDrift)
			note(err.Error(), err)
		case op.dot.Seq < next && len(tx) == 0:
			a.Duplicates++
		case op.dot.Seq != next:
			a.Refused++
			note(fmt.Sprintf("gap in ops of %s: have %d, offered %d", modelName(o), next-1, op.dot.Seq), nil)
		default:
			tx = append(tx, op)
			if op.txEnd {
				m.commit(tx)
				a.Applied += len(tx)
				tx = nil
			}
		}
	}
	dropTx()
	return a, nil
}

func (m *modelStore) Acknowledged(_ context.Context, _ string, peer crdt.ReplicaID, vv crdt.VersionVector) error {
	if m.peers[peer] == nil {
		m.peers[peer] = crdt.VersionVector{}
	}
	m.peers[peer].Merge(vv)
	return nil
}

var errModelNoSnapshots = fmt.Errorf("model store without snapshots: %w", errors.ErrUnsupported)

// Snapshot serves the records after the cursor, at least one, at most
// lim.MaxOps of them.
func (m *modelStore) Snapshot(_ context.Context, _ string, after *SnapshotCursor, lim Limits) (crdt.VersionVector, []SnapshotRecord, bool, error) {
	if m.noSnapshots {
		return nil, nil, false, errModelNoSnapshots
	}
	lim = lim.withDefaults()
	vv := m.vv.Clone()
	var recs []SnapshotRecord
	more := false
	for _, k := range slices.Sorted(maps.Keys(m.records)) {
		if after != nil && cmp.Compare(k, after.Key) <= 0 {
			continue
		}
		if len(recs) >= lim.MaxOps {
			more = true
			break
		}
		recs = append(recs, SnapshotRecord{Collection: "items", Key: k, State: m.records[k]})
	}
	if m.churn && !more {
		m.write(1, false)
		m.compact()
	}
	return vv, recs, more, nil
}

func (m *modelStore) InstallSnapshot(_ context.Context, _ string, recs []SnapshotRecord) error {
	if m.noSnapshots {
		return errModelNoSnapshots
	}
	for _, r := range recs {
		m.records[r.Key] = r.State
	}
	return nil
}

// FinishSnapshot raises the vector, and the horizon with it: the ops the
// snapshot stands for are in the records, not in the log.
func (m *modelStore) FinishSnapshot(_ context.Context, _ string, vv crdt.VersionVector) error {
	if m.noSnapshots {
		return errModelNoSnapshots
	}
	m.vv.Merge(vv)
	m.horizon.Merge(vv)
	m.log = slices.DeleteFunc(m.log, func(op modelOp) bool { return m.horizon.Contains(op.dot) })
	return nil
}

func (m *modelStore) OnCommit(func(string)) func() { return func() {} }
