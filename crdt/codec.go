package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"unsafe"

	"github.com/convergedb/converge/crdt/seq"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
)

// OpCodecVersion is the version of the op encoding written by [AppendOp].
const OpCodecVersion = 1

// ErrUnknownVersion is returned (wrapped) by the decoders for an encoding
// version this build does not know.
var ErrUnknownVersion = errors.New("crdt: unknown encoding version")

// # Encoding
//
// An op is one msgpack array:
//
//	[ version=1, namespace str, collection str, key str,
//	  origin bin(16), seq uint, hlc uint, cl uint, flags uint,
//	  [ field, ... ] ]
//
// flags bit 0 is TxEnd and bit 1 is Resolution; other bits must be clear.
// Each field is an array whose first two elements are
// the name (str) and the op type (uint):
//
//	Assign:   [name, 1, value|nil, seen uint]
//	Add:      [name, 2, value]
//	Remove:   [name, 3, value, [origin bin(16), seq uint, ...]]
//	Count:    [name, 4, p uint, n uint]
//	WriteMax: [name, 5, value]
//	WriteMin: [name, 6, value]
//	TextInsert: [name, 7, clock uint, left, right, str]
//	TextDelete: [name, 8, spans]
//	ListInsert: [name, 9, clock uint, left, right, [value, ...]]
//	ListDelete: [name, 10, spans]
//
//	left, right: nil (the start, the end) | [clock] (an element of the op's
//	             origin) | [origin bin(16), clock] (of another replica)
//	spans:       [origin bin(16) | nil (the op's origin), clock uint, n uint, ...]
//
// Values are embedded as the msgpack values they are. Integers use their
// smallest form, and an element of the op's origin is always written in
// the short form, so an op has exactly one encoding. The text and list
// field ops (7 to 10) came after the others without a new version: ops
// without them are encoded as they always were, and a decoder from before
// refuses an op with them as invalid (an unknown op type).

// Op flags, in the encoding's flags element.
const (
	flagTxEnd      = 1 << 0
	flagResolution = 1 << 1
)

// AppendOp appends the encoding of op to b. It does not validate op.
func AppendOp(b []byte, op *Op) []byte {
	b = mp.AppendArrayHeader(b, 10)
	b = mp.AppendUint(b, OpCodecVersion)
	b = mp.AppendString(b, op.Namespace)
	b = mp.AppendString(b, op.Collection)
	b = mp.AppendString(b, op.Key)
	b = mp.AppendBytes(b, op.Dot.Origin[:])
	b = mp.AppendUint(b, op.Dot.Seq)
	b = mp.AppendUint(b, uint64(op.HLC))
	b = mp.AppendUint(b, op.CL)
	var flags uint64
	if op.TxEnd {
		flags |= flagTxEnd
	}
	if op.Resolution {
		flags |= flagResolution
	}
	b = mp.AppendUint(b, flags)
	b = mp.AppendArrayHeader(b, len(op.Fields))
	for i := range op.Fields {
		b = appendFieldOp(b, &op.Fields[i], op.Dot.Origin)
	}
	return b
}

// EncodeOp returns the encoding of op.
func EncodeOp(op *Op) []byte { return AppendOp(make([]byte, 0, 64+32*len(op.Fields)), op) }

func appendValue(b, v []byte) []byte {
	if len(v) == 0 {
		return mp.AppendNil(b)
	}
	return append(b, v...)
}

func appendFieldOp(b []byte, f *FieldOp, origin ReplicaID) []byte {
	n := 3
	switch f.Type {
	case Assign, Remove, Count:
		n = 4
	case TextInsert, ListInsert:
		n = 6
	}
	b = mp.AppendArrayHeader(b, n)
	b = mp.AppendString(b, f.Name)
	b = mp.AppendUint(b, uint64(f.Type))
	switch f.Type {
	case Assign:
		b = appendValue(b, f.Value)
		b = mp.AppendUint(b, uint64(f.Seen))
	case Remove:
		b = appendValue(b, f.Value)
		b = appendDots(b, f.Dots)
	case Count:
		b = mp.AppendUint(b, f.P)
		b = mp.AppendUint(b, f.N)
	case TextInsert, ListInsert:
		b = mp.AppendUint(b, f.Clock)
		b = appendElemID(b, f.Left, origin)
		b = appendElemID(b, f.Right, origin)
		b = appendValue(b, f.Value)
	case TextDelete, ListDelete:
		b = mp.AppendArrayHeader(b, 3*len(f.Spans))
		for _, sp := range f.Spans {
			if ReplicaID(sp.ID.Replica) == origin {
				b = mp.AppendNil(b)
			} else {
				b = mp.AppendBytes(b, sp.ID.Replica[:])
			}
			b = mp.AppendUint(b, sp.ID.Clock)
			b = mp.AppendUint(b, sp.N)
		}
	default:
		b = appendValue(b, f.Value)
	}
	return b
}

// appendElemID appends an insert's origin: nil, [clock] for an element of
// the op's origin, or [replica, clock].
func appendElemID(b []byte, id ElemID, origin ReplicaID) []byte {
	switch {
	case id.IsZero():
		return mp.AppendNil(b)
	case ReplicaID(id.Replica) == origin:
		b = mp.AppendArrayHeader(b, 1)
	default:
		b = mp.AppendArrayHeader(b, 2)
		b = mp.AppendBytes(b, id.Replica[:])
	}
	return mp.AppendUint(b, id.Clock)
}

func appendDots(b []byte, dots []Dot) []byte {
	b = mp.AppendArrayHeader(b, 2*len(dots))
	for _, d := range dots {
		b = mp.AppendBytes(b, d.Origin[:])
		b = mp.AppendUint(b, d.Seq)
	}
	return b
}

// DecodeError describes bytes that could not be decoded. It wraps
// [ErrInvalidOp] or [ErrUnknownVersion], and the cause.
type DecodeError struct {
	What   string // "op", "record", ...
	Offset int    // byte offset at which decoding failed
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("crdt: decode %s at byte %d: %v", e.What, e.Offset, e.Err)
}

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// decoder reads Converge encodings from a private copy of the input, so the
// strings and values it returns may alias that copy without further
// allocation: the copy is never written to.
type decoder struct {
	r   mp.Reader
	buf []byte
}

func newDecoder(b []byte) *decoder {
	d := &decoder{buf: bytes.Clone(b)}
	d.r.Reset(d.buf)
	return d
}

func (d *decoder) str() (string, error) {
	p, err := d.r.StringBytes()
	if err != nil || len(p) == 0 {
		return "", err
	}
	return unsafe.String(&p[0], len(p)), nil
}

func (d *decoder) replica() (ReplicaID, error) {
	p, err := d.r.Bytes()
	if err != nil {
		return ReplicaID{}, err
	}
	if len(p) != len(ReplicaID{}) {
		return ReplicaID{}, fmt.Errorf("%w: replica id of %d bytes", ErrInvalidOp, len(p))
	}
	return ReplicaID(p), nil
}

// value reads one raw value; nil reads as empty.
func (d *decoder) value() ([]byte, error) {
	if d.r.IsNil() {
		return nil, nil
	}
	return d.r.Raw()
}

func (d *decoder) fixedArray(want int) error {
	n, err := d.r.ArrayHeader()
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("%w: array of %d elements, want %d", ErrInvalidOp, n, want)
	}
	return nil
}

func (d *decoder) version() error {
	v, err := d.r.Uint()
	if err != nil {
		return err
	}
	if v != OpCodecVersion {
		return fmt.Errorf("%w: %d (this build reads %d)", ErrUnknownVersion, v, OpCodecVersion)
	}
	return nil
}

func (d *decoder) dots() ([]Dot, error) {
	n, err := d.r.ArrayHeader()
	if err != nil {
		return nil, err
	}
	if n%2 != 0 {
		return nil, fmt.Errorf("%w: odd dot list length %d", ErrInvalidOp, n)
	}
	dots := make([]Dot, n/2)
	for i := range dots {
		if dots[i].Origin, err = d.replica(); err != nil {
			return nil, err
		}
		if dots[i].Seq, err = d.r.Uint(); err != nil {
			return nil, err
		}
	}
	return dots, nil
}

// OpDot returns the dot of the encoded op b, reading only the elements
// before it and allocating nothing: for a reader that needs the dots of
// a page of ops without decoding them. It does not validate the op; bytes
// that do not start like an op are a [*DecodeError].
func OpDot(b []byte) (Dot, error) {
	d := decoder{}
	d.r.Reset(b)
	dot, err := d.dot()
	if err != nil {
		return Dot{}, &DecodeError{What: "op", Offset: d.r.Offset(), Err: fmt.Errorf("%w: %w", ErrInvalidOp, err)}
	}
	return dot, nil
}

// dot reads an op's elements up to its dot, without keeping the strings.
func (d *decoder) dot() (dot Dot, err error) {
	if err = d.fixedArray(10); err != nil {
		return
	}
	if err = d.version(); err != nil {
		return
	}
	for range 3 { // namespace, collection, key
		if _, err = d.r.StringBytes(); err != nil {
			return
		}
	}
	if dot.Origin, err = d.replica(); err != nil {
		return
	}
	dot.Seq, err = d.r.Uint()
	return
}

// DecodeOp decodes and validates one op. The result does not alias b.
// Malformed bytes, trailing bytes and invalid ops are a [*DecodeError]
// wrapping [ErrInvalidOp]; an unknown version wraps [ErrUnknownVersion].
func DecodeOp(b []byte) (Op, error) {
	op, err := DecodeOpUnchecked(b)
	if err != nil {
		return Op{}, err
	}
	if err := op.Validate(); err != nil {
		return Op{}, &DecodeError{What: "op", Offset: len(b), Err: err}
	}
	return op, nil
}

// DecodeOpUnchecked decodes one op's structure like [DecodeOp] but does
// not validate it: stores use it to keep an op that fails validation (a
// poison op) in quarantine under its dot. Never apply its result.
func DecodeOpUnchecked(b []byte) (Op, error) {
	if len(b) > MaxOpSize {
		return Op{}, &DecodeError{What: "op", Err: fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidOp, len(b), MaxOpSize)}
	}
	d := newDecoder(b)
	op, err := d.op()
	if err == nil && d.r.Len() != 0 {
		err = fmt.Errorf("%w: %d trailing bytes", ErrInvalidOp, d.r.Len())
	}
	if err != nil {
		if !errors.Is(err, ErrInvalidOp) && !errors.Is(err, ErrUnknownVersion) {
			err = fmt.Errorf("%w: %w", ErrInvalidOp, err)
		}
		return Op{}, &DecodeError{What: "op", Offset: d.r.Offset(), Err: err}
	}
	return op, nil
}

func (d *decoder) op() (op Op, err error) {
	if err = d.fixedArray(10); err != nil {
		return
	}
	if err = d.version(); err != nil {
		return
	}
	if op.Namespace, err = d.str(); err != nil {
		return
	}
	if op.Collection, err = d.str(); err != nil {
		return
	}
	if op.Key, err = d.str(); err != nil {
		return
	}
	if op.Dot.Origin, err = d.replica(); err != nil {
		return
	}
	if op.Dot.Seq, err = d.r.Uint(); err != nil {
		return
	}
	var u uint64
	if u, err = d.r.Uint(); err != nil {
		return
	}
	op.HLC = hlc.Timestamp(u)
	if op.CL, err = d.r.Uint(); err != nil {
		return
	}
	if u, err = d.r.Uint(); err != nil {
		return
	}
	if u&^(flagTxEnd|flagResolution) != 0 {
		err = fmt.Errorf("%w: unknown flags %#x", ErrInvalidOp, u)
		return
	}
	op.TxEnd = u&flagTxEnd != 0
	op.Resolution = u&flagResolution != 0
	n, err := d.r.ArrayHeader()
	if err != nil {
		return
	}
	if n > MaxFieldOps {
		err = fmt.Errorf("%w: %d field ops, limit %d", ErrInvalidOp, n, MaxFieldOps)
		return
	}
	if n > 0 {
		op.Fields = make([]FieldOp, n)
	}
	for i := range op.Fields {
		if err = d.fieldOp(&op.Fields[i], op.Dot.Origin); err != nil {
			return
		}
	}
	return op, nil
}

func (d *decoder) fieldOp(f *FieldOp, origin ReplicaID) (err error) {
	n, err := d.r.ArrayHeader()
	if err != nil {
		return err
	}
	if f.Name, err = d.str(); err != nil {
		return err
	}
	t, err := d.r.Uint()
	if err != nil {
		return err
	}
	f.Type = FieldOpType(t)
	want := 3
	switch f.Type {
	case Assign, Remove, Count:
		want = 4
	case Add, WriteMax, WriteMin, TextDelete, ListDelete:
	case TextInsert, ListInsert:
		want = 6
	default:
		return fmt.Errorf("%w: field %q: unknown op type %d", ErrInvalidOp, f.Name, t)
	}
	if n != want {
		return fmt.Errorf("%w: field %q: %d elements, want %d", ErrInvalidOp, f.Name, n, want)
	}
	switch f.Type {
	case TextInsert, ListInsert:
		return d.insertOp(f, origin)
	case TextDelete, ListDelete:
		f.Spans, err = d.spans(origin)
		return err
	case Count:
		if f.P, err = d.r.Uint(); err != nil {
			return err
		}
		f.N, err = d.r.Uint()
		return err
	}
	// Only a register reads nil as "no value": a set element, a max or a
	// min may be nil itself.
	if f.Type == Assign {
		f.Value, err = d.value()
	} else {
		f.Value, err = d.r.Raw()
	}
	if err != nil {
		return err
	}
	switch f.Type {
	case Assign:
		var u uint64
		u, err = d.r.Uint()
		f.Seen = hlc.Timestamp(u)
	case Remove:
		f.Dots, err = d.dots()
	}
	return err
}

func (d *decoder) insertOp(f *FieldOp, origin ReplicaID) (err error) {
	if f.Clock, err = d.r.Uint(); err != nil {
		return err
	}
	if f.Left, err = d.elemID(origin); err != nil {
		return err
	}
	if f.Right, err = d.elemID(origin); err != nil {
		return err
	}
	f.Value, err = d.r.Raw()
	return err
}

// elemID reads an insert's origin, refusing the long form for an element
// of the op's origin.
func (d *decoder) elemID(origin ReplicaID) (ElemID, error) {
	if d.r.IsNil() {
		return ElemID{}, nil
	}
	n, err := d.r.ArrayHeader()
	if err != nil {
		return ElemID{}, err
	}
	var id ElemID
	switch n {
	case 1:
		id.Replica = seq.Replica(origin)
	case 2:
		r, err := d.replica()
		if err != nil {
			return ElemID{}, err
		}
		if r == origin || r.IsZero() {
			return ElemID{}, fmt.Errorf("%w: element id in the long form for the op's origin or zero", ErrInvalidOp)
		}
		id.Replica = seq.Replica(r)
	default:
		return ElemID{}, fmt.Errorf("%w: element id of %d elements", ErrInvalidOp, n)
	}
	id.Clock, err = d.r.Uint()
	return id, err
}

// spans reads a delete's spans, refusing a written-out op origin.
func (d *decoder) spans(origin ReplicaID) ([]Span, error) {
	n, err := d.r.ArrayHeader()
	if err != nil {
		return nil, err
	}
	if n%3 != 0 {
		return nil, fmt.Errorf("%w: span list of %d items", ErrInvalidOp, n)
	}
	out := make([]Span, n/3)
	for i := range out {
		sp := &out[i]
		if d.r.IsNil() {
			sp.ID.Replica = seq.Replica(origin)
		} else {
			r, err := d.replica()
			if err != nil {
				return nil, err
			}
			if r == origin {
				return nil, fmt.Errorf("%w: span of the op's origin in the long form", ErrInvalidOp)
			}
			sp.ID.Replica = seq.Replica(r)
		}
		if sp.ID.Clock, err = d.r.Uint(); err != nil {
			return nil, err
		}
		if sp.N, err = d.r.Uint(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
