// Package seq is Converge's sequence CRDT: collaborative text ([Text], of
// Unicode code points) and lists ([List], of msgpack values), edited by
// several replicas at once and merged without conflicts. It is pure and
// deterministic: no I/O, no clocks, no goroutines, no map order leaking
// into any result. Its types are not safe for concurrent use.
//
// # Model
//
// Every inserted element has an identity, an [ID]: the replica that
// inserted it and a clock, the count of elements that replica inserted
// into the sequence before. An insert ([Insert]) carries a run of
// elements with consecutive clocks and two origins: the elements it was
// inserted between (tombstones included), which were adjacent when it was
// written. A delete names the ids it deletes ([Span]). The state of a
// sequence is the set of inserts and the set of deleted ids it holds;
// merging two states is their union ([Seq.Merge]), so it is commutative,
// associative and idempotent, and replicas holding the same inserts and
// deletes hold the same sequence, with the same bytes
// ([Text.AppendBinary]). An insert whose origins have not arrived yet is
// kept aside until they do, and a delete of an element that has not
// arrived is kept until it does: nothing needs to arrive in causal order.
//
// # Order of concurrent inserts
//
// Where concurrent inserts land relative to each other is decided by the
// integration rule of Yjs as modified by Gentle ("YjsMod", the rule of
// Diamond types and Eg-walker: Gentle and Kleppmann, "Collaborative Text
// Editing with Eg-walker: Better, Faster, Smaller", 2025): the new run is
// placed among the elements between its origins, which are the elements
// inserted concurrently with it, by comparing their origins with its own.
// That rule orders elements as FugueMax does (Weidner and Kleppmann, "The
// Art of the Fugue: Minimizing Interleaving in Collaborative Text
// Editing"), and FugueMax is maximally non-interleaving: text two
// replicas type at one place at the same time, forwards or backwards,
// ends up as two unbroken passages, never mixed character by character.
// The property tests check the order against a naive FugueMax tree (the
// paper's tree algorithm, one node per element, right siblings in reverse
// order of their right origins) under any delivery order, and would fail
// for plain Fugue.
//
// # Runs and deletes
//
// Elements live in runs: consecutive elements one replica typed, one
// after the other, are one run (one entry in memory, on the wire and on
// disk), split only where something is inserted inside it or part of it
// is deleted. A local insert right after the last element the replica
// inserted extends that run in place. A deleted element keeps its id and
// origins (a tombstone: later inserts may name it as an origin) but not
// its content, which is never needed again. A local insert goes right
// after the visible element before its position, before any tombstones
// there (as in Diamond types): text that replaces a deleted word sits where
// the word stood, ahead of what others append to the word concurrently.
//
// # Anchors
//
// An [Anchor] is a position that keeps its place through edits: just
// after an element (text typed there later goes after the anchor) or just
// before one (text typed there goes before it). If its element is
// deleted, it resolves to where the element was.
//
// # Structure
//
// Runs sit, in document order, in the leaves of a B-tree whose nodes count
// visible and total elements, so finding the element at a position, or
// the position of an element, takes O(log n) steps. An index from ids to
// leaves, built on first use, serves remote inserts, deletes and anchors;
// local edits by position never need it. The content of live runs lives
// in one arena per sequence, so runs hold no pointers.
//
// # Limits and trust
//
// A replica inserts at most [MaxClock] elements into one sequence.
// Decoders check that an encoding is canonical and consistent (every id
// held once, every integrated run's origins held), but not that some
// history of edits produces it (its elements in the order integration
// gives, its runs' origins inserted before them), nor that two states
// agree on an element both hold: honest replicas insert each id once. A
// merge with such a hostile state is deterministic but need not commute.
package seq
