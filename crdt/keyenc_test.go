package crdt_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
	"pgregory.net/rapid"
)

// Encoders for the key tests (this file is package crdt_test, so it cannot
// use the package's own test helpers).

func kNil() []byte            { return mp.AppendNil(nil) }
func kBool(v bool) []byte     { return mp.AppendBool(nil, v) }
func kInt(i int64) []byte     { return mp.AppendInt(nil, i) }
func kUint(u uint64) []byte   { return mp.AppendUint(nil, u) }
func kFloat(f float64) []byte { return mp.AppendFloat64(nil, f) }
func kStr(s string) []byte    { return mp.AppendString(nil, s) }
func kBin(b ...byte) []byte   { return mp.AppendBytes(nil, b) }

// kFloat32 encodes a msgpack float32 (mp has no encoder for it).
func kFloat32(f float32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0xca}, math.Float32bits(f))
}

// kWide encodes an integer in the given 8-byte form (0xcf or 0xd3),
// whatever its value: valid msgpack, just not the smallest form.
func kWide(tag byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tag}, v)
}

// kTime32, kTime64 and kTime96 encode a msgpack timestamp in the given
// form, whatever its value.
func kTime32(sec uint32) []byte { return binary.BigEndian.AppendUint32([]byte{0xd6, 0xff}, sec) }

func kTime64(sec uint64, nsec uint32) []byte {
	return binary.BigEndian.AppendUint64([]byte{0xd7, 0xff}, uint64(nsec)<<34|sec&(1<<34-1))
}

func kTime96(sec int64, nsec uint32) []byte {
	b := binary.BigEndian.AppendUint32([]byte{0xc7, 12, 0xff}, nsec)
	return binary.BigEndian.AppendUint64(b, uint64(sec))
}

func kArr(elems ...[]byte) []byte {
	b := mp.AppendArrayHeader(nil, len(elems))
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

func kMap(kvs ...[]byte) []byte {
	b := mp.AppendMapHeader(nil, len(kvs)/2)
	for _, e := range kvs {
		b = append(b, e...)
	}
	return b
}

func key(v []byte) []byte { return crdt.AppendValueKey(nil, v) }

type keyTB interface {
	Helper()
	Fatalf(format string, args ...any)
}

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

func isFloatEncoding(v []byte) bool { return len(v) > 0 && (v[0] == 0xca || v[0] == 0xcb) }

// checkKeyOrder checks the contract of AppendValueKey on one pair: key order
// is CompareValues order where the values differ; equal values have equal
// keys, except equal numbers of different types, whose keys share the tag
// and float part (9 bytes) and put the float first.
func checkKeyOrder(t keyTB, a, b []byte) {
	t.Helper()
	ka, kb := key(a), key(b)
	want := crdt.CompareValues(a, b)
	got := bytes.Compare(ka, kb)
	if want != 0 {
		if got != want {
			t.Fatalf("CompareValues(%x, %x) = %d but keys %x, %x compare %d", a, b, want, ka, kb, got)
		}
		return
	}
	if got == 0 {
		return
	}
	// Equal values with different keys: must be an int/float pair.
	if len(ka) < 10 || len(kb) < 10 || ka[0] != 0x05 || kb[0] != 0x05 || !bytes.Equal(ka[:9], kb[:9]) {
		t.Fatalf("equal values %x, %x have keys %x, %x not sharing a number prefix", a, b, ka, kb)
	}
	if isFloatEncoding(a) == isFloatEncoding(b) {
		t.Fatalf("equal values %x, %x of the same numeric type have different keys %x, %x", a, b, ka, kb)
	}
	if floatFirst := isFloatEncoding(a) == (got < 0); !floatFirst {
		t.Fatalf("equal values %x, %x: keys %x, %x compare %d, want the float first", a, b, ka, kb, got)
	}
}

// checkKeyShape checks that key k of v is a well-formed, self-delimiting
// key: SkipValueKey finds its end with or without a suffix, every proper
// prefix of it is rejected, and AppendValueKey appends.
func checkKeyShape(t keyTB, v []byte) {
	t.Helper()
	k := key(v)
	if len(k) == 0 || k[0] < 0x01 || k[0] > 0x09 {
		t.Fatalf("key of %x = %x: bad tag", v, k)
	}
	if n, err := crdt.SkipValueKey(k); n != len(k) || err != nil {
		t.Fatalf("SkipValueKey(key(%x) = %x) = %d, %v; want %d, nil", v, k, n, err, len(k))
	}
	for _, suffix := range [][]byte{{0}, {0, 1}, {0xff}, {0x01}, {0x05}, k, key(nil), key(kStr("a\x00"))} {
		kk := append(append([]byte(nil), k...), suffix...)
		if n, err := crdt.SkipValueKey(kk); n != len(k) || err != nil {
			t.Fatalf("SkipValueKey(key(%x) + %x) = %d, %v; want %d, nil", v, suffix, n, err, len(k))
		}
	}
	for m := range len(k) {
		if len(k) > 200 && m > 64 && m < len(k)-64 {
			continue
		}
		if n, err := crdt.SkipValueKey(k[:m]); !errors.Is(err, crdt.ErrBadKey) || n != 0 {
			t.Fatalf("SkipValueKey(%x), a truncated key of %x = %d, %v; want 0, ErrBadKey", k[:m], v, n, err)
		}
	}
	pre := []byte("prefix")
	if got := crdt.AppendValueKey(pre[:len(pre):len(pre)], v); !bytes.Equal(got, append([]byte("prefix"), k...)) {
		t.Fatalf("AppendValueKey(%q, %x) = %x, want the prefix then %x", pre, v, got, k)
	}
}

// keyOrdered lists groups of values in ascending CompareValues order; the
// values within a group compare equal.
var keyOrdered = [][][]byte{
	{nil, {}}, // missing
	{kNil()},
	{kBool(false)},
	{kBool(true)},
	{kFloat(math.NaN()), kFloat(-math.NaN()), kFloat32(float32(math.NaN())), kFloat(math.Float64frombits(0x7ff0000000000001))},
	{kFloat(math.Inf(-1)), kFloat32(float32(math.Inf(-1)))},
	{kFloat(-math.MaxFloat64)},
	{kFloat(-0x1p64)},
	{kFloat(math.Nextafter(-0x1p63, math.Inf(-1)))},
	{kInt(math.MinInt64), kFloat(-0x1p63), kFloat32(-0x1p63)},
	{kInt(math.MinInt64 + 1)},
	{kInt(math.MinInt64 + 1023)},
	{kInt(math.MinInt64 + 1024), kFloat(-0x1p63 + 1024)},
	{kInt(math.MinInt64 + 1025)},
	{kFloat(-0x1p53 - 2), kInt(-1<<53 - 2)},
	{kInt(-1<<53 - 1)},
	{kInt(-1 << 53), kFloat(-0x1p53)},
	{kInt(-1<<53 + 1)},
	{kFloat(-1.5), kFloat32(-1.5)},
	{kInt(-1), kFloat(-1), kFloat32(-1), kWide(0xd3, math.MaxUint64)},
	{kFloat(-0.5)},
	{kFloat(-math.SmallestNonzeroFloat64)},
	{kInt(0), kFloat(0), kFloat(math.Copysign(0, -1)), kFloat32(0), kFloat32(float32(math.Copysign(0, -1))), kWide(0xd3, 0), kWide(0xcf, 0)},
	{kFloat(math.SmallestNonzeroFloat64)},
	{kFloat(math.Float64frombits(0x000fffffffffffff))}, // largest subnormal
	{kFloat(0x1p-1022)},                                // smallest normal
	{kFloat(0.5)},
	{kInt(1), kFloat(1.0), kFloat32(1), kWide(0xcf, 1), kWide(0xd3, 1), {0xcc, 0x01}},
	{kFloat(1.5), kFloat32(1.5)},
	{kInt(2), kFloat(2)},
	{kInt(1 << 53), kFloat(0x1p53)},
	{kInt(1<<53 + 1)},
	{kFloat(0x1p53 + 2), kInt(1<<53 + 2)},
	{kInt(1<<53 + 3)},
	{kFloat(0x1p53 + 4), kInt(1<<53 + 4)},
	{kInt(1<<63 - 1025)},
	{kInt(1<<63 - 1024), kFloat(0x1p63 - 1024)}, // the greatest float64 < MaxInt64
	{kInt(1<<63 - 1023)},
	{kInt(math.MaxInt64 - 1)},
	{kInt(math.MaxInt64), kWide(0xcf, math.MaxInt64)},
	{kUint(1 << 63), kFloat(0x1p63), kFloat32(0x1p63)},
	{kUint(1<<63 + 1)},
	{kUint(1<<63 + 2047)},
	{kUint(1<<63 + 2048), kFloat(0x1p63 + 2048)},
	{kUint(1<<63 + 2049)},
	{kUint(math.MaxUint64 - 2048)},
	{kUint(math.MaxUint64 - 2047), kFloat(0x1p64 - 2048)},
	{kUint(math.MaxUint64 - 1)},
	{kUint(math.MaxUint64)},
	{kFloat(0x1p64)},
	{kFloat(math.MaxFloat64)},
	{kFloat(math.Inf(1)), kFloat32(float32(math.Inf(1)))},
	{kStr(""), {0xd9, 0x00}},
	{kStr("\x00")},
	{kStr("\x00\x00")},
	{kStr("\x00\x01")},
	{kStr("\x01")},
	{kStr("a"), {0xd9, 0x01, 'a'}, {0xda, 0x00, 0x01, 'a'}},
	{kStr("a\x00")},
	{kStr("a\x00\x00")},
	{kStr("a\x00\x01")},
	{kStr("a\x00b")},
	{kStr("a\x01")},
	{kStr("ab")},
	{kStr("b")},
	{kStr(strings.Repeat("c", 40))},
	{kStr("\xff")},
	{kStr("\xff\x00")},
	{kBin(), {0xc5, 0x00, 0x00}},
	{kBin(0)},
	{kBin(0, 0)},
	{kBin(0, 1)},
	{kBin(1)},
	{kBin(0xff)},
	// Timestamps by instant, one key per instant whatever the form.
	{kTime96(math.MinInt64, 0)},
	{kTime96(-62135596800, 0)},
	{kTime96(-1, 0)},
	{kTime96(-1, 999999999)},
	{kTime32(0), kTime64(0, 0), kTime96(0, 0)},
	{kTime64(0, 1), kTime96(0, 1)},
	{kTime64(0, 999999999)},
	{kTime32(1), kTime64(1, 0), kTime96(1, 0)},
	{kTime32(256)},
	{kTime32(math.MaxUint32), kTime64(math.MaxUint32, 0)},
	{kTime64(1<<34-1, 999999999), kTime96(1<<34-1, 999999999)},
	{kTime96(1<<34, 0)},
	{kTime96(math.MaxInt64, 0)},
	{kTime96(math.MaxInt64, 999999999)},
	// Everything else, by encoded bytes.
	{kMap()},
	{kMap(kStr("a"), kInt(1))},
	{kArr()},
	{kArr(kInt(0))},
	{kArr(kInt(1))},
	{kArr(kStr(""))},
	{kArr(kStr("a\x00"))},
	{kArr(kNil())},
	{kArr(kInt(1), kInt(2))},
	{{0xc1}},                         // never-used type
	{{0xc4}},                         // truncated bin
	{{0xc4, 0x05, 0x00}},             // truncated bin
	{{0xc7, 0x04, 0xff, 0, 0, 0, 1}}, // a timestamp's bytes in the wrong form
	{{0xc7, 0x0c, 0xff, 0x3b, 0x9a, 0xca, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}}, // 1e9 ns: not a timestamp
	{{0xca, 0x00}},             // truncated float32
	{{0xcb}},                   // truncated float64
	{{0xd6, 0x0d, 0, 0, 0, 1}}, // fixext 4 of another type
	{{0xd6, 0xff, 0, 0}},       // truncated timestamp
	{{0xdc, 0x00, 0x01, 0x01}}, // array16 [1]
	{{0xde, 0x00, 0x00}},       // map16 {}
}

func keyOrderedFlat() [][]byte {
	var all [][]byte
	for _, g := range keyOrdered {
		all = append(all, g...)
	}
	return all
}

func TestValueKeyTableOrder(t *testing.T) {
	type item struct {
		group int
		v     []byte
	}
	var items []item
	for g, vs := range keyOrdered {
		for _, v := range vs {
			items = append(items, item{g, v})
		}
	}
	for i, a := range items {
		checkKeyShape(t, a.v)
		for _, b := range items[i:] {
			// The table itself is in CompareValues order.
			want := sign(a.group - b.group)
			if got := crdt.CompareValues(a.v, b.v); got != want {
				t.Fatalf("table: CompareValues(%x, %x) = %d, want %d", a.v, b.v, got, want)
			}
			checkKeyOrder(t, a.v, b.v)
			checkKeyOrder(t, b.v, a.v)
			ka, kb := key(a.v), key(b.v)
			if a.group != b.group && bytes.Compare(ka, kb) >= 0 {
				t.Fatalf("key(%x) = %x not below key(%x) = %x", a.v, ka, b.v, kb)
			}
			// Prefix-free.
			if !bytes.Equal(ka, kb) && (bytes.HasPrefix(ka, kb) || bytes.HasPrefix(kb, ka)) {
				t.Fatalf("key(%x) = %x and key(%x) = %x: one is a prefix of the other", a.v, ka, b.v, kb)
			}
		}
	}
}

// TestValueKeyEqualNumbers checks the documented exception: equal numbers
// of different types share the tag and float part, float first.
func TestValueKeyEqualNumbers(t *testing.T) {
	pairs := [][2][]byte{
		{kFloat(0), kInt(0)},
		{kFloat(math.Copysign(0, -1)), kInt(0)},
		{kFloat(1), kInt(1)},
		{kFloat32(1), kInt(1)},
		{kFloat(-1), kInt(-1)},
		{kFloat(0x1p53), kInt(1 << 53)},
		{kFloat(0x1p53 + 2), kInt(1<<53 + 2)},
		{kFloat(-0x1p63), kInt(math.MinInt64)},
		{kFloat(0x1p63 - 1024), kInt(1<<63 - 1024)},
		{kFloat(0x1p63), kUint(1 << 63)},
		{kFloat(0x1p64 - 2048), kUint(math.MaxUint64 - 2047)},
	}
	for _, p := range pairs {
		f, i := p[0], p[1]
		if c := crdt.CompareValues(f, i); c != 0 {
			t.Fatalf("CompareValues(%x, %x) = %d, want 0", f, i, c)
		}
		kf, ki := key(f), key(i)
		if len(kf) != 10 || len(ki) != 18 || !bytes.Equal(kf[:9], ki[:9]) || bytes.Compare(kf, ki) >= 0 {
			t.Errorf("keys of equal %x, %x: %x, %x; want a shared 9-byte prefix, float first", f, i, kf, ki)
		}
		checkKeyOrder(t, f, i)
		checkKeyOrder(t, i, f)
	}
	// -0 and +0 are one key; all NaNs are one key.
	if a, b := key(kFloat(0)), key(kFloat(math.Copysign(0, -1))); !bytes.Equal(a, b) {
		t.Errorf("keys of 0.0 and -0.0 differ: %x, %x", a, b)
	}
	if a, b := key(kFloat(math.NaN())), key(kFloat(math.Float64frombits(0xfff8000000000001))); !bytes.Equal(a, b) {
		t.Errorf("keys of two NaNs differ: %x, %x", a, b)
	}
}

func TestValueKeyGolden(t *testing.T) {
	h := func(s string) []byte {
		var b []byte
		if _, err := fmt.Sscanf(strings.ReplaceAll(s, " ", ""), "%x", &b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		v    []byte
		want string
	}{
		{nil, "01"},
		{kNil(), "02"},
		{kBool(false), "03"},
		{kBool(true), "04"},
		{kFloat(math.NaN()), "05 0000000000000000 00"},
		{kFloat(math.Inf(-1)), "05 000fffffffffffff 00"},
		{kFloat(0), "05 8000000000000000 00"},
		{kFloat(math.Copysign(0, -1)), "05 8000000000000000 00"},
		{kFloat(1), "05 bff0000000000000 00"},
		{kFloat(-1), "05 400fffffffffffff 00"},
		{kInt(1), "05 bff0000000000000 01 8000000000000001"},
		{kInt(-1), "05 400fffffffffffff 01 7fffffffffffffff"},
		{kInt(math.MaxInt64), "05 c3dfffffffffffff 01 ffffffffffffffff"},
		{kUint(math.MaxUint64), "05 c3efffffffffffff 02 ffffffffffffffff"},
		{kStr(""), "06 0001"},
		{kStr("a\x00b"), "06 61 00ff 62 0001"},
		{kBin(0), "07 00ff 0001"},
		{kTime32(1), "08 8000000000000001 00000000"},
		{kTime64(1, 0), "08 8000000000000001 00000000"},
		{kTime64(2, 500), "08 8000000000000002 000001f4"},
		{kTime96(-1, 999999999), "08 7fffffffffffffff 3b9ac9ff"},
		{kArr(kInt(0)), "09 91 00ff 0001"},
		{[]byte{0xd6, 0x0d, 0, 0, 0, 1}, "09 d60d 00ff 00ff 00ff 01 0001"},
	}
	for _, c := range cases {
		if got, want := key(c.v), h(c.want); !bytes.Equal(got, want) {
			t.Errorf("key(%x) = %x, want %x", c.v, got, want)
		}
	}
}

func TestValueKeyPrefix(t *testing.T) {
	prefixes := []string{"", "a", "a\x00", "\x00", "ab", "a\x00b", "\xff"}
	values := keyOrderedFlat()
	for _, s := range []string{"a\x00\x00", "a\x00\x01", "a\x00bc", "ab\x00", "\x00\x00", "\xff\xff"} {
		values = append(values, kStr(s))
	}
	for _, s := range prefixes {
		p := crdt.ValueKeyPrefix(s)
		checkValueKeyPrefix(t, s, p, values)
	}
}

func checkValueKeyPrefix(t keyTB, s string, p []byte, values [][]byte) {
	t.Helper()
	if n, err := crdt.SkipValueKey(p); !errors.Is(err, crdt.ErrBadKey) {
		t.Fatalf("SkipValueKey(ValueKeyPrefix(%q) = %x) = %d, %v; want ErrBadKey", s, p, n, err)
	}
	if !bytes.HasPrefix(key(kStr(s)), p) {
		t.Fatalf("ValueKeyPrefix(%q) = %x is not a prefix of the key of %q", s, p, s)
	}
	for _, v := range values {
		str, err := mp.NewReader(v).StringBytes()
		want := err == nil && bytes.HasPrefix(str, []byte(s))
		if got := bytes.HasPrefix(key(v), p); got != want {
			t.Fatalf("ValueKeyPrefix(%q) = %x prefixes key(%x) = %x: %v, want %v", s, p, v, key(v), got, want)
		}
	}
}

// Generators.

// genKeyBytes draws short byte strings over a small alphabet rich in NUL
// and 0xff, so distinct values often share prefixes; sometimes long ones
// (str8 headers, escapes deep inside).
func genKeyBytes() *rapid.Generator[[]byte] {
	alpha := rapid.SampledFrom([]byte{0x00, 0x00, 0x01, 'a', 'b', 0xfe, 0xff})
	return rapid.OneOf(
		rapid.SliceOfN(alpha, 0, 5),
		rapid.SliceOfN(alpha, 30, 40),
		rapid.SliceOfN(rapid.Byte(), 0, 8),
	)
}

var keySpecialFloats = []float64{
	math.NaN(), math.Float64frombits(0xfff8000000000001), math.Inf(-1), math.Inf(1),
	0, math.Copysign(0, -1), math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64,
	math.Float64frombits(0x000fffffffffffff), 0x1p-1022, -0x1p-1022,
	math.MaxFloat64, -math.MaxFloat64, 0.5, -0.5, 1, -1, 1.5, -1.5,
	0x1p53, -0x1p53, 0x1p63, -0x1p63, 0x1p64, 0x1p63 - 1024, 0x1p64 - 2048,
}

// genKeyNumberNear draws a number near center, within steps of step: a
// float, a neighbouring float, or an integer (int64 or uint64) near it.
func genKeyNumberNear(t *rapid.T, center, step float64) []byte {
	f := center + step*float64(rapid.IntRange(-4, 4).Draw(t, "offset"))
	switch rapid.IntRange(0, 4).Draw(t, "form") {
	case 0:
		if f == 0 && rapid.Bool().Draw(t, "negzero") {
			f = math.Copysign(0, -1)
		}
		return kFloat(f)
	case 1:
		return kFloat(math.Nextafter(f, math.Inf(-1)))
	case 2:
		return kFloat(math.Nextafter(f, math.Inf(1)))
	}
	d := int64(rapid.IntRange(-3, 3).Draw(t, "plus"))
	switch {
	case f >= 0x1p63 && f < 0x1p64:
		u := uint64(f)
		if (d > 0 && u > math.MaxUint64-uint64(d)) || (d < 0 && u < uint64(-d)) {
			d = 0
		}
		return kUint(u + uint64(d))
	case f >= -0x1p63 && f < 0x1p63:
		i := int64(f)
		if (d > 0 && i > math.MaxInt64-d) || (d < 0 && i < math.MinInt64-d) {
			d = 0
		}
		if rapid.Bool().Draw(t, "wide") { // same value, 8-byte form
			if i >= 0 && rapid.Bool().Draw(t, "unsigned") {
				return kWide(0xcf, uint64(i+d))
			}
			return kWide(0xd3, uint64(i+d))
		}
		return kInt(i + d)
	}
	return kFloat(f)
}

var (
	keyCenters = []float64{0, 1, -1, 0x1p53, -0x1p53, 0x1p54, 0x1p62, 0x1p63, -0x1p63, 0x1p64, 0x1p63 - 1024}
	keySteps   = []float64{0.5, 1, 2, 1024, 2048}
)

func genKeyNear() *rapid.Generator[[]byte] {
	return rapid.Custom(func(t *rapid.T) []byte {
		center := rapid.SampledFrom(keyCenters).Draw(t, "center")
		step := rapid.SampledFrom(keySteps).Draw(t, "step")
		return genKeyNumberNear(t, center, step)
	})
}

// genKeyValue draws an encoded value of any class: missing, nil, bools,
// integers of every size, uint64s above MaxInt64, floats (NaN, infinities,
// zeros, subnormals, float32s, floats near large integers), strings and
// binary with NUL bytes, arrays and maps, extensions and malformed bytes.
func genKeyValue(depth int) *rapid.Generator[[]byte] {
	gens := []*rapid.Generator[[]byte]{
		rapid.Just([]byte(nil)),
		rapid.Just(kNil()),
		rapid.Map(rapid.Bool(), kBool),
		rapid.Map(rapid.Int64(), kInt),
		rapid.Map(rapid.Int64Range(-300, 300), kInt),
		rapid.Map(rapid.Uint64Range(math.MaxInt64+1, math.MaxUint64), kUint),
		rapid.Map(rapid.Uint64(), kUint),
		rapid.Map(rapid.Float64(), kFloat),
		rapid.Map(rapid.Uint64(), func(bits uint64) []byte { return kFloat(math.Float64frombits(bits)) }),
		rapid.Map(rapid.Uint64Range(0, 1<<53-1), func(bits uint64) []byte { // subnormals, ±
			return kFloat(math.Float64frombits(bits&(1<<52-1) | (bits>>52)<<63))
		}),
		rapid.Map(rapid.SampledFrom(keySpecialFloats), kFloat),
		rapid.Map(rapid.Float32(), kFloat32),
		rapid.Map(rapid.Int64Range(-6, 6), func(i int64) []byte { return kFloat(float64(i) / 2) }),
		genKeyNear(),
		genKeyNear(),
		rapid.Map(genKeyBytes(), func(b []byte) []byte { return kStr(string(b)) }),
		rapid.Map(genKeyBytes(), func(b []byte) []byte { return kStr(string(b)) }),
		rapid.Map(genKeyBytes(), func(b []byte) []byte { return kBin(b...) }),
		genKeyTime(),
		rapid.Just([]byte{0xd6, 0x0d, 0, 0, 0, 1}), // another extension
		rapid.SliceOfN(rapid.Byte(), 0, 4),         // anything, mostly malformed
	}
	if depth > 0 {
		gens = append(gens,
			rapid.Custom(func(t *rapid.T) []byte {
				return kArr(rapid.SliceOfN(genKeyValue(depth-1).Filter(func(v []byte) bool { return len(v) > 0 }), 0, 3).Draw(t, "elems")...)
			}),
			rapid.Custom(func(t *rapid.T) []byte {
				n := rapid.IntRange(0, 2).Draw(t, "pairs")
				var kvs [][]byte
				for range n {
					kvs = append(kvs, kStr(string(genKeyBytes().Draw(t, "k"))))
					kvs = append(kvs, genKeyValue(depth-1).Filter(func(v []byte) bool { return len(v) > 0 }).Draw(t, "v"))
				}
				return kMap(kvs...)
			}),
		)
	}
	return rapid.OneOf(gens...)
}

// genKeyTime draws a msgpack timestamp in any of its forms, near the
// forms' limits, sometimes with out-of-range nanoseconds (not a
// timestamp, then: an extension like any other).
func genKeyTime() *rapid.Generator[[]byte] {
	return rapid.Custom(func(t *rapid.T) []byte {
		nsec := uint32(rapid.SampledFrom([]int{0, 0, 1, 2, 999999999, 1e9, 1<<30 - 1}).Draw(t, "nsec"))
		sec := rapid.OneOf(
			rapid.Int64Range(-3, 3),
			rapid.SampledFrom([]int64{-62135596800, 1<<32 - 1, 1 << 32, 1<<34 - 1, 1 << 34, math.MinInt64, math.MaxInt64}),
			rapid.Int64(),
		).Draw(t, "sec")
		switch {
		case sec >= 0 && sec <= math.MaxUint32 && rapid.Bool().Draw(t, "32"):
			return kTime32(uint32(sec))
		case sec >= 0 && sec < 1<<34 && rapid.Bool().Draw(t, "64"):
			return kTime64(uint64(sec), nsec)
		}
		return kTime96(sec, nsec)
	})
}

// genKeyPair draws two values that are often close: independent ones, two
// numbers near the same limit, or a value and itself.
func genKeyPair() *rapid.Generator[[2][]byte] {
	return rapid.Custom(func(t *rapid.T) [2][]byte {
		switch rapid.IntRange(0, 3).Draw(t, "mode") {
		case 0:
			center := rapid.SampledFrom(keyCenters).Draw(t, "center")
			step := rapid.SampledFrom(keySteps).Draw(t, "step")
			return [2][]byte{genKeyNumberNear(t, center, step), genKeyNumberNear(t, center, step)}
		case 1:
			v := genKeyValue(1).Draw(t, "v")
			return [2][]byte{v, v}
		}
		g := genKeyValue(1)
		return [2][]byte{g.Draw(t, "a"), g.Draw(t, "b")}
	})
}

func TestValueKeyOrderProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := genKeyPair().Draw(t, "pair")
		a, b := p[0], p[1]
		checkKeyShape(t, a)
		checkKeyShape(t, b)
		checkKeyOrder(t, a, b)
		checkKeyOrder(t, b, a)
		ka, kb := key(a), key(b)
		if !bytes.Equal(ka, kb) && (bytes.HasPrefix(ka, kb) || bytes.HasPrefix(kb, ka)) {
			t.Fatalf("key(%x) = %x and key(%x) = %x: one is a prefix of the other", a, ka, b, kb)
		}
		// Any suffix at all leaves the key's end where it was.
		suffix := rapid.SliceOfN(rapid.Byte(), 0, 12).Draw(t, "suffix")
		if n, err := crdt.SkipValueKey(append(append([]byte(nil), ka...), suffix...)); n != len(ka) || err != nil {
			t.Fatalf("SkipValueKey(key(%x) + %x) = %d, %v; want %d", a, suffix, n, err, len(ka))
		}
	})
}

// TestValueKeyCompoundProperty checks keys of two values concatenated, as
// in a compound index: SkipValueKey splits them, and their order is the
// lexicographic order of the values.
func TestValueKeyCompoundProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p1 := genKeyPair().Draw(t, "first")
		p2 := genKeyPair().Draw(t, "second")
		a1, b1, a2, b2 := p1[0], p1[1], p2[0], p2[1]
		ka1, kb1 := key(a1), key(b1)
		ka := crdt.AppendValueKey(ka1[:len(ka1):len(ka1)], a2)
		kb := crdt.AppendValueKey(kb1[:len(kb1):len(kb1)], b2)
		for _, c := range []struct {
			k      []byte
			k1, v2 []byte
		}{{ka, ka1, a2}, {kb, kb1, b2}} {
			n, err := crdt.SkipValueKey(c.k)
			if err != nil || n != len(c.k1) {
				t.Fatalf("SkipValueKey(%x) = %d, %v; want %d", c.k, n, err, len(c.k1))
			}
			if m, err := crdt.SkipValueKey(c.k[n:]); err != nil || !bytes.Equal(c.k[n:n+m], key(c.v2)) || n+m != len(c.k) {
				t.Fatalf("SkipValueKey(%x) = %d, %v; want the second key %x", c.k[n:], m, err, key(c.v2))
			}
		}
		got := bytes.Compare(ka, kb)
		c1 := crdt.CompareValues(a1, b1)
		switch {
		case c1 != 0:
			if got != c1 {
				t.Fatalf("(%x, %x) vs (%x, %x): first values compare %d, compound keys %x, %x compare %d", a1, a2, b1, b2, c1, ka, kb, got)
			}
		case bytes.Equal(ka1, kb1):
			if c2 := crdt.CompareValues(a2, b2); c2 != 0 && got != c2 {
				t.Fatalf("(%x, %x) vs (%x, %x): second values compare %d, compound keys %x, %x compare %d", a1, a2, b1, b2, c2, ka, kb, got)
			}
		default:
			// Equal numbers of different types: the first key decides, float first.
			if want := bytes.Compare(ka1, kb1); got != want {
				t.Fatalf("(%x, %x) vs (%x, %x): compound keys %x, %x compare %d, first keys %d", a1, a2, b1, b2, ka, kb, got, want)
			}
		}
		if !bytes.Equal(ka, kb) && (bytes.HasPrefix(ka, kb) || bytes.HasPrefix(kb, ka)) {
			t.Fatalf("compound keys %x, %x: one is a prefix of the other", ka, kb)
		}
	})
}

func TestValueKeyPrefixProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := string(genKeyBytes().Draw(t, "s"))
		p := crdt.ValueKeyPrefix(s)
		tail := string(genKeyBytes().Draw(t, "tail"))
		other := string(genKeyBytes().Draw(t, "other"))
		values := [][]byte{
			kStr(s + tail), kStr(other), kStr(other + s), kBin([]byte(s + tail)...),
			kArr(kStr(s)), genKeyValue(1).Draw(t, "v"),
		}
		if len(s) > 0 {
			values = append(values, kStr(s[:len(s)-1]), kStr(s[:len(s)-1]+other))
		}
		checkValueKeyPrefix(t, s, p, values)
	})
}

// keyFuzzSeeds returns keys of the table values, some truncated or mangled.
func keyFuzzSeeds() [][]byte {
	seeds := [][]byte{
		{}, {0x00}, {0x09}, {0x0a}, {0xff}, {0x05}, {0x06}, {0x06, 0x00}, {0x06, 0x00, 0x02}, {0x06, 0x00, 0xff},
		{0x08}, append([]byte{0x08}, make([]byte, 11)...), append([]byte{0x08}, make([]byte, 12)...),
		{0x09, 0x00}, {0x09, 0x00, 0x01},
		append([]byte{0x05}, make([]byte, 9)...),
		append(append([]byte{0x05}, make([]byte, 8)...), 0x03),
		append(append([]byte{0x05}, make([]byte, 8)...), 0x01, 0x00),
	}
	for _, v := range keyOrderedFlat() {
		k := key(v)
		seeds = append(seeds, k, k[:len(k)-1], append(k, k...))
	}
	return seeds
}

// FuzzSkipValueKey feeds SkipValueKey arbitrary bytes: it must not panic,
// must reject what is not a key with ErrBadKey, and when it accepts, the
// accepted prefix must be exactly one key. The input also serves as a
// (possibly malformed) value whose key must be well-formed.
func FuzzSkipValueKey(f *testing.F) {
	for _, s := range keyFuzzSeeds() {
		f.Add(s)
	}
	for _, v := range keyOrderedFlat() {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := crdt.SkipValueKey(data)
		if err != nil {
			if !errors.Is(err, crdt.ErrBadKey) || n != 0 {
				t.Fatalf("SkipValueKey(%x) = %d, %v; want 0 and an ErrBadKey", data, n, err)
			}
		} else {
			if n < 1 || n > len(data) {
				t.Fatalf("SkipValueKey(%x) = %d, out of range", data, n)
			}
			if m, err := crdt.SkipValueKey(data[:n]); m != n || err != nil {
				t.Fatalf("SkipValueKey(%x) = %d, %v; SkipValueKey of the input %x said %d", data[:n], m, err, data, n)
			}
			for m := range n {
				if n > 200 && m > 64 && m < n-64 {
					continue
				}
				if _, err := crdt.SkipValueKey(data[:m]); !errors.Is(err, crdt.ErrBadKey) {
					t.Fatalf("SkipValueKey(%x), a proper prefix of key %x, = %v; want ErrBadKey", data[:m], data[:n], err)
				}
			}
		}
		checkKeyShape(t, data)
		k := key(data)
		if n, err := crdt.SkipValueKey(append(k, data...)); n != len(k) || err != nil {
			t.Fatalf("SkipValueKey(key(%x) + itself) = %d, %v; want %d", data, n, err, len(k))
		}
	})
}

// FuzzValueKeyOrder checks the order contract on arbitrary, possibly
// malformed, value pairs.
func FuzzValueKeyOrder(f *testing.F) {
	vals := keyOrderedFlat()
	for i := range vals {
		f.Add(vals[i], vals[(i*7+3)%len(vals)])
		if i > 0 {
			f.Add(vals[i-1], vals[i])
		}
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		checkKeyOrder(t, a, b)
		checkKeyOrder(t, b, a)
		ka, kb := key(a), key(b)
		if !bytes.Equal(ka, kb) && (bytes.HasPrefix(ka, kb) || bytes.HasPrefix(kb, ka)) {
			t.Fatalf("key(%x) = %x and key(%x) = %x: one is a prefix of the other", a, ka, b, kb)
		}
	})
}
