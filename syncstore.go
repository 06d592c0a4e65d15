package converge

import (
	"context"
	"errors"
	"fmt"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
	"github.com/convergedb/converge/transport"
)

// SyncStore returns the DB as the sync engine's [transport.Store], for
// serving peers (transport.Serve, transport.NewMemPeer, the HTTP server)
// and for transports. It has every ability the interface states: it
// serves and installs snapshots (a peer below the compaction horizon
// bootstraps from them), records what peers hold (the input of
// compaction), names its replica id and reports its commits.
func (db *DB) SyncStore() transport.Store { return syncStore{db: db} }

// syncStore is the DB as the sync engine's store. A replicator's counts
// what it applies in its tally.
type syncStore struct {
	db    *DB
	tally *applyTally // nil: not counted
}

// Self is the replica's id: live publishers publish only its ops.
func (s syncStore) Self() crdt.ReplicaID { return s.db.log.ReplicaID() }

// OnCommit is [DB.OnCommit]: every commit that adds ops, local or remote.
func (s syncStore) OnCommit(fn func(ns string)) (stop func()) { return s.db.OnCommit(fn) }

func (s syncStore) Vector(ctx context.Context, ns string) (crdt.VersionVector, error) {
	return s.db.log.Vector(ctx, ns)
}

func (s syncStore) Missing(ctx context.Context, ns string, have crdt.VersionVector, lim transport.Limits) ([][]byte, bool, error) {
	p, err := s.db.log.Page(ctx, ns, have, oplog.PageLimits{MaxOps: lim.MaxOps, MaxBytes: lim.MaxBytes})
	if errors.Is(err, oplog.ErrCompacted) {
		return nil, false, fmt.Errorf("%w: %w", transport.ErrSnapshotNeeded, err)
	}
	if err != nil {
		return nil, false, err
	}
	ops := make([][]byte, len(p.Entries))
	for i, e := range p.Entries {
		ops[i] = e.Raw
	}
	return ops, p.More, nil
}

func (s syncStore) Apply(ctx context.Context, ns string, raw [][]byte) (transport.Applied, error) {
	var a transport.Applied
	if len(raw) == 0 {
		return a, nil
	}
	malformed := 0
	ops := make([]crdt.Op, 0, len(raw))
	for _, b := range raw {
		op, err := crdt.DecodeOp(b)
		if err != nil {
			// Well-formed but invalid: the store refuses it again and keeps
			// it in quarantine under its dot, for an operator to see.
			if u, uerr := crdt.DecodeOpUnchecked(b); uerr == nil && !u.Dot.Origin.IsZero() && u.Dot.Seq > 0 {
				ops = append(ops, u)
				continue
			}
			malformed++
			if a.Err == nil {
				a.Err, a.Reason = err, err.Error()
			}
			continue
		}
		ops = append(ops, op)
	}
	res, err := s.db.log.Ingest(ctx, ns, ops)
	if err != nil {
		return a, err
	}
	a.Applied = res.Applied
	a.Duplicates = res.Duplicates
	a.Refused = len(raw) - a.Applied - a.Duplicates // malformed, refused, beyond a gap or of an incomplete transaction
	a.Conflicts = len(res.Commit.Conflicts)
	// The conflict policy acts after the ingest, in a local transaction of
	// its own: its ops replicate like any other write.
	resolved, err := s.db.resolveConflicts(ctx, ns, res.Commit.Conflicts)
	if err != nil {
		s.db.logger.Warn("conflict resolution failed", "namespace", ns, "err", err)
	}
	if s.tally != nil {
		s.tally.add(ns, applyCounts{Applied: a.Applied, Conflicts: a.Conflicts, Refused: malformed + len(res.Refused), Resolved: resolved})
	}
	if a.Reason == "" {
		switch {
		case len(res.Refused) > 0:
			a.Err = fmt.Errorf("op %v: %w", res.Refused[0].Dot, res.Refused[0].Err)
			a.Reason = a.Err.Error()
		case len(res.Gaps) > 0:
			g := res.Gaps[0]
			a.Reason = fmt.Sprintf("gap in ops of %v: have %d, offered %d", g.Origin, g.Have, g.Next)
		}
	}
	return a, nil
}

// Snapshot implements [transport.Store].
func (s syncStore) Snapshot(ctx context.Context, ns string, after *transport.SnapshotCursor, lim transport.Limits) (crdt.VersionVector, []transport.SnapshotRecord, bool, error) {
	var cur *oplog.SnapshotCursor
	if after != nil {
		cur = &oplog.SnapshotCursor{Collection: after.Collection, Key: after.Key}
	}
	p, err := s.db.log.Snapshot(ctx, ns, cur, oplog.PageLimits{MaxOps: lim.MaxOps, MaxBytes: lim.MaxBytes})
	if err != nil {
		return nil, nil, false, err
	}
	recs := make([]transport.SnapshotRecord, len(p.Records))
	for i, r := range p.Records {
		recs[i] = transport.SnapshotRecord(r)
	}
	return p.Vector, recs, p.More, nil
}

// InstallSnapshot implements [transport.Store].
func (s syncStore) InstallSnapshot(ctx context.Context, ns string, recs []transport.SnapshotRecord) error {
	in := make([]oplog.SnapshotRecord, len(recs))
	for i, r := range recs {
		in[i] = oplog.SnapshotRecord(r)
	}
	_, err := s.db.log.InstallSnapshot(ctx, ns, in)
	return err
}

// FinishSnapshot implements [transport.Store].
func (s syncStore) FinishSnapshot(ctx context.Context, ns string, vv crdt.VersionVector) error {
	return s.db.log.FinishSnapshot(ctx, ns, vv)
}
