package converge

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/convergedb/converge/crdt"
)

// Metadata fields name a record's metadata in filters, orderings and
// indexes as if they were fields (their values are the record's [Meta]).
// Names starting with "$" are reserved for them: no struct field may
// take one (NewCollection returns ErrSchema).
const (
	// CreatedField is the time of the record's first write since it was
	// (re-)created (Meta.Created), a time.Time to the millisecond.
	CreatedField = crdt.FieldCreated
	// UpdatedField is the time of its latest write (Meta.Updated), a
	// time.Time to the millisecond.
	UpdatedField = crdt.FieldUpdated
	// OriginField is the replica that created it (Meta.Origin), a string.
	OriginField = crdt.FieldOrigin
	// UpdatedByField is the replica that wrote it last (Meta.UpdatedBy),
	// a string.
	UpdatedByField = crdt.FieldUpdatedBy
	// VersionField is the count of changes this replica applied to it
	// (Meta.Version), a uint64.
	VersionField = crdt.FieldVersion
)

// metaFieldTypes are the Go types of the metadata fields' values.
var metaFieldTypes = map[string]reflect.Type{
	CreatedField:   reflect.TypeFor[time.Time](),
	UpdatedField:   reflect.TypeFor[time.Time](),
	OriginField:    reflect.TypeFor[string](),
	UpdatedByField: reflect.TypeFor[string](),
	VersionField:   reflect.TypeFor[uint64](),
}

// FieldError is the error of a field name the collection does not have.
// It wraps ErrField.
type FieldError struct {
	Collection string
	Field      string
	// Suggest is the field the name probably meant ("" if none): the
	// msgpack name of a Go field name, or a name differing only in case
	// or by a typo.
	Suggest string
	// Valid are the names the collection has: the id, the declared
	// fields in declaration order, then the metadata fields.
	Valid []string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unknown field %q in collection %s", e.Field, e.Collection)
	if e.Suggest != "" {
		fmt.Fprintf(&b, "; did you mean %q?", e.Suggest)
	}
	b.WriteString(" valid: ")
	b.WriteString(strings.Join(e.Valid, ", "))
	return b.String()
}

// Unwrap returns ErrField.
func (e *FieldError) Unwrap() error { return ErrField }

// fieldError returns the error of an unknown field name.
func (s *schema) fieldError(name string) *FieldError {
	valid := []string{IDField}
	for _, sf := range s.fields {
		valid = append(valid, sf.name)
	}
	valid = append(valid, CreatedField, UpdatedField, OriginField, UpdatedByField, VersionField)
	return &FieldError{Collection: s.coll, Field: name, Suggest: s.suggest(name, valid), Valid: valid}
}

// suggest returns the field name probably meant by name: the msgpack name
// of the Go field called name, else the one name matches ignoring case,
// else the only one within two edits of it.
func (s *schema) suggest(name string, valid []string) string {
	if f, ok := s.typ.FieldByName(name); ok && len(f.Index) == 1 {
		if slices.Equal(f.Index, s.id) {
			return IDField
		}
		for _, sf := range s.fields {
			if slices.Equal(sf.index, f.Index) {
				return sf.name
			}
		}
	}
	var near []string
	for _, v := range valid {
		if strings.EqualFold(v, name) {
			return v
		}
		if editDistance(v, name) <= 2 {
			near = append(near, v)
		}
	}
	if len(near) == 1 {
		return near[0]
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Field names a field of collection struct T whose Go type is V, chosen
// by a function the compiler checks, so a renamed or mistyped field is a
// build error rather than a query that fails when it runs:
//
//	var taskTitle = converge.FieldOf(func(t *Task) *string { return &t.Title })
//
//	tasks.Find(ctx, ns, converge.Where(taskTitle.Eq("milk")).OrderBy(taskTitle.Name()))
//
// Its filters and updates take values of type V. Declare it once, at
// package level: FieldOf inspects T's layout.
type Field[T, V any] struct {
	name string
	err  error
}

// FieldOf returns the Field that sel points to: sel must return the
// address of a field of the *T it is given (the id field, or a field the
// collection declares; not one tagged `msgpack:"-"`). If it does not,
// the Field's filters and updates fail with ErrField when used, and
// [Field.Err] says why.
func FieldOf[T, V any](sel func(*T) *V) Field[T, V] {
	var zero T
	s, err := newSchema(reflect.TypeFor[T]())
	if err != nil {
		return Field[T, V]{err: err}
	}
	rv := reflect.ValueOf(&zero).Elem()
	p := sel(&zero)
	if p == nil {
		return Field[T, V]{err: fmt.Errorf("%w: the selector of a field of %v returned nil", ErrField, s.typ)}
	}
	at, vt := reflect.ValueOf(p).Pointer(), reflect.TypeFor[V]()
	if f := rv.FieldByIndex(s.id); f.Addr().Pointer() == at && f.Type() == vt {
		return Field[T, V]{name: IDField}
	}
	for _, sf := range s.fields {
		if f := rv.FieldByIndex(sf.index); f.Addr().Pointer() == at && f.Type() == vt {
			return Field[T, V]{name: sf.name}
		}
	}
	return Field[T, V]{err: fmt.Errorf("%w: the selector does not point to a declared field of %v of type %v", ErrField, s.typ, vt)}
}

// Name returns the field's name ("" if FieldOf failed).
func (f Field[T, V]) Name() string { return f.name }

// Err returns why FieldOf failed, nil if it did not.
func (f Field[T, V]) Err() error { return f.err }

func (f Field[T, V]) cond(c Filter) Filter {
	c.err = f.err
	return c
}

// Eq is [Eq] on the field.
func (f Field[T, V]) Eq(v V) Filter { return f.cond(Eq(f.name, v)) }

// Ne is [Ne] on the field.
func (f Field[T, V]) Ne(v V) Filter { return f.cond(Ne(f.name, v)) }

// Gt is [Gt] on the field.
func (f Field[T, V]) Gt(v V) Filter { return f.cond(Gt(f.name, v)) }

// Gte is [Gte] on the field.
func (f Field[T, V]) Gte(v V) Filter { return f.cond(Gte(f.name, v)) }

// Lt is [Lt] on the field.
func (f Field[T, V]) Lt(v V) Filter { return f.cond(Lt(f.name, v)) }

// Lte is [Lte] on the field.
func (f Field[T, V]) Lte(v V) Filter { return f.cond(Lte(f.name, v)) }

// Between is [Between] on the field.
func (f Field[T, V]) Between(lo, hi V) Filter { return f.cond(Between(f.name, lo, hi)) }

// In is [In] on the field.
func (f Field[T, V]) In(vs ...V) Filter {
	anys := make([]any, len(vs))
	for i, v := range vs {
		anys[i] = v
	}
	return f.cond(In(f.name, anys...))
}

// Contains is [Contains] on the field: v is an element of a set or list
// field, or a substring of a string field.
func (f Field[T, V]) Contains(v any) Filter { return f.cond(Contains(f.name, v)) }

// Set is the update [Set] of the field.
func (f Field[T, V]) Set(v V) FieldUpdate {
	u := Set(f.name, v)
	u.err = f.err
	return u
}
