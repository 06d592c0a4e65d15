package crdt

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/convergedb/converge/internal/mp"
)

// # Value key encoding
//
// AppendValueKey encodes a field value so that byte order of the keys is
// [CompareValues] order: index entries sort as the values they hold, and a
// range of values is a range of keys. Keys are prefix-free (no key is a
// prefix of another), so several can be concatenated in a compound index.
//
//	missing   0x01
//	nil       0x02
//	false     0x03
//	true      0x04
//	float     0x05 f(x) 0x00
//	integer   0x05 f(⌊n⌋) 0x01 n(8)       ⌊n⌋: the greatest float64 <= n
//	uint>2^63 0x05 f(⌊n⌋) 0x02 n(8)
//	string    0x06 escaped bytes 0x00 0x01
//	binary    0x07 escaped bytes 0x00 0x01
//	timestamp 0x08 s(8) ns(4)
//	other     0x09 escaped encoding 0x00 0x01     (arrays, maps, other extensions)
//
// f(x) is the 8-byte order-preserving form of a float64 (NaN lowest, as
// CompareValues puts it; -0 written as +0, which it equals); n(8) is the
// integer, big-endian with the sign bit flipped. Rounding integers down
// before f makes every integer sort after the floats up to it and before
// the floats above it, so mixed ints and floats interleave exactly; equal
// numbers of different types (1 and 1.0) get adjacent keys, float first,
// and a range query covers both. A timestamp (any of the three msgpack
// forms, see [CompareValues]) is its seconds since the Unix epoch,
// big-endian with the sign bit flipped, then its nanoseconds, big-endian:
// one key per instant, whatever form encoded it. Escaping writes 0x00 as
// 0x00 0xFF.
//
// The encoding has a version, [ValueKeyFormat]. Stored keys (index
// entries) built with another version must be rebuilt before they are
// read.
const (
	keyMissing = 0x01
	keyNil     = 0x02
	keyFalse   = 0x03
	keyTrue    = 0x04
	keyNumber  = 0x05
	keyString  = 0x06
	keyBinary  = 0x07
	keyTime    = 0x08
	keyOther   = 0x09
)

// ValueKeyFormat is the version of the value key encoding. It changes
// whenever the key of some value changes:
//
//	1  the first encoding: timestamps were "other" values (tag 0x08,
//	   ordered by their msgpack bytes)
//	2  timestamps ordered by instant (tag 0x08), other values tag 0x09
const ValueKeyFormat = 2

// AppendValueKey appends the order-preserving key of the msgpack-encoded
// value v (empty: missing) to b.
func AppendValueKey(b, v []byte) []byte {
	switch classOf(v) {
	case classMissing:
		return append(b, keyMissing)
	case classNil:
		return append(b, keyNil)
	case classBool:
		if v[0] == 0xc3 {
			return append(b, keyTrue)
		}
		return append(b, keyFalse)
	case classNumber:
		n, _ := decodeNumber(v)
		return appendNumberKey(b, n)
	case classString:
		s, _ := mp.NewReader(v).StringBytes()
		return appendEscaped(append(b, keyString), s)
	case classBinary:
		s, _ := mp.NewReader(v).Bytes()
		return appendEscaped(append(b, keyBinary), s)
	case classTime:
		t, _ := decodeTimestamp(v)
		b = binary.BigEndian.AppendUint64(append(b, keyTime), uint64(t.sec)^(1<<63))
		return binary.BigEndian.AppendUint32(b, t.nsec)
	}
	return appendEscaped(append(b, keyOther), v)
}

func appendNumberKey(b []byte, n number) []byte {
	b = append(b, keyNumber)
	switch n.kind {
	case 'f':
		b = appendFloatKey(b, n.f)
		return append(b, 0x00)
	case 'u':
		b = appendFloatKey(b, floorUint(n.u))
		b = append(b, 0x02)
		return binary.BigEndian.AppendUint64(b, n.u)
	}
	b = appendFloatKey(b, floorInt(n.i))
	b = append(b, 0x01)
	return binary.BigEndian.AppendUint64(b, uint64(n.i)^(1<<63))
}

func appendFloatKey(b []byte, f float64) []byte {
	if math.IsNaN(f) {
		return binary.BigEndian.AppendUint64(b, 0)
	}
	if f == 0 {
		f = 0 // -0 and +0 are equal values: one key
	}
	bits := math.Float64bits(f)
	if bits>>63 == 1 {
		bits = ^bits
	} else {
		bits |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(b, bits)
}

// floorInt returns the greatest float64 <= i.
func floorInt(i int64) float64 {
	f := float64(i) // rounds to nearest
	if cmpIntFloat(i, f) < 0 {
		f = math.Nextafter(f, math.Inf(-1))
	}
	return f
}

// floorUint returns the greatest float64 <= u.
func floorUint(u uint64) float64 {
	f := float64(u)
	if cmpUintFloat(u, f) < 0 {
		f = math.Nextafter(f, math.Inf(-1))
	}
	return f
}

func appendEscaped(b, s []byte) []byte {
	for _, c := range s {
		if c == 0 {
			b = append(b, 0, 0xff)
		} else {
			b = append(b, c)
		}
	}
	return append(b, 0, 1)
}

// timeKeyLen is the length of a timestamp's key: tag, seconds, nanoseconds.
const timeKeyLen = 1 + 8 + 4

// ErrBadKey is returned by [SkipValueKey] for bytes that are not a value key.
var ErrBadKey = errors.New("crdt: malformed value key")

// SkipValueKey returns the length of the value key at the start of k.
func SkipValueKey(k []byte) (int, error) {
	if len(k) == 0 {
		return 0, ErrBadKey
	}
	switch k[0] {
	case keyMissing, keyNil, keyFalse, keyTrue:
		return 1, nil
	case keyNumber:
		if len(k) < 10 {
			return 0, ErrBadKey
		}
		switch k[9] {
		case 0x00:
			return 10, nil
		case 0x01, 0x02:
			if len(k) < 18 {
				return 0, ErrBadKey
			}
			return 18, nil
		}
		return 0, ErrBadKey
	case keyTime:
		if len(k) < timeKeyLen {
			return 0, ErrBadKey
		}
		return timeKeyLen, nil
	case keyString, keyBinary, keyOther:
		for i := 1; i+1 < len(k); i++ {
			if k[i] != 0 {
				continue
			}
			switch k[i+1] {
			case 0xff:
				i++
			case 0x01:
				return i + 2, nil
			default:
				return 0, ErrBadKey
			}
		}
	}
	return 0, ErrBadKey
}

// ValueKeyPrefix returns, for a string value v, the key prefix shared by
// every string value starting with v (for startsWith ranges): the string
// tag and v escaped, without the terminator.
func ValueKeyPrefix(v string) []byte {
	k := appendEscaped([]byte{keyString}, []byte(v))
	return k[:len(k)-2]
}
