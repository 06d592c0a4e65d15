// Package converge is an offline-first, multi-writer data library: typed
// collections of Go structs stored in a local Pebble op log, replicated
// between replicas by exchanging ops, and merged with CRDTs so that every
// replica that has seen the same ops shows the same data, whatever order
// they arrived in.
//
// Open a [DB] on a directory, declare a [Collection] of a struct type, and
// write and read records in a namespace (the unit of tenancy and
// replication). Every write is an op in the local log, durable when the
// call returns; sync ([DB.SyncWith], or the transports) sends replicas the
// ops they lack.
//
//	db, err := converge.Open(dir, converge.Options{})
//	tasks, err := converge.NewCollection[Task](db, "tasks")
//	id, err := tasks.Put(ctx, "team-1", &Task{Title: "write docs"})
//	t, err := tasks.Get(ctx, "team-1", id)
//	t.Done = true
//	_, err = tasks.Put(ctx, "team-1", &t) // writes done, nothing else
//	err = tasks.Update(ctx, "team-1", id, converge.Increment("votes", 1))
//
// # Merge semantics
//
// A plain field is a last-writer-wins register ordered by (causal length,
// HLC, replica id); a field tagged `converge:"set"` is an add-wins set; a
// field tagged `converge:"counter"` is a counter whose concurrent
// increments add up; `converge:"max"` and `converge:"min"` keep the
// greatest and least value written. A delete wins over updates concurrent
// with it, and a re-created record starts empty. docs/ARCHITECTURE.md and
// the crdt package give the exact rules.
//
// # Structs
//
// Field names come from msgpack tags (github.com/vmihailenco/msgpack/v5),
// else the Go field name. The id is the string field tagged
// `converge:"id"`, else a string field named ID; it is not stored as a
// field. Every collection struct has a field of type [Meta], usually
// declared as `Meta converge.Meta`: reads fill it with the record's
// metadata and the version read, which [Collection.Put] uses to write only
// what the app changed since (a read-edit-save never reverts another
// replica's changes; see Put). Fields a struct does not declare (written by a newer version of the
// app) are kept untouched by its writes.
package converge
