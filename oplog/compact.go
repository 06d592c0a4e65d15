package oplog

import (
	"context"
	"errors"

	"github.com/convergedb/converge/crdt"
)

// ErrCompacted is returned when a peer asks for ops below the compaction
// horizon: they were folded into base states and dropped from the log, so
// the peer must bootstrap from a snapshot ([Log.Snapshot]).
var ErrCompacted = errors.New("oplog: ops compacted away: snapshot needed")

// CompactOptions tune [Log.Compact].
type CompactOptions struct {
	// Horizon is the vector to compact up to. Nil means the stable vector
	// ([Log.StableVector]) when at least one peer is known, and nothing
	// otherwise: a replica's ops must reach a peer before it drops them.
	Horizon crdt.VersionVector
	// BatchOps is how many ops one batch folds and drops. Zero means 1000.
	BatchOps int
	// Wait, if set, is called before each batch with its size: a rate
	// limiter. An error ends the compaction (what was done stays done).
	Wait func(ctx context.Context, ops int) error
	// Reclaim asks Pebble to compact the dropped log range, so the disk
	// space returns now rather than with later compactions.
	Reclaim bool
}

// CompactStats reports one compaction of one namespace.
type CompactStats struct {
	Namespace     string
	Before, After crdt.VersionVector // the horizons
	Ops           int                // ops dropped from the log
	Records       int                // base states written
	FeedTrimmed   int                // change feed entries dropped
	Batches       int
}

// Horizon returns the compaction horizon of ns: the ops it covers have been
// folded into base states and dropped from the log.
func (l *Log) Horizon(ctx context.Context, ns string) (crdt.VersionVector, error) {
	return nil, errors.New("oplog: Horizon: not implemented yet")
}

// Compact folds the ops of ns at or below the horizon into base states and
// drops them from the log, in batches that never hold the write lock
// longer than one commit.
func (l *Log) Compact(ctx context.Context, ns string, opts CompactOptions) (CompactStats, error) {
	return CompactStats{}, errors.New("oplog: Compact: not implemented yet")
}
