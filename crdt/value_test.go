package crdt

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/convergedb/converge/internal/mp"
	"pgregory.net/rapid"
)

// orderedValues lists groups of values in ascending CompareValues order;
// the values within a group compare equal.
var orderedValues = [][][]byte{
	{nil, {}}, // missing
	{vNil},    // nil
	{vFalse},  // false
	{vTrue},   // true
	{vFloat(math.NaN()), vFloat(-math.NaN()), vFloat32(float32(math.NaN()))}, // NaN first among numbers
	{vFloat(math.Inf(-1))},
	{vFloat(-math.MaxFloat64)},
	{vInt(math.MinInt64), vFloat(-0x1p63)},
	{vInt(math.MinInt64 + 1)},
	{vInt(-1 << 53), vFloat(-0x1p53)},
	{vInt(-1000)},
	{vInt(-129), {0xd1, 0xff, 0x7f}},
	{vInt(-128), {0xd0, 0x80}, {0xd1, 0xff, 0x80}},
	{vInt(-33)},
	{vInt(-32)},
	{vFloat(-1.5)},
	{vInt(-1), vFloat(-1), vFloat32(-1), {0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	{vFloat(-0.5)},
	{vFloat(-math.SmallestNonzeroFloat64)},
	{vInt(0), vFloat(0), vFloat(math.Copysign(0, -1)), vFloat32(0), {0xcc, 0x00}, {0xd0, 0x00}},
	{vFloat(math.SmallestNonzeroFloat64)},
	{vFloat(0.5), vFloat32(0.5)},
	{vInt(1), vFloat(1), vFloat32(1), {0xcd, 0x00, 0x01}},
	{vFloat(1.5)},
	{vInt(2), vFloat(2)},
	{vInt(127)},
	{vInt(128), {0xd1, 0x00, 0x80}},
	{vInt(255)},
	{vInt(256)},
	{vInt(65535)},
	{vInt(65536)},
	{vInt(1 << 53), vFloat(0x1p53)},
	{vInt(1<<53 + 1)},
	{vInt(1<<53 + 2), vFloat(0x1p53 + 2)},
	{vInt(1<<53 + 3)},
	{vInt(1<<53 + 4), vFloat(0x1p53 + 4)},
	{vInt(math.MaxInt64 - 1)},
	{vInt(math.MaxInt64)},
	{vUint(math.MaxInt64 + 1), vFloat(0x1p63)},
	{vUint(math.MaxInt64 + 2)},
	{vUint(math.MaxUint64 - 1)},
	{vUint(math.MaxUint64)},
	{vFloat(0x1p64)},
	{vFloat(math.MaxFloat64)},
	{vFloat(math.Inf(1)), vFloat32(float32(math.Inf(1)))},
	{vStr(""), {0xd9, 0x00}},
	{vStr("a"), {0xd9, 0x01, 'a'}, {0xda, 0x00, 0x01, 'a'}},
	{vStr("ab")},
	{vStr("b")},
	{vStr(strings.Repeat("b", 40))},
	{vStr("é")},
	{vBin(), {0xc5, 0, 0}},
	{vBin(0)},
	{vBin(0, 0)},
	{vBin(1)},
	// Timestamps by instant, whichever form holds them.
	{vTime96(math.MinInt64, 0)},
	{vTime(time.Time{}), vTime96(-62135596800, 0)},
	{vTime96(-1, 0), vTime(time.Unix(-1, 0))},
	{vTime96(-1, 999999999)},
	{vTime32(0), vTime64(0, 0), vTime96(0, 0), vTime(time.Unix(0, 0))},
	{vTime64(0, 1), vTime96(0, 1)},
	{vTime32(1), vTime64(1, 0), vTime96(1, 0)},
	{vTime64(1, 5)},
	{vTime32(1 << 31)},
	{vTime32(math.MaxUint32), vTime96(math.MaxUint32, 0)},
	{vTime64(1<<32, 0)},
	{vTime64(1<<34-1, 999999999), vTime96(1<<34-1, 999999999)},
	{vTime96(1<<34, 0)},
	{vTime96(math.MaxInt64, 999999999)},
	// Others compare by their bytes.
	{{0x80}},                         // {}
	{{0x81, 0x01, 0x02}},             // {1: 2}
	{vArr()},                         // []
	{vArr(vInt(1))},                  // [1]
	{vArr(vInt(2))},                  // [2]
	{vArr(vInt(1), vInt(2))},         // [1, 2]
	{{0xc1}},                         // never used
	{{0xc7, 0x01, 0x05, 0x0}},        // ext 8
	{{0xc7, 0x04, 0xff, 0, 0, 0, 1}}, // timestamp 32 in an ext 8: not a timestamp form
	{{0xc7, 0x0c, 0xff, 0, 0}},       // truncated timestamp 96
	{{0xc7, 0x0c, 0xff, 0x3b, 0x9a, 0xca, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}}, // timestamp 96 with 1e9 ns: not a timestamp
	{{0xcc}},                   // truncated uint8
	{{0xd4, 0x01, 0x02}},       // fixext 1
	{{0xd6, 0x0d, 0, 0, 0, 1}}, // fixext 4 of another type
	{{0xd6, 0xff, 0, 0}},       // truncated timestamp 32
	{{0xd7, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}}, // timestamp 64 with 2^30-1 ns: not a timestamp
	{{0xd9, 0x05, 'a'}}, // truncated str8
}

func TestCompareValuesOrder(t *testing.T) {
	for i, gi := range orderedValues {
		for j, gj := range orderedValues {
			want := cmp.Compare(i, j)
			for _, a := range gi {
				for _, b := range gj {
					if got := CompareValues(a, b); got != want {
						t.Errorf("CompareValues(%x, %x) = %d, want %d", a, b, got, want)
					}
				}
			}
		}
	}
}

func TestCompareValuesPairs(t *testing.T) {
	tests := []struct {
		name string
		a, b []byte
		want int
	}{
		{"missing < nil", nil, vNil, -1},
		{"nil < false", vNil, vFalse, -1},
		{"false < true", vFalse, vTrue, -1},
		{"true < number", vTrue, vInt(-1000), -1},
		{"number < string", vFloat(math.Inf(1)), vStr(""), -1},
		{"string < bin", vStr("zzz"), vBin(), -1},
		{"bin < time", vBin(0xff, 0xff), vTime32(0), -1},
		{"time < array", vTime96(math.MaxInt64, 999999999), vArr(), -1},
		{"bin < array", vBin(0xff, 0xff), vArr(), -1},
		{"time: newer 8-byte > older 4-byte", vTime64(10, 1), vTime32(10), 1},
		{"time: 4-byte 2^32-1 s > 8-byte 2^31 s with ns", vTime32(math.MaxUint32), vTime64(1<<31, 999), 1},
		{"time: before 1970 < after", vTime96(-1, 999999999), vTime32(0), -1},
		{"time: one instant in two forms", vTime64(7, 0), vTime32(7), 0},
		{"time: nanoseconds decide", vTime96(5, 2), vTime64(5, 1), 1},
		{"1 == 1.0", vInt(1), vFloat(1), 0},
		{"1.0 == 1", vFloat(1), vInt(1), 0},
		{"2 > 1.5", vInt(2), vFloat(1.5), 1},
		{"1.5 < 2", vFloat(1.5), vInt(2), -1},
		{"-1 < 0.5", vInt(-1), vFloat(0.5), -1},
		{"-1 > -1.5", vInt(-1), vFloat(-1.5), 1},
		{"1 > 0.999", vInt(1), vFloat(0.999), 1},
		{"NaN < -Inf", vFloat(math.NaN()), vFloat(math.Inf(-1)), -1},
		{"NaN < MinInt64", vFloat(math.NaN()), vInt(math.MinInt64), -1},
		{"MinInt64 > NaN", vInt(math.MinInt64), vFloat(math.NaN()), 1},
		{"NaN == NaN", vFloat(math.NaN()), vFloat(math.NaN()), 0},
		{"MaxUint64 > MaxInt64", vUint(math.MaxUint64), vInt(math.MaxInt64), 1},
		{"MaxInt64 < MaxInt64+1", vInt(math.MaxInt64), vUint(math.MaxInt64 + 1), -1},
		{"uint64 > -1", vUint(math.MaxUint64), vInt(-1), 1},
		{"uint64 < +Inf", vUint(math.MaxUint64), vFloat(math.Inf(1)), -1},
		{"uint64 < 2^64", vUint(math.MaxUint64), vFloat(0x1p64), -1},
		{"2^63 uint == 2^63 float", vUint(1 << 63), vFloat(0x1p63), 0},
		{"MaxInt64 < 2^63 float", vInt(math.MaxInt64), vFloat(0x1p63), -1},
		{"MinInt64 == -2^63 float", vInt(math.MinInt64), vFloat(-0x1p63), 0},
		{"MinInt64 > -2^63-2048", vInt(math.MinInt64), vFloat(-0x1p63 - 2048), 1},
		{"2^53+1 > 2^53 float", vInt(1<<53 + 1), vFloat(0x1p53), 1},
		{"2^53+3 < 2^53+4 float", vInt(1<<53 + 3), vFloat(0x1p53 + 4), -1},
		{"2^53+4 float > 2^53+3", vFloat(0x1p53 + 4), vInt(1<<53 + 3), 1},
		{"-2^53-3 > -2^53-4 float", vInt(-1<<53 - 3), vFloat(-0x1p53 - 4), 1},
		{"uint 2^64-1 vs 2^64-2048 float", vUint(math.MaxUint64), vFloat(0x1p64 - 2048), 1},
		{"0 == -0.0", vInt(0), vFloat(math.Copysign(0, -1)), 0},
		{"uint8 form == fixint", []byte{0xcc, 0x05}, vInt(5), 0},
		{"int8 form == fixint", []byte{0xd0, 0x05}, vInt(5), 0},
		{"float32 == float64", vFloat32(0.5), vFloat(0.5), 0},
		{"strings by bytes", vStr("B"), vStr("a"), -1},
		{"str8 == fixstr", []byte{0xd9, 0x01, 'a'}, vStr("a"), 0},
		{"bin by bytes", vBin(1), vBin(0, 9), 1},
		{"arrays by encoding", vArr(vInt(2)), vArr(vInt(1), vInt(2)), -1},
		{"malformed among others", []byte{0xcc}, vArr(), 1},
	}
	for _, tt := range tests {
		if got := CompareValues(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: CompareValues(%x, %x) = %d, want %d", tt.name, tt.a, tt.b, got, tt.want)
		}
	}
}

// genValue draws an encoded value, biased towards numbers where integer and
// float comparisons are delicate.
func genValue() *rapid.Generator[[]byte] {
	return rapid.OneOf(
		rapid.SampledFrom(flatten(orderedValues)),
		rapid.Map(rapid.Int64(), vInt),
		rapid.Map(rapid.Uint64(), vUint),
		rapid.Map(rapid.Float64(), vFloat),
		rapid.Map(rapid.Float32(), vFloat32),
		rapid.Map(rapid.Int64Range(-3, 3), func(i int64) []byte { return vFloat(float64(i) / 2) }),
		rapid.Map(rapid.StringN(0, 3, -1), vStr),
		rapid.Map(rapid.SliceOfN(rapid.Byte(), 0, 3), func(b []byte) []byte { return vBin(b...) }),
		genTimeValue(),
		rapid.SliceOfN(rapid.Byte(), 0, 4), // anything, mostly malformed
	)
}

// genTimeValue draws a msgpack timestamp in any of its forms, not always
// the smallest, with seconds and nanoseconds near the forms' limits.
func genTimeValue() *rapid.Generator[[]byte] {
	return rapid.Custom(func(t *rapid.T) []byte {
		nsec := uint32(rapid.SampledFrom([]int{0, 0, 1, 2, 500, 999999999}).Draw(t, "nsec"))
		sec := rapid.OneOf(
			rapid.Int64Range(-3, 3),
			rapid.SampledFrom([]int64{-62135596800, 1<<31 - 1, 1 << 31, 1<<32 - 1, 1 << 32, 1<<34 - 1, 1 << 34, math.MinInt64, math.MaxInt64}),
			rapid.Int64(),
		).Draw(t, "sec")
		switch {
		case sec >= 0 && sec <= math.MaxUint32 && nsec == 0 && rapid.Bool().Draw(t, "32"):
			return vTime32(uint32(sec))
		case sec >= 0 && sec < 1<<34 && rapid.Bool().Draw(t, "64"):
			return vTime64(uint64(sec), nsec)
		}
		return vTime96(sec, nsec)
	})
}

// nearPrecisionLimit draws an integer or float near center (a value where
// float64 stops representing every integer, 2^53, or where int64 or uint64
// end), in steps of step, encoded as int, uint or float.
func nearPrecisionLimit(t *rapid.T, center, step float64) []byte {
	f := center + step*float64(rapid.IntRange(-4, 4).Draw(t, "offset"))
	if rapid.Bool().Draw(t, "float") {
		return vFloat(f)
	}
	// An integer near f, when one fits.
	switch {
	case f >= 0x1p63 && f < 0x1p64:
		u := uint64(f)
		return vUint(u + uint64(rapid.IntRange(0, 3).Draw(t, "plus")))
	case f >= -0x1p63 && f < 0x1p63:
		i := int64(f)
		d := int64(rapid.IntRange(-3, 3).Draw(t, "plus"))
		if (d > 0 && i > math.MaxInt64-d) || (d < 0 && i < math.MinInt64-d) {
			d = 0
		}
		return vInt(i + d)
	}
	return vFloat(f)
}

// genTriple draws three values: unrelated ones, or three numbers near one
// precision limit, where mixed integer and float comparisons go wrong.
func genTriple() *rapid.Generator[[3][]byte] {
	return rapid.Custom(func(t *rapid.T) [3][]byte {
		if rapid.Bool().Draw(t, "near") {
			center := rapid.SampledFrom([]float64{0x1p53, -0x1p53, 0x1p54, 0x1p63, -0x1p63, 0x1p64}).Draw(t, "center")
			step := rapid.SampledFrom([]float64{1, 2048}).Draw(t, "step")
			return [3][]byte{nearPrecisionLimit(t, center, step), nearPrecisionLimit(t, center, step), nearPrecisionLimit(t, center, step)}
		}
		g := genValue()
		return [3][]byte{g.Draw(t, "a"), g.Draw(t, "b"), g.Draw(t, "c")}
	})
}

func flatten(groups [][][]byte) [][]byte {
	var out [][]byte
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// TestCompareValuesPreorder checks that CompareValues is a total preorder:
// antisymmetric in sign and transitive, for "<" and for "==".
func TestCompareValuesPreorder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := genTriple().Draw(t, "values")
		a, b, c := v[0], v[1], v[2]
		ab, bc, ac := CompareValues(a, b), CompareValues(b, c), CompareValues(a, c)
		if ba := CompareValues(b, a); ba != -ab {
			t.Fatalf("CompareValues(%x, %x) = %d but reversed = %d", a, b, ab, ba)
		}
		if CompareValues(a, a) != 0 {
			t.Fatalf("CompareValues(%x, itself) = %d", a, CompareValues(a, a))
		}
		if ab <= 0 && bc <= 0 && ac > 0 {
			t.Fatalf("not transitive: %x <= %x <= %x but CompareValues(a, c) = %d (ab %d, bc %d)", a, b, c, ac, ab, bc)
		}
		if ab == 0 && bc == 0 && ac != 0 {
			t.Fatalf("equality not transitive: %x == %x == %x but CompareValues(a, c) = %d", a, b, c, ac)
		}
	})
}

// TestOrderValuesTotal checks that orderElems (set elements) and
// orderRegister (max and min) are total orders: CompareValues refined by
// bytes (for orderElems, with timestamps among the other extensions),
// antisymmetric and transitive.
func TestOrderValuesTotal(t *testing.T) {
	for name, order := range map[string]func(a, b []byte) int{"orderElems": orderElems, "orderRegister": orderRegister} {
		t.Run(name, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				v := genTriple().Draw(t, "values")
				a, b, c := v[0], v[1], v[2]
				ab, bc, ac := order(a, b), order(b, c), order(a, c)
				if ba := order(b, a); ba != -ab {
					t.Fatalf("%s(%x, %x) = %d but reversed = %d", name, a, b, ab, ba)
				}
				if (ab == 0) != (string(a) == string(b)) {
					t.Fatalf("%s(%x, %x) = %d: zero exactly when equal bytes", name, a, b, ab)
				}
				if ab < 0 && bc < 0 && ac >= 0 {
					t.Fatalf("not transitive: %x < %x < %x but %s(a, c) = %d", a, b, c, name, ac)
				}
				cv := CompareValues(a, b)
				if name == "orderElems" && (classOf(a) == classTime || classOf(b) == classTime) {
					cv = compareIn(a, b, elemClass)
				}
				if cv != 0 && cv != ab {
					t.Fatalf("%s(%x, %x) = %d disagrees with CompareValues = %d", name, a, b, ab, cv)
				}
			})
		})
	}
}

func TestValueHelpers(t *testing.T) {
	for _, i := range []int64{0, -1, 127, 128, math.MinInt64, math.MaxInt64} {
		got, err := mp.NewReader(EncodeInt(i)).Int()
		if err != nil || got != i {
			t.Errorf("EncodeInt(%d) reads back as %d, %v", i, got, err)
		}
	}
	for _, s := range []string{"", "a", strings.Repeat("x", 300)} {
		got, err := mp.NewReader(EncodeString(s)).String()
		if err != nil || got != s {
			t.Errorf("EncodeString(len %d) reads back as len %d, %v", len(s), len(got), err)
		}
	}
}

func ExampleCompareValues() {
	fmt.Println(CompareValues(EncodeInt(1), mp.AppendFloat64(nil, 1.0)))
	fmt.Println(CompareValues(EncodeInt(2), mp.AppendFloat64(nil, 1.5)))
	fmt.Println(CompareValues(EncodeString("a"), EncodeInt(1000)))
	// Output:
	// 0
	// 1
	// 1
}

// TestCompareValuesTimeIsGoOrder checks CompareValues on time.Time values
// as the root package encodes them against time.Time.Compare, over the
// whole range the encoding handles and in every form it picks.
func TestCompareValuesTimeIsGoOrder(t *testing.T) {
	genTime := rapid.Custom(func(t *rapid.T) time.Time {
		sec := rapid.OneOf(
			rapid.Int64Range(-1<<40, 1<<40),
			rapid.Int64Range(0, 1<<34+5),
			rapid.Int64Range(-5, 5),
			rapid.Int64Range(-1<<62, 1<<62),
		).Draw(t, "sec")
		nsec := rapid.OneOf(rapid.Int64Range(0, 999999999), rapid.Just(int64(0))).Draw(t, "nsec")
		zone := rapid.SampledFrom([]*time.Location{time.UTC, time.FixedZone("A", 3600), time.FixedZone("B", -7*3600)}).Draw(t, "zone")
		return time.Unix(sec, nsec).In(zone)
	})
	rapid.Check(t, func(t *rapid.T) {
		a, b := genTime.Draw(t, "a"), genTime.Draw(t, "b")
		if rapid.Bool().Draw(t, "near") {
			b = a.Add(time.Duration(rapid.Int64Range(-2e9, 2e9).Draw(t, "delta")))
		}
		if got, want := CompareValues(vTime(a), vTime(b)), a.Compare(b); got != want {
			t.Fatalf("CompareValues(%v = %x, %v = %x) = %d, want %d", a, vTime(a), b, vTime(b), got, want)
		}
	})
}

// TestOrderValuesKeepsTimestampsAsExtensions pins the canonical order of
// set elements: stored records hold their elements in it, so timestamps
// stay among the other extensions, ordered by their bytes, not by instant.
func TestOrderValuesKeepsTimestampsAsExtensions(t *testing.T) {
	ordered := [][]byte{
		vBin(0xff),
		vArr(),         // 0x90: arrays before every extension, by bytes
		vTime96(-1, 0), // 0xc7
		vTime32(10),    // 0xd6
		vTime64(5, 1),  // 0xd7: earlier than 10 s, but after it here
	}
	for i := 1; i < len(ordered); i++ {
		if c := OrderValues(ordered[i-1], ordered[i]); c >= 0 {
			t.Errorf("OrderValues(%x, %x) = %d, want -1", ordered[i-1], ordered[i], c)
		}
	}
	if c := CompareValues(vTime64(5, 1), vTime32(10)); c >= 0 {
		t.Errorf("CompareValues(5.000000001 s, 10 s) = %d, want -1 (by instant)", c)
	}
}

// TestEncodeTime checks EncodeTime against the encoder of the root package
// (vmihailenco/msgpack), and DecodeTime against both.
func TestEncodeTime(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sec := rapid.OneOf(rapid.Int64Range(-1<<40, 1<<40), rapid.Int64Range(0, 1<<34+5), rapid.Int64Range(-1<<62, 1<<62)).Draw(t, "sec")
		nsec := rapid.OneOf(rapid.Int64Range(0, 999999999), rapid.Just(int64(0))).Draw(t, "nsec")
		tm := time.Unix(sec, nsec).In(time.FixedZone("Z", 5400))
		got, want := EncodeTime(tm), vTime(tm)
		if !bytes.Equal(got, want) {
			t.Fatalf("EncodeTime(%v) = %x, msgpack encodes %x", tm, got, want)
		}
		back, ok := DecodeTime(got)
		if !ok || !back.Equal(tm) || back.Location() != time.UTC {
			t.Fatalf("DecodeTime(%x) = %v, %v; want %v in UTC", got, back, ok, tm)
		}
	})
	for _, v := range [][]byte{nil, vInt(1), vStr("x"), {0xd6, 0x0d, 0, 0, 0, 1}} {
		if _, ok := DecodeTime(v); ok {
			t.Errorf("DecodeTime(%x) ok, want not a timestamp", v)
		}
	}
}

// formerTimeRecord is a record as the version before timestamps were
// ordered by instant encoded it: set "at" holds three timestamps in byte
// order (-1 s as timestamp 96, 10 s as timestamp 32, 5.000000001 s as
// timestamp 64), and max register "hi", offered 5.000000001 s and 10 s,
// kept 5.000000001 s (the greater bytes).
const formerTimeRecord = "970101ce00010000c4100100000000000000000000000000000ace00020000c410010000000000000000000000000000" +
	"0b9296a261740201ce00010000c4100100000000000000000000000000000a9393c70cff00000000ffffffffffffffff93c410010000000000" +
	"0000000000000000000a01019093d6ff0000000a93c4100100000000000000000000000000000a01019093d7ff000000040000000593c41001" +
	"00000000000000000000000000000a01019096a268690401ce00020000c4100100000000000000000000000000000bd7ff0000000400000005"

// TestRecordOfFormerTimeOrder: stored records keep decoding, their set
// elements in the order they were stored in (OrderValues did not change
// for timestamps), while the max register now keeps the latest instant.
func TestRecordOfFormerTimeOrder(t *testing.T) {
	b, err := hex.DecodeString(formerTimeRecord)
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRecord(b)
	if err != nil {
		t.Fatalf("DecodeRecord of a record stored before: %v", err)
	}
	if got := r.AppendBinary(nil); !bytes.Equal(got, b) {
		t.Errorf("re-encoded as %x, stored %x", got, b)
	}
	elems := r.SetElems("at")
	if want := [][]byte{vTime96(-1, 0), vTime32(10), vTime64(5, 1)}; !slices.EqualFunc(elems, want, bytes.Equal) {
		t.Errorf("set elements %x, want %x", elems, want)
	}
	// The same ops merged now: the max is the latest instant, the set as
	// stored.
	now := apply(
		mkOp(rA, 1, ts(1), 1, add("at", vTime96(-1, 0)), add("at", vTime32(10)), add("at", vTime64(5, 1)), writeMax("hi", vTime64(5, 1))),
		mkOp(rB, 1, ts(2), 1, writeMax("hi", vTime32(10))),
	)
	if v, _ := now.Get("hi"); !bytes.Equal(v.Value, vTime32(10)) {
		t.Errorf("max of 5.000000001 s and 10 s = %x, want 10 s (%x)", v.Value, vTime32(10))
	}
	if got := now.SetElems("at"); !slices.EqualFunc(got, elems, bytes.Equal) {
		t.Errorf("set elements merged now %x, stored %x", got, elems)
	}
	lows := apply(mkOp(rA, 1, ts(1), 1, writeMin("lo", vTime32(10))), mkOp(rB, 1, ts(2), 1, writeMin("lo", vTime96(-1, 0))))
	if v, _ := lows.Get("lo"); !bytes.Equal(v.Value, vTime96(-1, 0)) {
		t.Errorf("min of 10 s and -1 s = %x, want -1 s", v.Value)
	}
}
