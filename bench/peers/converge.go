package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/bench/internal/stats"
	"github.com/convergedb/converge/bench/internal/workload"
	"github.com/convergedb/converge/transport"
)

// Converge's sides: each run opens fresh replicas (Pebble in a temp
// directory) and writes the workload's records with Collection.Put, as the
// harness's put scenario does.

// convergeReplica is one open replica and its task collection.
type convergeReplica struct {
	db    *converge.DB
	tasks *converge.Collection[workload.Task]
}

// openConverge opens a quiet replica in dir.
func openConverge(dir string, d converge.Durability) (*convergeReplica, error) {
	db, err := converge.Open(dir, converge.Options{Durability: d, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("opening a replica: %w", err)
	}
	tasks, err := converge.NewCollection[workload.Task](db, workload.Collection)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("collection: %w", err), db.Close())
	}
	return &convergeReplica{db: db, tasks: tasks}, nil
}

// put writes recs, one Put (one commit) each.
func (r *convergeReplica) put(ctx context.Context, recs []workload.Task) error {
	for i := range recs {
		if _, err := r.tasks.Put(ctx, workload.NS, &recs[i]); err != nil {
			return fmt.Errorf("put %s: %w", recs[i].ID, err)
		}
	}
	return nil
}

// ops returns how many ops of its own the replica holds.
func (r *convergeReplica) ops(ctx context.Context) (uint64, error) {
	vv, err := r.db.Admin().Vector(ctx, workload.NS)
	if err != nil {
		return 0, err
	}
	return vv[r.db.ReplicaID()], nil
}

// openConvergeReplicas opens k fresh replicas in new directories; close
// closes them and removes the directories.
func openConvergeReplicas(e *env, d converge.Durability, k int) (_ []*convergeReplica, closeAll func() error, err error) {
	var rs []*convergeReplica
	var dirs []string
	closeAll = func() error {
		var errs []error
		for _, r := range rs {
			errs = append(errs, r.db.Close())
		}
		for _, dir := range dirs {
			e.removeDir(dir)
		}
		return errors.Join(errs...)
	}
	for range k {
		dir, err := e.dir("converge")
		if err != nil {
			return nil, nil, errors.Join(err, closeAll())
		}
		dirs = append(dirs, dir)
		r, err := openConverge(dir, d)
		if err != nil {
			return nil, nil, errors.Join(err, closeAll())
		}
		rs = append(rs, r)
	}
	return rs, closeAll, nil
}

// convergePut writes recs on a fresh replica and reports the rate. It
// checks that the replica holds one op per record.
func convergePut(ctx context.Context, e *env, d converge.Durability, recs []workload.Task) (_ Values, err error) {
	rs, closeAll, err := openConvergeReplicas(e, d, 1)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, closeAll()) }()
	start := time.Now()
	if err := rs[0].put(ctx, recs); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	if got, err := rs[0].ops(ctx); err != nil || got != uint64(len(recs)) {
		return nil, fmt.Errorf("the replica holds %d ops after %d puts (%v)", got, len(recs), err)
	}
	return Values{"throughput": stats.PerSecond(len(recs), elapsed)}, nil
}

// convergeReceive writes recs on one replica, then times a second, fresh
// replica pulling them with transport.Sync over transport.MemPeer (every
// message encoded and decoded as on a network). It checks that the
// receiver applied every op and has the writer's state.
func convergeReceive(ctx context.Context, e *env, recs []workload.Task) (_ Values, err error) {
	rs, closeAll, err := openConvergeReplicas(e, converge.NoSync, 2)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, closeAll()) }()
	writer, receiver := rs[0], rs[1]
	if err := writer.put(ctx, recs); err != nil {
		return nil, err
	}
	peer := transport.NewMemPeer(writer.db.SyncStore(), transport.Limits{})
	start := time.Now()
	res, err := transport.Sync(ctx, receiver.db.SyncStore(), peer, workload.NS, transport.Options{})
	elapsed := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	if res.Received != len(recs) || res.Sent != 0 {
		return nil, fmt.Errorf("sync moved %d ops to the receiver and %d back, want %d and 0", res.Received, res.Sent, len(recs))
	}
	if err := sameState(ctx, writer, receiver); err != nil {
		return nil, err
	}
	return Values{"throughput": stats.PerSecond(len(recs), elapsed)}, nil
}

// convergeMerge writes a's records on one replica and b's on another, then
// times one transport.Sync between them over transport.MemPeer (it pushes
// and pulls). It checks that each side applied the other's ops and that
// both have the same state.
func convergeMerge(ctx context.Context, e *env, a, b []workload.Task) (_ Values, err error) {
	rs, closeAll, err := openConvergeReplicas(e, converge.NoSync, 2)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, closeAll()) }()
	if err := rs[0].put(ctx, a); err != nil {
		return nil, err
	}
	if err := rs[1].put(ctx, b); err != nil {
		return nil, err
	}
	peer := transport.NewMemPeer(rs[1].db.SyncStore(), transport.Limits{})
	start := time.Now()
	res, err := transport.Sync(ctx, rs[0].db.SyncStore(), peer, workload.NS, transport.Options{})
	elapsed := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	if res.Sent != len(a) || res.Received != len(b) {
		return nil, fmt.Errorf("sync sent %d ops and received %d, want %d and %d", res.Sent, res.Received, len(a), len(b))
	}
	if err := sameState(ctx, rs[0], rs[1]); err != nil {
		return nil, err
	}
	return mergeValues(elapsed), nil
}

// sameState fails unless a and b have the same state hash.
func sameState(ctx context.Context, a, b *convergeReplica) error {
	ha, err := a.db.Admin().StateHash(ctx, workload.NS)
	if err != nil {
		return err
	}
	hb, err := b.db.Admin().StateHash(ctx, workload.NS)
	if err != nil {
		return err
	}
	if ha != hb {
		return fmt.Errorf("replicas differ after sync: state hashes %s and %s", ha, hb)
	}
	return nil
}
