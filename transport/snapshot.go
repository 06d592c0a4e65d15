package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/convergedb/converge/crdt"
)

// ErrSnapshotNeeded says that ops a replica lacks are below a store's
// compaction horizon: they were folded into base states and dropped from
// the log, so they cannot be sent as ops. The replica must bootstrap from a
// snapshot of the namespace's states, then catch up with op sync.
//
// [Store].Missing returns an error wrapping it when have is below the
// horizon; [Serve] turns that into a [Response] with SnapshotNeeded set,
// and [Sync] bootstraps ([Peer].Snapshot, [Store].InstallSnapshot).
// Errors of Sync wrap it when a bootstrap is impossible (the store or the
// peer cannot carry a snapshot), or when it is the peer that is behind
// this store's horizon (the peer must bootstrap, by syncing from its
// side).
var ErrSnapshotNeeded = errors.New("transport: snapshot needed")

// SnapshotCursor is a position in a snapshot: the page starts after the
// record (Collection, Key). Records are ordered by collection, then key
// (byte-wise).
type SnapshotCursor struct{ Collection, Key string }

// SnapshotRecord is one record of a snapshot: its key and its encoded
// state (crdt.Record.AppendBinary).
type SnapshotRecord struct {
	Collection, Key string
	State           []byte
}

// SnapshotRequest asks for one page of a namespace's snapshot.
type SnapshotRequest struct {
	Namespace string
	// After is where the page starts: after this record. Nil means from
	// the first record.
	After *SnapshotCursor
	// Limits bound the page: MaxOps counts records, MaxBytes their
	// states' bytes.
	Limits Limits
	// From is the requester's replica id, when it has one.
	From crdt.ReplicaID
}

// SnapshotResponse is one page of a namespace's snapshot.
type SnapshotResponse struct {
	// Vector is the responder's vector when it read the page: the page's
	// states hold at least these ops. A snapshot made of several pages
	// stands for the pointwise minimum of its pages' vectors.
	Vector crdt.VersionVector
	// Records are the page's states, in (collection, key) order, after the
	// request's cursor.
	Records []SnapshotRecord
	// More says that records follow: ask again after the last one.
	More bool
	// From is the responder's replica id, when it has one.
	From crdt.ReplicaID
}

// ServeSnapshot answers one snapshot page request on the responder's
// side, with pages capped at maxLim. It fails with an error wrapping
// errors.ErrUnsupported if the store cannot make snapshots, and
// [ErrBadMessage] if req is malformed.
func ServeSnapshot(ctx context.Context, store Store, req *SnapshotRequest, maxLim Limits) (*SnapshotResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	lim := clampLimits(req.Limits, maxLim.withDefaults())
	vv, recs, more, err := store.Snapshot(ctx, req.Namespace, req.After, lim)
	if err != nil {
		return nil, fmt.Errorf("transport: serve snapshot %q: %w", req.Namespace, err)
	}
	if err := checkPage(req.After, recs, more); err != nil {
		return nil, fmt.Errorf("transport: serve snapshot %q: store's page: %w", req.Namespace, err)
	}
	return &SnapshotResponse{Vector: vv, Records: recs, More: more, From: store.Self()}, nil
}

// checkPage checks that a page's records follow after, in order, and that
// a page with more to come moves the cursor.
func checkPage(after *SnapshotCursor, recs []SnapshotRecord, more bool) error {
	if more && len(recs) == 0 {
		return errors.New("an empty page with more to come")
	}
	prev := after
	for i := range recs {
		r := &recs[i]
		if prev != nil && compareKeys(prev.Collection, prev.Key, r.Collection, r.Key) >= 0 {
			return fmt.Errorf("record %d (%q, %q) is not after (%q, %q)", i, r.Collection, r.Key, prev.Collection, prev.Key)
		}
		prev = &SnapshotCursor{Collection: r.Collection, Key: r.Key}
	}
	return nil
}

// maxBootstraps bounds the snapshot bootstraps of one [Sync]: a responder
// that compacts faster than a snapshot installs would otherwise loop.
const maxBootstraps = 3

// minVector returns the pointwise minimum of acc and v, origins absent
// from either counting as 0; a nil acc is the first page (v itself).
func minVector(acc, v crdt.VersionVector) crdt.VersionVector {
	if acc == nil {
		return v.Clone()
	}
	return acc.Meet(v)
}
