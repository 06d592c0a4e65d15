package converge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/materialize"
	"github.com/convergedb/converge/oplog"
	"github.com/convergedb/converge/transport"
)

// Durability says when a write reaches stable storage.
type Durability = oplog.Durability

// Durability modes.
const (
	// SyncEveryCommit: a write is fsynced before it returns (the default).
	SyncEveryCommit = oplog.SyncEveryCommit
	// GroupCommit: a write returns after an fsync it shares with
	// concurrent writes.
	GroupCommit = oplog.GroupCommit
	// NoSync: a crash may lose the latest writes (never part of one): a
	// process kill those in the 32 KiB in-process WAL buffer, a machine
	// crash what the OS had not written back (Options.SyncInterval bounds
	// that by time).
	NoSync = oplog.NoSync
)

// Options configure a DB. The zero value is valid.
type Options struct {
	// Durability of writes. Zero means SyncEveryCommit.
	Durability Durability
	// SyncInterval, with NoSync, fsyncs the store's WAL this often while
	// writes happen, bounding what a machine crash loses by time (not a
	// process kill: see oplog.Options.SyncInterval). Zero means never.
	SyncInterval time.Duration
	// StallTimeout bounds a write's wait for a failing disk; then it fails
	// with ErrDiskFault (see oplog.Options.StallTimeout). Zero means 30s.
	StallTimeout time.Duration
	// MaxClockDrift bounds how far ahead of our clock a remote op's HLC
	// may be. Zero means one minute.
	MaxClockDrift time.Duration
	// Clock is the physical time source in Unix milliseconds. Nil means
	// the system clock. Tests inject one.
	Clock func() int64
	// ConflictPolicy is what the DB does about the conflicts it detects
	// in ops received from peers: [LastWriteWins] (the zero value) keeps
	// the merge's choice, [PreferLocal], [PreferRemote] and [Resolve]
	// write a resolution op. See [ConflictPolicy].
	ConflictPolicy ConflictPolicy
	// ConflictLogSize is how many conflicts are kept per namespace. Zero
	// means 1000.
	ConflictLogSize int
	// QuarantineLimit is how many refused remote ops are kept per
	// namespace for an operator ([Admin.Quarantine]). Zero means 1000.
	QuarantineLimit int
	// MaxOpSize bounds one op's encoding, local or remote, in bytes: a
	// larger local write is ErrTooLarge, a larger remote op is refused and
	// quarantined. Zero means the most the codec allows (4 MiB). Replicas
	// of a fleet should agree on it.
	MaxOpSize int
	// ChangeBuffer is how many changes a subscription holds before it
	// drops the oldest and reports ErrLagged. Zero means 4096.
	ChangeBuffer int
	// CacheSize is the Pebble block cache in bytes. Zero means 64 MiB.
	CacheSize int64
	// FS is the file system for the store. Nil means the OS's.
	FS vfs.FS
	// Logger receives storage and sync events. Nil means slog.Default().
	Logger *slog.Logger
	// Compaction configures log compaction; see [CompactionOptions].
	Compaction CompactionOptions
}

// DB is a replica: a local store of namespaces of collections. It is safe
// for concurrent use.
type DB struct {
	log       *oplog.Log
	self      string // the replica's id as a string, made once
	opts      Options
	logger    *slog.Logger
	compactor *compactor // nil when background compaction is off
	notify    *notifier
	dirty     dirtySet      // namespaces the background compaction has to visit
	done      chan struct{} // closed by Close: watches end
	// policies maps a collection name to the ConflictPolicy set for it
	// (Collection.SetConflictPolicy), in place of opts.ConflictPolicy.
	policies sync.Map
	// syncs is what the DB knows of its namespaces' syncs since it opened
	// (DB.Synced), for the watches.
	syncs syncTracker

	// subs holds what is opened on the DB, which Close closes first.
	subs struct {
		sync.Mutex
		closed      bool
		commitHooks []*commitHook
		changeHooks []*commitHook // Admin.OnChange
		replicators map[*Replicator]struct{}
	}
}

// Open opens or creates the replica stored in dir. On first open the
// replica gets a new id.
func Open(dir string, opts Options) (*DB, error) {
	if opts.ChangeBuffer <= 0 {
		opts.ChangeBuffer = 4096
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	db := &DB{opts: opts, logger: opts.Logger.With("component", "converge"), done: make(chan struct{})}
	// The notifier queues at most a few subscription buffers of changes;
	// beyond, listeners are told they lagged.
	db.notify = newNotifier(4 * opts.ChangeBuffer)
	l, err := oplog.Open(dir, oplog.Options{
		Durability:      opts.Durability,
		SyncInterval:    opts.SyncInterval,
		StallTimeout:    opts.StallTimeout,
		MaxClockDrift:   opts.MaxClockDrift,
		Clock:           opts.Clock,
		ConflictLogSize: opts.ConflictLogSize,
		QuarantineLimit: opts.QuarantineLimit,
		MaxOpSize:       opts.MaxOpSize,
		CacheSize:       opts.CacheSize,
		FS:              opts.FS,
		Logger:          opts.Logger,
		FeedRetention:   opts.Compaction.FeedRetention,
		PeerLease:       opts.Compaction.PeerLease,
		OnCommit:        db.publish,
		OnChange:        db.changed,
	})
	if err != nil {
		db.notify.close()
		return nil, storeErr(fmt.Errorf("converge: %w", err))
	}
	db.log = l
	db.self = l.ReplicaID().String()
	db.logger = db.logger.With("replica", l.ReplicaID())
	if !opts.Compaction.Disabled {
		db.compactor = db.startCompactor(opts.Compaction.withDefaults())
	}
	return db, nil
}

// Close closes what was opened on the DB, then the DB: it closes the
// replicators still open (waiting for their goroutines, which end as their
// context is cancelled), ends every change subscription (and so every
// Watch, Feed and Changes iteration, which return), stops the background
// compaction, and closes the store. Writes that returned are durable as
// the durability mode promised. Close is idempotent; opening a replicator
// or a subscription on a closed DB gives ErrClosed (a closed subscription).
func (db *DB) Close() error {
	db.subs.Lock()
	if !db.subs.closed {
		close(db.done)
	}
	db.subs.closed = true
	reps := db.subs.replicators
	db.subs.replicators = nil
	db.subs.Unlock()
	for r := range reps {
		r.stop()
	}
	for _, s := range db.notify.subscriptions() {
		db.notify.unsubscribe(s)
		s.close()
	}
	if db.compactor != nil {
		db.compactor.stop()
	}
	err := db.log.Close()
	db.notify.close()
	if err != nil {
		return storeErr(fmt.Errorf("converge: %w", err))
	}
	return nil
}

// ReplicaID returns the replica's id (a ULID).
func (db *DB) ReplicaID() string { return db.self }

// replicaString returns r as a string, without building this replica's
// own id again. db may be nil (a collection value made to decode, not
// opened on a DB).
func (db *DB) replicaString(r crdt.ReplicaID) string {
	if db != nil && r == db.log.ReplicaID() {
		return db.self
	}
	return r.String()
}

// Tx is a transaction on one namespace, open for the duration of the
// function given to [DB.Update]. Use [Collection.Tx] to write through it.
type Tx struct {
	tx *oplog.Tx
	// failed, once set, aborts the transaction whatever fn returns: a
	// write left the transaction in a state that must not commit.
	failed error
	// undo restores what the transaction's writes changed in the
	// caller's values (a struct Put refreshed), run in reverse order if
	// the transaction does not commit.
	undo    []func()
	undoBuf [1]func() // undo's first, in the Tx's allocation
}

// Namespace returns the transaction's namespace.
func (tx *Tx) Namespace() string { return tx.tx.Namespace() }

// fail makes the transaction abort with err (the first one wins).
func (tx *Tx) fail(err error) {
	if tx.failed == nil {
		tx.failed = err
	}
}

// onAbort registers f to run if the transaction does not commit.
func (tx *Tx) onAbort(f func()) { tx.undo = append(tx.undo, f) }

// abort runs the undo functions, latest first.
func (tx *Tx) abort() {
	for i := len(tx.undo) - 1; i >= 0; i-- {
		tx.undo[i]()
	}
	tx.undo = nil
}

// Update runs fn in a transaction on namespace ns. The writes fn makes
// commit together, in one batch, and replicate as one unit: a remote
// replica applies all of them or none. If fn returns an error nothing is
// written, and the structs fn wrote with Put are as they were before (see
// [CollectionTx.Put]). fn holds the DB's write lock: keep it short, and do
// not call other write methods of the DB from it (use the Tx).
func (db *DB) Update(ctx context.Context, ns string, fn func(tx *Tx) error) error {
	if err := checkNamespace(ns); err != nil {
		return err
	}
	tx := &Tx{}
	tx.undo = tx.undoBuf[:0]
	_, err := db.log.Write(ctx, ns, func(t *oplog.Tx) error {
		tx.tx = t
		if err := fn(tx); err != nil {
			return err
		}
		return tx.failed
	})
	if err != nil {
		if !errors.Is(err, oplog.ErrUnsynced) { // committed: what the writes did stands
			tx.abort()
		}
		return storeErr(fmt.Errorf("converge: update %q: %w", ns, err))
	}
	return nil
}

func checkNamespace(ns string) error {
	if ns == "" || len(ns) > crdt.MaxNameLen {
		return fmt.Errorf("%w: namespace %q must be 1 to %d bytes", ErrInvalid, ns, crdt.MaxNameLen)
	}
	return nil
}

// Namespaces returns the namespaces the replica holds.
func (db *DB) Namespaces(ctx context.Context) ([]string, error) {
	nss, err := db.log.Namespaces(ctx)
	if err != nil {
		return nil, storeErr(fmt.Errorf("converge: namespaces: %w", err))
	}
	return nss, nil
}

// Conflict is a pair of concurrent writes to one field, detected when the
// second of them arrived. The merge already chose the winner; conflicts
// are reported for review or for a resolution policy.
type Conflict = materialize.Conflict

// Conflicts returns the latest conflicts detected in ns, oldest first.
func (db *DB) Conflicts(ctx context.Context, ns string) ([]Conflict, error) {
	cs, err := db.log.Conflicts(ctx, ns)
	if err != nil {
		return nil, storeErr(fmt.Errorf("converge: conflicts %q: %w", ns, err))
	}
	return cs, nil
}

// ConflictCount returns how many conflicts were ever detected in ns.
func (db *DB) ConflictCount(ctx context.Context, ns string) (uint64, error) {
	n, err := db.log.ConflictCount(ctx, ns)
	if err != nil {
		return 0, storeErr(fmt.Errorf("converge: conflicts %q: %w", ns, err))
	}
	return n, nil
}

// SyncWith runs anti-entropy with peer for namespace ns until both hold
// the ops each held when the sync began. Its outcome counts in
// [DB.Synced].
func (db *DB) SyncWith(ctx context.Context, peer transport.Peer, ns string) (transport.Result, error) {
	if err := checkNamespace(ns); err != nil {
		return transport.Result{}, err
	}
	res, err := transport.Sync(ctx, db.SyncStore(), peer, ns, transport.Options{})
	db.syncs.done(ns, err)
	if err != nil {
		return res, storeErr(fmt.Errorf("converge: sync %q: %w", ns, err))
	}
	return res, nil
}
