package converge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/oklog/ulid/v2"
	"github.com/vmihailenco/msgpack/v5"
)

// Meta is a record's metadata, and the version of the record a struct was
// read at. Every collection struct has a field of type Meta (a named field
// `Meta converge.Meta`, or an embedded converge.Meta tagged
// `msgpack:"-"`): reads fill it, [Collection.Put] uses the version it
// carries to write only what the app changed, and a committed Put sets it
// to the version written. Its fields are never written as record fields.
// The zero Meta is a struct never read: Put then writes it whole. A
// struct read keeps the record's state as read in memory while it is held.
type Meta struct {
	Namespace, Collection, ID string
	// Created and Updated are the HLCs of the first and latest write
	// since the record was (re-)created.
	Created, Updated hlc.Timestamp
	// Origin is the replica that created the record; UpdatedBy the one
	// that wrote it last.
	Origin, UpdatedBy string
	// Version counts the changes this replica has applied to the record
	// (its own writes and those sync brought), so it grows with every
	// change. It is local to the replica: another replica holding the
	// same record may count differently.
	Version uint64

	// base is the record's state as read: what the struct's fields show.
	// It is shared between copies of the struct and never modified.
	base *crdt.Record
}

// Collection is a typed collection of records of struct type T. It is safe
// for concurrent use.
type Collection[T any] struct {
	db     *DB
	name   string
	schema *schema
	// migrations are the collection's migrations (see migrate.go).
	migrations atomic.Pointer[[]Migration]
}

// NewCollection declares the collection name of struct type T on db. It
// returns ErrSchema if T cannot be a collection (no id field, no [Meta]
// field, a bad tag).
func NewCollection[T any](db *DB, name string) (*Collection[T], error) {
	if name == "" || len(name) > crdt.MaxNameLen {
		return nil, fmt.Errorf("%w: collection name %q must be 1 to %d bytes", ErrInvalid, name, crdt.MaxNameLen)
	}
	s, err := newSchema(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	s.coll = name
	return &Collection[T]{db: db, name: name, schema: s}, nil
}

// Name returns the collection's name.
func (c *Collection[T]) Name() string { return c.name }

// Put writes v to namespace ns and returns its id. If v's id is empty Put
// assigns a new ULID.
//
// A struct read from the collection (by Get, All, a query, a watch)
// carries in its Meta the version it was read at, and Put writes only what
// the app changed since that version, whatever other replicas wrote
// meanwhile (a read-edit-save never reverts their changes):
//   - a register, max or min field is written only if its value differs
//     from the one read; a concurrent write of it is a conflict, resolved
//     by the merge and reported as usual;
//   - a set field adds the elements the app added and removes those it
//     removed, each remove cancelling only the adds of the element the
//     read saw (an add made elsewhere meanwhile survives);
//   - a counter field adds the difference between its value and the value
//     read, on top of whatever the counter holds now.
//
// If the record was deleted since the read (and perhaps re-created), or v
// was never read (a zero Meta), or was read from another record, Put
// writes v as a whole: it creates the record if it is absent or deleted,
// and otherwise writes the fields whose value differs from the stored one.
// Fields stored but not declared in T are never written.
//
// Once the write commits, v holds the record as written (other replicas'
// changes included; a record Put created holds what v held) and its Meta
// that version, so a second Put of v writes nothing more. If the write
// fails, v is left as it was (but for ErrUnsynced: that write committed).
// Put returns ErrSchema if the record as written does not fit T (then
// nothing is written).
func (c *Collection[T]) Put(ctx context.Context, ns string, v *T) (string, error) {
	var id string
	err := c.db.Update(ctx, ns, func(tx *Tx) error {
		var err error
		id, err = c.Tx(tx).Put(v)
		return err
	})
	return id, err
}

// Get reads the record id of namespace ns. It returns ErrNotFound if the
// record does not exist, and ErrSchema if the stored fields do not fit T.
func (c *Collection[T]) Get(ctx context.Context, ns, id string) (T, error) {
	var zero T
	trackRecord(ctx, ns, c.name, id) // for WatchFunc
	st, err := c.db.log.Get(ctx, ns, c.name, id)
	if err != nil {
		return zero, storeErr(fmt.Errorf("converge: get %s/%s/%s: %w", ns, c.name, id, err))
	}
	return c.decode(ns, id, st)
}

// Modify reads the record id of namespace ns, calls fn with it, and writes
// what fn changed, all in one local transaction: no other write of this
// replica comes between the read and the write. It returns ErrNotFound if
// the record does not exist, and fn's error (writing nothing) if fn fails.
// fn must not change the id (ErrInvalid).
func (c *Collection[T]) Modify(ctx context.Context, ns, id string, fn func(*T) error) error {
	return c.db.Update(ctx, ns, func(tx *Tx) error { return c.Tx(tx).Modify(id, fn) })
}

// Update applies field updates to the existing record id of namespace ns,
// in one op. Several updates of one field combine as if applied in order
// (the last Set wins, increments add up); updates of one field as two kinds
// (a Set and an Increment) are ErrInvalid. It returns ErrNotFound if the
// record does not exist.
func (c *Collection[T]) Update(ctx context.Context, ns, id string, updates ...FieldUpdate) error {
	return c.db.Update(ctx, ns, func(tx *Tx) error { return c.Tx(tx).Update(id, updates...) })
}

// Delete deletes the record id of namespace ns. It returns ErrNotFound if
// the record does not exist.
func (c *Collection[T]) Delete(ctx context.Context, ns, id string) error {
	return c.db.Update(ctx, ns, func(tx *Tx) error { return c.Tx(tx).Delete(id) })
}

// All yields the existing records of the collection in namespace ns, in id
// order. A record that does not fit T (ErrSchema) is yielded as its
// error, with a zero T, and the iteration goes on if the loop does; any
// other error ends it.
func (c *Collection[T]) All(ctx context.Context, ns string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		trackCollection(ctx, ns, c.name) // for WatchFunc
		for e, err := range c.db.log.Records(ctx, ns, c.name) {
			if err != nil {
				yield(zero, storeErr(fmt.Errorf("converge: list %s/%s: %w", ns, c.name, err)))
				return
			}
			if !e.State.Exists() {
				continue
			}
			v, err := c.decode(ns, e.Key, e.State)
			if !yield(v, err) {
				return
			}
		}
	}
}

// Tx returns the collection's view inside transaction tx.
func (c *Collection[T]) Tx(tx *Tx) *CollectionTx[T] { return &CollectionTx[T]{c: c, tx: tx} }

// CollectionTx is a collection inside a transaction: its reads see the
// transaction's writes. It is valid only while the transaction is open.
type CollectionTx[T any] struct {
	c  *Collection[T]
	tx *Tx
}

// Get reads record id as the transaction sees it. The version it carries
// includes the transaction's writes so far: if the transaction does not
// commit, read the record again rather than Put what Get returned.
func (t *CollectionTx[T]) Get(id string) (T, error) {
	st, err := t.tx.tx.Get(t.c.name, id)
	if err != nil {
		var zero T
		return zero, storeErr(err)
	}
	return t.c.decode(t.tx.Namespace(), id, st)
}

// Put writes v as [Collection.Put] does, inside the transaction. v holds
// the record as written at once; if the transaction does not commit,
// [DB.Update] puts v back as it was before Put. If Put fails, the
// transaction must not commit: return the error from its function (an
// error from v's refresh aborts it whatever the function returns).
func (t *CollectionTx[T]) Put(v *T) (string, error) {
	s := t.c.schema
	rv := reflect.ValueOf(v).Elem()
	id := rv.FieldByIndex(s.id).String()
	if id == "" {
		id = ulid.Make().String()
	}
	if len(id) > crdt.MaxNameLen {
		return "", fmt.Errorf("%w: id of %d bytes, limit %d", ErrInvalid, len(id), crdt.MaxNameLen)
	}
	st, err := t.tx.tx.Get(t.c.name, id)
	if err != nil {
		return "", storeErr(err)
	}
	base := t.c.baseOf(rv, t.tx.Namespace(), id, st)
	changes, err := t.c.putChanges(rv, st, base)
	if err != nil {
		return "", err
	}
	changes = append(changes, t.c.dropChanges(st)...)
	if _, err := t.tx.tx.MutateFrom(t.c.name, id, base, crdt.IntentPut, changes); err != nil {
		return "", storeErr(err)
	}
	if err := t.refresh(rv, id, !st.Exists()); err != nil {
		t.tx.fail(err)
		return "", err
	}
	return id, nil
}

// putChanges returns the changes a Put of the struct rv makes to record
// st: the three-way diff from base if v was read at a version of it, the
// diff from st otherwise. Their values share one allocation.
func (c *Collection[T]) putChanges(rv reflect.Value, st, base *crdt.Record) ([]crdt.Change, error) {
	s := c.schema
	changes := make([]crdt.Change, 0, len(s.fields))
	arena := make([]byte, 0, 16*len(s.fields))
	var err error
	for _, sf := range s.fields {
		if base != nil {
			changes, err = editChanges(changes, &arena, sf, base, rv.FieldByIndex(sf.index))
		} else {
			changes, err = fieldChanges(changes, &arena, sf, st, !st.Exists(), rv.FieldByIndex(sf.index))
		}
		if err != nil {
			return nil, err
		}
	}
	return changes, nil
}

// baseOf returns the version v (the struct rv) was read at, if it is a
// version of this record at its current causal length st.CL; nil
// otherwise (never read, read from another record, or the record was
// deleted since).
func (c *Collection[T]) baseOf(rv reflect.Value, ns, id string, st *crdt.Record) *crdt.Record {
	m := rv.FieldByIndex(c.schema.meta).Addr().Interface().(*Meta)
	if m.base == nil || m.Namespace != ns || m.Collection != c.name || m.ID != id || m.base.CL != st.CL {
		return nil
	}
	return m.base
}

// refresh sets the struct rv to record id as the transaction now holds it,
// and registers the undo of that with the transaction. If the Put created
// the record, the record holds exactly what rv does (every declared field
// written, at a causal length nothing else wrote at), so only the id and
// Meta are set: decoding it again would cost a fifth of the Put.
func (t *CollectionTx[T]) refresh(rv reflect.Value, id string, created bool) error {
	st, err := t.tx.tx.Get(t.c.name, id)
	if err != nil {
		return storeErr(err)
	}
	s := t.c.schema
	if created {
		// Only the id and Meta change: keep those for the undo.
		idv, metav := rv.FieldByIndex(s.id), rv.FieldByIndex(s.meta).Addr().Interface().(*Meta)
		oldID, oldMeta := idv.String(), *metav
		t.tx.onAbort(func() { idv.SetString(oldID); *metav = oldMeta })
		idv.SetString(id)
		*metav = t.c.meta(t.tx.Namespace(), id, st)
		return nil
	}
	v, err := t.c.decode(t.tx.Namespace(), id, st)
	if err != nil {
		return fmt.Errorf("converge: put %s/%s: the record as written: %w", t.c.name, id, err)
	}
	old := reflect.New(s.typ).Elem()
	s.copyRecord(old, rv)
	t.tx.onAbort(func() { s.copyRecord(rv, old) })
	s.copyRecord(rv, reflect.ValueOf(&v).Elem())
	return nil
}

// Modify reads record id, calls fn with it and writes what fn changed,
// inside the transaction, as [Collection.Modify] does.
func (t *CollectionTx[T]) Modify(id string, fn func(*T) error) error {
	v, err := t.Get(id)
	if err != nil {
		return err
	}
	if err := fn(&v); err != nil {
		return err
	}
	if got := reflect.ValueOf(&v).Elem().FieldByIndex(t.c.schema.id).String(); got != id {
		return fmt.Errorf("%w: modify %s/%s: the function changed the id to %q", ErrInvalid, t.c.name, id, got)
	}
	_, err = t.Put(&v)
	return err
}

// Update applies field updates to existing record id inside the transaction.
func (t *CollectionTx[T]) Update(id string, updates ...FieldUpdate) error {
	st, err := t.tx.tx.Get(t.c.name, id)
	if err != nil {
		return storeErr(err)
	}
	if !st.Exists() {
		return errorf("converge: update %s/%s: %w", t.c.name, id, ErrNotFound)
	}
	var changes []crdt.Change
	for _, u := range updates {
		ch, err := t.c.updateChanges(u, st)
		if err != nil {
			return fmt.Errorf("converge: update %s/%s: %w", t.c.name, id, err)
		}
		changes = append(changes, ch...)
	}
	_, err = t.tx.tx.Mutate(t.c.name, id, crdt.IntentUpdate, changes)
	if errors.Is(err, crdt.ErrInvalidOp) {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return storeErr(err)
}

// Delete deletes existing record id inside the transaction.
func (t *CollectionTx[T]) Delete(id string) error {
	_, err := t.tx.tx.Mutate(t.c.name, id, crdt.IntentDelete, nil)
	return storeErr(err)
}

// fieldChanges appends to dst the changes that make field sf of record st
// hold v; the values it encodes go to *arena.
func fieldChanges(dst []crdt.Change, arena *[]byte, sf schemaField, st *crdt.Record, creating bool, v reflect.Value) ([]crdt.Change, error) {
	var cur crdt.FieldValue
	var have bool
	if !creating {
		cur, have = st.Get(sf.name)
		have = have && cur.Kind == sf.kind
	}
	switch sf.kind {
	case crdt.KindSet:
		elems, err := encodeElems(v)
		if err != nil {
			return nil, err
		}
		var old [][]byte
		if have {
			old = st.SetElems(sf.name)
		}
		for _, e := range diffSorted(elems, old) {
			dst = append(dst, crdt.Change{Name: sf.name, Type: crdt.AddElem, Value: e})
		}
		for _, e := range diffSorted(old, elems) {
			dst = append(dst, crdt.Change{Name: sf.name, Type: crdt.RemoveElem, Value: e})
		}
		return dst, nil
	case crdt.KindCounter:
		var total int64
		if have {
			if err := msgpack.Unmarshal(cur.Value, &total); err != nil {
				return nil, fmt.Errorf("%w: counter %q: %w", ErrCorrupt, sf.name, err)
			}
		}
		if d := v.Int() - total; d != 0 {
			return append(dst, crdt.Change{Name: sf.name, Type: crdt.Increment, Delta: d}), nil
		}
		return dst, nil
	}
	mark := len(*arena)
	enc, err := encodeField(arena, sf, v)
	if err != nil {
		return nil, err
	}
	if (have && bytes.Equal(cur.Value, enc)) || (!have && !creating && v.IsZero()) {
		// Unchanged, or reads as the zero value already.
		*arena = (*arena)[:mark] // unused: the next value may take its place
		return dst, nil
	}
	return append(dst, crdt.Change{Name: sf.name, Type: offerType(sf.kind), Value: enc}), nil
}

// editChanges returns the changes that carry to field sf what the app
// changed in v since it read base: the three-way diff of a read-edit-save.
// A value counts as unchanged if it is the one read, byte for byte or once
// decoded into the field's type and encoded again (a value stored in
// another encoding, by another version of the app, is not a change).
func editChanges(dst []crdt.Change, arena *[]byte, sf schemaField, base *crdt.Record, v reflect.Value) ([]crdt.Change, error) {
	was, have := base.Get(sf.name)
	have = have && was.Kind == sf.kind
	switch sf.kind {
	case crdt.KindSet:
		ch, err := editSetChanges(sf, base, have, v)
		return append(dst, ch...), err
	case crdt.KindCounter:
		var read int64
		if have {
			if err := msgpack.Unmarshal(was.Value, &read); err != nil {
				return nil, fmt.Errorf("%w: counter %q: %w", ErrCorrupt, sf.name, err)
			}
		}
		if d := v.Int() - read; d != 0 {
			return append(dst, crdt.Change{Name: sf.name, Type: crdt.Increment, Delta: d}), nil
		}
		return dst, nil
	}
	mark := len(*arena)
	enc, err := encodeField(arena, sf, v)
	if err != nil {
		return nil, err
	}
	if (!have && v.IsZero()) || // read as the zero value
		(have && (bytes.Equal(was.Value, enc) || bytes.Equal(reencode(was.Value, v.Type()), enc))) {
		*arena = (*arena)[:mark] // unused: the next value may take its place
		return dst, nil
	}
	return append(dst, crdt.Change{Name: sf.name, Type: offerType(sf.kind), Value: enc}), nil
}

// editSetChanges is editChanges for a set field: adds of the elements v
// holds and the read did not, removes of those the read held and v does
// not (each cancels the adds the read saw, see [crdt.Record.PrepareFrom]).
func editSetChanges(sf schemaField, base *crdt.Record, have bool, v reflect.Value) ([]crdt.Change, error) {
	elems, err := encodeElems(v)
	if err != nil {
		return nil, err
	}
	var read [][]byte
	if have {
		read = base.SetElems(sf.name)
	}
	adds, removes := diffSorted(elems, read), diffSorted(read, elems)
	// An element read in another encoding is still in v if its
	// re-encoding is: neither removed nor added.
	for i := 0; i < len(removes); i++ {
		again := reencode(removes[i], v.Type().Elem())
		if again == nil || bytes.Equal(again, removes[i]) || !slices.ContainsFunc(elems, func(e []byte) bool { return bytes.Equal(e, again) }) {
			continue
		}
		adds = slices.DeleteFunc(adds, func(e []byte) bool { return bytes.Equal(e, again) })
		removes = slices.Delete(removes, i, i+1)
		i--
	}
	out := make([]crdt.Change, 0, len(adds)+len(removes))
	for _, e := range adds {
		out = append(out, crdt.Change{Name: sf.name, Type: crdt.AddElem, Value: e})
	}
	for _, e := range removes {
		out = append(out, crdt.Change{Name: sf.name, Type: crdt.RemoveElem, Value: e})
	}
	return out, nil
}

// reencode returns the canonical encoding of the msgpack value b decoded
// into a value of type t, or nil if it does not decode.
func reencode(b []byte, t reflect.Type) []byte {
	p := reflect.New(t)
	if err := msgpack.Unmarshal(b, p.Interface()); err != nil {
		return nil
	}
	enc, err := encodeValue(p.Elem().Interface())
	if err != nil {
		return nil
	}
	return enc
}

// offerType returns the change type that writes a value to a field of
// kind k: a register Set, or an offer to a max or min register.
func offerType(k crdt.Kind) crdt.ChangeType {
	switch k {
	case crdt.KindMax:
		return crdt.OfferMax
	case crdt.KindMin:
		return crdt.OfferMin
	}
	return crdt.Set
}

// diffSorted returns the elements of a not in b; both are sorted by
// crdt.OrderValues.
func diffSorted(a, b [][]byte) [][]byte {
	var out [][]byte
	j := 0
	for _, x := range a {
		for j < len(b) && crdt.OrderValues(b[j], x) < 0 {
			j++
		}
		if j < len(b) && bytes.Equal(b[j], x) {
			continue
		}
		out = append(out, x)
	}
	return out
}

// decode turns a record state into a T.
func (c *Collection[T]) decode(ns, id string, st *crdt.Record) (T, error) {
	var v T
	if !st.Exists() {
		return v, errorf("converge: %s/%s/%s: %w", ns, c.name, id, ErrNotFound)
	}
	b, err := c.migratedFields(st)
	if err != nil {
		return v, fmt.Errorf("converge: %s/%s/%s: migration: %w: %w", ns, c.name, id, ErrSchema, err)
	}
	if err := msgpack.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("converge: %s/%s/%s does not fit %v: %w: %w", ns, c.name, id, c.schema.typ, ErrSchema, err)
	}
	rv := reflect.ValueOf(&v).Elem()
	rv.FieldByIndex(c.schema.id).SetString(id)
	rv.FieldByIndex(c.schema.meta).Set(reflect.ValueOf(c.meta(ns, id, st)))
	return v, nil
}

// meta returns the Meta of record id of ns read as st.
func (c *Collection[T]) meta(ns, id string, st *crdt.Record) Meta {
	return Meta{
		Namespace: ns, Collection: c.name, ID: id,
		Created: st.Created.HLC, Updated: st.Updated.HLC,
		Origin: c.db.replicaString(st.Created.Replica), UpdatedBy: c.db.replicaString(st.Updated.Replica),
		Version: st.Applied,
		base:    st,
	}
}

// FieldUpdate is one field operation for [Collection.Update]. Build it
// with [Set], [Unset], [AddToSet], [RemoveFromSet] or [Increment].
type FieldUpdate struct {
	err        error // a Field that FieldOf could not resolve
	undeclared bool  // see Undeclared
	field      string
	op         updateOp
	values     []any
	delta      int64
}

type updateOp uint8

const (
	opSet updateOp = iota + 1
	opUnset
	opAdd
	opRemove
	opIncrement
)

// Set sets a field to value. On a set field value is the whole set; on a
// counter, the total (written as the increment that reaches it); on a max
// or min field, a value offered to it.
func Set(field string, value any) FieldUpdate {
	return FieldUpdate{field: field, op: opSet, values: []any{value}}
}

// Unset clears a register field: it reads as its zero value.
func Unset(field string) FieldUpdate { return FieldUpdate{field: field, op: opUnset} }

// AddToSet adds values to a set field.
func AddToSet(field string, values ...any) FieldUpdate {
	return FieldUpdate{field: field, op: opAdd, values: values}
}

// RemoveFromSet removes values from a set field: the adds of them this
// replica has seen. An add concurrent with the remove survives.
func RemoveFromSet(field string, values ...any) FieldUpdate {
	return FieldUpdate{field: field, op: opRemove, values: values}
}

// Increment adds delta (negative to decrement) to a counter field.
// Concurrent increments on different replicas add up.
func Increment(field string, delta int64) FieldUpdate {
	return FieldUpdate{field: field, op: opIncrement, delta: delta}
}

var errFieldKind = errors.New("operation does not fit the field's kind")

// Undeclared marks u as an update of a field the collection's struct does
// not declare, on purpose: a field another version of the app declares.
// [Collection.Update] writes it as the kind the operation implies (Set and
// Unset a register, AddToSet and RemoveFromSet a set, Increment a
// counter) instead of refusing an unknown field. On a declared field it
// changes nothing.
func Undeclared(u FieldUpdate) FieldUpdate {
	u.undeclared = true
	return u
}

// undeclaredChanges returns the changes of update u of a field T does not
// declare, as the kind its operation implies.
func undeclaredChanges(u FieldUpdate) ([]crdt.Change, error) {
	var out []crdt.Change
	switch u.op {
	case opSet:
		enc, err := encodeValue(u.values[0])
		if err != nil {
			return nil, err
		}
		out = append(out, crdt.Change{Name: u.field, Type: crdt.Set, Value: enc})
	case opUnset:
		out = append(out, crdt.Change{Name: u.field, Type: crdt.Unset})
	case opAdd, opRemove:
		typ := crdt.AddElem
		if u.op == opRemove {
			typ = crdt.RemoveElem
		}
		for _, x := range u.values {
			enc, err := encodeValue(x)
			if err != nil {
				return nil, err
			}
			out = append(out, crdt.Change{Name: u.field, Type: typ, Value: enc})
		}
	case opIncrement:
		out = append(out, crdt.Change{Name: u.field, Type: crdt.Increment, Delta: u.delta})
	default:
		return nil, fmt.Errorf("%w: empty FieldUpdate", ErrInvalid)
	}
	return out, nil
}

// updateChanges turns a FieldUpdate into changes against state st. The
// field must be one T declares (else a *FieldError wrapping ErrField),
// and the operation must fit its kind.
func (c *Collection[T]) updateChanges(u FieldUpdate, st *crdt.Record) ([]crdt.Change, error) {
	if u.err != nil {
		return nil, u.err
	}
	i, known := c.schema.byName[u.field]
	if !known && u.undeclared && u.field != "" && len(u.field) <= crdt.MaxNameLen && !strings.HasPrefix(u.field, crdt.MetaPrefix) {
		return undeclaredChanges(u)
	}
	if !known {
		return nil, c.schema.fieldError(u.field)
	}
	sf := c.schema.fields[i]
	wrongKind := func() error {
		return fmt.Errorf("%w: field %q is a %v: %w", ErrSchema, u.field, sf.kind, errFieldKind)
	}
	switch u.op {
	case opSet:
		ft := c.schema.typ.FieldByIndex(sf.index).Type
		v := reflect.New(ft).Elem()
		if u.values[0] != nil {
			rv := reflect.ValueOf(u.values[0])
			if !rv.Type().AssignableTo(ft) {
				if !rv.Type().ConvertibleTo(ft) {
					return nil, fmt.Errorf("%w: field %q is %v, not %T", ErrSchema, u.field, ft, u.values[0])
				}
				rv = rv.Convert(ft)
			}
			v.Set(rv)
		}
		var arena []byte
		return fieldChanges(nil, &arena, sf, st, false, v)
	case opUnset:
		if sf.kind != crdt.KindRegister {
			return nil, wrongKind()
		}
		return []crdt.Change{{Name: u.field, Type: crdt.Unset}}, nil
	case opAdd, opRemove:
		if sf.kind != crdt.KindSet {
			return nil, wrongKind()
		}
		typ := crdt.AddElem
		if u.op == opRemove {
			typ = crdt.RemoveElem
		}
		var out []crdt.Change
		for _, x := range u.values {
			enc, err := encodeValue(x)
			if err != nil {
				return nil, err
			}
			out = append(out, crdt.Change{Name: u.field, Type: typ, Value: enc})
		}
		return out, nil
	case opIncrement:
		if sf.kind != crdt.KindCounter {
			return nil, wrongKind()
		}
		return []crdt.Change{{Name: u.field, Type: crdt.Increment, Delta: u.delta}}, nil
	}
	return nil, fmt.Errorf("%w: empty FieldUpdate", ErrInvalid)
}
