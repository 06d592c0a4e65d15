package oplog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/materialize"
	"github.com/oklog/ulid/v2"
)

// Sentinel errors. Errors returned by the Log wrap one of these, or
// a crdt or hlc sentinel, with context.
var (
	// ErrClosed is returned by every method of a closed Log.
	ErrClosed = errors.New("oplog: closed")
	// ErrNotFound is returned for a record that does not exist.
	ErrNotFound = crdt.ErrNotFound
	// ErrCorrupt is returned when stored bytes fail to decode or a stored
	// invariant does not hold. The store must be repaired or resynced
	// from a peer; it is never read past silently.
	ErrCorrupt = errors.New("oplog: store corrupt")
	// ErrTooLarge is returned for a local op whose encoding exceeds
	// Options.MaxOpSize; a remote one is refused (and quarantined) with it.
	ErrTooLarge = errors.New("oplog: op too large")
	// ErrNamespace is returned for an empty or oversized namespace name,
	// or an op ingested under a namespace it does not carry.
	ErrNamespace = errors.New("oplog: bad namespace")
	// ErrNotStore is returned by Open with Options.ExistingOnly for a
	// directory that holds no store.
	ErrNotStore = errors.New("oplog: not a Converge store")
	// ErrUnsynced is returned by a GroupCommit write that committed (its
	// ops are applied and readers see them) but whose shared fsync failed:
	// it may not survive a crash. Writing it again is not a retry of a
	// write that did not happen.
	ErrUnsynced = errors.New("oplog: committed, but not synced to stable storage")
)

// Durability says when a commit reaches stable storage.
type Durability uint8

const (
	// SyncEveryCommit fsyncs the WAL before each commit returns (the
	// default): an acknowledged write survives a crash.
	SyncEveryCommit Durability = iota
	// GroupCommit makes each commit wait for an fsync shared with the
	// commits around it: as durable as SyncEveryCommit, fewer fsyncs
	// under concurrency. Readers may see a commit before it is durable.
	GroupCommit
	// NoSync does not wait for the disk: a commit returns from Pebble's
	// in-process WAL buffer (32 KiB), so a process kill may lose the
	// latest commits in it and a machine crash what the OS had not
	// written back (never part of a commit). Options.SyncInterval bounds
	// the machine crash's loss by time.
	NoSync
)

func (d Durability) String() string {
	switch d {
	case SyncEveryCommit:
		return "sync"
	case GroupCommit:
		return "group"
	case NoSync:
		return "nosync"
	}
	return fmt.Sprintf("durability(%d)", uint8(d))
}

// Options configure a Log. The zero value is valid.
type Options struct {
	// Durability of commits. Zero means SyncEveryCommit.
	Durability Durability
	// MaxClockDrift bounds how far ahead of local physical time a remote
	// op's HLC may be. Zero means hlc.DefaultMaxDrift.
	MaxClockDrift time.Duration
	// PeerLease is how long a peer that is not heard of (no sync naming
	// it) stays known: past it, the peer is forgotten, as ForgetPeer
	// does, and no longer holds the stable vector back. Zero means peers
	// never expire. The lease of the peers loaded from disk runs from the
	// store's open.
	PeerLease time.Duration
	// Clock is the physical time source, Unix milliseconds. Nil means
	// the system clock.
	Clock func() int64
	// ConflictLogSize is how many conflicts are kept per namespace. Zero
	// means 1000.
	ConflictLogSize int
	// QuarantineLimit is how many refused ops are kept per namespace
	// (see Quarantine); beyond it, refused ops are only reported. Zero
	// means 1000.
	QuarantineLimit int
	// MaxOpSize bounds one op's encoding, local or remote, in bytes. Zero
	// (or more than crdt.MaxOpSize) means crdt.MaxOpSize. A fleet should
	// agree on it: an op refused here waits, with its origin's later ops.
	MaxOpSize int
	// CacheSize is the Pebble block cache size in bytes. Zero means 64 MiB.
	CacheSize int64
	// FS is the file system Pebble uses. Nil means the OS file system;
	// tests pass vfs.NewCrashableMem().
	FS vfs.FS
	// Logger receives recovery and storage events. Nil means slog.Default().
	Logger *slog.Logger
	// FeedRetention is how many of the latest changes [Log.Compact] keeps
	// in each namespace's change feed. Zero means 10000; negative keeps
	// every change.
	FeedRetention int
	// OnCommit, if set, is called after each successful commit, in commit
	// order, while the write lock is held: it must return quickly and
	// must not call the Log's methods. With GroupCommit it runs before
	// the commit's fsync.
	OnCommit func(*Commit)
	// OnChange, if set, is called with a namespace after every change to
	// what a replication status reads of it: a commit (after OnCommit),
	// quarantine entries added or removed, what a peer holds recorded or
	// forgotten, a snapshot's vector installed. It runs while the write
	// lock is held: it must return quickly and must not call the Log's
	// methods.
	OnChange func(ns string)
	// SyncInterval, with NoSync, fsyncs the WAL this often while commits
	// happen, so a machine crash loses about the commits of the last
	// interval and one fsync. It does not shrink what a process kill
	// loses: commits made during an fsync wait in process memory (measured
	// up to 991 small writes with 5 ms, against 204 without). Zero means
	// never: a process kill may lose the commits in Pebble's 32 KiB
	// in-process WAL buffer, a machine crash what the OS had not written
	// back. Ignored in the other modes.
	SyncInterval time.Duration
	// StallTimeout bounds how long a commit waits for the disk: one that
	// has not completed by then (Pebble stalls writes while its flushes
	// fail) fails with ErrDiskFault, and so does one whose context ends
	// while Pebble stalls writes. Zero means 30 seconds.
	StallTimeout time.Duration
	// AcceptDataLoss makes Open accept a cleanly closed store that no
	// longer holds all it held when it was closed (a damaged WAL or
	// MANIFEST): it opens, and if the lost ops include the replica's own
	// it continues under a new replica id ([Log.IdentityChange]). Without
	// it, such a store is refused with ErrCorrupt.
	AcceptDataLoss bool
	// ExistingOnly makes Open refuse to create a store: a missing
	// directory is an error wrapping fs.ErrNotExist, and one that holds no
	// store (no Pebble files, or no replica id) an error wrapping
	// ErrNotStore. It creates nothing: a directory without Pebble files is
	// refused before Pebble opens it (a Pebble store of another program
	// is refused once opened). Tools that inspect a store set it.
	ExistingOnly bool
}

// Commit is what one commit changed.
type Commit struct {
	Namespace string
	Local     bool                 // written by this replica through Write
	Ops       []crdt.Op            // the ops applied, in the order applied
	Changes   []materialize.Change // visible changes, one per op that made any
	// States[i] is the record's state after Changes[i] (it may be a
	// deleted record's). The states are never modified after the commit:
	// a reader may keep them. They are not stored in the change feed.
	States    []*crdt.Record
	Conflicts []materialize.Conflict
}

// Log is the store. See the package documentation.
type Log struct {
	db      *pebble.DB
	cache   interface{ Unref() }
	opts    Options
	logger  *slog.Logger
	replica crdt.ReplicaID
	syncer  *groupSyncer
	ticker  *syncTicker   // NoSync with SyncInterval
	commits atomic.Uint64 // commits so far, for the ticker

	// readers counts the reads in progress; Close waits for them, and
	// reads that start once Close has begun get ErrClosed.
	readers struct {
		sync.Mutex
		cond    sync.Cond
		n       int
		closing bool
	}

	mu struct {
		sync.Mutex
		closed     bool
		clock      *hlc.Clock
		vectors    map[string]crdt.VersionVector          // loaded lazily per namespace
		conflicts  map[string]uint64                      // next conflict number, per namespace
		feeds      map[string]uint64                      // last change feed number, per namespace
		known      map[string]bool                        // namespaces registered
		indexes    map[string][]materialize.Index         // registered indexes, per collection
		quarantine map[string]map[crdt.Dot]struct{}       // quarantined dots, loaded lazily per namespace
		peers      map[string]*peerSet                    // what peers hold, loaded lazily
		upstreams  map[string]map[crdt.ReplicaID]struct{} // peers this replica's syncs asked, loaded lazily
		horizons   map[string]crdt.VersionVector          // compaction horizons, loaded lazily
	}
	// faults tracks the disk's health (see DiskFault).
	faults *faults
	// dots is what the replica has handed out (DotsFile); guarded by mu.
	dots dots
	// compactMu serializes what rewrites base states and the log below
	// the vector: compaction and snapshot installation.
	compactMu sync.Mutex
}

// fillDefaults replaces the zero values of o with their defaults.
func (o *Options) fillDefaults() {
	if o.Clock == nil {
		o.Clock = func() int64 { return time.Now().UnixMilli() }
	}
	if o.ConflictLogSize <= 0 {
		o.ConflictLogSize = 1000
	}
	if o.QuarantineLimit <= 0 {
		o.QuarantineLimit = 1000
	}
	if o.MaxOpSize <= 0 || o.MaxOpSize > crdt.MaxOpSize {
		o.MaxOpSize = crdt.MaxOpSize
	}
	if o.FeedRetention == 0 {
		o.FeedRetention = 10000
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = defaultStallTimeout
	}
}

// Open opens (creating if needed) the store in dir. On first open it
// assigns the replica a new id; on every open it restores the HLC
// high-water mark, so timestamps never go backwards across restarts.
func Open(dir string, opts Options) (*Log, error) {
	opts.fillDefaults()
	if opts.Durability > NoSync {
		return nil, fmt.Errorf("oplog: open %s: unknown durability %d", dir, opts.Durability)
	}
	logger := opts.Logger.With("component", "oplog", "dir", dir)
	cache := pebble.NewCache(opts.CacheSize)
	popts := &pebble.Options{
		Cache:              cache,
		FS:                 opts.FS,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{logger},
		EventListener: &pebble.EventListener{
			// Pebble's default for a damaged or missing file is
			// Logger.Fatalf, which exits the process at the first read
			// that touches it. Log it instead: the read returns the
			// error (ErrCorrupt), and the operator can resync.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				logger.Error("store file corrupt: resync from a peer (docs/OPERATIONS.md)", "path", info.Path, "err", info.Details)
			},
		},
	}
	flt := &faults{logger: logger}
	flt.listen(popts.EventListener)
	// Bloom filters on every level: a local write reads its record's
	// state first, and for a new record that read misses; without filters
	// a miss reads an index block of every level.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	if opts.ExistingOnly {
		if err := checkExisting(dir, opts.FS); err != nil {
			cache.Unref()
			return nil, fmt.Errorf("oplog: open %s: %w", dir, err)
		}
		popts.ErrorIfNotExists = true
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("oplog: open %s: %w", dir, pebbleErr(err))
	}
	l := &Log{db: db, cache: cache, opts: opts, logger: logger, faults: flt}
	l.readers.cond.L = &l.readers.Mutex
	l.mu.clock = hlc.NewClock(opts.Clock, opts.MaxClockDrift)
	l.mu.vectors = make(map[string]crdt.VersionVector)
	l.mu.conflicts = make(map[string]uint64)
	l.mu.known = make(map[string]bool)
	l.mu.feeds = make(map[string]uint64)
	l.mu.quarantine = make(map[string]map[crdt.Dot]struct{})
	l.mu.peers = make(map[string]*peerSet)
	l.mu.upstreams = make(map[string]map[crdt.ReplicaID]struct{})
	l.mu.horizons = make(map[string]crdt.VersionVector)
	err = l.loadMeta()
	var seqs *storeSeqs
	if err == nil {
		seqs, err = l.checkIntegrity()
	}
	if err == nil {
		err = l.openDots(dir, seqs.vectors)
	}
	if err == nil {
		err = l.loadIndexes()
	}
	if err != nil {
		_ = db.Close() // the load error is the one to report
		cache.Unref()
		return nil, fmt.Errorf("oplog: open %s: %w", dir, err)
	}
	if opts.Durability == GroupCommit {
		l.syncer = startGroupSyncer(db)
	}
	if opts.Durability == NoSync && opts.SyncInterval > 0 {
		l.ticker = startSyncTicker(l, opts.SyncInterval, &l.commits)
	}
	logger.Debug("opened", "replica", l.replica, "hlc", l.mu.clock.Last())
	return l, nil
}

// checkExisting reports whether dir holds a Pebble store (a MANIFEST
// file), without writing anything: an error wrapping fs.ErrNotExist or
// ErrNotStore if not.
func checkExisting(dir string, fs vfs.FS) error {
	if fs == nil {
		fs = vfs.Default
	}
	st, err := fs.Stat(dir)
	if err != nil {
		return err // wraps fs.ErrNotExist when missing
	}
	if !st.IsDir() {
		return fmt.Errorf("%w: not a directory", ErrNotStore)
	}
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, "MANIFEST-") {
			return nil
		}
	}
	return fmt.Errorf("%w: the directory holds no Pebble store", ErrNotStore)
}

func (l *Log) loadMeta() error {
	v, closer, err := l.db.Get(metaReplica)
	switch {
	case errors.Is(err, pebble.ErrNotFound) && l.opts.ExistingOnly:
		return fmt.Errorf("%w: a Pebble store without a replica id", ErrNotStore)
	case errors.Is(err, pebble.ErrNotFound):
		l.replica = crdt.ReplicaID(ulid.Make())
		if err := l.db.Set(metaReplica, l.replica[:], pebble.Sync); err != nil {
			return fmt.Errorf("write replica id: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read replica id: %w", pebbleErr(err))
	default:
		if len(v) != len(l.replica) {
			closer.Close()
			return fmt.Errorf("%w: replica id of %d bytes", ErrCorrupt, len(v))
		}
		copy(l.replica[:], v)
		closer.Close()
	}
	v, closer, err = l.db.Get(metaHLC)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read hlc high-water: %w", pebbleErr(err))
	default:
		t, derr := hlc.Decode(v)
		closer.Close()
		if derr != nil {
			return fmt.Errorf("%w: hlc high-water: %w", ErrCorrupt, derr)
		}
		l.mu.clock.Observe(t)
	}
	return nil
}

// changedLocked calls Options.OnChange for ns.
func (l *Log) changedLocked(ns string) {
	if l.opts.OnChange != nil {
		l.opts.OnChange(ns)
	}
}

// ReplicaID returns the replica's id, assigned on first open.
func (l *Log) ReplicaID() crdt.ReplicaID { return l.replica }

// Close closes the store. Commits that returned are durable as their
// durability mode promised. Close waits for the writes and reads in
// progress, open iterations included (so do not call it from inside one);
// later calls get ErrClosed. Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil
	}
	l.mu.closed = true
	l.mu.Unlock()
	faulted := l.faultErr() != nil
	if l.syncer != nil {
		l.syncer.stop(faulted)
	}
	if l.ticker != nil {
		l.ticker.stop(faulted)
	}
	l.readers.Lock()
	l.readers.closing = true
	for l.readers.n > 0 {
		l.readers.cond.Wait()
	}
	l.readers.Unlock()
	// The vectors, for the clean DotsFile; without them the file stays
	// as it was (not clean), which costs at most a new id at next open.
	vectors, verr := l.readAllSeqs(tagVector)
	if faulted {
		return l.closeFaulted()
	}
	err := l.db.Close()
	l.cache.Unref()
	if err != nil {
		return fmt.Errorf("oplog: close: %w", err)
	}
	if verr != nil {
		return fmt.Errorf("oplog: close: read vectors: %w", verr)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.closeDots(vectors); err != nil {
		return fmt.Errorf("oplog: close: %w", err)
	}
	return nil
}

// Now returns a fresh timestamp from the replica's clock.
func (l *Log) Now() hlc.Timestamp {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.clock.Now()
}

// vectorLocked returns the cached version vector of ns, loading it on
// first use, or ErrClosed. Callers must not modify it.
func (l *Log) vectorLocked(ns string) (crdt.VersionVector, error) {
	if l.mu.closed {
		return nil, ErrClosed
	}
	if vv, ok := l.mu.vectors[ns]; ok {
		return vv, nil
	}
	vv, err := l.loadSeqs(tagVector, ns)
	if err != nil {
		return nil, fmt.Errorf("oplog: load vector %q: %w", ns, err)
	}
	l.mu.vectors[ns] = vv
	return vv, nil
}

// loadSeqs reads the entries of a keyspace of origin → seq (the vector's,
// the horizon's) of ns.
func (l *Log) loadSeqs(tag byte, ns string) (crdt.VersionVector, error) {
	vv := crdt.VersionVector{}
	prefix := nsKey(tag, ns)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, pebbleErr(err)
	}
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(prefix)+16 || len(v) != 8 {
			it.Close()
			return nil, fmt.Errorf("%w: entry %q", ErrCorrupt, k)
		}
		vv[crdt.ReplicaID(k[len(prefix):])] = binary.BigEndian.Uint64(v)
	}
	if err := it.Close(); err != nil {
		return nil, pebbleErr(err)
	}
	return vv, nil
}

// Vector returns a copy of the version vector of ns: the ops the replica
// holds.
func (l *Log) Vector(ctx context.Context, ns string) (crdt.VersionVector, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("oplog: vector: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	vv, err := l.vectorLocked(ns)
	if err != nil {
		return nil, err
	}
	return vv.Clone(), nil
}

// Namespaces returns the namespaces the store holds, sorted.
func (l *Log) Namespaces(ctx context.Context) ([]string, error) {
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.release()
	return l.namespacesLocked(ctx)
}

// namespacesLocked lists the namespaces; the caller holds mu or a read.
func (l *Log) namespacesLocked(ctx context.Context) ([]string, error) {
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{tagNamespace}, UpperBound: []byte{tagNamespace + 1}})
	if err != nil {
		return nil, fmt.Errorf("oplog: namespaces: %w", pebbleErr(err))
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		ns, rest, err := readString(it.Key()[1:])
		if err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: namespace key %q", ErrCorrupt, it.Key())
		}
		out = append(out, ns)
	}
	return out, pebbleErr(it.Error())
}

// acquire registers a read in progress; release ends it. A read that
// acquired may use l.db until it releases.
func (l *Log) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("oplog: %w", err)
	}
	l.readers.Lock()
	defer l.readers.Unlock()
	if l.readers.closing {
		return ErrClosed
	}
	l.readers.n++
	return nil
}

func (l *Log) release() {
	l.readers.Lock()
	l.readers.n--
	if l.readers.n == 0 && l.readers.closing {
		l.readers.cond.Broadcast()
	}
	l.readers.Unlock()
}

func checkNamespace(ns string) error {
	if ns == "" || len(ns) > crdt.MaxNameLen {
		return fmt.Errorf("%w: %q must be 1 to %d bytes", ErrNamespace, ns, crdt.MaxNameLen)
	}
	return nil
}

// Get returns the state of a record, or a zero Record (CL 0) if no op has
// touched it. Use Record.Exists to tell whether it exists.
func (l *Log) Get(ctx context.Context, ns, coll, key string) (*crdt.Record, error) {
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.release()
	return l.readState(stateKey(ns, coll, key))
}

func (l *Log) readState(k []byte) (*crdt.Record, error) {
	v, closer, err := l.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return &crdt.Record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("oplog: read state %q: %w", k, pebbleErr(err))
	}
	defer closer.Close()
	r, err := decodeStored(v)
	if err != nil {
		return nil, fmt.Errorf("%w: state %q: %w", ErrCorrupt, k, err)
	}
	return r, nil
}

// pebbleErr marks an error from Pebble that reports damaged files (a
// block checksum mismatch, a malformed MANIFEST, a WAL damaged before its
// tail) as ErrCorrupt, naming the file when Pebble does; Pebble marks
// those with its own errors package, which the standard errors.Is does not
// see. Other errors are returned as they are.
func pebbleErr(err error) error {
	if err == nil || !pebble.IsCorruptionError(err) || errors.Is(err, ErrCorrupt) {
		return err
	}
	if info := pebble.ExtractDataCorruptionInfo(err); info != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, info.Path, err)
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}

// pebbleLogger sends Pebble's log lines to slog: its chatter at Debug.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "source", "pebble", "fatal", true)
	pebble.DefaultLogger.Fatalf(format, args...)
}
