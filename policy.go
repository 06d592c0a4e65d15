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
	kind policyKind
	// resolve is a custom policy's resolver: st is the record's state as
	// this replica holds it (the winner's value current).
	resolve func(db *DB, c Conflict, st *crdt.Record, local, remote []byte) ([]byte, bool)
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
	return ConflictPolicy{kind: policyCustom, resolve: func(_ *DB, c Conflict, _ *crdt.Record, local, remote []byte) ([]byte, bool) {
		return f(c, local, remote)
	}}
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
	c             Conflict
	policy        ConflictPolicy
	local, remote []byte
	value         []byte // empty: unset
}

// candidate returns the resolution policy p makes of conflict c detected
// by replica self, its value still to compute for a custom policy; ok is
// false if p leaves c alone.
func (p ConflictPolicy) candidate(self crdt.ReplicaID, c Conflict) (r resolution, ok bool) {
	if p.kind == policyLWW || c.Resolution {
		return r, false
	}
	winLocal := c.Winner.Version.Replica == self
	loseLocal := c.Loser.Version.Replica == self
	if winLocal == loseLocal {
		return r, false // two remote writes (or, impossibly, two of ours)
	}
	r = resolution{c: c, policy: p, local: c.Winner.Value, remote: c.Loser.Value}
	if loseLocal {
		r.local, r.remote = r.remote, r.local
	}
	switch p.kind {
	case policyLocal:
		r.value = r.local
		return r, !winLocal
	case policyRemote:
		r.value = r.remote
		return r, !loseLocal
	}
	return r, true
}

// decideCustom computes the value of a custom policy's resolution r from
// the record's state st; ok is false if the resolver declines, or picks
// the winner's value.
func (r *resolution) decideCustom(db *DB, st *crdt.Record) (ok bool) {
	v, ok := r.policy.resolve(db, r.c, st, bytes.Clone(r.local), bytes.Clone(r.remote))
	if !ok {
		return false
	}
	if len(v) == 1 && v[0] == 0xc0 { // msgpack nil: an unset
		v = nil
	}
	r.value = v
	return !bytes.Equal(v, r.c.Winner.Value)
}

// policyFor returns the conflict policy of collection coll: the one set
// for it, else the DB's.
func (db *DB) policyFor(coll string) ConflictPolicy {
	if p, ok := db.policies.Load(coll); ok {
		return p.(ConflictPolicy)
	}
	return db.opts.ConflictPolicy
}

// decide returns the resolutions the conflict policies make of conflicts
// detected in ns. A custom policy's resolver runs here, on the record's
// state as read now, without locks held; resolveConflicts checks that the
// winner is still current when it writes.
func (db *DB) decide(ctx context.Context, ns string, conflicts []materialize.Conflict) ([]resolution, error) {
	var out []resolution
	self := db.log.ReplicaID()
	for _, c := range conflicts {
		r, ok := db.policyFor(c.Collection).candidate(self, c)
		if !ok {
			continue
		}
		if r.policy.kind == policyCustom {
			st, err := db.log.Get(ctx, ns, c.Collection, c.Key)
			if err != nil {
				return nil, err
			}
			if !st.Exists() || !winnerCurrent(st, c) || !r.decideCustom(db, st) {
				continue
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// resolveConflicts applies the conflict policies (the collection's, else
// the DB's) to conflicts detected in ns while ingesting remote ops: it
// writes the resolutions in one local transaction, their ops marked as
// resolutions. A conflict whose winner is no longer the field's current
// value (a later write, or a resolution earlier in the transaction,
// replaced it) or whose record no longer exists is skipped. It returns
// how many conflicts it resolved (wrote a resolution for).
func (db *DB) resolveConflicts(ctx context.Context, ns string, conflicts []materialize.Conflict) (int, error) {
	res, err := db.decide(ctx, ns, conflicts)
	if err != nil || len(res) == 0 {
		return 0, err
	}
	resolved := 0
	_, err = db.log.Write(ctx, ns, func(tx *oplog.Tx) error {
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
