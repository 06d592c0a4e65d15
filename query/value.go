package query

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
)

// Value classes, as crdt.CompareValues orders them. Range operators only
// compare values of one class.
const (
	classMissing = int(crdt.ClassMissing)
	classNil     = int(crdt.ClassNil)
	classBool    = int(crdt.ClassBool)
	classNumber  = int(crdt.ClassNumber)
	classString  = int(crdt.ClassString)
	classBinary  = int(crdt.ClassBinary)
	classTime    = int(crdt.ClassTime)
	classOther   = int(crdt.ClassOther)
)

var classNames = [...]string{
	classMissing: "missing", classNil: "nil", classBool: "bool", classNumber: "number",
	classString: "string", classBinary: "binary", classTime: "time", classOther: "other",
}

// classOf returns the class of a msgpack value, as crdt.CompareValues
// classifies it.
func classOf(v []byte) int { return int(crdt.ClassOf(v)) }

// rangeClass reports whether values of class c can bound a range operator.
func rangeClass(c int) bool {
	return c == classBool || c == classNumber || c == classString || c == classBinary || c == classTime
}

// isNaN reports whether v is a float NaN: a number, but one that no range
// holds and no range can be bounded by (see the package doc).
func isNaN(v []byte) bool {
	if !isFloat(v) {
		return false
	}
	f, err := mp.NewReader(v).Float64()
	return err == nil && math.IsNaN(f)
}

// isNil reports whether v is the msgpack nil.
func isNil(v []byte) bool { return len(v) == 1 && v[0] == 0xc0 }

// normMissing maps msgpack nil to missing: the crdt stores a nil
// assignment as an unset field, so a query for nil means missing.
func normMissing(v []byte) []byte {
	if isNil(v) {
		return nil
	}
	return v
}

// isFloat reports whether v is encoded as a float.
func isFloat(v []byte) bool { return len(v) > 0 && (v[0] == 0xca || v[0] == 0xcb) }

// cmpValue is the order of sort keys: crdt.CompareValues, with equal
// numbers of different types ordered float first. It is exactly the byte
// order of crdt.AppendValueKey, so an index scan and a sort agree.
func cmpValue(a, b []byte) int {
	if c := crdt.CompareValues(a, b); c != 0 {
		return c
	}
	// Equal values share a class; only equal numbers can differ in key
	// (1.0 before 1). Equal integers and equal floats share a key.
	switch fa, fb := isFloat(a), isFloat(b); {
	case fa && !fb:
		return -1
	case !fa && fb:
		return 1
	}
	return 0
}

// strBytes returns the bytes of a msgpack string, ok false for other values.
func strBytes(v []byte) ([]byte, bool) {
	if classOf(v) != classString {
		return nil, false
	}
	s, err := mp.NewReader(v).StringBytes()
	return s, err == nil
}

// checkValue reports whether v is exactly one well-formed msgpack value.
func checkValue(v []byte) error {
	r := mp.NewReader(v)
	if err := r.Skip(); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d trailing bytes after the value", r.Len())
	}
	return nil
}

// numberForms returns the encodings of every number equal to the number v
// (crdt.CompareValues == 0) that has a distinct value key: the float form,
// if a float64 equals v, and the integer form (signed, or unsigned above
// MaxInt64), if v is an integer.
func numberForms(v []byte) [][]byte {
	var cands [][]byte
	r := mp.NewReader(v)
	switch c := v[0]; {
	case c == 0xca || c == 0xcb:
		f, _ := r.Float64()
		cands = append(cands, mp.AppendFloat64(nil, f))
		if f == math.Trunc(f) {
			switch {
			case f >= -two63 && f < two63:
				cands = append(cands, mp.AppendInt(nil, int64(f)))
			case f >= two63 && f < 2*two63:
				cands = append(cands, mp.AppendUint(nil, uint64(f)))
			}
		}
	case c == 0xcf:
		u, _ := r.Uint()
		cands = append(cands, mp.AppendUint(nil, u), mp.AppendFloat64(nil, float64(u)))
	default:
		i, _ := r.Int()
		cands = append(cands, mp.AppendInt(nil, i), mp.AppendFloat64(nil, float64(i)))
	}
	out := cands[:0]
	for _, c := range cands {
		if crdt.CompareValues(c, v) == 0 {
			out = append(out, c)
		}
	}
	return out
}

const two63 = 9223372036854775808.0 // 2^63, exact in float64

// eqKeys returns the value keys of every value equal to v, sorted: the
// points an index must visit for Eq(v). v is a field value (empty:
// missing); numbers have up to two keys (1.0 and 1).
func eqKeys(v []byte) [][]byte {
	if classOf(v) != classNumber {
		return [][]byte{crdt.AppendValueKey(nil, v)}
	}
	var keys [][]byte
	for _, f := range numberForms(v) {
		keys = append(keys, crdt.AppendValueKey(nil, f))
	}
	slices.SortFunc(keys, bytes.Compare)
	return slices.CompactFunc(keys, bytes.Equal)
}

// formatValue renders a msgpack value for String and Explain: missing,
// nil, true, 42, 1.5, 1.0, "text", 0x0a0b (binary),
// time(2024-05-01T12:00:00.5Z), [1, "a"], {"k": 1}.
func formatValue(v []byte) string {
	if len(v) == 0 {
		return "missing"
	}
	if checkValue(v) != nil {
		return "<malformed 0x" + hex.EncodeToString(v) + ">"
	}
	var b strings.Builder
	writeValue(&b, mp.NewReader(v))
	return b.String()
}

// writeValue renders the next value of r, which holds well-formed msgpack.
func writeValue(b *strings.Builder, r *mp.Reader) {
	raw, _ := r.Raw() // well-formed: checked by formatValue
	c := raw[0]
	sub := mp.NewReader(raw)
	switch classOf(raw) {
	case classNil:
		b.WriteString("nil")
		return
	case classBool:
		b.WriteString(strconv.FormatBool(c == 0xc3))
		return
	case classNumber:
		switch {
		case isFloat(raw):
			f, _ := sub.Float64()
			s := strconv.FormatFloat(f, 'g', -1, 64)
			if !strings.ContainsAny(s, ".eEIN") {
				s += ".0"
			}
			b.WriteString(s)
		case c == 0xcf:
			u, _ := sub.Uint()
			b.WriteString(strconv.FormatUint(u, 10))
		default:
			i, _ := sub.Int()
			b.WriteString(strconv.FormatInt(i, 10))
		}
		return
	case classString:
		s, _ := sub.StringBytes()
		b.WriteString(strconv.Quote(string(s)))
		return
	case classBinary:
		s, _ := sub.Bytes()
		b.WriteString("0x" + hex.EncodeToString(s))
		return
	case classTime:
		t, _ := crdt.DecodeTime(raw)
		b.WriteString("time(" + t.Format(time.RFC3339Nano) + ")")
		return
	}
	switch {
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		n, _ := sub.ArrayHeader()
		b.WriteByte('[')
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			writeValue(b, sub)
		}
		b.WriteByte(']')
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		n, _ := sub.MapHeader()
		b.WriteByte('{')
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			writeValue(b, sub)
			b.WriteString(": ")
			writeValue(b, sub)
		}
		b.WriteByte('}')
	default:
		b.WriteString("ext(0x" + hex.EncodeToString(raw) + ")")
	}
}
