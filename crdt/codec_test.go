package crdt

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt/seq"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
	"pgregory.net/rapid"
)

var update = flag.Bool("update", false, "rewrite the seed corpora under testdata/fuzz")

// genReplica draws a non-zero replica id: usually one of a few, so that
// dots repeat, sometimes any.
func genReplica() *rapid.Generator[ReplicaID] {
	return rapid.OneOf(
		rapid.SampledFrom([]ReplicaID{rA, rB, rC}),
		rapid.Custom(func(t *rapid.T) ReplicaID {
			var r ReplicaID
			copy(r[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "id"))
			if r.IsZero() {
				r[15] = 1
			}
			return r
		}),
	)
}

func genDot() *rapid.Generator[Dot] {
	return rapid.Custom(func(t *rapid.T) Dot {
		return Dot{Origin: genReplica().Draw(t, "origin"), Seq: rapid.OneOf(rapid.Uint64Range(1, 10), rapid.Uint64Min(1)).Draw(t, "seq")}
	})
}

func genTimestamp() *rapid.Generator[hlc.Timestamp] {
	return rapid.Map(rapid.OneOf(rapid.Uint64Range(1, 1<<20), rapid.Uint64Min(1)), func(u uint64) hlc.Timestamp { return hlc.Timestamp(u) })
}

// genMsgpack draws one well-formed msgpack value nested at most depth deep.
func genMsgpack(depth int) *rapid.Generator[[]byte] {
	scalars := []*rapid.Generator[[]byte]{
		rapid.Just(vNil),
		rapid.Map(rapid.Bool(), func(b bool) []byte { return mp.AppendBool(nil, b) }),
		rapid.Map(rapid.Int64(), vInt),
		rapid.Map(rapid.Uint64(), vUint),
		rapid.Map(rapid.Float64(), vFloat),
		rapid.Map(rapid.String(), vStr),
		rapid.Map(rapid.SliceOf(rapid.Byte()), func(b []byte) []byte { return vBin(b...) }),
		rapid.Just([]byte{0xd6, 0xff, 0, 0, 0, 1}), // timestamp extension
	}
	if depth == 0 {
		return rapid.OneOf(scalars...)
	}
	return rapid.OneOf(append(scalars,
		rapid.Custom(func(t *rapid.T) []byte {
			elems := rapid.SliceOfN(genMsgpack(depth-1), 0, 3).Draw(t, "elems")
			return vArr(elems...)
		}),
		rapid.Custom(func(t *rapid.T) []byte {
			n := rapid.IntRange(0, 3).Draw(t, "pairs")
			b := mp.AppendMapHeader(nil, n)
			for range n {
				b = append(b, genMsgpack(0).Draw(t, "key")...)
				b = append(b, genMsgpack(depth-1).Draw(t, "value")...)
			}
			return b
		}),
	)...)
}

var fieldOpTypes = []FieldOpType{Assign, Add, Remove, Count, WriteMax, WriteMin}

func genFieldOp(name string) *rapid.Generator[FieldOp] {
	return rapid.Custom(func(t *rapid.T) FieldOp {
		f := FieldOp{Name: name, Type: rapid.SampledFrom(fieldOpTypes).Draw(t, "type")}
		switch f.Type {
		case Assign:
			if rapid.IntRange(0, 4).Draw(t, "unset") > 0 {
				f.Value = genMsgpack(2).Draw(t, "value")
			}
			if rapid.Bool().Draw(t, "seen") {
				f.Seen = genTimestamp().Draw(t, "seen")
			}
		case Count:
			f.P = rapid.Uint64().Draw(t, "p")
			f.N = rapid.Uint64().Draw(t, "n")
		default:
			f.Value = genMsgpack(2).Draw(t, "value")
		}
		if f.Type == Remove {
			f.Dots = rapid.SliceOfN(genDot(), 0, 4).Draw(t, "dots")
		}
		return f
	})
}

// genOp draws a valid op.
func genOp() *rapid.Generator[*Op] {
	return rapid.Custom(func(t *rapid.T) *Op {
		op := &Op{
			Namespace:  rapid.StringN(1, 10, MaxNameLen).Draw(t, "namespace"),
			Collection: rapid.StringN(1, 10, MaxNameLen).Draw(t, "collection"),
			Key:        rapid.StringN(1, 30, MaxNameLen).Draw(t, "key"),
			Dot:        genDot().Draw(t, "dot"),
			HLC:        genTimestamp().Draw(t, "hlc"),
			CL:         rapid.OneOf(rapid.Uint64Range(1, 6), rapid.Uint64Range(1, maxCL)).Draw(t, "cl"),
			TxEnd:      rapid.Bool().Draw(t, "txEnd"),
			Resolution: rapid.Bool().Draw(t, "resolution"),
		}
		if op.IsDelete() {
			return op
		}
		n := rapid.IntRange(0, 6).Draw(t, "fields")
		for i := range n {
			name := fmt.Sprintf("f%d", i)
			if i > 0 && rapid.IntRange(0, 3).Draw(t, "sameName") == 0 {
				// Several set writes may share a field.
				prev := op.Fields[i-1]
				if prev.Type == Add || prev.Type == Remove {
					f := genFieldOp(prev.Name).Draw(t, "field")
					if f.Type == Add || f.Type == Remove {
						op.Fields = append(op.Fields, f)
						continue
					}
				}
			}
			op.Fields = append(op.Fields, genFieldOp(name).Draw(t, "field"))
		}
		if err := op.Validate(); err != nil {
			t.Fatalf("generated an invalid op %+v: %v", op, err)
		}
		return op
	})
}

// normalizeOp returns a copy of op as decoding yields it: empty slices are
// nil, and a register's msgpack nil is no value.
func normalizeOp(op *Op) Op {
	c := *op
	c.Fields = nil
	for _, f := range op.Fields {
		if len(f.Value) == 0 || (f.Type == Assign && isNil(f.Value)) {
			f.Value = nil
		}
		if len(f.Dots) == 0 {
			f.Dots = nil
		}
		c.Fields = append(c.Fields, f)
	}
	return c
}

func TestOpRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		op := genOp().Draw(t, "op")
		enc := EncodeOp(op)
		if app := AppendOp([]byte("prefix"), op); !bytes.Equal(app[6:], enc) || string(app[:6]) != "prefix" {
			t.Fatalf("AppendOp differs from EncodeOp")
		}
		got, err := DecodeOp(enc)
		if err != nil {
			t.Fatalf("DecodeOp(EncodeOp(%+v)): %v", op, err)
		}
		if want := normalizeOp(op); !reflect.DeepEqual(normalizeOp(&got), want) {
			t.Fatalf("DecodeOp(EncodeOp(op)) =\n%+v\nwant\n%+v", normalizeOp(&got), want)
		}
		if re := EncodeOp(&got); !bytes.Equal(re, enc) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, enc)
		}
		// Applying the decoded op gives the same state.
		checkSameBytes(t, "Delta of decoded op", Delta(op), Delta(&got))
	})
}

func TestOpEncodingGolden(t *testing.T) {
	op := &Op{
		Namespace: "n", Collection: "c", Key: "k",
		Dot: Dot{Origin: rA, Seq: 1}, HLC: hlc.New(1, 2), CL: 1, TxEnd: true,
		Fields: []FieldOp{
			{Name: "a", Type: Assign, Value: vInt(5)},
			{Name: "c", Type: Count, P: 1, N: 2},
			{Name: "r", Type: Remove, Value: vStr("x"), Dots: []Dot{{Origin: rB, Seq: 3}}},
			{Name: "s", Type: Add, Value: vTrue},
			{Name: "u", Type: Assign, Seen: hlc.New(0, 9)},
			{Name: "x", Type: WriteMax, Value: vNil},
			{Name: "y", Type: WriteMin, Value: vInt(-1)},
		},
	}
	var want []byte
	want = append(want, 0x9a, 0x01, 0xa1, 'n', 0xa1, 'c', 0xa1, 'k', 0xc4, 0x10)
	want = append(want, rA[:]...)
	want = append(want, 0x01, 0xce, 0x00, 0x01, 0x00, 0x02, 0x01, 0x01, 0x97)
	want = append(want, 0x94, 0xa1, 'a', 0x01, 0x05, 0x00)
	want = append(want, 0x94, 0xa1, 'c', 0x04, 0x01, 0x02)
	want = append(want, 0x94, 0xa1, 'r', 0x03, 0xa1, 'x', 0x92, 0xc4, 0x10)
	want = append(want, rB[:]...)
	want = append(want, 0x03)
	want = append(want, 0x93, 0xa1, 's', 0x02, 0xc3)
	want = append(want, 0x94, 0xa1, 'u', 0x01, 0xc0, 0x09)
	want = append(want, 0x93, 0xa1, 'x', 0x05, 0xc0)
	want = append(want, 0x93, 0xa1, 'y', 0x06, 0xff)
	got := EncodeOp(op)
	if !bytes.Equal(got, want) {
		t.Fatalf("EncodeOp =\n%x\nwant\n%x", got, want)
	}
	dec, err := DecodeOp(got)
	if err != nil {
		t.Fatalf("DecodeOp: %v", err)
	}
	if n := normalizeOp(op); !reflect.DeepEqual(normalizeOp(&dec), n) {
		t.Errorf("DecodeOp =\n%+v\nwant\n%+v", normalizeOp(&dec), n)
	}
}

// TestOpNilValues checks that msgpack nil round-trips as a set element and
// a max or min value (only a register reads it as "unset").
func TestOpFlags(t *testing.T) {
	base := baseParts()
	for flags, want := range map[uint64][2]bool{0: {false, false}, 1: {true, false}, 2: {false, true}, 3: {true, true}} {
		b := base.with(8, vUint(flags)).bytes()
		op, err := DecodeOp(b)
		if err != nil {
			t.Fatalf("flags %d: %v", flags, err)
		}
		if op.TxEnd != want[0] || op.Resolution != want[1] {
			t.Errorf("flags %d: TxEnd %v, Resolution %v, want %v", flags, op.TxEnd, op.Resolution, want)
		}
		if got := EncodeOp(&op); !bytes.Equal(got, b) {
			t.Errorf("flags %d: re-encoding differs:\n got %x\nwant %x", flags, got, b)
		}
	}
}

func TestOpNilValues(t *testing.T) {
	op := mkOp(rA, 1, ts(1), 1, add("s", vNil), remove("t", vNil, Dot{rB, 1}), writeMax("x", vNil), writeMin("y", vNil), assign("z", vNil))
	mustValid(t, op)
	got, err := DecodeOp(EncodeOp(op))
	if err != nil {
		t.Fatalf("DecodeOp(EncodeOp(%+v)): %v", op, err)
	}
	for i, f := range got.Fields {
		want := vNil
		if f.Type == Assign {
			want = nil
		}
		if !bytes.Equal(f.Value, want) {
			t.Errorf("field %q (%v) value = %x, want %x", f.Name, f.Type, f.Value, want)
		}
		_ = i
	}
}

func TestDecodeOpDoesNotAlias(t *testing.T) {
	op := mkOp(rA, 1, ts(1), 1, assign("title", vStr("hello")), add("tags", vStr("x")))
	enc := EncodeOp(op)
	got, err := DecodeOp(enc)
	if err != nil {
		t.Fatal(err)
	}
	before := EncodeOp(&got)
	for i := range enc {
		enc[i] = 0xee
	}
	if after := EncodeOp(&got); !bytes.Equal(before, after) {
		t.Errorf("overwriting the input changed the decoded op")
	}
}

// opParts are the ten elements of an op's encoding, to be altered one by one.
type opParts [10][]byte

func baseParts() opParts {
	f := mp.AppendArrayHeader(nil, 1)
	f = append(f, 0x94, 0xa1, 'a', 0x01, 0x05, 0x00) // [a, Assign, 5, 0]
	return opParts{
		vUint(1), vStr("ns"), vStr("c"), vStr("k"), vBin(rA[:]...),
		vUint(1), vUint(uint64(ts(5))), vUint(1), vUint(1), f,
	}
}

func (p opParts) bytes() []byte {
	b := mp.AppendArrayHeader(nil, len(p))
	for _, e := range p {
		b = append(b, e...)
	}
	return b
}

func (p opParts) with(i int, v []byte) opParts {
	p[i] = v
	return p
}

func fields(fs ...[]byte) []byte { return vArr(fs...) }

func TestDecodeOpErrors(t *testing.T) {
	base := baseParts()
	if _, err := DecodeOp(base.bytes()); err != nil {
		t.Fatalf("base encoding: %v", err)
	}
	longName := strings.Repeat("n", MaxNameLen+1)
	deep := append(bytes.Repeat([]byte{0x91}, maxValueNest+1), 0x00)
	bigFields := mp.AppendArrayHeader(nil, MaxFieldOps+1)
	for i := range MaxFieldOps + 1 {
		bigFields = append(bigFields, vArr(vStr(fmt.Sprint(i)), vUint(uint64(Count)), vUint(0), vUint(0))...)
	}
	tests := []struct {
		name        string
		b           []byte
		wantVersion bool // ErrUnknownVersion rather than ErrInvalidOp
	}{
		{"empty", nil, false},
		{"nil", vNil, false},
		{"not an array", vInt(1), false},
		{"map", append([]byte{0x8a}, base.bytes()[1:]...), false},
		{"9 elements", append([]byte{0x99}, bytes.Join(base[:9], nil)...), false},
		{"11 elements", append([]byte{0x9b}, append(bytes.Join(base[:], nil), 0x00)...), false},
		{"trailing byte", append(base.bytes(), 0x00), false},
		{"trailing value", append(base.bytes(), base.bytes()...), false},
		{"version 0", base.with(0, vUint(0)).bytes(), true},
		{"version 2", base.with(0, vUint(2)).bytes(), true},
		{"version 255", base.with(0, vUint(255)).bytes(), true},
		{"version as string", base.with(0, vStr("1")).bytes(), false},
		{"version negative", base.with(0, vInt(-1)).bytes(), false},
		{"namespace as bin", base.with(1, vBin('n')).bytes(), false},
		{"empty namespace", base.with(1, vStr("")).bytes(), false},
		{"empty collection", base.with(2, vStr("")).bytes(), false},
		{"empty key", base.with(3, vStr("")).bytes(), false},
		{"key too long", base.with(3, vStr(longName)).bytes(), false},
		{"origin as string", base.with(4, vStr(string(rA[:]))).bytes(), false},
		{"origin of 15 bytes", base.with(4, vBin(rA[:15]...)).bytes(), false},
		{"origin of 17 bytes", base.with(4, vBin(append(rA[:], 1)...)).bytes(), false},
		{"zero origin", base.with(4, vBin(make([]byte, 16)...)).bytes(), false},
		{"seq 0", base.with(5, vUint(0)).bytes(), false},
		{"seq negative", base.with(5, vInt(-1)).bytes(), false},
		{"zero HLC", base.with(6, vUint(0)).bytes(), false},
		{"HLC float", base.with(6, vFloat(5)).bytes(), false},
		{"CL 0", base.with(7, vUint(0)).bytes(), false},
		{"CL beyond 2^62", base.with(7, vUint(maxCL+1)).bytes(), false},
		{"delete with fields", base.with(7, vUint(2)).bytes(), false},
		{"flags 4", base.with(8, vUint(4)).bytes(), false},
		{"flags 5", base.with(8, vUint(5)).bytes(), false},
		{"flags 7", base.with(8, vUint(7)).bytes(), false},
		{"flags 0x80", base.with(8, vUint(0x80)).bytes(), false},
		{"flags as bool", base.with(8, vTrue).bytes(), false},
		{"fields not an array", base.with(9, vNil).bytes(), false},
		{"field not an array", base.with(9, fields(vStr("a"))).bytes(), false},
		{"field op type 0", base.with(9, fields(vArr(vStr("a"), vUint(0), vInt(5)))).bytes(), false},
		{"field op type 7", base.with(9, fields(vArr(vStr("a"), vUint(7), vInt(5)))).bytes(), false},
		{"field op type 255", base.with(9, fields(vArr(vStr("a"), vUint(255), vInt(5), vInt(5)))).bytes(), false},
		{"field name as int", base.with(9, fields(vArr(vInt(1), vUint(1), vInt(5), vUint(0)))).bytes(), false},
		{"empty field name", base.with(9, fields(vArr(vStr(""), vUint(1), vInt(5), vUint(0)))).bytes(), false},
		{"field name too long", base.with(9, fields(vArr(vStr(longName), vUint(1), vInt(5), vUint(0)))).bytes(), false},
		{"assign of 3", base.with(9, fields(vArr(vStr("a"), vUint(1), vInt(5)))).bytes(), false},
		{"add of 4", base.with(9, fields(vArr(vStr("a"), vUint(2), vInt(5), vUint(0)))).bytes(), false},
		{"count of 3", base.with(9, fields(vArr(vStr("a"), vUint(4), vUint(1)))).bytes(), false},
		{"count of strings", base.with(9, fields(vArr(vStr("a"), vUint(4), vStr("1"), vStr("2")))).bytes(), false},
		{"assign seen negative", base.with(9, fields(vArr(vStr("a"), vUint(1), vInt(5), vInt(-1)))).bytes(), false},
		{"add without value", base.with(9, fields(vArr(vStr("a"), vUint(2)))).bytes(), false},
		{"max without value", base.with(9, fields(vArr(vStr("a"), vUint(5)))).bytes(), false},
		{"value nested too deep", base.with(9, fields(vArr(vStr("a"), vUint(5), deep))).bytes(), false},
		{"value truncated", base.with(9, fields(vArr(vStr("a"), vUint(5), []byte{0xcd, 0x01}))).bytes(), false},
		{"field written twice", base.with(9, fields(vArr(vStr("a"), vUint(5), vInt(1)), vArr(vStr("a"), vUint(5), vInt(2)))).bytes(), false},
		{"field written as two kinds", base.with(9, fields(vArr(vStr("a"), vUint(2), vInt(1)), vArr(vStr("a"), vUint(5), vInt(2)))).bytes(), false},
		{"remove dots odd", base.with(9, fields(vArr(vStr("a"), vUint(3), vInt(1), vArr(vBin(rA[:]...))))).bytes(), false},
		{"remove dots not an array", base.with(9, fields(vArr(vStr("a"), vUint(3), vInt(1), vNil))).bytes(), false},
		{"remove dot bad replica", base.with(9, fields(vArr(vStr("a"), vUint(3), vInt(1), vArr(vBin(1, 2), vUint(1))))).bytes(), false},
		{"remove dot zero origin", base.with(9, fields(vArr(vStr("a"), vUint(3), vInt(1), vArr(vBin(make([]byte, 16)...), vUint(1))))).bytes(), false},
		{"remove dot seq 0", base.with(9, fields(vArr(vStr("a"), vUint(3), vInt(1), vArr(vBin(rB[:]...), vUint(0))))).bytes(), false},
		{"too many field ops", base.with(9, bigFields).bytes(), false},
		{"fields count beyond input", base.with(9, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}).bytes(), false},
		{"value too long", base.with(9, fields(vArr(vStr("a"), vUint(5), vBin(make([]byte, MaxValueLen)...)))).bytes(), false},
		{"op too large", base.with(9, fields(vArr(vStr("a"), vUint(5), vBin(make([]byte, MaxOpSize)...)))).bytes(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecodeOpError(t, tt.b, tt.wantVersion)
		})
	}
}

// checkDecodeOpError checks that DecodeOp refuses b with a *DecodeError
// wrapping ErrInvalidOp, or ErrUnknownVersion if wantVersion.
func checkDecodeOpError(t *testing.T, b []byte, wantVersion bool) {
	t.Helper()
	op, err := DecodeOp(b)
	if err == nil {
		t.Fatalf("DecodeOp(%x) = %+v, want an error", b[:min(len(b), 64)], op)
	}
	if !reflect.DeepEqual(op, Op{}) {
		t.Errorf("DecodeOp returned %+v with its error", op)
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("DecodeOp error %v (%T) is not a *DecodeError", err, err)
	}
	if de.What != "op" || de.Offset < 0 || de.Offset > len(b) {
		t.Errorf("DecodeError = {What %q, Offset %d}, want op and an offset within %d bytes", de.What, de.Offset, len(b))
	}
	if wantVersion {
		if !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("DecodeOp error %v does not wrap ErrUnknownVersion", err)
		}
	} else if !errors.Is(err, ErrInvalidOp) {
		t.Errorf("DecodeOp error %v does not wrap ErrInvalidOp", err)
	}
	if de.Error() == "" || !strings.Contains(de.Error(), "op") {
		t.Errorf("DecodeError.Error() = %q", de.Error())
	}
}

func TestDecodeOpTruncated(t *testing.T) {
	for _, op := range sampleOps() {
		enc := EncodeOp(op)
		for i := range len(enc) {
			_, err := DecodeOp(enc[:i])
			var de *DecodeError
			if !errors.Is(err, ErrInvalidOp) || !errors.As(err, &de) {
				t.Errorf("DecodeOp of %d of %d bytes = %v, want a *DecodeError wrapping ErrInvalidOp", i, len(enc), err)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	valid := func() *Op { return mkOp(rA, 1, ts(1), 1, assign("a", vInt(1))) }
	tests := []struct {
		name   string
		mutate func(op *Op)
		ok     bool
	}{
		{"valid", func(op *Op) {}, true},
		{"no fields", func(op *Op) { op.Fields = nil }, true},
		{"delete", func(op *Op) { op.CL = 2; op.Fields = nil }, true},
		{"max CL", func(op *Op) { op.CL = maxCL - 1 }, true},
		{"name at limit", func(op *Op) { op.Key = strings.Repeat("k", MaxNameLen) }, true},
		{"unset", func(op *Op) { op.Fields[0].Value = nil }, true},
		{"count", func(op *Op) { op.Fields[0] = count("a", 1, 2) }, true},
		{"add and remove one set", func(op *Op) {
			op.Fields = []FieldOp{add("s", vInt(1)), remove("s", vInt(2), Dot{rB, 1}), add("s", vInt(3))}
		}, true},
		{"remove without dots", func(op *Op) { op.Fields[0] = remove("s", vInt(1)) }, true},
		{"empty namespace", func(op *Op) { op.Namespace = "" }, false},
		{"empty collection", func(op *Op) { op.Collection = "" }, false},
		{"empty key", func(op *Op) { op.Key = "" }, false},
		{"namespace too long", func(op *Op) { op.Namespace = strings.Repeat("n", MaxNameLen+1) }, false},
		{"zero origin", func(op *Op) { op.Dot.Origin = ReplicaID{} }, false},
		{"seq 0", func(op *Op) { op.Dot.Seq = 0 }, false},
		{"zero HLC", func(op *Op) { op.HLC = 0 }, false},
		{"CL 0", func(op *Op) { op.CL = 0 }, false},
		{"CL too large", func(op *Op) { op.CL = maxCL + 1 }, false},
		{"delete with fields", func(op *Op) { op.CL = 2 }, false},
		{"empty field name", func(op *Op) { op.Fields[0].Name = "" }, false},
		{"unknown field op type", func(op *Op) { op.Fields[0].Type = 7 }, false},
		{"field op type 0", func(op *Op) { op.Fields[0].Type = 0 }, false},
		{"register twice", func(op *Op) { op.Fields = append(op.Fields, assign("a", vInt(2))) }, false},
		{"two kinds", func(op *Op) { op.Fields = append(op.Fields, writeMax("a", vInt(2))) }, false},
		{"set then register", func(op *Op) { op.Fields = []FieldOp{add("a", vInt(1)), assign("a", vInt(2))} }, false},
		{"add without value", func(op *Op) { op.Fields[0] = add("s", nil) }, false},
		{"min without value", func(op *Op) { op.Fields[0] = writeMin("s", nil) }, false},
		{"two values", func(op *Op) { op.Fields[0].Value = append(vInt(1), vInt(2)...) }, false},
		{"malformed value", func(op *Op) { op.Fields[0].Value = []byte{0xc1} }, false},
		{"value too long", func(op *Op) { op.Fields[0].Value = vBin(make([]byte, MaxValueLen)...) }, false},
		{"value nested too deep", func(op *Op) {
			op.Fields[0].Value = append(bytes.Repeat([]byte{0x91}, maxValueNest+1), 0)
		}, false},
		{"dots on add", func(op *Op) { op.Fields[0] = add("s", vInt(1)); op.Fields[0].Dots = []Dot{{rA, 1}} }, false},
		{"remove dot seq 0", func(op *Op) { op.Fields[0] = remove("s", vInt(1), Dot{rA, 0}) }, false},
		{"remove dot zero origin", func(op *Op) { op.Fields[0] = remove("s", vInt(1), Dot{ReplicaID{}, 1}) }, false},
		{"too many field ops", func(op *Op) {
			op.Fields = nil
			for i := range MaxFieldOps + 1 {
				op.Fields = append(op.Fields, count(fmt.Sprint(i), 1, 0))
			}
		}, false},
	}
	for _, tt := range tests {
		op := valid()
		tt.mutate(op)
		err := op.Validate()
		if tt.ok && err != nil {
			t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidOp) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidOp", tt.name, err)
		}
	}
	// At the nesting limit is fine.
	op := valid()
	op.Fields[0].Value = append(bytes.Repeat([]byte{0x91}, maxValueNest), 0)
	if err := op.Validate(); err != nil {
		t.Errorf("value nested %d deep: %v", maxValueNest, err)
	}
}

func TestOpAccessors(t *testing.T) {
	op := mkOp(rB, 4, ts(9), 3)
	if got, want := op.Stamp(), (Stamp{HLC: ts(9), Replica: rB}); got != want {
		t.Errorf("Stamp() = %v, want %v", got, want)
	}
	if got, want := op.Version(), (Version{CL: 3, Stamp: Stamp{HLC: ts(9), Replica: rB}}); got != want {
		t.Errorf("Version() = %v, want %v", got, want)
	}
	for cl, want := range map[uint64]bool{1: false, 2: true, 3: false, 4: true} {
		op.CL = cl
		if got := op.IsDelete(); got != want {
			t.Errorf("CL %d: IsDelete() = %v, want %v", cl, got, want)
		}
	}
	kinds := map[FieldOpType]Kind{Assign: KindRegister, Add: KindSet, Remove: KindSet, Count: KindCounter, WriteMax: KindMax, WriteMin: KindMin,
		TextInsert: KindText, TextDelete: KindText, ListInsert: KindList, ListDelete: KindList, 0: 0, 11: 0}
	for typ, want := range kinds {
		if got := typ.Kind(); got != want {
			t.Errorf("%v.Kind() = %v, want %v", typ, got, want)
		}
	}
	names := map[fmt.Stringer]string{
		Assign: "assign", Add: "add", Remove: "remove", Count: "count", WriteMax: "max", WriteMin: "min", FieldOpType(11): "fieldop(11)",
		TextInsert: "text-insert", TextDelete: "text-delete", ListInsert: "list-insert", ListDelete: "list-delete",
		KindRegister: "register", KindSet: "set", KindCounter: "counter", KindMax: "max", KindMin: "min", KindText: "text", KindList: "list", Kind(0): "kind(0)",
	}
	for s, want := range names {
		if got := s.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// sampleOps are valid ops covering every field op type, for seeds.
func sampleOps() []*Op {
	return []*Op{
		mkOp(rA, 1, ts(1), 1),
		mkOp(rA, 2, ts(2), 2),
		mkOp(rB, 7, hlc.New(1700000000000, 3), 1, assign("title", vStr("buy milk")), assign("done", vFalse), assignSeen("owner", nil, ts(1))),
		mkOp(rC, 1, ts(3), 3, add("tags", vStr("x")), add("tags", vInt(5)), remove("tags", vStr("y"), Dot{rA, 1}, Dot{rB, 2})),
		mkOp(rA, 3, ts(4), 1, count("views", 10, 3), writeMax("high", vFloat(2.5)), writeMin("low", vInt(-7))),
		{
			Namespace: "acme", Collection: "tasks", Key: "01HZX3J5V8Q2W6N4M7K9T1R0YB", Dot: Dot{rB, 1 << 40},
			HLC: hlc.New(hlc.MaxWall, hlc.MaxLogical), CL: maxCL - 1, TxEnd: false,
			Fields: []FieldOp{
				assign("meta", vArr(vStr("a"), vArr(vNil, vBin(1, 2)), []byte{0x81, 0xa1, 'k', 0xc3})),
				add("s", vNil),
				count("c", 1<<63, 0),
			},
		},
		mkOp(rA, 4, ts(5), 1,
			FieldOp{Name: "note", Type: TextInsert, Clock: 3, Left: ElemID{Replica: seq.Replica(rA), Clock: 2}, Right: ElemID{Replica: seq.Replica(rB), Clock: 0}, Value: vStr("héllo")},
			FieldOp{Name: "note", Type: TextDelete, Spans: []Span{{ID: ElemID{Replica: seq.Replica(rA), Clock: 0}, N: 2}, {ID: ElemID{Replica: seq.Replica(rC), Clock: 5}, N: 1}}}),
		mkOp(rB, 2, ts(6), 1,
			FieldOp{Name: "items", Type: ListInsert, Value: vArr(vStr("milk"), vInt(2), vArr(vNil))},
			FieldOp{Name: "items", Type: ListDelete, Spans: []Span{{ID: ElemID{Replica: seq.Replica(rB), Clock: 9}, N: 1}}}),
	}
}

// sampleRecords are record states, produced by applying ops, covering every
// kind, tombstones, deletes and re-creates, for seeds.
func sampleRecords() []*Record {
	a1 := Dot{rA, 1}
	return []*Record{
		{},
		apply(mkOp(rA, 1, ts(1), 1)),
		apply(mkOp(rA, 1, ts(1), 1, assign("title", vStr("hi")), assign("n", vInt(1))), mkOp(rB, 1, ts(2), 1, assignSeen("title", vStr("ho"), ts(1)))),
		apply(mkOp(rA, 1, ts(1), 1, add("tags", vStr("x")), add("tags", vStr("y"))), mkOp(rB, 1, ts(2), 1, remove("tags", vStr("x"), a1)), mkOp(rC, 1, ts(3), 1, remove("tags", vStr("z"), Dot{rA, 9}))),
		apply(mkOp(rA, 1, ts(1), 1, count("views", 5, 1)), mkOp(rB, 1, ts(2), 1, count("views", 2, 0), writeMax("hi", vInt(3)), writeMin("lo", vFloat(0.5)))),
		apply(mkOp(rA, 1, ts(1), 1, assign("a", vInt(1)), add("s", vInt(1))), mkOp(rB, 1, ts(2), 2)),
		apply(mkOp(rA, 1, ts(1), 1, assign("a", vInt(1)), count("c", 4, 0)), mkOp(rB, 1, ts(2), 2), mkOp(rA, 2, ts(3), 3, assign("b", vInt(2)), count("c", 1, 0))),
		apply(mkOp(rA, 1, ts(1), 1, assign("f", vInt(1))), mkOp(rB, 1, ts(2), 1, add("f", vNil)), mkOp(rC, 1, ts(3), 1, writeMax("f", vStr("m")))),
		sampleTextRecord(),
	}
}

// sampleTextRecord is a record with a text field edited concurrently (with
// a tombstone, a pending insert and a pending delete) and a list field.
func sampleTextRecord() *Record {
	r := &Record{}
	cl, fields, _ := r.Prepare(rA, IntentPut, []Change{{Name: "note", Type: TextSplice, Value: vStr("hello world")}, {Name: "items", Type: ListSplice, Value: vArr(vStr("a"), vStr("b"))}})
	r.Apply(mkOp(rA, 1, ts(1), cl, fields...))
	s := r.Clone()
	_, fa, _ := r.Prepare(rA, IntentUpdate, []Change{{Name: "note", Type: TextSplice, Pos: 5, Del: 6, Value: vStr("!")}})
	_, fb, _ := s.Prepare(rB, IntentUpdate, []Change{{Name: "note", Type: TextSplice, Pos: 0, Value: vStr("Oh, ")}, {Name: "items", Type: ListSplice, Pos: 1, Del: 1, Value: vArr(vInt(3))}})
	r.Apply(mkOp(rA, 2, ts(2), 1, fa...))
	r.Apply(mkOp(rB, 1, ts(2), 1, fb...))
	// An insert after an element that has not arrived, and a delete of one.
	r.Apply(mkOp(rC, 1, ts(3), 1,
		FieldOp{Name: "note", Type: TextInsert, Clock: 4, Left: ElemID{Replica: seq.Replica(rC), Clock: 3}, Value: vStr("?")},
		FieldOp{Name: "note", Type: TextDelete, Spans: []Span{{ID: ElemID{Replica: seq.Replica(rC), Clock: 0}, N: 2}}}))
	return r
}

// corpusFile is a Go fuzz corpus file holding one []byte argument.
func corpusFile(b []byte) string {
	return fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
}

// TestSeedCorpora checks (and with -update rewrites) the seed corpora
// under testdata/fuzz, which hold real encodings.
func TestSeedCorpora(t *testing.T) {
	corpora := map[string][][]byte{}
	for _, op := range sampleOps() {
		corpora["FuzzDecodeOp"] = append(corpora["FuzzDecodeOp"], EncodeOp(op))
	}
	for _, r := range sampleRecords() {
		corpora["FuzzDecodeRecord"] = append(corpora["FuzzDecodeRecord"], r.Encode())
	}
	for target, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", target)
		for i, b := range seeds {
			path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			want := corpusFile(b)
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestSeedCorpora -update)", err)
			}
			if string(got) != want {
				t.Errorf("%s is stale (run go test -run TestSeedCorpora -update):\n%s\nwant\n%s", path, got, want)
			}
		}
	}
}

// FuzzDecodeOp checks that DecodeOp never panics, and that what it accepts
// re-encodes to bytes that decode to an equal op and re-encode identically.
func FuzzDecodeOp(f *testing.F) {
	for _, op := range sampleOps() {
		f.Add(EncodeOp(op))
	}
	f.Add(baseParts().with(0, vUint(2)).bytes())
	f.Add(baseParts().with(8, vUint(3)).bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		// The unchecked decoder accepts at least what the checked one does.
		_, uerr := DecodeOpUnchecked(b)
		op, err := DecodeOp(b)
		if err == nil && uerr != nil {
			t.Fatalf("DecodeOp(%x) succeeded but DecodeOpUnchecked failed: %v", b, uerr)
		}
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !(errors.Is(err, ErrInvalidOp) || errors.Is(err, ErrUnknownVersion)) {
				t.Fatalf("DecodeOp(%x) error %v: want a *DecodeError wrapping ErrInvalidOp or ErrUnknownVersion", b, err)
			}
			return
		}
		if err := op.Validate(); err != nil {
			t.Fatalf("DecodeOp(%x) accepted an invalid op: %v", b, err)
		}
		enc := EncodeOp(&op)
		again, err := DecodeOp(enc)
		if err != nil {
			t.Fatalf("DecodeOp(EncodeOp(DecodeOp(%x))): %v", b, err)
		}
		if !reflect.DeepEqual(normalizeOp(&again), normalizeOp(&op)) {
			t.Fatalf("op changed across a round trip:\n%+v\n%+v", op, again)
		}
		if re := EncodeOp(&again); !bytes.Equal(re, enc) {
			t.Fatalf("encoding not canonical:\n%x\n%x", enc, re)
		}
		// The op's delta is a normalized record.
		d := Delta(&op)
		if _, err := DecodeRecord(d.Encode()); err != nil {
			t.Fatalf("Delta(DecodeOp(%x)) does not decode: %v", b, err)
		}
	})
}

// FuzzDecodeRecord checks that DecodeRecord never panics, that what it
// accepts re-encodes to the same bytes, and that reading and merging the
// result does not panic.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(r.Encode())
	}
	// A state written before tombstone collection.
	f.Add(uncollected(mkOp(rA, 1, ts(1), 1, assign("a", vInt(1)), add("s", vInt(1)), count("c", 1, 0)), mkOp(rB, 1, ts(2), 1, remove("s", vInt(1), Dot{rA, 1})), mkOp(rA, 2, ts(3), 2)).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !(errors.Is(err, ErrInvalidRecord) || errors.Is(err, ErrUnknownVersion)) {
				t.Fatalf("DecodeRecord(%x) error %v: want a *DecodeError wrapping ErrInvalidRecord or ErrUnknownVersion", b, err)
			}
			return
		}
		if enc := r.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("DecodeRecord(%x) re-encodes as %x", b, enc)
		}
		// Nothing panics on a decoded state.
		r.Visible()
		for _, f := range r.Fields {
			r.Get(f.Name)
			r.SetElems(f.Name)
			r.Text(f.Name)
			r.ListElems(f.Name)
		}
		c := r.Clone()
		c.Merge(r)
		// The merge collected the tombstones: merging again changes
		// nothing, and the result decodes.
		again := *c
		again.Merge(c)
		checkSameBytes(t, "merged again", &again, c)
		if _, err := DecodeRecord(c.Encode()); err != nil {
			t.Fatalf("merged state does not decode: %v", err)
		}
		c.Merge(Delta(mkOp(rA, 1, ts(1), r.CL|1, assign("a", vInt(1)), add("s", vInt(1)), count("c", 1, 1))))
		if len(r.Fields) > 0 {
			name := r.Fields[0].Name
			_, _, _ = r.Prepare(rA, IntentPut, []Change{{Name: name, Type: Set, Value: vInt(1)}, {Name: name, Type: RemoveElem, Value: vInt(1)}, {Name: name, Type: Increment, Delta: 1}})
			// Splices that may or may not fit the field.
			for _, typ := range []ChangeType{TextSplice, ListSplice} {
				cl, fields, err := r.Prepare(rB, IntentPut, []Change{{Name: name, Type: typ, Pos: 1, Del: 1}, {Name: name, Type: typ}})
				if err == nil {
					op := mkOp(rB, 1, ts(1), cl, fields...)
					if err := op.Validate(); err != nil {
						t.Fatalf("Prepare made an invalid op: %v", err)
					}
					c.Apply(op)
				}
			}
		}
		if !slices.Equal(r.Encode(), b) {
			t.Fatalf("reading and merging from r changed it")
		}
	})
}

// TestOpDot: OpDot reads the dot DecodeOp would, and refuses what does not
// start like an op.
func TestOpDot(t *testing.T) {
	op := Op{Namespace: "ns", Collection: "c", Key: "k\x00", Dot: Dot{Origin: ReplicaID{9, 8, 7}, Seq: 70000}, HLC: 5, CL: 1, TxEnd: true,
		Fields: []FieldOp{{Name: "f", Type: Assign, Value: EncodeString("v")}}}
	b := EncodeOp(&op)
	got, err := OpDot(b)
	if err != nil || got != op.Dot {
		t.Fatalf("OpDot = %v, %v; want %v", got, err, op.Dot)
	}
	// A truncated op gives an error or, once the dot is whole, the dot.
	for n := range len(b) {
		if got, err := OpDot(b[:n]); err == nil && got != op.Dot {
			t.Errorf("OpDot of the first %d bytes = %v, want an error or %v", n, got, op.Dot)
		} else if err != nil && !errors.Is(err, ErrInvalidOp) {
			t.Errorf("OpDot of the first %d bytes: %v, want ErrInvalidOp", n, err)
		}
	}
	if _, err := OpDot([]byte{0x91, 0x01}); !errors.Is(err, ErrInvalidOp) {
		t.Errorf("OpDot of a one-element array: %v, want ErrInvalidOp", err)
	}
}
