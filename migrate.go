package converge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
	"github.com/vmihailenco/msgpack/v5"
)

// A Migration says how records stored by an earlier version of a
// collection's struct read in this one. Declare them with
// [Collection.Migrate]; build them with [RenameField], [ConvertField] and
// [DropField]. Migrations act when a record is read (Get, All, Find,
// Page, watches, Modify) and on its next write (Put writes the migrated
// values), never on the stored data by themselves: replicas still running
// the earlier version keep reading and writing the fields they know, and
// every replica converges on the same stored state.
type Migration struct {
	kind     migrationKind
	from, to string
	// convert returns the value to read for the stored value b of field
	// to (renamed: b came from a renamed field), and whether it changed.
	convert func(b []byte, renamed bool) ([]byte, bool, error)
	toType  reflect.Type
}

type migrationKind uint8

const (
	migRename migrationKind = iota + 1
	migConvert
	migDrop
)

// RenameField declares that field from is now called to (a field the
// struct declares). A record reads to from whichever of the two names was
// written last, so edits made by replicas still on the earlier version
// are seen; Put writes the new name and leaves the old one as it is.
func RenameField(from, to string) Migration {
	return Migration{kind: migRename, from: from, to: to}
}

// DropField declares that field name is no longer used. Reads ignore it,
// as they do any field the struct does not declare, and the next Put of
// a record unsets it, if it is a register.
func DropField(name string) Migration { return Migration{kind: migDrop, from: name} }

// ConvertField declares that field's type changed from From to To (the
// struct field's type): a stored value that does not decode as To but
// does as From is read as fn of it, and written so on the next Put. A
// value that decodes as both is taken as a To, so a change within one
// msgpack type (a unit change of a number, say) cannot be told from the
// values: declare it as a rename to a new field name plus a ConvertField
// of the new name, and every value read from the old name is converted.
// If fn fails, the record cannot be read: reads report its id (see
// [RecordErrors]).
func ConvertField[From, To any](field string, fn func(From) (To, error)) Migration {
	return Migration{kind: migConvert, to: field, toType: reflect.TypeFor[To](),
		convert: func(b []byte, renamed bool) ([]byte, bool, error) {
			if !renamed {
				var t To
				if msgpack.Unmarshal(b, &t) == nil {
					return b, false, nil
				}
			}
			var f From
			if err := msgpack.Unmarshal(b, &f); err != nil {
				if renamed {
					return b, false, nil // not an old value: read it as it is
				}
				return nil, false, fmt.Errorf("field %q holds neither a %v nor a %v: %w", field, reflect.TypeFor[From](), reflect.TypeFor[To](), err)
			}
			t, err := fn(f)
			if err != nil {
				return nil, false, fmt.Errorf("convert field %q: %w", field, err)
			}
			enc, err := encodeValue(t)
			return enc, err == nil, err
		}}
}

// Migrate declares the migrations of the collection's records, applied
// in the order given (a rename before a conversion of its new name).
// Call it once, before the collection is used. It returns ErrSchema if a
// migration does not fit the struct: a rename or conversion to a field it
// does not declare, a conversion to another type than the field's, a
// drop of a field it declares.
func (c *Collection[T]) Migrate(ms ...Migration) error {
	s := c.schema
	for _, m := range ms {
		switch m.kind {
		case migRename, migConvert:
			i, ok := s.byName[m.to]
			if !ok {
				return fmt.Errorf("%w: migration of %s: %w", ErrSchema, c.name, s.fieldError(m.to))
			}
			if ft := s.typ.FieldByIndex(s.fields[i].index).Type; m.kind == migConvert && ft != m.toType {
				return fmt.Errorf("%w: migration of %s: field %q is a %v, not %v", ErrSchema, c.name, m.to, ft, m.toType)
			}
			if m.kind == migRename && (m.from == "" || m.from == m.to) {
				return fmt.Errorf("%w: migration of %s: rename of %q to %q", ErrSchema, c.name, m.from, m.to)
			}
		case migDrop:
			if _, ok := s.byName[m.from]; ok || m.from == "" {
				return fmt.Errorf("%w: migration of %s: drop of declared field %q", ErrSchema, c.name, m.from)
			}
		default:
			return fmt.Errorf("%w: migration of %s: empty Migration", ErrSchema, c.name)
		}
	}
	ms = slices.Clone(ms)
	c.migrations.Store(&ms)
	return nil
}

// migratedFields returns the visible fields of st as the collection's
// migrations read them, encoded as one msgpack map.
func (c *Collection[T]) migratedFields(st *crdt.Record) ([]byte, error) {
	fields := st.Visible()
	ms := c.migrations.Load()
	if ms == nil {
		b := mp.AppendMapHeader(nil, len(fields))
		for _, f := range fields {
			b = mp.AppendString(b, f.Name)
			b = append(b, f.Value...)
		}
		return b, nil
	}
	vals := make(map[string][]byte, len(fields))
	for _, f := range fields {
		vals[f.Name] = f.Value
	}
	renamed := map[string]bool{}
	for _, m := range *ms {
		switch m.kind {
		case migRename:
			if cmpLatest(st, m.from, m.to) > 0 {
				renamed[m.to] = true
				if v, ok := vals[m.from]; ok {
					vals[m.to] = v
				} else {
					delete(vals, m.to)
				}
			}
			delete(vals, m.from)
		case migDrop:
			delete(vals, m.from)
		case migConvert:
			if v, ok := vals[m.to]; ok {
				nv, _, err := m.convert(v, renamed[m.to])
				if err != nil {
					return nil, err
				}
				vals[m.to] = nv
			}
		}
	}
	b := mp.AppendMapHeader(nil, len(vals))
	for _, name := range slices.Sorted(maps.Keys(vals)) {
		b = mp.AppendString(b, name)
		b = append(b, vals[name]...)
	}
	return b, nil
}

// cmpLatest compares the latest writes of fields a and b of st, by
// version (an unwritten field is earliest).
func cmpLatest(st *crdt.Record, a, b string) int {
	return latestWrite(st, a).Compare(latestWrite(st, b))
}

// latestWrite returns the version of the latest write of field name in
// st, the zero Version if there is none at the current causal length.
func latestWrite(st *crdt.Record, name string) crdt.Version {
	var best crdt.Version
	for i := range st.Fields {
		if f := &st.Fields[i]; f.Name == name && f.At.CL == st.CL && f.At.Compare(best) > 0 {
			best = f.At
		}
	}
	return best
}

// dropChanges returns the changes that unset the dropped register fields
// st still shows.
func (c *Collection[T]) dropChanges(st *crdt.Record) []crdt.Change {
	ms := c.migrations.Load()
	if ms == nil || !st.Exists() {
		return nil
	}
	var out []crdt.Change
	for _, m := range *ms {
		if v, ok := st.Get(m.from); m.kind == migDrop && ok && v.Kind == crdt.KindRegister {
			out = append(out, crdt.Change{Name: m.from, Type: crdt.Unset})
		}
	}
	return out
}

// RecordErrors reports the records a read could not decode into the
// collection's struct (their stored fields do not fit it, or a migration
// failed); the read returns the others. It wraps each record's error,
// which wraps ErrSchema.
type RecordErrors struct {
	Namespace, Collection string
	// IDs are the records' ids, in the order the read met them.
	IDs  []string
	Errs []error
}

func (e *RecordErrors) Error() string {
	return fmt.Sprintf("converge: %d record(s) of %s/%s could not be read: %s; first: %v",
		len(e.IDs), e.Namespace, e.Collection, strings.Join(e.IDs, ", "), e.Errs[0])
}

// Unwrap returns the records' errors.
func (e *RecordErrors) Unwrap() []error { return e.Errs }

// add records the error of record id.
func (e *RecordErrors) add(id string, err error) {
	e.IDs = append(e.IDs, id)
	e.Errs = append(e.Errs, err)
}

// orNil returns e, or nil if it holds no error.
func (e *RecordErrors) orNil() error {
	if e == nil || len(e.IDs) == 0 {
		return nil
	}
	return e
}

// MigrateStored writes every record of namespace ns as the collection's
// migrations read it, as its next Put would (renamed and converted fields
// under their new names and types, dropped registers unset), so that
// filters, orderings and indexes, which see stored values, see the
// migrated ones. It writes one transaction per record that needs it and
// returns how many it wrote. The records it cannot read are reported by
// a *RecordErrors; it writes the others.
func (c *Collection[T]) MigrateStored(ctx context.Context, ns string) (int, error) {
	var ids []string
	for e, err := range c.db.log.Records(ctx, ns, c.name) {
		if err != nil {
			return 0, fmt.Errorf("converge: migrate %s/%s: %w", ns, c.name, err)
		}
		if e.State.Exists() {
			ids = append(ids, e.Key)
		}
	}
	written := 0
	bad := &RecordErrors{Namespace: ns, Collection: c.name}
	for _, id := range ids {
		var wrote bool
		err := c.db.Update(ctx, ns, func(tx *Tx) error {
			ct := c.Tx(tx)
			v, err := ct.Get(id)
			if err != nil {
				return err
			}
			meta := reflect.ValueOf(&v).Elem().FieldByIndex(c.schema.meta)
			before := meta.Interface().(Meta).Version
			if _, err := ct.Put(&v); err != nil {
				return err
			}
			wrote = meta.Interface().(Meta).Version != before
			return nil
		})
		switch {
		case errors.Is(err, ErrSchema):
			bad.add(id, err)
		case errors.Is(err, ErrNotFound): // deleted meanwhile
		case err != nil:
			return written, err
		case wrote:
			written++
		}
	}
	return written, bad.orNil()
}
