package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"unsafe"

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
//
// Values are embedded as the msgpack values they are. Integers use their
// smallest form, so an op has exactly one encoding.

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
		b = appendFieldOp(b, &op.Fields[i])
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

func appendFieldOp(b []byte, f *FieldOp) []byte {
	n := 3
	switch f.Type {
	case Assign, Remove, Count:
		n = 4
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
	default:
		b = appendValue(b, f.Value)
	}
	return b
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
		if err = d.fieldOp(&op.Fields[i]); err != nil {
			return
		}
	}
	return op, nil
}

func (d *decoder) fieldOp(f *FieldOp) (err error) {
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
	case Add, WriteMax, WriteMin:
	default:
		return fmt.Errorf("%w: field %q: unknown op type %d", ErrInvalidOp, f.Name, t)
	}
	if n != want {
		return fmt.Errorf("%w: field %q: %d elements, want %d", ErrInvalidOp, f.Name, n, want)
	}
	switch f.Type {
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
