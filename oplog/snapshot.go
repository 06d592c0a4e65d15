package oplog

import (
	"context"
	"errors"

	"github.com/convergedb/converge/crdt"
)

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

// Snapshot returns a page of the states of ns, after the cursor (nil: from
// the first record), bounded by lim (MaxOps counts records).
func (l *Log) Snapshot(ctx context.Context, ns string, after *SnapshotCursor, lim PageLimits) (*SnapshotPage, error) {
	return nil, errors.New("oplog: Snapshot: not implemented yet")
}

// InstallSnapshot merges snapshot states into ns (states, base states,
// indexes and change feed, in one batch). It does not move the vector:
// call FinishSnapshot once every page is installed.
func (l *Log) InstallSnapshot(ctx context.Context, ns string, recs []SnapshotRecord) (*Commit, error) {
	return nil, errors.New("oplog: InstallSnapshot: not implemented yet")
}

// FinishSnapshot raises the vector of ns to cover vv, the vector a fully
// installed snapshot stands for, and raises the compaction horizon where vv
// passes what the log holds.
func (l *Log) FinishSnapshot(ctx context.Context, ns string, vv crdt.VersionVector) error {
	return errors.New("oplog: FinishSnapshot: not implemented yet")
}
