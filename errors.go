package converge

import (
	"errors"
	"fmt"
	"strings"

	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/oplog"
)

// Sentinel errors, for errors.Is. Every error the package returns reads
// "converge: ..."; an error that comes from the store below also matches
// the store's sentinel (oplog.ErrClosed as well as ErrClosed).
var (
	// ErrNotFound: the record does not exist (never created, or deleted).
	ErrNotFound = errors.New("converge: not found")
	// ErrClosed: the DB is closed.
	ErrClosed = errors.New("converge: closed")
	// ErrSchema: a struct type cannot be a collection, a stored record does
	// not fit the struct, or a field update does not fit the field's kind.
	ErrSchema = errors.New("converge: schema mismatch")
	// ErrInvalid: an argument is malformed (empty namespace, bad id).
	ErrInvalid = errors.New("converge: invalid argument")
	// ErrCorrupt: stored bytes failed to decode; resync from a peer.
	ErrCorrupt = errors.New("converge: store corrupt")
	// ErrClockDrift: a remote op's HLC ran beyond the drift bound; it was
	// not applied, and is applied once it falls within the bound.
	ErrClockDrift = errors.New("converge: remote clock beyond drift bound")
	// ErrTooLarge: a write's op exceeds Options.MaxOpSize.
	ErrTooLarge = errors.New("converge: op too large")
	// ErrUnsynced: with GroupCommit, a write committed (readers see it,
	// and it replicates) but the fsync it waited for failed, so it may not
	// survive a crash. It is not a write that failed: do not redo it.
	ErrUnsynced = errors.New("converge: committed, but not synced to stable storage")
	// ErrCompacted: a peer asked for ops this replica compacted away; it
	// must bootstrap from a snapshot (the sync engine does so by itself).
	ErrCompacted = errors.New("converge: ops compacted away: snapshot needed")
	// ErrFeedTrimmed is yielded by [DB.Feed] when the changes asked for
	// were dropped by compaction (CompactionOptions.FeedRetention): start
	// again from the current state.
	ErrFeedTrimmed = errors.New("converge: change feed trimmed")
	// ErrLagged is yielded by [DB.Changes] when the subscriber fell more
	// than Options.ChangeBuffer changes behind and the oldest were dropped.
	// The subscription goes on with the newer changes; re-read what you
	// cache.
	ErrLagged = errors.New("converge: change subscriber lagged, changes dropped")
	// ErrQuery is wrapped by the errors of malformed queries: an unknown
	// field, a value that cannot be compared with the field, a malformed
	// cursor.
	ErrQuery = errors.New("converge: bad query")
	// ErrField is wrapped by the errors of a field name a collection does
	// not have, in a query, an update, an index or a relation (see
	// [FieldError]).
	ErrField = errors.New("converge: unknown field")
	// ErrPaused is returned by [Replicator.SyncNow] while the replicator
	// is paused.
	ErrPaused = errors.New("converge: replication paused")
	// ErrDiskFault: a write could not complete because the disk failed or
	// stalled; the DB refuses writes until it is reopened (reads work).
	// The write may or may not have been applied.
	ErrDiskFault = errors.New("converge: disk fault")
	// ErrUnknownPeer: [Admin.ForgetPeer] was given a replica this one does
	// not know.
	ErrUnknownPeer = errors.New("converge: unknown peer")
	// ErrNotQuarantined: [Admin.DiscardQuarantined] was given an op that is
	// not in the quarantine.
	ErrNotQuarantined = errors.New("converge: op not in quarantine")
	// ErrStale: a fresh read ([Collection.Fresh]) could not sync with the
	// peer; it returns the local data with an error wrapping ErrStale and
	// the sync's error.
	ErrStale = errors.New("converge: not fresh: the sync with the peer failed")
	// ErrPending: [DB.Reset] of a namespace that holds this replica's own
	// ops no peer has acknowledged (ResetOptions.Force discards them).
	ErrPending = errors.New("converge: ops pending: not acknowledged by a peer")
	// ErrResyncing: a local write to a namespace that was reset, before
	// this replica's own ops up to the seq it had reached have come back
	// from a peer (writing would reuse their dots). Sync the namespace.
	ErrResyncing = errors.New("converge: namespace reset: waiting for this replica's own ops to come back from a peer")
)

// storeSentinels pairs each sentinel of the layers below with the root
// sentinel it is translated to.
var storeSentinels = []struct{ below, root error }{
	{oplog.ErrNotFound, ErrNotFound},
	{oplog.ErrClosed, ErrClosed},
	{oplog.ErrCorrupt, ErrCorrupt},
	{hlc.ErrClockDrift, ErrClockDrift},
	{oplog.ErrTooLarge, ErrTooLarge},
	{oplog.ErrUnsynced, ErrUnsynced},
	{oplog.ErrCompacted, ErrCompacted},
	{oplog.ErrFeedTrimmed, ErrFeedTrimmed},
	{oplog.ErrUnknownPeer, ErrUnknownPeer},
	{oplog.ErrNotQuarantined, ErrNotQuarantined},
	{oplog.ErrNamespace, ErrInvalid},
	{oplog.ErrDiskFault, ErrDiskFault},
}

// rootError is an error in the root's words: an error of the store (or
// clock) below, translated, matches the root sentinels as well as its own
// chain; each reads "converge: ..." once.
type rootError struct {
	err   error
	roots []error // the root sentinels it matches
	msg   string
}

func (e *rootError) Error() string   { return e.msg }
func (e *rootError) Unwrap() []error { return append([]error{e.err}, e.roots...) }

// storeErr translates err, an error that may wrap sentinels of the layers
// below (oplog.ErrClosed), so that it also matches the root ones
// (ErrClosed) and reads "converge: ..." in the root's words: the store's
// sentinels named as the root's, without the store's "oplog: " prefixes,
// and with one "converge: " in front. Nil and errors with nothing to
// translate are returned as they are.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	var inner *rootError
	var roots []error
	if errors.As(err, &inner) {
		if inner == err {
			return err
		}
		// Translated deeper in; only the words of the context around it
		// need the same treatment.
	} else {
		for _, s := range storeSentinels {
			if errors.Is(err, s.below) {
				roots = append(roots, s.root)
			}
		}
		if roots == nil {
			return err
		}
	}
	return &rootError{err: err, roots: roots, msg: storeWords(err)}
}

// errorf is fmt.Errorf for an error that wraps a root sentinel after its
// context: it reads "converge: <context>: <the sentinel's words>", with one
// "converge: ".
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &rootError{err: err, msg: "converge: " + strings.ReplaceAll(err.Error(), "converge: ", "")}
}

// storeWords is err's message in the root's words.
func storeWords(err error) string {
	msg := err.Error()
	for _, s := range storeSentinels {
		if errors.Is(err, s.below) {
			msg = strings.Replace(msg, s.below.Error(), s.root.Error(), 1)
		}
	}
	msg = strings.ReplaceAll(msg, "oplog: ", "")
	msg = strings.ReplaceAll(msg, "converge: ", "")
	return "converge: " + msg
}
