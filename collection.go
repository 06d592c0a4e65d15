package converge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
	"github.com/oklog/ulid/v2"
	"github.com/vmihailenco/msgpack/v5"
)

// Meta is a record's metadata. A struct field of type Meta is filled on
// reads and ignored on writes.
type Meta struct {
	Namespace, Collection, ID string
	// Created and Updated are the HLCs of the first and latest write
	// since the record was (re-)created.
	Created, Updated hlc.Timestamp
	// Origin is the replica that created the record; UpdatedBy the one
	// that wrote it last.
	Origin, UpdatedBy string
}

// Collection is a typed collection of records of struct type T. It is safe
// for concurrent use.
type Collection[T any] struct {
	db     *DB
	name   string
	schema *schema
}

// NewCollection declares the collection name of struct type T on db. It
// returns ErrSchema if T cannot be a collection (no id field, a bad tag).
func NewCollection[T any](db *DB, name string) (*Collection[T], error) {
	if name == "" || len(name) > crdt.MaxNameLen {
		return nil, fmt.Errorf("%w: collection name %q must be 1 to %d bytes", ErrInvalid, name, crdt.MaxNameLen)
	}
	s, err := newSchema(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	return &Collection[T]{db: db, name: name, schema: s}, nil
}

// Name returns the collection's name.
func (c *Collection[T]) Name() string { return c.name }

// Put writes v to namespace ns: it creates the record if it is absent or
// deleted, and otherwise writes only the fields whose value changed (set
// fields as adds and removes, counters as increments). Fields stored but
// not declared in T are left untouched. If v's id is empty Put assigns a
// new ULID and sets it in v. It returns the id.
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
	st, err := c.db.log.Get(ctx, ns, c.name, id)
	if err != nil {
		return zero, fmt.Errorf("converge: get %s/%s/%s: %w", ns, c.name, id, err)
	}
	return c.decode(ns, id, st)
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
// order. It stops at the first error, which it yields with a zero T.
func (c *Collection[T]) All(ctx context.Context, ns string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		for e, err := range c.db.log.Records(ctx, ns, c.name) {
			if err != nil {
				yield(zero, fmt.Errorf("converge: list %s/%s: %w", ns, c.name, err))
				return
			}
			if !e.State.Exists() {
				continue
			}
			v, err := c.decode(ns, e.Key, e.State)
			if !yield(v, err) || err != nil {
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

// Get reads record id as the transaction sees it.
func (t *CollectionTx[T]) Get(id string) (T, error) {
	st, err := t.tx.tx.Get(t.c.name, id)
	if err != nil {
		var zero T
		return zero, err
	}
	return t.c.decode(t.tx.Namespace(), id, st)
}

// Put writes v as [Collection.Put] does, inside the transaction.
func (t *CollectionTx[T]) Put(v *T) (string, error) {
	s := t.c.schema
	rv := reflect.ValueOf(v).Elem()
	idv := rv.FieldByIndex(s.id)
	id := idv.String()
	if id == "" {
		id = ulid.Make().String()
	}
	if len(id) > crdt.MaxNameLen {
		return "", fmt.Errorf("%w: id of %d bytes, limit %d", ErrInvalid, len(id), crdt.MaxNameLen)
	}
	st, err := t.tx.tx.Get(t.c.name, id)
	if err != nil {
		return "", err
	}
	var changes []crdt.Change
	creating := !st.Exists()
	for _, sf := range s.fields {
		ch, err := fieldChanges(sf, st, creating, rv.FieldByIndex(sf.index))
		if err != nil {
			return "", err
		}
		changes = append(changes, ch...)
	}
	if _, err := t.tx.tx.Mutate(t.c.name, id, crdt.IntentPut, changes); err != nil {
		return "", err
	}
	idv.SetString(id)
	return id, nil
}

// Update applies field updates to existing record id inside the transaction.
func (t *CollectionTx[T]) Update(id string, updates ...FieldUpdate) error {
	st, err := t.tx.tx.Get(t.c.name, id)
	if err != nil {
		return err
	}
	if !st.Exists() {
		return fmt.Errorf("converge: update %s/%s: %w", t.c.name, id, ErrNotFound)
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
	return err
}

// Delete deletes existing record id inside the transaction.
func (t *CollectionTx[T]) Delete(id string) error {
	_, err := t.tx.tx.Mutate(t.c.name, id, crdt.IntentDelete, nil)
	return err
}

// fieldChanges returns the changes that make field sf of record st hold v.
func fieldChanges(sf schemaField, st *crdt.Record, creating bool, v reflect.Value) ([]crdt.Change, error) {
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
		var out []crdt.Change
		for _, e := range diffSorted(elems, old) {
			out = append(out, crdt.Change{Name: sf.name, Type: crdt.AddElem, Value: e})
		}
		for _, e := range diffSorted(old, elems) {
			out = append(out, crdt.Change{Name: sf.name, Type: crdt.RemoveElem, Value: e})
		}
		return out, nil
	case crdt.KindCounter:
		var total int64
		if have {
			if err := msgpack.Unmarshal(cur.Value, &total); err != nil {
				return nil, fmt.Errorf("%w: counter %q: %w", ErrCorrupt, sf.name, err)
			}
		}
		if d := v.Int() - total; d != 0 {
			return []crdt.Change{{Name: sf.name, Type: crdt.Increment, Delta: d}}, nil
		}
		return nil, nil
	}
	enc, err := encodeValue(v.Interface())
	if err != nil {
		return nil, err
	}
	if have && bytes.Equal(cur.Value, enc) {
		return nil, nil
	}
	if !have && !creating && v.IsZero() {
		return nil, nil // reads as the zero value already
	}
	typ := crdt.Set
	switch sf.kind {
	case crdt.KindMax:
		typ = crdt.OfferMax
	case crdt.KindMin:
		typ = crdt.OfferMin
	}
	return []crdt.Change{{Name: sf.name, Type: typ, Value: enc}}, nil
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
		return v, fmt.Errorf("converge: %s/%s/%s: %w", ns, c.name, id, ErrNotFound)
	}
	fields := st.Visible()
	b := mp.AppendMapHeader(nil, len(fields))
	for _, f := range fields {
		b = mp.AppendString(b, f.Name)
		b = append(b, f.Value...)
	}
	if err := msgpack.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("converge: %s/%s/%s does not fit %v: %w: %w", ns, c.name, id, c.schema.typ, ErrSchema, err)
	}
	rv := reflect.ValueOf(&v).Elem()
	rv.FieldByIndex(c.schema.id).SetString(id)
	if c.schema.meta != nil {
		rv.FieldByIndex(c.schema.meta).Set(reflect.ValueOf(Meta{
			Namespace: ns, Collection: c.name, ID: id,
			Created: st.Created.HLC, Updated: st.Updated.HLC,
			Origin: st.Created.Replica.String(), UpdatedBy: st.Updated.Replica.String(),
		}))
	}
	return v, nil
}

// FieldUpdate is one field operation for [Collection.Update]. Build it
// with [Set], [Unset], [AddToSet], [RemoveFromSet] or [Increment].
type FieldUpdate struct {
	field  string
	op     updateOp
	values []any
	delta  int64
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

// updateChanges turns a FieldUpdate into changes against state st. A field
// not declared in T is treated as a register, or as the kind the operation
// implies.
func (c *Collection[T]) updateChanges(u FieldUpdate, st *crdt.Record) ([]crdt.Change, error) {
	if u.field == "" || len(u.field) > crdt.MaxNameLen {
		return nil, fmt.Errorf("%w: field name %q", ErrInvalid, u.field)
	}
	i, known := c.schema.byName[u.field]
	sf := schemaField{name: u.field, kind: crdt.KindRegister}
	if known {
		sf = c.schema.fields[i]
	}
	wrongKind := func(want crdt.Kind) error {
		return fmt.Errorf("%w: field %q is a %v: %w", ErrSchema, u.field, sf.kind, errFieldKind)
	}
	switch u.op {
	case opSet:
		if known {
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
			return fieldChanges(sf, st, false, v)
		}
		enc, err := encodeValue(u.values[0])
		if err != nil {
			return nil, err
		}
		return []crdt.Change{{Name: u.field, Type: crdt.Set, Value: enc}}, nil
	case opUnset:
		if known && sf.kind != crdt.KindRegister {
			return nil, wrongKind(crdt.KindRegister)
		}
		return []crdt.Change{{Name: u.field, Type: crdt.Unset}}, nil
	case opAdd, opRemove:
		if known && sf.kind != crdt.KindSet {
			return nil, wrongKind(crdt.KindSet)
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
		if known && sf.kind != crdt.KindCounter {
			return nil, wrongKind(crdt.KindCounter)
		}
		return []crdt.Change{{Name: u.field, Type: crdt.Increment, Delta: u.delta}}, nil
	}
	return nil, fmt.Errorf("%w: empty FieldUpdate", ErrInvalid)
}
