package converge

import (
	"encoding"
	"fmt"
	"reflect"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/query"
	"github.com/vmihailenco/msgpack/v5"
)

// The Go types a query can order. A field orders (OrderBy, and the range
// filters Gt, Gte, Lt, Lte, Between) when its values are ordered in
// msgpack as Go orders them (crdt.CompareValues): integers of every width
// and floats (numerically; NaN first as cmp.Compare has it, -0 equal to
// 0), strings and byte slices or arrays (by bytes), bools (false first)
// and time.Time (by instant), or a pointer to one of these (nil is
// missing, which sorts first). Every other type is refused when the query
// is built (ErrQuery): structs, maps, other slices and arrays (a set
// field among them), interfaces, and any type that encodes itself
// (msgpack.CustomEncoder, msgpack.Marshaler, encoding.BinaryMarshaler,
// encoding.TextMarshaler), whose encoding need not follow its Go order.

// valueClass is the class of the msgpack values a Go type encodes to, as
// crdt classifies them; classOther for every type that does not order.
type valueClass uint8

const (
	classOther valueClass = iota
	classNumber
	classString
	classBool
	classBinary
	classTime
)

var (
	timeType        = reflect.TypeFor[time.Time]()
	selfEncodingTyp = []reflect.Type{
		reflect.TypeFor[msgpack.CustomEncoder](),
		reflect.TypeFor[msgpack.Marshaler](),
		reflect.TypeFor[encoding.BinaryMarshaler](),
		reflect.TypeFor[encoding.TextMarshaler](),
	}
)

// classOfType returns the class of the values of Go type t (a pointer:
// of what it points to).
func classOfType(t reflect.Type) valueClass {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return classTime // msgpack's timestamp extension, registered for time.Time
	}
	if encodesItself(t) {
		return classOther
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return classNumber
	case reflect.String:
		return classString
	case reflect.Bool:
		return classBool
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return classBinary
		}
	}
	return classOther
}

// encodesItself reports whether msgpack encodes t (or *t, for an
// addressable field) through a method of its own.
func encodesItself(t reflect.Type) bool {
	for _, i := range selfEncodingTyp {
		if t.Implements(i) || reflect.PointerTo(t).Implements(i) {
			return true
		}
	}
	return false
}

// isSet reports whether field name is a set field.
func (s *schema) isSet(name string) bool {
	i, ok := s.byName[name]
	return ok && name != IDField && s.fields[i].kind == crdt.KindSet
}

// checkOrderable returns an ErrQuery error unless a query can order by
// field name (see the list above); the id always can.
func (s *schema) checkOrderable(name string) error {
	ft, err := s.fieldType(name)
	if err != nil {
		return err
	}
	if s.isSet(name) {
		return fmt.Errorf("%w: field %q is a set, which has no order", ErrQuery, name)
	}
	if classOfType(ft) == classOther {
		return fmt.Errorf("%w: field %q of type %v cannot be ordered", ErrQuery, name, ft)
	}
	return nil
}

// checkComparable reports whether value v can be compared with a field of
// type ft under op.
func checkComparable(field string, ft reflect.Type, op query.Op, v any) error {
	if v == nil {
		return fmt.Errorf("%w: field %q compared with nil", ErrQuery, field)
	}
	vt := reflect.TypeOf(v)
	target := ft
	if k := ft.Kind(); (k == reflect.Slice || k == reflect.Array) && ft.Elem().Kind() != reflect.Uint8 {
		if op != query.Contains && op != query.Eq && op != query.Ne {
			return fmt.Errorf("%w: field %q is a list: use Contains", ErrQuery, field)
		}
		if op == query.Contains {
			target = ft.Elem()
		}
	}
	fc, vc := classOfType(target), classOfType(vt)
	switch op {
	case query.StartsWith, query.Contains:
		if op == query.StartsWith && fc != classString {
			return fmt.Errorf("%w: StartsWith on field %q of type %v", ErrQuery, field, ft)
		}
		if target == ft && fc != classString && op == query.Contains {
			return fmt.Errorf("%w: Contains on field %q of type %v", ErrQuery, field, ft)
		}
	case query.Gt, query.Gte, query.Lt, query.Lte, query.Between:
		if fc == classOther {
			return fmt.Errorf("%w: field %q of type %v cannot be ordered", ErrQuery, field, ft)
		}
	}
	if fc != vc && !(fc == classOther && target == ft && vt.AssignableTo(ft)) {
		return fmt.Errorf("%w: field %q of type %v cannot be compared with %T", ErrQuery, field, target, v)
	}
	return nil
}
