// Package oplog is Converge's store: one Pebble DB holding, per namespace,
// the op log, the version vector, the materialized record states and a
// bounded conflict log, plus the replica's identity and HLC high-water mark.
//
// Every commit, local or remote, is one Pebble batch holding the log
// entries, the new record states, the version vector entries and the HLC
// high-water mark, so a crash leaves all of a commit or none of it. Local
// writes go through [Log.Write], which assigns each op its dot (origin, seq)
// and HLC; remote ops go through [Log.Ingest], which applies each origin's
// ops in sequence order, whole transactions only, and skips ops it already
// has. [Log.Page] and [Log.Missing] read the ops a peer lacks given its
// version vector.
//
// A Log is safe for concurrent use. Writes are serialized; reads run
// concurrently with them and see every commit that has returned
// (read-your-writes).
//
// The key layout is documented in keys.go.
package oplog
