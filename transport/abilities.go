package transport

import (
	"context"

	"github.com/convergedb/converge/crdt"
)

// This file is the one place that says what a sync store and a peer can
// do. Every ability is a method of [Store] or [Peer] (or of the [Live]
// path a peer returns), never an optional interface found by a type
// assertion: a wrapper that embeds a Store or a Peer forwards every
// ability, and one that does not must state each, so no wrapper can hide
// one silently. A store or peer that lacks an ability says so through the
// method (an error wrapping errors.ErrUnsupported, a nil Live). Prefer a
// hook in the options of a transport (httptransport.ServerOptions.OnApply,
// natstransport.Options.OnRoundTrip) to a wrapper.

// Store is what the sync engine and the transports need of a replica's
// store: [Sync] and [Serve] use the op methods, the snapshot methods
// bootstrap a replica below a compaction horizon, Acknowledged feeds
// causal stability, and OnCommit wakes what serves the store to others
// (the HTTP server's live streams, the NATS transport's live publisher).
// converge.DB.SyncStore is the implementation; test doubles embed it and
// override what they change.
type Store interface {
	// Self returns the replica id of the store's own writes: messages name
	// their sender with it, and live publishers publish only its ops. Zero
	// for a store that writes nothing of its own (a pure relay).
	Self() crdt.ReplicaID

	// Vector returns the version vector of ns.
	Vector(ctx context.Context, ns string) (crdt.VersionVector, error)
	// Missing returns a page of the encoded ops of ns that a replica
	// holding have lacks, at most about lim's bounds and ending at a
	// transaction boundary, and whether more remain. When have is below
	// the store's compaction horizon (the ops it lacks were dropped from
	// the log), the error wraps [ErrSnapshotNeeded].
	Missing(ctx context.Context, ns string, have crdt.VersionVector, lim Limits) (ops [][]byte, more bool, err error)
	// Apply ingests encoded ops of ns received from a peer. Ops it cannot
	// apply (malformed, beyond a gap, beyond the clock bound) are counted
	// in the result, not returned as an error; ops it holds already are
	// Duplicates.
	Apply(ctx context.Context, ns string, ops [][]byte) (Applied, error)

	// Acknowledged records that replica peer holds vv of ns; the engine
	// calls it for every message that names its sender. It is the input of
	// causal stability (and so of compaction). A store that does not track
	// peers returns nil.
	Acknowledged(ctx context.Context, ns string, peer crdt.ReplicaID, vv crdt.VersionVector) error

	// Snapshot returns a page of the record states of ns after the cursor
	// (nil: from the first), in (collection, key) order, at most about
	// lim's bounds (MaxOps counts records) but at least one record when
	// any remain, whether more remain, and the vector of the store when the
	// page was read (the states hold at least its ops). A store that
	// compacts its log must serve snapshots, or replicas below its horizon
	// cannot catch up; one that cannot returns an error wrapping
	// errors.ErrUnsupported.
	Snapshot(ctx context.Context, ns string, after *SnapshotCursor, lim Limits) (vv crdt.VersionVector, recs []SnapshotRecord, more bool, err error)
	// InstallSnapshot merges snapshot states into ns. It is idempotent and
	// may be called in any order; it does not move the vector. A store
	// that cannot returns an error wrapping errors.ErrUnsupported.
	InstallSnapshot(ctx context.Context, ns string, recs []SnapshotRecord) error
	// FinishSnapshot raises the vector of ns to cover vv, once every page
	// of a snapshot standing for vv is installed.
	FinishSnapshot(ctx context.Context, ns string, vv crdt.VersionVector) error

	// OnCommit registers fn to be called with the namespace after every
	// commit that adds ops to the store, written locally or applied from a
	// peer. fn must return at once (it may run with the store's locks
	// held) and must not call the store. The returned func unregisters it.
	OnCommit(fn func(ns string)) (stop func())
}

// Peer is a remote replica, or a bus of them, as [Sync] and the converge
// replicator use it. See the top of this file: every ability is a method.
type Peer interface {
	// RoundTrip carries one anti-entropy round.
	RoundTrip(ctx context.Context, req *Request) (*Response, error)
	// Snapshot carries one snapshot page request: [Sync] bootstraps
	// through it when the peer answers that a snapshot is needed. A
	// transport that cannot carry snapshots returns an error wrapping
	// errors.ErrUnsupported.
	Snapshot(ctx context.Context, req *SnapshotRequest) (*SnapshotResponse, error)
	// PageLimits bounds the pages of a sync with the peer (a NATS server's
	// max payload, say): [Sync] keeps its pages within them. Zero fields
	// mean no bound of the transport's own.
	PageLimits() Limits
	// Health checks that the peer can be reached now. A transport with no
	// check of its own returns an error wrapping errors.ErrUnsupported
	// (the replicator then judges the peer by its last sync).
	Health(ctx context.Context) error
	// Live returns the peer's live path, or nil when it has none and only
	// round trips carry ops.
	Live() Live
}

// Live is a peer's live path: ops pushed as they are written, besides the
// anti-entropy rounds.
type Live interface {
	// Stream calls apply with each batch of encoded ops the peer has and
	// have() lacks, as they come, until ctx ends (nil) or the connection
	// fails or apply fails (an error; the caller reconnects, with backoff).
	Stream(ctx context.Context, ns string, have func() crdt.VersionVector, apply func(ops [][]byte) error) error
	// PublishesCommits reports whether the live path also publishes this
	// replica's own commits, by itself (it was given the replica's store
	// and hears of them through [Store.OnCommit]): a sync after a local
	// commit then only confirms it, and starts with a vector exchange,
	// since the peer most likely has the ops already.
	PublishesCommits() bool
	// OnReconnect registers fn to run after every reconnection of the
	// peer's connection (the replicator syncs every namespace then: what
	// was missed while away). A transport without a long-lived connection
	// never calls fn. The returned func unregisters it.
	OnReconnect(fn func()) (stop func())
}
