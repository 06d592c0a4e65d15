// Package mp holds the msgpack primitives of Converge's hand-written codecs:
// append-style encoders over []byte and a bounds-checked [Reader]. They write
// standard msgpack (https://github.com/msgpack/msgpack/blob/master/spec.md),
// always in the smallest form, so equal values encode to equal bytes.
//
// Reader never panics and never allocates more than its input can justify:
// a length prefix larger than the bytes left is an error before any
// allocation.
package mp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrMalformed is wrapped by every error a [Reader] returns.
var ErrMalformed = errors.New("malformed msgpack")

// AppendNil appends nil.
func AppendNil(b []byte) []byte { return append(b, 0xc0) }

// AppendBool appends a bool.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// AppendUint appends an unsigned integer in its smallest form.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// AppendInt appends a signed integer in its smallest form (non-negative
// values as unsigned, as most msgpack encoders do).
func AppendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return AppendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(int8(v)))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(int8(v)))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(int16(v)))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(int32(v)))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

// AppendFloat64 appends a float64.
func AppendFloat64(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(v))
}

// AppendString appends a str.
func AppendString(b []byte, s string) []byte {
	return append(AppendStringHeader(b, len(s)), s...)
}

// AppendStringHeader appends the header of a str of n bytes; the caller
// appends the bytes.
func AppendStringHeader(b []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
}

// AppendBytes appends a bin.
func AppendBytes(b []byte, v []byte) []byte {
	return append(AppendBytesHeader(b, len(v)), v...)
}

// AppendBytesHeader appends the header of a bin of n bytes; the caller
// appends the bytes.
func AppendBytesHeader(b []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
}

// AppendArrayHeader appends the header of an array of n elements.
func AppendArrayHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

// AppendMapHeader appends the header of a map of n pairs.
func AppendMapHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

// Reader decodes msgpack from a byte slice. Each method consumes one value
// and returns an error wrapping [ErrMalformed] when the next value is not of
// the wanted type or runs past the end; after an error the Reader's position
// is unspecified.
type Reader struct {
	b   []byte
	off int
}

// NewReader returns a Reader over b. Slices returned by the Reader alias b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset makes r read b from its start.
func (r *Reader) Reset(b []byte) { r.b, r.off = b, 0 }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) - r.off }

// Offset returns the number of bytes read so far.
func (r *Reader) Offset() int { return r.off }

func (r *Reader) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrMalformed, r.off, fmt.Sprintf(format, args...))
}

func (r *Reader) take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, r.errorf("need %d bytes, have %d", n, len(r.b)-r.off)
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p, nil
}

func (r *Reader) byte1() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.errorf("unexpected end of input")
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *Reader) uintN(n int) (uint64, error) {
	p, err := r.take(n)
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
	return binary.BigEndian.Uint64(p), nil
}

// Peek returns the next type byte without consuming it.
func (r *Reader) Peek() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.errorf("unexpected end of input")
	}
	return r.b[r.off], nil
}

// IsNil consumes a nil if one is next and reports whether it did.
func (r *Reader) IsNil() bool {
	if r.off < len(r.b) && r.b[r.off] == 0xc0 {
		r.off++
		return true
	}
	return false
}

// Bool reads a bool.
func (r *Reader) Bool() (bool, error) {
	c, err := r.byte1()
	if err != nil {
		return false, err
	}
	switch c {
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	}
	return false, r.errorf("type 0x%02x is not a bool", c)
}

// Uint reads a non-negative integer.
func (r *Reader) Uint() (uint64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return uint64(c), nil
	case c == 0xcc:
		return r.uintN(1)
	case c == 0xcd:
		return r.uintN(2)
	case c == 0xce:
		return r.uintN(4)
	case c == 0xcf:
		return r.uintN(8)
	case c >= 0xd0 && c <= 0xd3:
		r.off--
		v, err := r.Int()
		if err != nil {
			return 0, err
		}
		if v < 0 {
			return 0, r.errorf("negative integer %d where unsigned wanted", v)
		}
		return uint64(v), nil
	}
	return 0, r.errorf("type 0x%02x is not an unsigned integer", c)
}

// Int reads an integer that fits int64.
func (r *Reader) Int() (int64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c == 0xd0:
		v, err := r.uintN(1)
		return int64(int8(v)), err
	case c == 0xd1:
		v, err := r.uintN(2)
		return int64(int16(v)), err
	case c == 0xd2:
		v, err := r.uintN(4)
		return int64(int32(v)), err
	case c == 0xd3:
		v, err := r.uintN(8)
		return int64(v), err
	case c >= 0xcc && c <= 0xcf:
		r.off--
		v, err := r.Uint()
		if err != nil {
			return 0, err
		}
		if v > math.MaxInt64 {
			return 0, r.errorf("integer %d overflows int64", v)
		}
		return int64(v), nil
	}
	return 0, r.errorf("type 0x%02x is not an integer", c)
}

// Float64 reads a float32 or float64.
func (r *Reader) Float64() (float64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch c {
	case 0xca:
		v, err := r.uintN(4)
		return float64(math.Float32frombits(uint32(v))), err
	case 0xcb:
		v, err := r.uintN(8)
		return math.Float64frombits(v), err
	}
	return 0, r.errorf("type 0x%02x is not a float", c)
}

func (r *Reader) strLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9:
		n, err = r.uintN(1)
	case c == 0xda:
		n, err = r.uintN(2)
	case c == 0xdb:
		n, err = r.uintN(4)
	default:
		return 0, r.errorf("type 0x%02x is not a string", c)
	}
	return int(n), err
}

// String reads a str. It allocates the result.
func (r *Reader) String() (string, error) {
	p, err := r.StringBytes()
	return string(p), err
}

// StringBytes reads a str and returns its bytes, aliasing the input.
func (r *Reader) StringBytes() ([]byte, error) {
	n, err := r.strLen()
	if err != nil {
		return nil, err
	}
	return r.take(n)
}

// Bytes reads a bin and returns its bytes, aliasing the input.
func (r *Reader) Bytes() ([]byte, error) {
	c, err := r.byte1()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch c {
	case 0xc4:
		n, err = r.uintN(1)
	case 0xc5:
		n, err = r.uintN(2)
	case 0xc6:
		n, err = r.uintN(4)
	default:
		return nil, r.errorf("type 0x%02x is not bin", c)
	}
	if err != nil {
		return nil, err
	}
	return r.take(int(n))
}

// ArrayHeader reads an array header. Since each element takes at least one
// byte, a length beyond the bytes left is refused here, which bounds what a
// caller allocates for it.
func (r *Reader) ArrayHeader() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x90:
		n = uint64(c & 0x0f)
	case c == 0xdc:
		n, err = r.uintN(2)
	case c == 0xdd:
		n, err = r.uintN(4)
	default:
		return 0, r.errorf("type 0x%02x is not an array", c)
	}
	if err != nil {
		return 0, err
	}
	if n > uint64(r.Len()) {
		return 0, r.errorf("array of %d elements in %d bytes", n, r.Len())
	}
	return int(n), nil
}

// MapHeader reads a map header, with the same bound as ArrayHeader.
func (r *Reader) MapHeader() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x80:
		n = uint64(c & 0x0f)
	case c == 0xde:
		n, err = r.uintN(2)
	case c == 0xdf:
		n, err = r.uintN(4)
	default:
		return 0, r.errorf("type 0x%02x is not a map", c)
	}
	if err != nil {
		return 0, err
	}
	if 2*n > uint64(r.Len()) {
		return 0, r.errorf("map of %d pairs in %d bytes", n, r.Len())
	}
	return int(n), nil
}

// MaxDepth bounds the nesting of arrays and maps that [Reader.Skip] and
// [Reader.Raw] accept, so hostile input cannot exhaust the stack.
const MaxDepth = 64

// Skip consumes one value of any type.
func (r *Reader) Skip() error { return r.skip(0) }

// Raw consumes one value of any type and returns its encoding, aliasing the input.
func (r *Reader) Raw() ([]byte, error) {
	start := r.off
	if err := r.skip(0); err != nil {
		return nil, err
	}
	return r.b[start:r.off:r.off], nil
}

func (r *Reader) skip(depth int) error {
	if depth > MaxDepth {
		return r.errorf("nesting deeper than %d", MaxDepth)
	}
	c, err := r.Peek()
	if err != nil {
		return err
	}
	var n uint64
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		r.off++
		return nil
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		m, err := r.MapHeader()
		if err != nil {
			return err
		}
		for i := 0; i < 2*m; i++ {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		m, err := r.ArrayHeader()
		if err != nil {
			return err
		}
		for i := 0; i < m; i++ {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb:
		_, err := r.StringBytes()
		return err
	case c == 0xc4 || c == 0xc5 || c == 0xc6:
		_, err := r.Bytes()
		return err
	case c == 0xcc || c == 0xd0:
		n = 1
	case c == 0xcd || c == 0xd1:
		n = 2
	case c == 0xce || c == 0xd2 || c == 0xca:
		n = 4
	case c == 0xcf || c == 0xd3 || c == 0xcb:
		n = 8
	case c == 0xd4:
		n = 2 // fixext 1: type + 1
	case c == 0xd5:
		n = 3
	case c == 0xd6:
		n = 5
	case c == 0xd7:
		n = 9
	case c == 0xd8:
		n = 17
	case c == 0xc7 || c == 0xc8 || c == 0xc9: // ext 8/16/32
		r.off++
		var l uint64
		switch c {
		case 0xc7:
			l, err = r.uintN(1)
		case 0xc8:
			l, err = r.uintN(2)
		default:
			l, err = r.uintN(4)
		}
		if err != nil {
			return err
		}
		_, err = r.take(int(l) + 1)
		return err
	default:
		return r.errorf("unknown type 0x%02x", c)
	}
	r.off++
	_, err = r.take(int(n))
	return err
}
