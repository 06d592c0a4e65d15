package converge

import (
	"context"
	"fmt"
	"slices"

	"github.com/convergedb/converge/oplog"
)

// Admin is the operator's handle on a DB: what a replica holds and what
// its peers hold (vectors, state hashes, known peers, the stable vector),
// the quarantine of refused ops, compaction and its horizon, verification,
// and the raw op log. An app reads and writes through the DB, its
// collections and watches; tools, monitoring and tests use Admin. Get it
// with [DB.Admin]; it is safe for concurrent use and valid as long as the
// DB is.
type Admin struct {
	db *DB
}

// Admin returns the operator's handle on the DB.
func (db *DB) Admin() *Admin { return &Admin{db: db} }

// Log returns the underlying store, for tools and tests.
func (a *Admin) Log() *oplog.Log { return a.db.log }

// Vector returns the replica's version vector for ns: origin replica id →
// the number of that origin's ops it holds.
func (a *Admin) Vector(ctx context.Context, ns string) (map[string]uint64, error) {
	vv, err := a.db.log.Vector(ctx, ns)
	if err != nil {
		return nil, storeErr(fmt.Errorf("converge: vector %q: %w", ns, err))
	}
	return vectorMap(vv), nil
}

// StateHash returns a digest of the state of ns. Replicas that hold the
// same ops have the same hash.
func (a *Admin) StateHash(ctx context.Context, ns string) (string, error) {
	h, _, err := a.db.log.StateHash(ctx, ns)
	if err != nil {
		return "", storeErr(fmt.Errorf("converge: state hash %q: %w", ns, err))
	}
	return h, nil
}

// Verification is what [Admin.Verify] found: the hash and count of the
// stored state and of the state rebuilt from the log.
type Verification = oplog.Verification

// Verify rebuilds the state of ns from its log and compares it with the
// stored state.
func (a *Admin) Verify(ctx context.Context, ns string) (Verification, error) {
	v, err := a.db.log.Verify(ctx, ns)
	if err != nil {
		return v, storeErr(fmt.Errorf("converge: verify %q: %w", ns, err))
	}
	return v, nil
}

// OnChange calls fn with the namespace after every change to what the
// replica holds of it or knows about it: a commit (local or remote, visible
// or not), a snapshot installed, a peer's holdings recorded or forgotten,
// quarantine entries added or removed. Tools that wait for replicas to
// agree (proptest.WaitConverged) re-check on it. fn runs on the changing
// goroutine with a lock held: it must return at once and must not call
// the DB. The returned func unregisters it.
func (a *Admin) OnChange(fn func(ns string)) (stop func()) {
	db := a.db
	h := &commitHook{fn: fn}
	db.subs.Lock()
	db.subs.changeHooks = append(db.subs.changeHooks, h)
	db.subs.Unlock()
	return func() {
		db.subs.Lock()
		defer db.subs.Unlock()
		db.subs.changeHooks = slices.DeleteFunc(db.subs.changeHooks, func(x *commitHook) bool { return x == h })
	}
}

// Backup writes a consistent copy of the replica's store to dest, a
// directory that must not exist, while the DB keeps serving (see
// [oplog.Log.Checkpoint]). A replica restored from the copy continues
// under a new replica id, so it never reuses an op identity it handed
// out after the copy was taken; peers send back the ops it lacks.
func (a *Admin) Backup(ctx context.Context, dest string) error {
	if err := a.db.log.Checkpoint(ctx, dest); err != nil {
		return fmt.Errorf("backup: %w", storeErr(err))
	}
	return nil
}

// DiskFault returns the store's disk fault: an error matching
// ErrDiskFault once a write could not complete (writes are refused until
// the DB is reopened; reads work), or while writes stall because Pebble's
// background writes fail; nil when the disk looks healthy.
func (a *Admin) DiskFault() error { return storeErr(a.db.log.DiskFault()) }

// IdentityChange reports why this Open gave the replica a new id (its
// store may lack ops it had handed out: a restored backup, a crash in
// GroupCommit or NoSync mode, a damaged WAL), with the ranges of its old
// id's ops it may lack; nil if it kept its id.
func (a *Admin) IdentityChange() *oplog.IdentityChange { return a.db.log.IdentityChange() }
