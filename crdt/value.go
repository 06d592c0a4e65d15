package crdt

import (
	"bytes"
	"cmp"
	"math"

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
	ClassOther   ValueClass = classOther // arrays, maps, extensions, malformed bytes
)

// ClassOf returns the class of a msgpack-encoded value as [CompareValues]
// sees it (a malformed number or string is ClassOther).
func ClassOf(v []byte) ValueClass { return ValueClass(classOf(v)) }

// value classes, in the order CompareValues sorts them.
const (
	classMissing = iota
	classNil
	classBool
	classNumber
	classString
	classBinary
	classOther // arrays, maps, extensions
)

// CompareValues orders two msgpack-encoded values: missing (empty) first,
// then nil, false before true, numbers (integers and floats compared
// exactly by value, NaN first), strings by bytes, binary by bytes, and anything else
// (arrays, maps, extensions) by encoded bytes. Malformed values sort with the
// "anything else" class. Values that compare equal may still differ in their
// bytes (1 and 1.0); callers needing a total order break ties with
// bytes.Compare.
func CompareValues(a, b []byte) int {
	ca, cb := classOf(a), classOf(b)
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
	}
	return classOther
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

// OrderValues is CompareValues with a tie-break on the encoded bytes: a
// strict total order, the order of set elements and of max and min.
func OrderValues(a, b []byte) int { return orderValues(a, b) }

func orderValues(a, b []byte) int {
	if c := CompareValues(a, b); c != 0 {
		return c
	}
	return bytes.Compare(a, b)
}
