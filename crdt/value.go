package crdt

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math"
	"time"

	"github.com/convergedb/converge/internal/mp"
)

// A field value is one msgpack-encoded value, held as its bytes. An empty
// (nil) value means "unset".

// ValueClass is a class of field values, in the order [CompareValues]
// sorts them.
type ValueClass int

// Value classes.
const (
	ClassMissing ValueClass = classMissing
	ClassNil     ValueClass = classNil
	ClassBool    ValueClass = classBool
	ClassNumber  ValueClass = classNumber
	ClassString  ValueClass = classString
	ClassBinary  ValueClass = classBinary
	ClassTime    ValueClass = classTime  // msgpack timestamps (extension -1), as time.Time encodes
	ClassOther   ValueClass = classOther // arrays, maps, other extensions, malformed bytes
)

// ClassOf returns the class of a msgpack-encoded value as [CompareValues]
// sees it (a malformed number, string or timestamp is ClassOther).
func ClassOf(v []byte) ValueClass { return ValueClass(classOf(v)) }

// value classes, in the order CompareValues sorts them.
const (
	classMissing = iota
	classNil
	classBool
	classNumber
	classString
	classBinary
	classTime
	classOther // arrays, maps, other extensions
)

// CompareValues orders two msgpack-encoded values as Go orders the values
// they encode: missing (empty) first, then nil, false before true, numbers
// (integers and floats compared exactly by value, as cmp.Compare does:
// NaN first, -0 equal to 0), strings by bytes, binary by bytes, timestamps
// by instant (time.Time.Compare: seconds, then nanoseconds, whichever of
// the three msgpack timestamp forms holds them), and anything else
// (arrays, maps, other extensions) by encoded bytes. Malformed values sort
// with the "anything else" class. Values that compare equal may still
// differ in their bytes (1 and 1.0, a timestamp in two forms); callers
// needing a total order break ties with bytes.Compare.
//
// CompareValues is the order of queries and value keys
// ([AppendValueKey]) and, ties broken by bytes, of max and min registers.
// The canonical order of set elements is [OrderValues].
func CompareValues(a, b []byte) int { return compareIn(a, b, classOf) }

// compareIn is CompareValues with the classes that class gives.
func compareIn(a, b []byte, class func([]byte) int) int {
	ca, cb := class(a), class(b)
	if ca != cb {
		return cmp.Compare(ca, cb)
	}
	switch ca {
	case classMissing, classNil:
		return 0
	case classBool:
		return cmp.Compare(int(a[0]&1), int(b[0]&1))
	case classNumber:
		return compareNumbers(a, b)
	case classString:
		sa, _ := mp.NewReader(a).StringBytes()
		sb, _ := mp.NewReader(b).StringBytes()
		return bytes.Compare(sa, sb)
	case classBinary:
		sa, _ := mp.NewReader(a).Bytes()
		sb, _ := mp.NewReader(b).Bytes()
		return bytes.Compare(sa, sb)
	case classTime:
		ta, _ := decodeTimestamp(a)
		tb, _ := decodeTimestamp(b)
		return ta.compare(tb)
	}
	return bytes.Compare(a, b)
}

func classOf(v []byte) int {
	if len(v) == 0 {
		return classMissing
	}
	c := v[0]
	switch {
	case c == 0xc0:
		return classNil
	case c == 0xc2 || c == 0xc3:
		return classBool
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3) || c == 0xca || c == 0xcb:
		if _, ok := decodeNumber(v); ok {
			return classNumber
		}
	case c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb:
		if _, err := mp.NewReader(v).StringBytes(); err == nil {
			return classString
		}
	case c == 0xc4 || c == 0xc5 || c == 0xc6:
		if _, err := mp.NewReader(v).Bytes(); err == nil {
			return classBinary
		}
	case c == 0xd6 || c == 0xd7 || c == 0xc7:
		if _, ok := decodeTimestamp(v); ok {
			return classTime
		}
	}
	return classOther
}

// timestamp is a decoded msgpack timestamp: seconds since the Unix epoch
// and nanoseconds within the second (below 1e9).
type timestamp struct {
	sec  int64
	nsec uint32
}

// timestampExt is the msgpack extension type of timestamps.
const timestampExt = 0xff // -1

// decodeTimestamp decodes a msgpack timestamp in one of its three forms
// (the msgpack spec's "timestamp extension type", as
// github.com/vmihailenco/msgpack encodes a time.Time):
//
//	timestamp 32  0xd6 0xff sec(4)                 sec: uint32
//	timestamp 64  0xd7 0xff nsec(30 bits) sec(34 bits)
//	timestamp 96  0xc7 0x0c 0xff nsec(4) sec(8)    sec: int64
//
// ok is false for any other bytes, and for nanoseconds of 1e9 or more,
// which the spec forbids: such a value is an ordinary extension.
func decodeTimestamp(v []byte) (t timestamp, ok bool) {
	switch {
	case len(v) >= 6 && v[0] == 0xd6 && v[1] == timestampExt:
		return timestamp{sec: int64(binary.BigEndian.Uint32(v[2:]))}, true
	case len(v) >= 10 && v[0] == 0xd7 && v[1] == timestampExt:
		x := binary.BigEndian.Uint64(v[2:])
		t = timestamp{sec: int64(x & (1<<34 - 1)), nsec: uint32(x >> 34)}
	case len(v) >= 15 && v[0] == 0xc7 && v[1] == 12 && v[2] == timestampExt:
		t = timestamp{nsec: binary.BigEndian.Uint32(v[3:]), sec: int64(binary.BigEndian.Uint64(v[7:]))}
	default:
		return timestamp{}, false
	}
	return t, t.nsec < 1e9
}

// EncodeTime returns the msgpack encoding of t as field values hold it,
// and as the root package encodes a time.Time: the timestamp extension in
// its smallest form. The location and the monotonic clock reading are not
// kept.
func EncodeTime(t time.Time) []byte {
	sec, nsec := uint64(t.Unix()), uint64(t.Nanosecond())
	switch {
	case sec>>34 != 0:
		b := binary.BigEndian.AppendUint32([]byte{0xc7, 12, timestampExt}, uint32(nsec))
		return binary.BigEndian.AppendUint64(b, sec)
	case nsec == 0 && sec>>32 == 0:
		return binary.BigEndian.AppendUint32([]byte{0xd6, timestampExt}, uint32(sec))
	}
	return binary.BigEndian.AppendUint64([]byte{0xd7, timestampExt}, nsec<<34|sec)
}

// DecodeTime returns the instant a msgpack timestamp ([ClassTime]) holds,
// in UTC; ok is false for a value of another class.
func DecodeTime(v []byte) (t time.Time, ok bool) {
	ts, ok := decodeTimestamp(v)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(ts.sec, int64(ts.nsec)).UTC(), true
}

func (t timestamp) compare(u timestamp) int {
	if c := cmp.Compare(t.sec, u.sec); c != 0 {
		return c
	}
	return cmp.Compare(t.nsec, u.nsec)
}

// number is a decoded msgpack number: exactly one of its forms is set.
type number struct {
	kind byte // 'i', 'u' (> MaxInt64) or 'f'
	i    int64
	u    uint64
	f    float64
}

func decodeNumber(v []byte) (number, bool) {
	r := mp.NewReader(v)
	c := v[0]
	if c == 0xca || c == 0xcb {
		f, err := r.Float64()
		return number{kind: 'f', f: f}, err == nil
	}
	if c == 0xcf {
		u, err := r.Uint()
		if err != nil {
			return number{}, false
		}
		if u > math.MaxInt64 {
			return number{kind: 'u', u: u}, true
		}
		return number{kind: 'i', i: int64(u)}, true
	}
	i, err := r.Int()
	return number{kind: 'i', i: i}, err == nil
}

func compareNumbers(a, b []byte) int {
	x, _ := decodeNumber(a)
	y, _ := decodeNumber(b)
	return x.compare(y)
}

// compare orders numbers exactly by value (NaN first), without converting
// integers to float64: a conversion would round above 2^53 and make
// equality intransitive, and max/min registers need a true total order.
func (x number) compare(y number) int {
	switch {
	case x.kind == 'f' && y.kind == 'f':
		return compareFloat(x.f, y.f)
	case x.kind == 'f':
		return -y.compare(x)
	case y.kind == 'f':
		if x.kind == 'u' {
			return cmpUintFloat(x.u, y.f)
		}
		return cmpIntFloat(x.i, y.f)
	case x.kind == 'u' && y.kind == 'u':
		return cmp.Compare(x.u, y.u)
	case x.kind == 'u':
		return 1 // > MaxInt64
	case y.kind == 'u':
		return -1
	}
	switch {
	case x.i < y.i:
		return -1
	case x.i > y.i:
		return 1
	}
	return 0
}

const two63 = 9223372036854775808.0 // 2^63, exact in float64

// cmpIntFloat compares an int64 with a float64 exactly; NaN sorts first.
func cmpIntFloat(i int64, f float64) int {
	switch {
	case math.IsNaN(f):
		return 1
	case f >= two63:
		return -1
	case f < -two63:
		return 1
	}
	t := math.Trunc(f) // in [-2^63, 2^63): converts exactly
	if ti := int64(t); i != ti {
		if i < ti {
			return -1
		}
		return 1
	}
	switch {
	case f > t:
		return -1
	case f < t:
		return 1
	}
	return 0
}

// cmpUintFloat compares a uint64 above MaxInt64 with a float64 exactly.
func cmpUintFloat(u uint64, f float64) int {
	switch {
	case math.IsNaN(f), f < two63:
		return 1
	case f >= 2*two63:
		return -1
	}
	t := math.Trunc(f)
	if tu := uint64(t); u != tu {
		if u < tu {
			return -1
		}
		return 1
	}
	if f > t {
		return -1
	}
	return 0
}

// compareFloat orders floats with NaN first.
func compareFloat(a, b float64) int {
	an, bn := math.IsNaN(a), math.IsNaN(b)
	switch {
	case an && bn:
		return 0
	case an:
		return -1
	case bn:
		return 1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// OrderValues is the canonical order of set elements: a strict total
// order, in which records store a set's elements and a set reads as an
// array. It is CompareValues with a tie-break on the encoded bytes, except
// that timestamps sort among the other extensions, by their encoding:
// that was the order of set elements before CompareValues ordered
// timestamps by instant, and stored records (states, base states,
// snapshots) hold their elements in it, so it does not change. Sets are
// unordered; their elements are never sorted by it for a query.
func OrderValues(a, b []byte) int { return orderElems(a, b) }

// orderElems is OrderValues.
func orderElems(a, b []byte) int {
	if c := compareIn(a, b, elemClass); c != 0 {
		return c
	}
	return bytes.Compare(a, b)
}

// elemClass is classOf as set elements are ordered: a timestamp is an
// extension like any other.
func elemClass(v []byte) int {
	if c := classOf(v); c != classTime {
		return c
	}
	return classOther
}

// orderRegister is the order of max and min registers: CompareValues
// (so the max of timestamps is the latest instant), ties broken by the
// encoded bytes, a strict total order.
func orderRegister(a, b []byte) int {
	if c := CompareValues(a, b); c != 0 {
		return c
	}
	return bytes.Compare(a, b)
}
