package converge

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/materialize"
	"github.com/convergedb/converge/oplog"
)

// ConflictPolicy says what a replica does about the conflicts it detects
// when it applies ops received from peers (see [Conflict]). The merge (last
// writer wins by HLC) has already chosen a winner, identically on every
// replica; a policy does not change the merge. It acts by writing a new op,
// a resolution, that assigns the field the value the policy prefers.
// Resolutions replicate and merge like any other write, so replicas still
// converge, whatever policies they run; a conflict revealed by a resolution
// is never resolved again, so policies cannot answer each other forever.
//
// A policy considers only conflicts between a write of this replica (the
// local side) and a write of another (the remote side); a conflict between
// two remote writes is left alone. It resolves a conflict only while the
// winner is still the field's current value.
//
// The zero value is [LastWriteWins].
type ConflictPolicy struct {
	kind    policyKind
	resolve func(c Conflict, local, remote []byte) ([]byte, bool)
}

type policyKind uint8

const (
	policyLWW policyKind = iota
	policyLocal
	policyRemote
	policyCustom
)

var (
	// LastWriteWins keeps the merge's choice: nothing is written.
	LastWriteWins = ConflictPolicy{}
	// PreferLocal re-writes the local value when a remote write won.
	PreferLocal = ConflictPolicy{kind: policyLocal}
	// PreferRemote writes the remote value when the local write won.
	PreferRemote = ConflictPolicy{kind: policyRemote}
)

// Resolve returns a custom policy: f gets the conflict and the local and
// remote values (msgpack-encoded, empty for an unset) and returns the value
// to write (msgpack-encoded; empty or nil unsets the field) and whether to
// write it. Nothing is written when the value equals the winner's. f runs
// on the goroutine that applies the received ops, without locks held; it
// must be deterministic enough for the application's purpose and should not
// block. A nil f is LastWriteWins.
func Resolve(f func(c Conflict, local, remote []byte) ([]byte, bool)) ConflictPolicy {
	if f == nil {
		return LastWriteWins
	}
	return ConflictPolicy{kind: policyCustom, resolve: f}
}

func (p ConflictPolicy) String() string {
	switch p.kind {
	case policyLWW:
		return "last-write-wins"
	case policyLocal:
		return "prefer-local"
	case policyRemote:
		return "prefer-remote"
	}
	return "custom"
}

// resolution is a field write a policy decided on.
type resolution struct {
	c     Conflict
	value []byte // empty: unset
}

// decide returns the resolutions policy p makes of conflicts detected by
// replica self.
func (p ConflictPolicy) decide(self crdt.ReplicaID, conflicts []materialize.Conflict) []resolution {
	if p.kind == policyLWW {
		return nil
	}
	var out []resolution
	for _, c := range conflicts {
		if c.Resolution {
			continue
		}
		winLocal := c.Winner.Version.Replica == self
		loseLocal := c.Loser.Version.Replica == self
		if winLocal == loseLocal {
			continue // two remote writes (or, impossibly, two of ours)
		}
		local, remote := c.Winner.Value, c.Loser.Value
		if loseLocal {
			local, remote = remote, local
		}
		var v []byte
		switch p.kind {
		case policyLocal:
			if winLocal {
				continue
			}
			v = local
		case policyRemote:
			if loseLocal {
				continue
			}
			v = remote
		case policyCustom:
			var ok bool
			if v, ok = p.resolve(c, bytes.Clone(local), bytes.Clone(remote)); !ok {
				continue
			}
			if len(v) == 1 && v[0] == 0xc0 { // msgpack nil: an unset
				v = nil
			}
			if bytes.Equal(v, c.Winner.Value) {
				continue
			}
		}
		out = append(out, resolution{c: c, value: v})
	}
	return out
}

// resolveConflicts applies the DB's conflict policy to conflicts detected
// in ns while ingesting remote ops: it writes the resolutions in one local
// transaction, their ops marked as resolutions. A conflict whose winner is
// no longer the field's current value (a later write, or a resolution
// earlier in the transaction, replaced it) or whose record no longer exists
// is skipped. It returns how many conflicts it resolved (wrote a
// resolution for).
func (db *DB) resolveConflicts(ctx context.Context, ns string, conflicts []materialize.Conflict) (int, error) {
	res := db.opts.ConflictPolicy.decide(db.log.ReplicaID(), conflicts)
	if len(res) == 0 {
		return 0, nil
	}
	resolved := 0
	_, err := db.log.Write(ctx, ns, func(tx *oplog.Tx) error {
		tx.MarkResolution()
		for _, r := range res {
			st, err := tx.Get(r.c.Collection, r.c.Key)
			if err != nil {
				return err
			}
			if !st.Exists() || st.CL != r.c.Winner.Version.CL || !winnerCurrent(st, r.c) {
				continue
			}
			ch := crdt.Change{Name: r.c.Field, Type: crdt.Unset}
			if len(r.value) > 0 {
				ch = crdt.Change{Name: r.c.Field, Type: crdt.Set, Value: r.value}
			}
			_, err = tx.Mutate(r.c.Collection, r.c.Key, crdt.IntentUpdate, []crdt.Change{ch})
			if errors.Is(err, oplog.ErrNotFound) {
				continue
			}
			if errors.Is(err, crdt.ErrInvalidOp) {
				// A resolver's malformed value: the op was checked before
				// anything was written, so only this resolution is lost.
				db.logger.Warn("conflict resolution skipped", "namespace", ns, "collection", r.c.Collection, "key", r.c.Key, "field", r.c.Field, "err", err)
				continue
			}
			if err != nil {
				return err
			}
			resolved++
		}
		return nil
	})
	if err != nil {
		return 0, storeErr(fmt.Errorf("converge: resolve conflicts in %q: %w", ns, err))
	}
	return resolved, nil
}

// winnerCurrent reports whether the conflict's winner is still the value of
// its register in st.
func winnerCurrent(st *crdt.Record, c Conflict) bool {
	for i := range st.Fields {
		if f := &st.Fields[i]; f.Name == c.Field && f.Kind == crdt.KindRegister {
			return f.At == c.Winner.Version
		}
	}
	return false
}
