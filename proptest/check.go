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
	diff, err := difference(ctx, ns, dbs)
	if err != nil {
		return err
	}
	if diff != "" {
		return errors.New(diff)
	}
	return nil
}

// WaitConverged waits until every replica given holds the same ops of
// namespace ns and the same state, as [CheckConverged] checks, or until
// ctx ends: then it returns an error wrapping ctx's error and describing
// how they differ. It re-checks after every change any of them makes to
// ns (converge.Admin.OnChange), not on a timer. Give ctx a deadline.
func WaitConverged(ctx context.Context, ns string, dbs ...*converge.DB) error {
	wake := make(chan struct{}, 1)
	for _, db := range dbs {
		stop := db.Admin().OnChange(func(changed string) {
			if changed != ns {
				return
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		defer stop()
	}
	for {
		// Registered before the check: a change after it wakes the wait.
		// The vectors first: they are cheap to read, and while they
		// differ the states are not compared.
		diff, err := vectorDifference(ctx, ns, dbs)
		if diff == "" && err == nil {
			diff, err = difference(ctx, ns, dbs)
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("proptest: wait for %q to converge: %w", ns, ctx.Err())
			}
			return err
		}
		if diff == "" {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("proptest: wait for %q to converge: %w: %s", ns, ctx.Err(), diff)
		}
	}
}

// vectorDifference describes how the replicas' version vectors of ns
// differ, or is "" if they are equal.
func vectorDifference(ctx context.Context, ns string, dbs []*converge.DB) (string, error) {
	var first crdt.VersionVector
	for i, db := range dbs {
		vv, err := db.Admin().Log().Vector(ctx, ns)
		if err != nil {
			return "", fmt.Errorf("proptest: replica %d: %w", i, err)
		}
		if i == 0 {
			first = vv
		} else if !vv.Equal(first) {
			return fmt.Sprintf("proptest: namespace %q: replica %d holds %v, replica 0 %v", ns, i, vv, first), nil
		}
	}
	return "", nil
}

// difference describes how the replicas differ in ns, or is "" if they
// agree.
func difference(ctx context.Context, ns string, dbs []*converge.DB) (string, error) {
	if len(dbs) < 2 {
		return "", nil
	}
	vvs := make([]crdt.VersionVector, len(dbs))
	hashes := make([]string, len(dbs))
	for i, db := range dbs {
		vv, err := db.Admin().Log().Vector(ctx, ns)
		if err != nil {
			return "", fmt.Errorf("proptest: replica %d: %w", i, err)
		}
		h, err := db.Admin().StateHash(ctx, ns)
		if err != nil {
			return "", fmt.Errorf("proptest: replica %d: %w", i, err)
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
		return "", nil
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
	return b.String(), nil
}
