package crdt

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/convergedb/converge/internal/mp"
)

func TestRecordEncodingGolden(t *testing.T) {
	r := apply(
		mkOp(rA, 1, ts(1), 1, assign("a", vInt(5)), add("s", vStr("x")), count("c", 3, 1)),
		mkOp(rB, 1, ts(2), 1, remove("s", vStr("x"), Dot{rA, 1}), writeMax("m", vInt(7))),
	)
	stamp := func(wall int64, r ReplicaID) []byte {
		return append(append(vUint(uint64(ts(wall))), 0xc4, 0x10), r[:]...)
	}
	var want []byte
	want = append(want, 0x97, 0x01, 0x01)
	want = append(want, stamp(1, rA)...) // created
	want = append(want, stamp(2, rB)...) // updated
	want = append(want, 0x94)
	// [a, register, cl 1, at, seen 0, 5]
	want = append(want, 0x97, 0xa1, 'a', 0x01, 0x01)
	want = append(want, stamp(1, rA)...)
	want = append(want, 0x00, 0x05)
	// [c, counter, cl 1, at, [rA, cl 1, p 3, n 1]]
	want = append(want, 0x96, 0xa1, 'c', 0x03, 0x01)
	want = append(want, stamp(1, rA)...)
	want = append(want, 0x94, 0xc4, 0x10)
	want = append(want, rA[:]...)
	want = append(want, 0x01, 0x03, 0x01)
	// [m, max, cl 1, at, 7]
	want = append(want, 0x96, 0xa1, 'm', 0x04, 0x01)
	want = append(want, stamp(2, rB)...)
	want = append(want, 0x07)
	// [s, set, cl 1, at, [["x", [], [rA, 1]]]]
	want = append(want, 0x96, 0xa1, 's', 0x02, 0x01)
	want = append(want, stamp(2, rB)...)
	want = append(want, 0x91, 0x93, 0xa1, 'x', 0x90, 0x92, 0xc4, 0x10)
	want = append(want, rA[:]...)
	want = append(want, 0x01)
	if got := r.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("Encode() =\n%x\nwant\n%x", got, want)
	}
	if got := r.AppendBinary([]byte{0xee}); got[0] != 0xee || !bytes.Equal(got[1:], want) {
		t.Errorf("AppendBinary does not append")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for i, r := range sampleRecords() {
		enc := r.Encode()
		got, err := DecodeRecord(enc)
		if err != nil {
			t.Errorf("record %d: DecodeRecord: %v", i, err)
			continue
		}
		if re := got.Encode(); !bytes.Equal(re, enc) {
			t.Errorf("record %d: re-encoding differs:\n%x\n%x", i, re, enc)
		}
		if !reflect.DeepEqual(got.Visible(), r.Visible()) {
			t.Errorf("record %d: Visible() = %v, want %v", i, got.Visible(), r.Visible())
		}
		// The decoded record does not alias its input.
		for j := range enc {
			enc[j] = 0
		}
		if re := got.Encode(); !bytes.Equal(re, r.Encode()) {
			t.Errorf("record %d: overwriting the input changed the decoded record", i)
		}
	}
}

// TestDecodeRecordNilElement checks that a set holding msgpack nil keeps
// it across a decode: a decoded record merges like the original.
func TestDecodeRecordNilElement(t *testing.T) {
	a := apply(mkOp(rA, 1, ts(1), 1, add("s", vNil)))
	b := mkOp(rB, 1, ts(2), 1, add("s", vNil))
	dec, err := DecodeRecord(a.Encode())
	if err != nil {
		t.Fatal(err)
	}
	want := a.Clone()
	want.Apply(b)
	dec.Apply(b)
	checkSameBytes(t, "decoded then merged", dec, want)
	if _, err := DecodeRecord(dec.Encode()); err != nil {
		t.Errorf("merged record does not decode: %v", err)
	}
	if got := dec.SetElems("s"); len(got) != 1 || !bytes.Equal(got[0], vNil) {
		t.Errorf("SetElems = %x, want [c0]", got)
	}
}

// TestDecodeRecordCanonical checks that DecodeRecord refuses encodings that
// are not the one AppendBinary writes, so that accepted bytes re-encode
// identically (the state hash hashes bytes).
func TestDecodeRecordCanonical(t *testing.T) {
	r := apply(mkOp(rA, 1, ts(1), 1, assign("a", vInt(5))))
	enc := r.Encode()
	// Offsets into enc: 0 array header, 1 version, 2 CL.
	tests := []struct {
		name string
		b    []byte
	}{
		{"array16 header", append([]byte{0xdc, 0x00, 0x07}, enc[1:]...)},
		{"version as uint8", append([]byte{0x97, 0xcc, 0x01}, enc[2:]...)},
		{"CL as uint8", append([]byte{0x97, 0x01, 0xcc, 0x01}, enc[3:]...)},
		{"CL as int8", append([]byte{0x97, 0x01, 0xd0, 0x01}, enc[3:]...)},
		{"CL as uint64", append([]byte{0x97, 0x01, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1}, enc[3:]...)},
		{"HLC as uint64", bytes.Replace(enc, []byte{0xce, 0x00, 0x01, 0x00, 0x00}, []byte{0xcf, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x00}, 1)},
		{"replica as bin16", bytes.Replace(enc, []byte{0xc4, 0x10}, []byte{0xc5, 0x00, 0x10}, 1)},
		{"name as str8", bytes.Replace(enc, []byte{0xa1, 'a'}, []byte{0xd9, 0x01, 'a'}, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.b, enc) {
				t.Fatalf("test input is the canonical encoding")
			}
			got, err := DecodeRecord(tt.b)
			if err == nil {
				t.Fatalf("DecodeRecord(%x) accepted a non-canonical encoding; it re-encodes as %x", tt.b, got.Encode())
			}
			checkDecodeRecordError(t, err, tt.b, false)
		})
	}
}

func checkDecodeRecordError(t *testing.T, err error, b []byte, wantVersion bool) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("DecodeRecord error %v (%T) is not a *DecodeError", err, err)
	}
	if de.What != "record" || de.Offset < 0 || de.Offset > len(b) {
		t.Errorf("DecodeError = {What %q, Offset %d}, want record and an offset within %d bytes", de.What, de.Offset, len(b))
	}
	if wantVersion {
		if !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("DecodeRecord error %v does not wrap ErrUnknownVersion", err)
		}
	} else if !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("DecodeRecord error %v does not wrap ErrInvalidRecord", err)
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	stamp := func(wall int64, r ReplicaID) []byte {
		return append(append(vUint(uint64(ts(wall))), 0xc4, 0x10), r[:]...)
	}
	header := func(fields ...[]byte) []byte {
		b := []byte{0x97, 0x01, 0x01}
		b = append(b, stamp(1, rA)...)
		b = append(b, stamp(1, rA)...)
		return append(b, vArr(fields...)...)
	}
	// fieldRaw is a field of n elements (the stamp is two).
	fieldRaw := func(n int, name string, kind Kind, payload ...[]byte) []byte {
		b := mp.AppendArrayHeader(nil, n)
		b = append(b, vStr(name)...)
		b = append(b, vUint(uint64(kind))...)
		b = append(b, vUint(1)...)
		b = append(b, stamp(1, rA)...)
		for _, p := range payload {
			b = append(b, p...)
		}
		return b
	}
	reg := func(name string) []byte { return fieldRaw(7, name, KindRegister, vUint(0), vInt(1)) }
	tag := func(r ReplicaID, seq, cl uint64) []byte {
		return append(append(vBin(r[:]...), vUint(seq)...), vUint(cl)...)
	}
	dot := func(r ReplicaID, seq uint64) []byte { return append(vBin(r[:]...), vUint(seq)...) }
	raw := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	elem := func(v []byte, adds, removed []byte) []byte { return vArr(v, adds, removed) }
	tally := func(r ReplicaID, cl, p, n uint64) []byte {
		return raw(vBin(r[:]...), vUint(cl), vUint(p), vUint(n))
	}
	addsOf := func(n int, parts ...[]byte) []byte {
		return append(mp.AppendArrayHeader(nil, n), raw(parts...)...)
	}

	valid := header(reg("a"), fieldRaw(6, "s", KindSet, vArr(elem(vInt(1), addsOf(3, tag(rA, 1, 1)), vArr()))))
	if _, err := DecodeRecord(valid); err != nil {
		t.Fatalf("valid state: %v", err)
	}
	tests := []struct {
		name        string
		b           []byte
		wantVersion bool
	}{
		{"empty", nil, false},
		{"not an array", vInt(1), false},
		{"6 elements", []byte{0x96, 0x01, 0x01}, false},
		{"version 2", append([]byte{0x97, 0x02}, valid[2:]...), true},
		{"version 0", append([]byte{0x97, 0x00}, valid[2:]...), true},
		{"trailing byte", append(bytes.Clone(valid), 0), false},
		{"CL negative", append([]byte{0x97, 0x01, 0xff}, valid[3:]...), false},
		{"replica of 15 bytes", bytes.Replace(valid, append([]byte{0xc4, 0x10}, rA[:]...), append([]byte{0xc4, 0x0f}, rA[:15]...), 1), false},
		{"fields out of order", header(reg("b"), reg("a")), false},
		{"field twice", header(reg("a"), reg("a")), false},
		{"kinds out of order", header(fieldRaw(6, "a", KindMax, vInt(1)), reg("a")), false},
		{"unknown kind 0", header(fieldRaw(6, "a", 0, vInt(1))), false},
		{"unknown kind 8", header(fieldRaw(6, "a", 8, vInt(1))), false},
		{"text of a number", header(fieldRaw(6, "a", KindText, vInt(1))), false},
		{"register of 6", header(fieldRaw(6, "a", KindRegister, vInt(1))), false},
		{"max of 7", header(fieldRaw(7, "a", KindMax, vUint(0), vInt(1))), false},
		{"field not an array", header(vStr("a")), false},
		{"elements out of order", header(fieldRaw(6, "s", KindSet, vArr(elem(vInt(2), vArr(), vArr()), elem(vInt(1), vArr(), vArr())))), false},
		{"element twice", header(fieldRaw(6, "s", KindSet, vArr(elem(vInt(1), vArr(), vArr()), elem(vInt(1), vArr(), vArr())))), false},
		{"element of 2", header(fieldRaw(6, "s", KindSet, vArr(vArr(vInt(1), vArr())))), false},
		{"add list of 4", header(fieldRaw(6, "s", KindSet, vArr(elem(vInt(1), addsOf(4, tag(rA, 1, 1), vUint(1)), vArr())))), false},
		{"adds out of order", header(fieldRaw(6, "s", KindSet, vArr(elem(vInt(1), addsOf(6, tag(rB, 1, 1), tag(rA, 1, 1)), vArr())))), false},
		{"add twice", header(fieldRaw(6, "s", KindSet, vArr(elem(vInt(1), addsOf(6, tag(rA, 1, 1), tag(rA, 1, 1)), vArr())))), false},
		{"removes out of order", header(fieldRaw(6, "s", KindSet, vArr(elem(vInt(1), vArr(), addsOf(4, dot(rA, 2), dot(rA, 1)))))), false},
		{"remove odd", header(fieldRaw(6, "s", KindSet, vArr(elem(vInt(1), vArr(), addsOf(3, dot(rA, 2), vBin(rA[:]...)))))), false},
		{"counter list of 3", header(fieldRaw(6, "c", KindCounter, addsOf(3, vBin(rA[:]...), vUint(1), vUint(1)))), false},
		{"counter origins out of order", header(fieldRaw(6, "c", KindCounter, addsOf(8, tally(rB, 1, 1, 0), tally(rA, 1, 1, 0)))), false},
		{"counter origin twice", header(fieldRaw(6, "c", KindCounter, addsOf(8, tally(rA, 1, 1, 0), tally(rA, 1, 2, 0)))), false},
		{"counter negative", header(fieldRaw(6, "c", KindCounter, addsOf(4, vBin(rA[:]...), vUint(1), vInt(-1), vUint(0)))), false},
		{"value truncated", header(fieldRaw(7, "a", KindRegister, vUint(0), []byte{0xcd, 0x01})), false},
		{"fields beyond input", append(valid[:len(valid)-len(vArr(reg("a"), fieldRaw(6, "s", KindSet, vArr(elem(vInt(1), addsOf(3, tag(rA, 1, 1)), vArr())))))], 0xdd, 0xff, 0xff, 0xff, 0xff), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeRecord(tt.b)
			if err == nil {
				t.Fatalf("DecodeRecord(%x) = %+v, want an error", tt.b, r)
			}
			if r != nil {
				t.Errorf("DecodeRecord returned a record with its error")
			}
			checkDecodeRecordError(t, err, tt.b, tt.wantVersion)
		})
	}
	// Every truncation of real states is an error.
	for i, r := range sampleRecords() {
		enc := r.Encode()
		for n := range len(enc) {
			_, err := DecodeRecord(enc[:n])
			if err == nil {
				t.Fatalf("record %d truncated to %d of %d bytes decoded", i, n, len(enc))
			}
			checkDecodeRecordError(t, err, enc[:n], false)
		}
	}
}
