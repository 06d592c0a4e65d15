// Package transport is the sync protocol, independent of any network: the
// anti-entropy engine on version vectors, its wire messages, and an
// in-memory transport. The NATS and HTTP transports carry the same messages.
//
// # Protocol
//
// A sync of one namespace is a run of round trips, each a [Request] and a
// [Response]. The requester sends its version vector and the ops it
// believes the responder lacks (none on the first round unless it kept the
// responder's vector from an earlier sync). The responder applies those
// ops, and answers with its own vector and a page of the ops the requester
// lacks. The requester applies them, and the next round pushes what the
// responder's vector shows it lacks. Rounds go on until neither side has
// anything the other lacks, or no round makes progress.
//
// Any replica can serve any origin's ops, so hubs and relays need nothing
// special. Ops travel in their canonical encoding ([crdt.AppendOp]); a page
// never ends inside a transaction.
//
// A replica whose vector is below a responder's compaction horizon (the
// ops it lacks were folded into base states and dropped) is answered
// "snapshot needed" and bootstraps from a snapshot of the responder's
// record states ([Store].Snapshot, [Peer].Snapshot, [ServeSnapshot]),
// then syncs ops as usual.
//
// # Engine
//
// The requester's decisions are a [Session]: a value that does no I/O,
// as etcd's raft RawNode. [Session.Next] says what to do (read the
// store's vector, send a request, install a snapshot page, ...),
// [Session.Step] takes what came of it. [Sync] is its driver: it carries
// out each [Action] against a [Store] and a [Peer]. The transcripts under
// testdata/session (TestSessionTranscripts; -update rewrites them) walk
// through the protocol step by step: a plain sync, a stale vector, a
// snapshot bootstrap, a peer behind our horizon, refusals, page limits
// and duplicate delivery.
//
// The engine talks to the store through [Store] and to the remote side
// through [Peer], which it owns (abilities.go); any store works with any
// transport.
package transport

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/convergedb/converge/crdt"
)

// Applied reports what a Store did with received ops.
type Applied struct {
	Applied, Duplicates, Refused int
	Conflicts                    int
	// Reason describes the first refusal, if any.
	Reason string
	// Err is the first refusal's error, for errors.Is (hlc.ErrClockDrift,
	// crdt.ErrInvalidOp, ...). It stays local: only Reason crosses the wire.
	Err error
}

// Limits bound one page of ops. Zero fields mean the defaults.
type Limits struct {
	MaxOps   int // default 1000
	MaxBytes int // default 1 MiB
}

// withDefaults returns lim with zero fields set to the defaults.
func (lim Limits) withDefaults() Limits {
	if lim.MaxOps <= 0 {
		lim.MaxOps = 1000
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = 1 << 20
	}
	return lim
}

// acknowledged records that peer holds vv, if the message named its
// sender.
func acknowledged(ctx context.Context, store Store, ns string, peer crdt.ReplicaID, vv crdt.VersionVector) error {
	if peer.IsZero() || vv == nil {
		return nil
	}
	if err := store.Acknowledged(ctx, ns, peer, vv); err != nil {
		return fmt.Errorf("transport: record what %v holds: %w", peer, err)
	}
	return nil
}

// ErrNoProgress is returned by [Sync] when the replicas still differ but a
// round moved nothing: the remaining ops are being refused (see the
// result's Refused and Reason).
var ErrNoProgress = errors.New("transport: sync made no progress")

// Result reports one sync of one namespace.
type Result struct {
	Namespace string
	Rounds    int
	Sent      int // ops the peer applied
	Received  int // ops we applied
	Refused   int // ops refused, by either side
	Conflicts int // conflicts our store detected in what it received
	Reason    string
	// PeerVector is the peer's vector as of its last answer in this sync:
	// what it acknowledged. Nil when it answered none: then the sync
	// learnt nothing of it, and [Options].PeerVector is no fresher than it
	// was (a caller that keeps it should not push from it blindly again:
	// the round that failed may have failed because of it).
	PeerVector crdt.VersionVector
	// Peer is the responder's replica id, from the last response that
	// named its sender (zero if none did): whose vector PeerVector is.
	Peer crdt.ReplicaID
	// Snapshots counts the bootstraps from a snapshot of the peer's (the
	// peer answered that our vector is below its compaction horizon).
	Snapshots int
	// SnapshotRecords and SnapshotBytes count the record states installed
	// by those bootstraps, and their encoded bytes.
	SnapshotRecords, SnapshotBytes int
	Duration                       time.Duration
}

// Options tune [Sync].
type Options struct {
	Limits Limits
	// MaxRounds bounds the rounds of one sync, and the pages of one
	// snapshot. Zero means 10000.
	MaxRounds int
	// PeerVector is the peer's vector from an earlier sync, if known: the
	// first round then pushes what it lacks right away. Leave it nil when
	// it may be stale (ops reached this replica from the peer by another
	// path since, or the last sync failed): a stale vector pushes ops the
	// peer holds.
	PeerVector crdt.VersionVector
	// Now measures the duration. Nil means time.Now.
	Now func() time.Time
	// DotOf reads the dot of an encoded op, for pipelining a catch-up
	// (see [Action].Prefetch): the vector a page reaches comes from its
	// dots. Nil means [crdt.OpDot], the encoding of every store of this
	// module; a store with another encoding sets its own (or one that
	// fails, which turns pipelining off).
	DotOf func(op []byte) (crdt.Dot, error)
}

// Sync runs anti-entropy rounds for namespace ns between store and peer
// until both hold the same ops, and reports what moved.
//
// When the peer answers that our vector is below its compaction horizon
// ([Response].SnapshotNeeded), Sync bootstraps from a snapshot (page by
// page through [Peer].Snapshot; the pages are installed, then the vector
// is raised to the pointwise minimum of the pages' vectors), then goes on
// with op rounds. If the peer or the store cannot carry a snapshot
// (errors.ErrUnsupported), or after three bootstraps in one sync, it fails
// with an error wrapping [ErrSnapshotNeeded]. When it is the peer that is
// below our horizon, Sync pushes nothing, pulls what the peer has, and
// fails with an error wrapping ErrSnapshotNeeded: the peer must
// bootstrap, by syncing from its side.
//
// Sync is the driver of a [Session]: the session decides, Sync carries
// out each of its actions against store and peer ([Action.Do]) and
// measures the duration. The contexts of its round trips and snapshot
// fetches carry labels under ctx's ("round 2", "snapshot page 1":
// [WithLabel]) and ctx's request id, for the transports' logs.
func Sync(ctx context.Context, store Store, peer Peer, ns string, opts Options) (Result, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	s := NewSession(ns, store.Self(), peer.PageLimits(), opts)
	var rounds, pages int
	for {
		a := s.Next()
		actx := ctx
		switch a.Kind {
		case SessionDone:
			a.Result.Duration = now().Sub(start)
			return a.Result, a.Err
		case SendRequest:
			rounds++
			actx = WithLabel(ctx, "round "+strconv.Itoa(rounds))
		case FetchSnapshotPage:
			pages++
			actx = WithLabel(ctx, "snapshot page "+strconv.Itoa(pages))
		}
		s.Step(a.Do(actx, store, peer))
	}
}

// Serve answers one round trip on the responder's side: it applies the ops
// pushed in req, then returns its vector and a page of what the requester
// lacks, or, when the requester's vector is below the store's compaction
// horizon (Missing fails with [ErrSnapshotNeeded]), its vector and
// SnapshotNeeded.
func Serve(ctx context.Context, store Store, req *Request, maxLim Limits) (*Response, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	resp := &Response{From: store.Self()}
	if err := acknowledged(ctx, store, req.Namespace, req.From, req.Vector); err != nil {
		return nil, fmt.Errorf("transport: serve %q: %w", req.Namespace, err)
	}
	if len(req.Ops) > 0 {
		a, err := store.Apply(ctx, req.Namespace, req.Ops)
		if err != nil {
			return nil, fmt.Errorf("transport: serve %q: apply: %w", req.Namespace, err)
		}
		resp.Applied = a
	}
	lim := clampLimits(req.Limits, maxLim.withDefaults())
	var err error
	resp.Ops, resp.More, err = store.Missing(ctx, req.Namespace, req.Vector, lim)
	switch {
	case errors.Is(err, ErrSnapshotNeeded):
		// The requester bootstraps from a snapshot, then asks again.
		resp.Ops, resp.More, resp.SnapshotNeeded = nil, false, true
	case err != nil:
		return nil, fmt.Errorf("transport: serve %q: %w", req.Namespace, err)
	}
	// The vector is read after the page, so it covers every op sent.
	if resp.Vector, err = store.Vector(ctx, req.Namespace); err != nil {
		return nil, fmt.Errorf("transport: serve %q: %w", req.Namespace, err)
	}
	return resp, nil
}

// withinPeer returns lim within the peer's page limits pl, whose zero
// fields bound nothing.
func withinPeer(lim, pl Limits) Limits {
	if pl.MaxOps > 0 {
		lim.MaxOps = min(lim.MaxOps, pl.MaxOps)
	}
	if pl.MaxBytes > 0 {
		lim.MaxBytes = min(lim.MaxBytes, pl.MaxBytes)
	}
	return lim
}

// clampLimits returns req's limits, at most max's.
func clampLimits(req, max Limits) Limits {
	req = req.withDefaults()
	req.MaxOps = min(req.MaxOps, max.MaxOps)
	req.MaxBytes = min(req.MaxBytes, max.MaxBytes)
	return req
}
