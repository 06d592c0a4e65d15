package proptest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
)

// CheckConverged returns nil if every replica given holds the same ops of
// namespace ns (equal version vectors) and the same state (equal state
// hashes, see converge.Admin.StateHash). Otherwise its error lists each
// replica with its id, vector and hash, and marks those that differ from
// the first.
func CheckConverged(ctx context.Context, ns string, dbs ...*converge.DB) error {
	if len(dbs) < 2 {
		return nil
	}
	vvs := make([]crdt.VersionVector, len(dbs))
	hashes := make([]string, len(dbs))
	for i, db := range dbs {
		vv, err := db.Admin().Log().Vector(ctx, ns)
		if err != nil {
			return fmt.Errorf("proptest: replica %d: %w", i, err)
		}
		h, err := db.Admin().StateHash(ctx, ns)
		if err != nil {
			return fmt.Errorf("proptest: replica %d: %w", i, err)
		}
		vvs[i], hashes[i] = vv, h
	}
	var diff []int
	for i := 1; i < len(dbs); i++ {
		if !vvs[i].Equal(vvs[0]) || hashes[i] != hashes[0] {
			diff = append(diff, i)
		}
	}
	if len(diff) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "proptest: namespace %q: replicas %v differ from replica 0:", ns, diff)
	for i, db := range dbs {
		var mark string
		switch ops, state := vvs[i].Equal(vvs[0]), hashes[i] == hashes[0]; {
		case i == 0:
			mark = "(reference)"
		case !ops && !state:
			mark = "≠ ops, ≠ state"
		case !ops:
			mark = "≠ ops"
		case !state:
			mark = "≠ state, same ops"
		}
		fmt.Fprintf(&b, "\n  replica %d %s: vector %v, state hash %s %s", i, db.ReplicaID(), vvs[i], hashes[i], mark)
	}
	return errors.New(b.String())
}
