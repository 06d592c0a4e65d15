package converge

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/convergedb/converge/crdt"
	"github.com/vmihailenco/msgpack/v5"
)

// schema is what a collection knows of its struct type.
type schema struct {
	coll   string // the collection's name, for errors
	typ    reflect.Type
	id     []int // index of the id field
	meta   []int // index of the Meta field
	fields []schemaField
	byName map[string]int
}

type schemaField struct {
	name  string
	kind  crdt.Kind
	index []int
	// plain: a bool, number or string type without methods, which the
	// encoder writes from the field itself (no boxing) exactly as it
	// would a copy.
	plain bool
}

var metaType = reflect.TypeFor[Meta]()

// newSchema reads the struct type t: msgpack names, converge kinds, the
// id field and the Meta field.
func newSchema(t reflect.Type) (*schema, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %v is not a struct", ErrSchema, t)
	}
	s := &schema{typ: t, byName: make(map[string]int)}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type == metaType {
			if err := s.setMeta(f); err != nil {
				return nil, err
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("converge")
		if tag == "id" || (s.id == nil && f.Name == "ID" && tag == "") {
			if f.Type.Kind() != reflect.String {
				return nil, fmt.Errorf("%w: %v: id field %s must be a string", ErrSchema, t, f.Name)
			}
			s.id = f.Index
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.HasPrefix(name, crdt.MetaPrefix) {
			return nil, fmt.Errorf("%w: %v: field %s: names starting with %q are reserved for metadata fields", ErrSchema, t, f.Name, crdt.MetaPrefix)
		}
		if f.Anonymous {
			return nil, fmt.Errorf("%w: %v: embedded field %s is not supported", ErrSchema, t, f.Name)
		}
		sf := schemaField{name: name, index: f.Index, kind: crdt.KindRegister, plain: isPlain(f.Type)}
		switch tag {
		case "":
		case "set":
			if k := f.Type.Kind(); k != reflect.Slice && k != reflect.Array {
				return nil, fmt.Errorf("%w: %v: set field %s must be a slice or array", ErrSchema, t, f.Name)
			}
			sf.kind = crdt.KindSet
		case "counter":
			if !f.Type.ConvertibleTo(reflect.TypeFor[int64]()) || f.Type.Kind() < reflect.Int || f.Type.Kind() > reflect.Int64 {
				return nil, fmt.Errorf("%w: %v: counter field %s must be a signed integer", ErrSchema, t, f.Name)
			}
			sf.kind = crdt.KindCounter
		case "max":
			sf.kind = crdt.KindMax
		case "min":
			sf.kind = crdt.KindMin
		default:
			return nil, fmt.Errorf("%w: %v: field %s: unknown converge tag %q", ErrSchema, t, f.Name, tag)
		}
		if _, dup := s.byName[name]; dup {
			return nil, fmt.Errorf("%w: %v: two fields named %q", ErrSchema, t, name)
		}
		s.byName[name] = len(s.fields)
		s.fields = append(s.fields, sf)
	}
	if s.id == nil {
		return nil, fmt.Errorf("%w: %v has no id field (a string field tagged `converge:\"id\"` or named ID)", ErrSchema, t)
	}
	if s.meta == nil {
		return nil, fmt.Errorf("%w: %v has no Meta field: add `Meta converge.Meta` (it carries the version a read returned, "+
			"so that Put writes only what the app changed since)", ErrSchema, t)
	}
	return s, nil
}

// setMeta records f, a field of type Meta, as the struct's Meta field. An
// embedded Meta must be tagged `msgpack:"-"`: msgpack would otherwise
// inline its fields (ID, Created, Updated, …) among the struct's own,
// depending on their order, where they clash with the struct's id field
// and take stored fields of those names.
func (s *schema) setMeta(f reflect.StructField) error {
	tag, _, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
	switch {
	case s.meta != nil:
		return fmt.Errorf("%w: %v has two Meta fields", ErrSchema, s.typ)
	case !f.IsExported():
		return fmt.Errorf("%w: %v: Meta field %s must be exported", ErrSchema, s.typ, f.Name)
	case f.Anonymous && tag != "-":
		return fmt.Errorf("%w: %v: embedded converge.Meta must be tagged `msgpack:\"-\"` (or use a named field `Meta converge.Meta`)", ErrSchema, s.typ)
	}
	s.meta = f.Index
	return nil
}

// copyRecord sets the fields of dst that hold a record (the id, the Meta
// field and the declared fields) to those of src, both values of the
// struct type; other fields of dst are left as they are.
func (s *schema) copyRecord(dst, src reflect.Value) {
	dst.FieldByIndex(s.id).Set(src.FieldByIndex(s.id))
	dst.FieldByIndex(s.meta).Set(src.FieldByIndex(s.meta))
	for _, sf := range s.fields {
		dst.FieldByIndex(sf.index).Set(src.FieldByIndex(sf.index))
	}
}

// encoderPool holds msgpack encoders set up for canonical values: compact
// integers (so 5 encodes as it does anywhere in Converge) and sorted map
// keys (so equal maps encode equally).
var encoderPool = sync.Pool{New: func() any {
	e := &valueEncoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.UseCompactInts(true)
	e.enc.SetSortMapKeys(true)
	return e
}}

type valueEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

// isPlain reports whether t is a bool, number or string type with no
// methods: no custom encoding, so msgpack encodes a field of type t from
// the field (reflect) exactly as from a copy (an interface).
func isPlain(t reflect.Type) bool {
	k := t.Kind()
	if k != reflect.String && (k < reflect.Bool || k > reflect.Float64) {
		return false
	}
	return reflect.PointerTo(t).NumMethod() == 0
}

// encodeField appends the canonical msgpack encoding of field value v to
// *arena and returns it, its capacity capped so that later appends to the
// arena leave it alone: the values of one write share an allocation.
func encodeField(arena *[]byte, sf schemaField, v reflect.Value) ([]byte, error) {
	e := encoderPool.Get().(*valueEncoder)
	defer encoderPool.Put(e)
	e.buf.Reset()
	var err error
	if sf.plain {
		err = e.enc.EncodeValue(v)
	} else {
		err = e.enc.Encode(v.Interface())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: encode %v: %w", ErrSchema, v.Type(), err)
	}
	start := len(*arena)
	*arena = append(*arena, e.buf.Bytes()...)
	return (*arena)[start:len(*arena):len(*arena)], nil
}

// encodeValue returns the canonical msgpack encoding of v.
func encodeValue(v any) ([]byte, error) {
	e := encoderPool.Get().(*valueEncoder)
	defer encoderPool.Put(e)
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		return nil, fmt.Errorf("%w: encode %T: %w", ErrSchema, v, err)
	}
	return bytes.Clone(e.buf.Bytes()), nil
}

// encodeElems returns the distinct encoded elements of a slice or array,
// in crdt.OrderValues order.
func encodeElems(v reflect.Value) ([][]byte, error) {
	seen := make(map[string]bool, v.Len())
	out := make([][]byte, 0, v.Len())
	for i := range v.Len() {
		b, err := encodeValue(v.Index(i).Interface())
		if err != nil {
			return nil, err
		}
		if !seen[string(b)] {
			seen[string(b)] = true
			out = append(out, b)
		}
	}
	slices.SortFunc(out, crdt.OrderValues)
	return out, nil
}
