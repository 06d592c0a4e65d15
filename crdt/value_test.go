package crdt

import (
	"cmp"
	"fmt"
	"math"
	"strings"
	"testing"

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
	// Others compare by their bytes.
	{{0x80}},                  // {}
	{{0x81, 0x01, 0x02}},      // {1: 2}
	{vArr()},                  // []
	{vArr(vInt(1))},           // [1]
	{vArr(vInt(2))},           // [2]
	{vArr(vInt(1), vInt(2))},  // [1, 2]
	{{0xc1}},                  // never used
	{{0xc7, 0x01, 0x05, 0x0}}, // ext 8
	{{0xcc}},                  // truncated uint8
	{{0xd4, 0x01, 0x02}},      // fixext 1
	{{0xd9, 0x05, 'a'}},       // truncated str8
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
		{"bin < array", vBin(0xff, 0xff), vArr(), -1},
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
		rapid.SliceOfN(rapid.Byte(), 0, 4), // anything, mostly malformed
	)
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

// TestOrderValuesTotal checks that orderValues is a total order: it is
// CompareValues refined by bytes, antisymmetric and transitive.
func TestOrderValuesTotal(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := genTriple().Draw(t, "values")
		a, b, c := v[0], v[1], v[2]
		ab, bc, ac := orderValues(a, b), orderValues(b, c), orderValues(a, c)
		if ba := orderValues(b, a); ba != -ab {
			t.Fatalf("orderValues(%x, %x) = %d but reversed = %d", a, b, ab, ba)
		}
		if (ab == 0) != (string(a) == string(b)) {
			t.Fatalf("orderValues(%x, %x) = %d: zero exactly when equal bytes", a, b, ab)
		}
		if ab < 0 && bc < 0 && ac >= 0 {
			t.Fatalf("not transitive: %x < %x < %x but orderValues(a, c) = %d", a, b, c, ac)
		}
		if cv := CompareValues(a, b); cv != 0 && cv != ab {
			t.Fatalf("orderValues(%x, %x) = %d disagrees with CompareValues = %d", a, b, ab, cv)
		}
	})
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
