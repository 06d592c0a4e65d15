package converge

import (
	"reflect"

	"github.com/convergedb/converge/crdt"
	"github.com/vmihailenco/msgpack/v5"
)

// SetConflictPolicy sets the conflict policy of the collection's records,
// in every namespace, in place of the DB's ([Options.ConflictPolicy]),
// for the conflicts detected from then on. It applies to the collection's
// name: another Collection value of the same name shares it.
func (c *Collection[T]) SetConflictPolicy(p ConflictPolicy) {
	c.db.policies.Store(c.name, p)
}

// ConflictPolicy returns the collection's conflict policy: the one set
// with SetConflictPolicy, else the DB's.
func (c *Collection[T]) ConflictPolicy() ConflictPolicy { return c.db.policyFor(c.name) }

// ResolveWith returns a custom policy for a collection of struct type T
// that works on typed records rather than encoded values: f gets the name
// of the field in conflict (its msgpack name) and two copies of the
// record as this replica holds it, local with the field set to this
// replica's value and remote with the other replica's, and returns the
// record whose value of that field to write (local or remote as they are,
// or an edited copy). Nothing is written when that value is the merge's
// winner. Other fields of the record f returns are ignored.
//
// A conflict on a field T does not declare, or whose values do not decode
// into T's field, is left to the merge. f runs as [Resolve]'s function
// does: on the goroutine that applies the received ops, without locks
// held. Set the policy on the collection with
// [Collection.SetConflictPolicy].
func ResolveWith[T any](f func(field string, local, remote T) T) ConflictPolicy {
	s, err := newSchema(reflect.TypeFor[T]())
	if err != nil || f == nil {
		return LastWriteWins
	}
	return ConflictPolicy{kind: policyCustom, resolve: func(db *DB, c Conflict, st *crdt.Record, local, remote []byte) ([]byte, bool) {
		i, ok := s.byName[c.Field]
		if !ok {
			return nil, false
		}
		s := *s
		s.coll = c.Collection
		base, err := decodeState[T](db, &s, c.Namespace, c.Key, st)
		if err != nil {
			return nil, false
		}
		sf := s.fields[i]
		l, okL := withField(base, sf, local)
		r, okR := withField(base, sf, remote)
		if !okL || !okR {
			return nil, false
		}
		out := f(c.Field, l, r)
		enc, err := encodeValue(reflect.ValueOf(&out).Elem().FieldByIndex(sf.index).Interface())
		return enc, err == nil
	}}
}

// withField returns a copy of v with field sf decoded from the msgpack
// value b (empty: the zero value); ok is false if b does not decode.
func withField[T any](v T, sf schemaField, b []byte) (T, bool) {
	f := reflect.ValueOf(&v).Elem().FieldByIndex(sf.index)
	f.SetZero()
	if len(b) == 0 {
		return v, true
	}
	if err := msgpack.Unmarshal(b, f.Addr().Interface()); err != nil {
		return v, false
	}
	return v, true
}

// decodeState turns record state st of id in namespace ns into a T, as
// [Collection.Get] returns it.
func decodeState[T any](db *DB, s *schema, ns, id string, st *crdt.Record) (T, error) {
	c := Collection[T]{db: db, name: s.coll, schema: s}
	return c.decode(ns, id, st)
}
