// Package crdt holds Converge's replicated data types: ops and their dots,
// version vectors, and the record, a map of fields whose merge is a join
// semilattice (Shapiro, Preguiça, Baquero and Zawirski, "Conflict-free
// Replicated Data Types", 2011).
//
// The package is pure and deterministic: no I/O, no clocks, no goroutines,
// and no map iteration order leaks into any result. Its types are not safe
// for concurrent use.
//
// # Semantics
//
// A [Record] is a set of fields plus its existence, a causal length (CL): a
// counter that only grows, odd while the record exists and even once it is
// deleted. Creating an absent or deleted record raises CL to the next odd
// number, deleting raises it to the next even number, and merge takes the
// max, so concurrent creates (or deletes) of one record agree.
//
// Every field write is tagged with the CL at which it was made, and only
// writes tagged with the record's current CL are visible: a delete wins over
// updates concurrent with it, and a re-created record starts empty. Since
// CL only grows, what is tagged with an earlier CL is dead, and the merge
// drops it (tombstone collection; see [Record]).
//
// Fields come in kinds ([Kind]): an LWW register ordered by (CL, HLC,
// replica); an add-wins observed-remove set; a PN-counter; max and min
// registers; and text and lists, sequence CRDTs (package [seq]) whose
// elements have ids, edited by inserts of runs between two elements and
// deletes of id ranges, with concurrent inserts ordered as FugueMax orders
// them. Each is a join semilattice. A text or list component belongs to
// one CL: a later one replaces it whole, an earlier one is dropped. A field touched by writes of
// different kinds (a schema change) keeps one component per kind and shows
// the kind written last, by (CL, HLC, replica).
//
// An op is applied by turning it into the state it alone would produce (its
// delta, [Delta]) and joining that into the record ([Record.Merge]). So
// applying any set of ops, in any order and with any duplicates, gives the
// same record and the same canonical bytes ([Record.AppendBinary]).
//
// # Conflicts
//
// A register write carries Seen, the HLC of the value it replaced at its
// writer. Two writes to one register at one CL conflict when the winner did
// not see the loser (winner.Seen < loser.HLC). Conflicts are reported, not
// resolved: the merge alone decides the value.
package crdt
