package mp_test

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/convergedb/converge/internal/mp"
	"github.com/vmihailenco/msgpack/v5"
)

// lengths are the size boundaries of msgpack's str, bin, array and map forms.
var lengths = []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536}

var uints = []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64}

var ints = []int64{
	0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxInt64,
	-1, -32, -33, -128, -129, math.MinInt16, math.MinInt16 - 1, math.MinInt32, math.MinInt32 - 1, math.MinInt64,
}

var floats = []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 1.5, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1), math.NaN()}

// wantUintSize is the length of the smallest msgpack encoding of v.
func wantUintSize(v uint64) int {
	switch {
	case v <= 127:
		return 1
	case v <= math.MaxUint8:
		return 2
	case v <= math.MaxUint16:
		return 3
	case v <= math.MaxUint32:
		return 5
	}
	return 9
}

func wantIntSize(v int64) int {
	switch {
	case v >= 0:
		return wantUintSize(uint64(v))
	case v >= -32:
		return 1
	case v >= math.MinInt8:
		return 2
	case v >= math.MinInt16:
		return 3
	case v >= math.MinInt32:
		return 5
	}
	return 9
}

// compact returns vmihailenco's smallest encoding of v.
func compact(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("msgpack encode %v: %v", v, err)
	}
	return buf.Bytes()
}

// checkConsumed fails unless r has read all of b.
func checkConsumed(t *testing.T, r *mp.Reader, b []byte) {
	t.Helper()
	if r.Len() != 0 || r.Offset() != len(b) {
		t.Errorf("after reading %x: Len() = %d, Offset() = %d; want 0, %d", b[:min(len(b), 16)], r.Len(), r.Offset(), len(b))
	}
}

// checkSkipRaw checks that Skip and Raw consume exactly b, one value.
func checkSkipRaw(t *testing.T, b []byte) {
	t.Helper()
	r := mp.NewReader(b)
	if err := r.Skip(); err != nil {
		t.Errorf("Skip(%x...) error: %v", b[:min(len(b), 16)], err)
	}
	checkConsumed(t, r, b)
	r.Reset(b)
	raw, err := r.Raw()
	if err != nil || !bytes.Equal(raw, b) {
		t.Errorf("Raw(%x...) = %x..., %v; want the whole input", b[:min(len(b), 16)], raw[:min(len(raw), 16)], err)
	}
	checkConsumed(t, r, b)
}

func TestUint(t *testing.T) {
	for _, v := range uints {
		b := mp.AppendUint(nil, v)
		if len(b) != wantUintSize(v) {
			t.Errorf("AppendUint(%d) = %x, want %d bytes", v, b, wantUintSize(v))
		}
		r := mp.NewReader(b)
		got, err := r.Uint()
		if err != nil || got != v {
			t.Errorf("Uint(AppendUint(%d)) = %d, %v", v, got, err)
		}
		checkConsumed(t, r, b)
		r.Reset(b)
		gotInt, err := r.Int()
		if v <= math.MaxInt64 {
			if err != nil || gotInt != int64(v) {
				t.Errorf("Int(AppendUint(%d)) = %d, %v", v, gotInt, err)
			}
		} else if !errors.Is(err, mp.ErrMalformed) {
			t.Errorf("Int(AppendUint(%d)) = %d, %v; want ErrMalformed", v, gotInt, err)
		}
		checkSkipRaw(t, b)
		// vmihailenco agrees on the bytes and the value.
		if want := compact(t, v); !bytes.Equal(b, want) {
			t.Errorf("AppendUint(%d) = %x, vmihailenco compact = %x", v, b, want)
		}
		var dec uint64
		if err := msgpack.Unmarshal(b, &dec); err != nil || dec != v {
			t.Errorf("msgpack.Unmarshal(AppendUint(%d)) = %d, %v", v, dec, err)
		}
		// vmihailenco's fixed-width encoding is read too.
		full, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := mp.NewReader(full).Uint(); err != nil || got != v {
			t.Errorf("Uint(msgpack.Marshal(uint64 %d) = %x) = %d, %v", v, full, got, err)
		}
	}
}

func TestInt(t *testing.T) {
	for _, v := range ints {
		b := mp.AppendInt(nil, v)
		if len(b) != wantIntSize(v) {
			t.Errorf("AppendInt(%d) = %x, want %d bytes", v, b, wantIntSize(v))
		}
		r := mp.NewReader(b)
		got, err := r.Int()
		if err != nil || got != v {
			t.Errorf("Int(AppendInt(%d)) = %d, %v", v, got, err)
		}
		checkConsumed(t, r, b)
		r.Reset(b)
		gotUint, err := r.Uint()
		if v >= 0 {
			if err != nil || gotUint != uint64(v) {
				t.Errorf("Uint(AppendInt(%d)) = %d, %v", v, gotUint, err)
			}
		} else if !errors.Is(err, mp.ErrMalformed) {
			t.Errorf("Uint(AppendInt(%d)) = %d, %v; want ErrMalformed", v, gotUint, err)
		}
		checkSkipRaw(t, b)
		if want := compact(t, v); !bytes.Equal(b, want) {
			t.Errorf("AppendInt(%d) = %x, vmihailenco compact = %x", v, b, want)
		}
		var dec int64
		if err := msgpack.Unmarshal(b, &dec); err != nil || dec != v {
			t.Errorf("msgpack.Unmarshal(AppendInt(%d)) = %d, %v", v, dec, err)
		}
		// vmihailenco's typed encodings (int8 ... int64, fixed width) are read.
		for _, typed := range typedInts(v) {
			full, err := msgpack.Marshal(typed)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := mp.NewReader(full).Int(); err != nil || got != v {
				t.Errorf("Int(msgpack.Marshal(%T %d) = %x) = %d, %v", typed, v, full, got, err)
			}
		}
	}
}

// typedInts returns v as every Go integer type that holds it.
func typedInts(v int64) []any {
	out := []any{v}
	if v >= math.MinInt8 && v <= math.MaxInt8 {
		out = append(out, int8(v))
	}
	if v >= math.MinInt16 && v <= math.MaxInt16 {
		out = append(out, int16(v))
	}
	if v >= math.MinInt32 && v <= math.MaxInt32 {
		out = append(out, int32(v))
	}
	if v >= 0 {
		out = append(out, uint64(v))
		if v <= math.MaxUint8 {
			out = append(out, uint8(v))
		}
		if v <= math.MaxUint16 {
			out = append(out, uint16(v))
		}
		if v <= math.MaxUint32 {
			out = append(out, uint32(v))
		}
	}
	return out
}

func TestIntForms(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want int64
	}{
		{"positive fixint", []byte{0x05}, 5},
		{"negative fixint", []byte{0xff}, -1},
		{"negative fixint -32", []byte{0xe0}, -32},
		{"uint8", []byte{0xcc, 0x05}, 5},
		{"uint16", []byte{0xcd, 0x00, 0x05}, 5},
		{"uint32", []byte{0xce, 0, 0, 0, 5}, 5},
		{"uint64", []byte{0xcf, 0, 0, 0, 0, 0, 0, 0, 5}, 5},
		{"int8", []byte{0xd0, 0x05}, 5},
		{"int8 negative", []byte{0xd0, 0x80}, -128},
		{"int16", []byte{0xd1, 0xff, 0xfe}, -2},
		{"int32", []byte{0xd2, 0xff, 0xff, 0xff, 0xfd}, -3},
		{"int64", []byte{0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc}, -4},
	}
	for _, tt := range tests {
		r := mp.NewReader(tt.b)
		if got, err := r.Int(); err != nil || got != tt.want {
			t.Errorf("%s: Int(%x) = %d, %v; want %d", tt.name, tt.b, got, err, tt.want)
		}
		r.Reset(tt.b)
		got, err := r.Uint()
		if tt.want >= 0 && (err != nil || got != uint64(tt.want)) {
			t.Errorf("%s: Uint(%x) = %d, %v; want %d", tt.name, tt.b, got, err, tt.want)
		}
		if tt.want < 0 && !errors.Is(err, mp.ErrMalformed) {
			t.Errorf("%s: Uint(%x) = %d, %v; want ErrMalformed", tt.name, tt.b, got, err)
		}
	}
}

func TestFloat64(t *testing.T) {
	for _, v := range floats {
		b := mp.AppendFloat64(nil, v)
		if len(b) != 9 || b[0] != 0xcb {
			t.Errorf("AppendFloat64(%v) = %x, want 0xcb and 8 bytes", v, b)
		}
		r := mp.NewReader(b)
		got, err := r.Float64()
		if err != nil || math.Float64bits(got) != math.Float64bits(v) {
			t.Errorf("Float64(AppendFloat64(%v)) = %v, %v", v, got, err)
		}
		checkConsumed(t, r, b)
		checkSkipRaw(t, b)
		if want, _ := msgpack.Marshal(v); !bytes.Equal(b, want) {
			t.Errorf("AppendFloat64(%v) = %x, msgpack.Marshal = %x", v, b, want)
		}
		var dec float64
		if err := msgpack.Unmarshal(b, &dec); err != nil || math.Float64bits(dec) != math.Float64bits(v) {
			t.Errorf("msgpack.Unmarshal(AppendFloat64(%v)) = %v, %v", v, dec, err)
		}
		// float32 encodings are read too.
		f32 := float32(v)
		b32, _ := msgpack.Marshal(f32)
		got, err = mp.NewReader(b32).Float64()
		if err != nil || (got != float64(f32) && !math.IsNaN(got)) {
			t.Errorf("Float64(msgpack.Marshal(float32 %v) = %x) = %v, %v", f32, b32, got, err)
		}
		checkSkipRaw(t, b32)
	}
}

func TestNilBool(t *testing.T) {
	b := mp.AppendNil(nil)
	b = mp.AppendBool(b, false)
	b = mp.AppendBool(b, true)
	if want := []byte{0xc0, 0xc2, 0xc3}; !bytes.Equal(b, want) {
		t.Fatalf("AppendNil, AppendBool(false), AppendBool(true) = %x, want %x", b, want)
	}
	r := mp.NewReader(b)
	if r.IsNil() != true {
		t.Errorf("IsNil() at nil = false")
	}
	if r.IsNil() {
		t.Errorf("IsNil() at false = true")
	}
	if r.Offset() != 1 {
		t.Errorf("IsNil() on a non-nil consumed input: Offset() = %d, want 1", r.Offset())
	}
	if v, err := r.Bool(); err != nil || v {
		t.Errorf("Bool() = %v, %v; want false", v, err)
	}
	if v, err := r.Bool(); err != nil || !v {
		t.Errorf("Bool() = %v, %v; want true", v, err)
	}
	if r.IsNil() {
		t.Errorf("IsNil() at end of input = true")
	}
	for _, v := range []any{nil, false, true} {
		enc, _ := msgpack.Marshal(v)
		var one []byte
		switch v := v.(type) {
		case nil:
			one = mp.AppendNil(nil)
		case bool:
			one = mp.AppendBool(nil, v)
		}
		if !bytes.Equal(one, enc) {
			t.Errorf("encoding of %v = %x, msgpack.Marshal = %x", v, one, enc)
		}
		checkSkipRaw(t, one)
	}
}

func strHeaderSize(n int) int {
	switch {
	case n <= 31:
		return 1
	case n <= 255:
		return 2
	case n <= 65535:
		return 3
	}
	return 5
}

func binHeaderSize(n int) int {
	switch {
	case n <= 255:
		return 2
	case n <= 65535:
		return 3
	}
	return 5
}

func TestString(t *testing.T) {
	for _, n := range lengths {
		s := strings.Repeat("x", n)
		if n >= 2 {
			s = "é" + s[2:] // not only ASCII
		}
		b := mp.AppendString([]byte{0xaa}, s)[1:]
		if want := strHeaderSize(n) + n; len(b) != want {
			t.Errorf("AppendString(len %d) has %d bytes, want %d", n, len(b), want)
		}
		r := mp.NewReader(b)
		got, err := r.String()
		if err != nil || got != s {
			t.Errorf("String(AppendString(len %d)) = len %d, %v", n, len(got), err)
		}
		checkConsumed(t, r, b)
		r.Reset(b)
		p, err := r.StringBytes()
		if err != nil || string(p) != s {
			t.Errorf("StringBytes(AppendString(len %d)) = len %d, %v", n, len(p), err)
		}
		checkSkipRaw(t, b)
		if want := compact(t, s); !bytes.Equal(b, want) {
			t.Errorf("AppendString(len %d) differs from vmihailenco: %x... vs %x...", n, b[:min(len(b), 8)], want[:min(len(want), 8)])
		}
		var dec string
		if err := msgpack.Unmarshal(b, &dec); err != nil || dec != s {
			t.Errorf("msgpack.Unmarshal(AppendString(len %d)) = len %d, %v", n, len(dec), err)
		}
	}
}

func TestBytes(t *testing.T) {
	for _, n := range lengths {
		v := bytes.Repeat([]byte{0xab}, n)
		b := mp.AppendBytes(nil, v)
		if want := binHeaderSize(n) + n; len(b) != want {
			t.Errorf("AppendBytes(len %d) has %d bytes, want %d", n, len(b), want)
		}
		r := mp.NewReader(b)
		got, err := r.Bytes()
		if err != nil || !bytes.Equal(got, v) {
			t.Errorf("Bytes(AppendBytes(len %d)) = len %d, %v", n, len(got), err)
		}
		checkConsumed(t, r, b)
		checkSkipRaw(t, b)
		if want := compact(t, v); !bytes.Equal(b, want) {
			t.Errorf("AppendBytes(len %d) differs from vmihailenco: %x... vs %x...", n, b[:min(len(b), 8)], want[:min(len(want), 8)])
		}
		var dec []byte
		if err := msgpack.Unmarshal(b, &dec); err != nil || !bytes.Equal(dec, v) {
			t.Errorf("msgpack.Unmarshal(AppendBytes(len %d)) = len %d, %v", n, len(dec), err)
		}
	}
}

func TestAliasing(t *testing.T) {
	b := mp.AppendString(nil, "ab")
	b = mp.AppendBytes(b, []byte("cd"))
	b = mp.AppendUint(b, 7)
	in := bytes.Clone(b)
	r := mp.NewReader(b)
	s, _ := r.StringBytes()
	p, _ := r.Bytes()
	if &s[0] != &b[1] {
		t.Errorf("StringBytes does not alias its input")
	}
	// Appending to a returned slice must not overwrite what follows it.
	_ = append(s, 'X')
	_ = append(p, 'Y')
	if !bytes.Equal(b, in) {
		t.Errorf("appending to returned slices changed the input: %x, want %x", b, in)
	}
	if v, err := r.Uint(); err != nil || v != 7 {
		t.Errorf("Uint() after aliases = %d, %v; want 7", v, err)
	}
}

func TestArrayHeader(t *testing.T) {
	for _, n := range lengths {
		b := mp.AppendArrayHeader(nil, n)
		hdr := len(b)
		want := 1
		if n > 15 {
			want = 3
		}
		if n > 65535 {
			want = 5
		}
		if hdr != want {
			t.Errorf("AppendArrayHeader(%d) = %x, want %d bytes", n, b, want)
		}
		vals := make([]int64, n)
		for i := range vals {
			vals[i] = int64(i % 100)
			b = mp.AppendInt(b, vals[i])
		}
		r := mp.NewReader(b)
		got, err := r.ArrayHeader()
		if err != nil || got != n {
			t.Errorf("ArrayHeader(AppendArrayHeader(%d)) = %d, %v", n, got, err)
		}
		if r.Offset() != hdr {
			t.Errorf("ArrayHeader(%d) consumed %d bytes, want %d", n, r.Offset(), hdr)
		}
		checkSkipRaw(t, b)
		if want := compact(t, vals); !bytes.Equal(b, want) {
			t.Errorf("array of %d differs from vmihailenco: %x... vs %x...", n, b[:min(len(b), 8)], want[:min(len(want), 8)])
		}
		var dec []int64
		if err := msgpack.Unmarshal(b, &dec); err != nil || len(dec) != n || (n > 0 && !reflect.DeepEqual(dec, vals)) {
			t.Errorf("msgpack.Unmarshal(array of %d) = len %d, %v", n, len(dec), err)
		}
		// vmihailenco arrays are read by ours.
		enc, _ := msgpack.Marshal(vals)
		r = mp.NewReader(enc)
		if got, err := r.ArrayHeader(); err != nil || got != n {
			t.Errorf("ArrayHeader(msgpack.Marshal(%d ints)) = %d, %v", n, got, err)
		}
		for i := 0; i < n; i++ {
			if v, err := r.Int(); err != nil || v != vals[i] {
				t.Fatalf("element %d of msgpack.Marshal(%d ints) = %d, %v; want %d", i, n, v, err, vals[i])
			}
		}
		checkConsumed(t, r, enc)
	}
}

func TestMapHeader(t *testing.T) {
	for _, n := range lengths {
		b := mp.AppendMapHeader(nil, n)
		hdr := len(b)
		want := 1
		if n > 15 {
			want = 3
		}
		if n > 65535 {
			want = 5
		}
		if hdr != want {
			t.Errorf("AppendMapHeader(%d) = %x, want %d bytes", n, b, want)
		}
		m := make(map[string]int64, n)
		for i := range n {
			k := strconv.Itoa(i)
			m[k] = int64(-i)
			b = mp.AppendString(b, k)
			b = mp.AppendInt(b, int64(-i))
		}
		r := mp.NewReader(b)
		got, err := r.MapHeader()
		if err != nil || got != n {
			t.Errorf("MapHeader(AppendMapHeader(%d)) = %d, %v", n, got, err)
		}
		if r.Offset() != hdr {
			t.Errorf("MapHeader(%d) consumed %d bytes, want %d", n, r.Offset(), hdr)
		}
		checkSkipRaw(t, b)
		var dec map[string]int64
		if err := msgpack.Unmarshal(b, &dec); err != nil || !reflect.DeepEqual(dec, m) {
			t.Errorf("msgpack.Unmarshal(map of %d) = len %d, %v", n, len(dec), err)
		}
		// vmihailenco maps are read by ours.
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.SetSortMapKeys(true)
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
		r = mp.NewReader(buf.Bytes())
		if got, err := r.MapHeader(); err != nil || got != n {
			t.Errorf("MapHeader(msgpack map of %d) = %d, %v", n, got, err)
		}
		for range n {
			k, err := r.String()
			if err != nil {
				t.Fatalf("key: %v", err)
			}
			v, err := r.Int()
			if err != nil || m[k] != v {
				t.Fatalf("value of %q = %d, %v; want %d", k, v, err, m[k])
			}
		}
		checkConsumed(t, r, buf.Bytes())
	}
}

// TestVmihailencoValues checks that composite values encoded by vmihailenco
// are skipped and read by ours.
func TestVmihailencoValues(t *testing.T) {
	type inner struct {
		A []string       `msgpack:"a"`
		B map[string]any `msgpack:"b"`
		C []byte         `msgpack:"c"`
		D float32        `msgpack:"d"`
		E *int           `msgpack:"e"`
	}
	v := []any{inner{A: []string{"x", strings.Repeat("y", 40)}, B: map[string]any{"k": []any{1, -1, 1.5, nil, true}}, C: []byte{1, 2}, D: 2.5}, "tail", uint64(math.MaxUint64)}
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	checkSkipRaw(t, b)
	r := mp.NewReader(b)
	n, err := r.ArrayHeader()
	if err != nil || n != 3 {
		t.Fatalf("ArrayHeader = %d, %v; want 3", n, err)
	}
	if err := r.Skip(); err != nil {
		t.Fatalf("Skip(struct): %v", err)
	}
	if s, err := r.String(); err != nil || s != "tail" {
		t.Errorf("String() = %q, %v", s, err)
	}
	if u, err := r.Uint(); err != nil || u != math.MaxUint64 {
		t.Errorf("Uint() = %d, %v", u, err)
	}
	checkConsumed(t, r, b)
}

func TestSkipExtensions(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{"fixext 1", []byte{0xd4, 0x01, 0xaa}},
		{"fixext 2", []byte{0xd5, 0x01, 0xaa, 0xbb}},
		{"fixext 4", append([]byte{0xd6, 0x01}, make([]byte, 4)...)},
		{"fixext 8", append([]byte{0xd7, 0xff}, make([]byte, 8)...)},
		{"fixext 16", append([]byte{0xd8, 0x01}, make([]byte, 16)...)},
		{"ext 8 empty", []byte{0xc7, 0x00, 0x05}},
		{"ext 8", []byte{0xc7, 0x03, 0x05, 1, 2, 3}},
		{"ext 16", append([]byte{0xc8, 0x01, 0x00, 0x05}, make([]byte, 256)...)},
		{"ext 32", append([]byte{0xc9, 0, 0, 0, 2, 0x05}, 1, 2)},
		{"float32", []byte{0xca, 0x3f, 0x80, 0, 0}},
		{"timestamp 32", []byte{0xd6, 0xff, 0, 0, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkSkipRaw(t, tt.b)
			for i := range len(tt.b) {
				r := mp.NewReader(tt.b[:i])
				if err := r.Skip(); !errors.Is(err, mp.ErrMalformed) {
					t.Errorf("Skip(%x) truncated to %d bytes = %v, want ErrMalformed", tt.b, i, err)
				}
			}
		})
	}
}

func TestReaderMisc(t *testing.T) {
	b := mp.AppendUint(mp.AppendString(nil, "hi"), 300)
	r := mp.NewReader(b)
	if r.Len() != len(b) || r.Offset() != 0 {
		t.Errorf("new Reader: Len() = %d, Offset() = %d; want %d, 0", r.Len(), r.Offset(), len(b))
	}
	c, err := r.Peek()
	if err != nil || c != 0xa2 {
		t.Errorf("Peek() = %#x, %v; want 0xa2", c, err)
	}
	if r.Offset() != 0 {
		t.Errorf("Peek consumed input")
	}
	if s, _ := r.String(); s != "hi" {
		t.Errorf("String() = %q, want hi", s)
	}
	if r.Offset() != 3 || r.Len() != 3 {
		t.Errorf("after String(): Len() = %d, Offset() = %d; want 3, 3", r.Len(), r.Offset())
	}
	if v, _ := r.Uint(); v != 300 {
		t.Errorf("Uint() = %d, want 300", v)
	}
	if _, err := r.Peek(); !errors.Is(err, mp.ErrMalformed) {
		t.Errorf("Peek() at end = %v, want ErrMalformed", err)
	}
	r.Reset(mp.AppendBool(nil, true))
	if v, err := r.Bool(); err != nil || !v || r.Offset() != 1 {
		t.Errorf("after Reset: Bool() = %v, %v, offset %d", v, err, r.Offset())
	}
	var zero mp.Reader
	if err := zero.Skip(); !errors.Is(err, mp.ErrMalformed) {
		t.Errorf("zero Reader Skip() = %v, want ErrMalformed", err)
	}
}

// reads names each typed read of a Reader.
var reads = []struct {
	name string
	read func(r *mp.Reader) error
}{
	{"Bool", func(r *mp.Reader) error { _, err := r.Bool(); return err }},
	{"Uint", func(r *mp.Reader) error { _, err := r.Uint(); return err }},
	{"Int", func(r *mp.Reader) error { _, err := r.Int(); return err }},
	{"Float64", func(r *mp.Reader) error { _, err := r.Float64(); return err }},
	{"String", func(r *mp.Reader) error { _, err := r.String(); return err }},
	{"StringBytes", func(r *mp.Reader) error { _, err := r.StringBytes(); return err }},
	{"Bytes", func(r *mp.Reader) error { _, err := r.Bytes(); return err }},
	{"ArrayHeader", func(r *mp.Reader) error { _, err := r.ArrayHeader(); return err }},
	{"MapHeader", func(r *mp.Reader) error { _, err := r.MapHeader(); return err }},
	{"Skip", func(r *mp.Reader) error { return r.Skip() }},
	{"Raw", func(r *mp.Reader) error { _, err := r.Raw(); return err }},
}

func readByName(name string) func(r *mp.Reader) error {
	for _, rd := range reads {
		if rd.name == name {
			return rd.read
		}
	}
	panic(name)
}

func TestTruncated(t *testing.T) {
	tests := []struct {
		read string
		b    []byte
	}{
		{"Bool", mp.AppendBool(nil, true)},
		{"Uint", mp.AppendUint(nil, 200)},
		{"Uint", mp.AppendUint(nil, 300)},
		{"Uint", mp.AppendUint(nil, 70000)},
		{"Uint", mp.AppendUint(nil, math.MaxUint64)},
		{"Uint", []byte{0xd0, 0x05}},
		{"Int", mp.AppendInt(nil, -100)},
		{"Int", mp.AppendInt(nil, -1000)},
		{"Int", mp.AppendInt(nil, -100000)},
		{"Int", mp.AppendInt(nil, math.MinInt64)},
		{"Int", mp.AppendInt(nil, 1<<40)},
		{"Float64", mp.AppendFloat64(nil, 1.5)},
		{"Float64", []byte{0xca, 0x3f, 0x80, 0, 0}},
		{"String", mp.AppendString(nil, "hello")},
		{"String", mp.AppendString(nil, strings.Repeat("s", 40))},
		{"String", mp.AppendString(nil, strings.Repeat("s", 300))},
		{"String", mp.AppendString(nil, strings.Repeat("s", 70000))},
		{"Bytes", mp.AppendBytes(nil, []byte("hello"))},
		{"Bytes", mp.AppendBytes(nil, make([]byte, 300))},
		{"Bytes", mp.AppendBytes(nil, make([]byte, 70000))},
		{"ArrayHeader", mp.AppendArrayHeader(nil, 20)},
		{"ArrayHeader", mp.AppendArrayHeader(nil, 70000)},
		{"MapHeader", mp.AppendMapHeader(nil, 20)},
		{"MapHeader", mp.AppendMapHeader(nil, 70000)},
		{"Skip", mp.AppendInt(mp.AppendString(mp.AppendArrayHeader(nil, 2), "ab"), -1000)},
		{"Raw", mp.AppendBool(mp.AppendString(mp.AppendMapHeader(nil, 1), "k"), true)},
	}
	for _, tt := range tests {
		read := readByName(tt.read)
		// For headers, the full input lacks the elements: only cut the header.
		n := len(tt.b)
		for i := range n {
			r := mp.NewReader(tt.b[:i])
			if err := read(r); !errors.Is(err, mp.ErrMalformed) {
				t.Errorf("%s(%x) of %d bytes (truncated to %d) = %v, want ErrMalformed", tt.read, tt.b[:min(i, 12)], n, i, err)
			}
		}
	}
}

func TestWrongType(t *testing.T) {
	values := map[string][]byte{
		"nil":    mp.AppendNil(nil),
		"bool":   mp.AppendBool(nil, true),
		"uint":   mp.AppendUint(nil, 5),
		"uint8":  mp.AppendUint(nil, 200),
		"negint": mp.AppendInt(nil, -5),
		"float":  mp.AppendFloat64(nil, 1),
		"str":    mp.AppendString(nil, "x"),
		"bin":    mp.AppendBytes(nil, []byte("x")),
		"array":  mp.AppendUint(mp.AppendArrayHeader(nil, 1), 1),
		"map":    mp.AppendUint(mp.AppendUint(mp.AppendMapHeader(nil, 1), 1), 1),
		"ext":    {0xd4, 1, 1},
	}
	accepts := map[string][]string{
		"Bool":        {"bool"},
		"Uint":        {"uint", "uint8"},
		"Int":         {"uint", "uint8", "negint"},
		"Float64":     {"float"},
		"String":      {"str"},
		"StringBytes": {"str"},
		"Bytes":       {"bin"},
		"ArrayHeader": {"array"},
		"MapHeader":   {"map"},
	}
	for readName, ok := range accepts {
		read := readByName(readName)
		for valName, b := range values {
			err := read(mp.NewReader(b))
			want := false
			for _, o := range ok {
				want = want || o == valName
			}
			if want && err != nil {
				t.Errorf("%s(%s %x) error: %v", readName, valName, b, err)
			}
			if !want && !errors.Is(err, mp.ErrMalformed) {
				t.Errorf("%s(%s %x) = %v, want ErrMalformed", readName, valName, b, err)
			}
		}
	}
}

func TestIntegerRange(t *testing.T) {
	if v, err := mp.NewReader(mp.AppendUint(nil, math.MaxInt64+1)).Int(); !errors.Is(err, mp.ErrMalformed) {
		t.Errorf("Int(MaxInt64+1) = %d, %v; want ErrMalformed", v, err)
	}
	for _, b := range [][]byte{{0xff}, {0xd0, 0xff}, {0xd1, 0x80, 0}, {0xd2, 0x80, 0, 0, 0}, {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}} {
		if v, err := mp.NewReader(b).Uint(); !errors.Is(err, mp.ErrMalformed) {
			t.Errorf("Uint(%x) = %d, %v; want ErrMalformed", b, v, err)
		}
	}
}

func TestUnusedTypeByte(t *testing.T) {
	// 0xc1 is never used by msgpack.
	for _, rd := range reads {
		if err := rd.read(mp.NewReader([]byte{0xc1})); !errors.Is(err, mp.ErrMalformed) {
			t.Errorf("%s(c1) = %v, want ErrMalformed", rd.name, err)
		}
	}
}

// TestHugeLengths checks that length prefixes beyond the input are refused
// before anything is allocated for them.
func TestHugeLengths(t *testing.T) {
	tests := []struct {
		read string
		b    []byte
	}{
		{"ArrayHeader", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02}},
		{"ArrayHeader", []byte{0xdc, 0xff, 0xff, 0x01}},
		{"ArrayHeader", []byte{0x93, 0x01, 0x02}},
		{"MapHeader", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02}},
		{"MapHeader", []byte{0x82, 0x01, 0x02, 0x03}},
		{"String", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}},
		{"Bytes", []byte{0xc6, 0xff, 0xff, 0xff, 0xff, 'a'}},
		{"Skip", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02}},
		{"Skip", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02}},
		{"Skip", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02}},
		{"Skip", []byte{0xc9, 0xff, 0xff, 0xff, 0xfe, 0x01, 0x02}},
		{"Raw", []byte{0x91, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}},
	}
	for _, tt := range tests {
		read := readByName(tt.read)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := read(mp.NewReader(tt.b))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, mp.ErrMalformed) {
			t.Errorf("%s(%x) = %v, want ErrMalformed", tt.read, tt.b, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 1<<16 {
			t.Errorf("%s(%x) allocated %d bytes", tt.read, tt.b, got)
		}
	}
	// A header that fits the bytes left is accepted.
	if n, err := mp.NewReader([]byte{0x92, 0x01, 0x02}).ArrayHeader(); err != nil || n != 2 {
		t.Errorf("ArrayHeader(92 01 02) = %d, %v; want 2", n, err)
	}
	if n, err := mp.NewReader([]byte{0x81, 0x01, 0x02}).MapHeader(); err != nil || n != 1 {
		t.Errorf("MapHeader(81 01 02) = %d, %v; want 1", n, err)
	}
}

// nested returns depth arrays (or maps, keyed by 0) around the value 0.
func nested(depth int, maps bool) []byte {
	var b []byte
	for range depth {
		if maps {
			b = append(b, 0x81, 0x00)
		} else {
			b = append(b, 0x91)
		}
	}
	return append(b, 0x00)
}

func TestDepthLimit(t *testing.T) {
	for _, maps := range []bool{false, true} {
		for _, tt := range []struct {
			depth int
			ok    bool
		}{
			{0, true},
			{1, true},
			{mp.MaxDepth, true},
			{mp.MaxDepth + 1, false},
			{mp.MaxDepth + 2, false},
			{100_000, false},
			{1_000_000, false},
		} {
			b := nested(tt.depth, maps)
			for _, name := range []string{"Skip", "Raw"} {
				err := readByName(name)(mp.NewReader(b))
				if tt.ok && err != nil {
					t.Errorf("%s of %d nested (maps %v) error: %v", name, tt.depth, maps, err)
				}
				if !tt.ok && !errors.Is(err, mp.ErrMalformed) {
					t.Errorf("%s of %d nested (maps %v) = %v, want ErrMalformed", name, tt.depth, maps, err)
				}
			}
		}
	}
}

// FuzzReader feeds arbitrary bytes to every read; none may panic, errors
// must wrap ErrMalformed, and Skip and Raw must agree.
func FuzzReader(f *testing.F) {
	seeds := [][]byte{
		{},
		mp.AppendNil(nil),
		mp.AppendUint(nil, math.MaxUint64),
		mp.AppendInt(nil, math.MinInt64),
		mp.AppendFloat64(nil, 1.5),
		mp.AppendString(nil, strings.Repeat("a", 40)),
		mp.AppendBytes(nil, make([]byte, 300)),
		mp.AppendUint(mp.AppendString(mp.AppendMapHeader(nil, 1), "k"), 1),
		nested(mp.MaxDepth+1, false),
		{0xdd, 0xff, 0xff, 0xff, 0xff},
		{0xc9, 0, 0, 0, 1, 5, 0},
		{0xd8, 1},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, rd := range reads {
			r := mp.NewReader(b)
			// Read repeatedly until an error or the end.
			for r.Len() > 0 {
				off := r.Offset()
				err := rd.read(r)
				if err != nil {
					if !errors.Is(err, mp.ErrMalformed) {
						t.Fatalf("%s(%x) error %v does not wrap ErrMalformed", rd.name, b, err)
					}
					break
				}
				if r.Offset() <= off && rd.name != "ArrayHeader" && rd.name != "MapHeader" {
					t.Fatalf("%s(%x) succeeded without consuming input", rd.name, b)
				}
				if r.Offset() > len(b) || r.Len() < 0 {
					t.Fatalf("%s(%x) read past the end: offset %d", rd.name, b, r.Offset())
				}
			}
		}
		r1, r2 := mp.NewReader(b), mp.NewReader(b)
		errSkip := r1.Skip()
		raw, errRaw := r2.Raw()
		if (errSkip == nil) != (errRaw == nil) {
			t.Fatalf("Skip(%x) = %v but Raw = %v", b, errSkip, errRaw)
		}
		if errSkip == nil {
			if r1.Offset() != r2.Offset() || !bytes.Equal(raw, b[:r1.Offset()]) {
				t.Fatalf("Raw(%x) = %x, Skip consumed %d bytes", b, raw, r1.Offset())
			}
			// What Skip accepts as one value, Raw accepts again alone.
			r3 := mp.NewReader(raw)
			if err := r3.Skip(); err != nil || r3.Len() != 0 {
				t.Fatalf("Skip(Raw(%x)) = %v, %d left", b, err, r3.Len())
			}
		}
	})
}
