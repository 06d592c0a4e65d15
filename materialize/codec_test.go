package materialize_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
	"github.com/convergedb/converge/materialize"
)

func version(cl uint64, at hlc.Timestamp, r crdt.ReplicaID) crdt.Version {
	return crdt.Version{CL: cl, Stamp: crdt.Stamp{HLC: at, Replica: r}}
}

// sampleConflicts are conflicts that exercise every part of the encoding.
func sampleConflicts() map[string]materialize.Conflict {
	arr := mp.AppendArrayHeader(nil, 2)
	arr = mp.AppendString(arr, "x")
	arr = mp.AppendMapHeader(arr, 1)
	arr = mp.AppendString(arr, "k")
	arr = mp.AppendFloat64(arr, 1.5)
	return map[string]materialize.Conflict{
		"strings": {
			Namespace: "ns", Collection: "tasks", Key: "task-1", Field: "title",
			Winner: materialize.Write{Version: version(1, ts(200), rB), Value: str("from B")},
			Loser:  materialize.Write{Version: version(1, ts(100), rA), Value: str("from A")},
		},
		"unset winner": {
			Namespace: "ns", Collection: "c", Key: "k", Field: "f",
			Winner: materialize.Write{Version: version(3, ts(300), rC)},
			Loser:  materialize.Write{Version: version(3, ts(300), rA), Value: crdt.EncodeInt(-7)},
		},
		"unset loser": {
			Namespace: "ns", Collection: "c", Key: "k", Field: "f",
			Winner: materialize.Write{Version: version(1, ts(2), rA), Value: crdt.EncodeInt(7)},
			Loser:  materialize.Write{Version: version(1, ts(1), rB)},
		},
		"long names, big numbers, nested value": {
			Namespace:  strings.Repeat("n", 40),
			Collection: strings.Repeat("c", 300),
			Key:        strings.Repeat("k", 70000),
			Field:      "field",
			Winner:     materialize.Write{Version: version(math.MaxUint64, math.MaxUint64, rC), Value: arr},
			Loser:      materialize.Write{Version: version(1<<40, hlc.New(1<<40, 7), rB), Value: mp.AppendBytes(nil, make([]byte, 300))},
		},
		"empty names": {
			Winner: materialize.Write{Version: version(1, ts(2), rB), Value: str("")},
			Loser:  materialize.Write{Version: version(1, ts(1), rA), Value: mp.AppendBool(nil, false)},
		},
	}
}

func TestConflictRoundTrip(t *testing.T) {
	for name, c := range sampleConflicts() {
		t.Run(name, func(t *testing.T) {
			enc := materialize.AppendConflict(nil, &c)
			got, err := materialize.DecodeConflict(enc)
			if err != nil {
				t.Fatalf("DecodeConflict(AppendConflict(c)) error = %v", err)
			}
			checkSameConflict(t, got, c)
			// AppendConflict appends.
			prefix := []byte("prefix")
			if got := materialize.AppendConflict(prefix, &c); !bytes.Equal(got, append(prefix, enc...)) {
				t.Errorf("AppendConflict(prefix, c) = %x, want prefix then %x", got, enc)
			}
		})
	}
}

func TestConflictEncoding(t *testing.T) {
	// The documented layout, element by element.
	c := sampleConflicts()["unset winner"]
	var want []byte
	want = mp.AppendArrayHeader(want, 13)
	want = mp.AppendUint(want, 1)
	for _, s := range []string{"ns", "c", "k", "f"} {
		want = mp.AppendString(want, s)
	}
	want = mp.AppendUint(want, 3)
	want = mp.AppendUint(want, uint64(ts(300)))
	want = mp.AppendBytes(want, rC[:])
	want = mp.AppendNil(want)
	want = mp.AppendUint(want, 3)
	want = mp.AppendUint(want, uint64(ts(300)))
	want = mp.AppendBytes(want, rA[:])
	want = append(want, crdt.EncodeInt(-7)...)
	if got := materialize.AppendConflict(nil, &c); !bytes.Equal(got, want) {
		t.Errorf("AppendConflict =\n%x, want\n%x", got, want)
	}
}

// conflictElems returns the 13 encoded elements of a valid conflict.
func conflictElems() [][]byte {
	return [][]byte{
		mp.AppendUint(nil, 1),
		mp.AppendString(nil, "ns"), mp.AppendString(nil, "c"), mp.AppendString(nil, "k"), mp.AppendString(nil, "f"),
		mp.AppendUint(nil, 1), mp.AppendUint(nil, uint64(ts(200))), mp.AppendBytes(nil, rB[:]), str("b"),
		mp.AppendUint(nil, 1), mp.AppendUint(nil, uint64(ts(100))), mp.AppendBytes(nil, rA[:]), str("a"),
	}
}

// encodeElems returns an array of the given encoded elements.
func encodeElems(elems [][]byte) []byte {
	b := mp.AppendArrayHeader(nil, len(elems))
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

// withElem returns the valid conflict's elements with element i replaced.
func withElem(i int, v []byte) []byte {
	elems := conflictElems()
	elems[i] = v
	return encodeElems(elems)
}

func TestDecodeConflictErrors(t *testing.T) {
	valid := encodeElems(conflictElems())
	if _, err := materialize.DecodeConflict(valid); err != nil {
		t.Fatalf("DecodeConflict(valid) error = %v", err)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, mp.ErrMalformed},
		{"not an array", mp.AppendMapHeader(nil, 0), mp.ErrMalformed},
		{"truncated header", []byte{0xdc, 0x00}, mp.ErrMalformed},
		{"truncated", valid[:len(valid)-1], mp.ErrMalformed},
		{"truncated after the version", valid[:2], mp.ErrMalformed},
		{"12 elements", encodeElems(conflictElems()[:12]), mp.ErrMalformed},
		{"14 elements", encodeElems(append(conflictElems(), mp.AppendNil(nil))), mp.ErrMalformed},
		{"version 0", withElem(0, mp.AppendUint(nil, 0)), crdt.ErrUnknownVersion},
		{"version 2", withElem(0, mp.AppendUint(nil, 2)), crdt.ErrUnknownVersion},
		{"version not an integer", withElem(0, str("1")), mp.ErrMalformed},
		{"trailing bytes", append(bytes.Clone(valid), 0xc0), mp.ErrMalformed},
		{"trailing conflict", append(bytes.Clone(valid), valid...), mp.ErrMalformed},
		{"namespace not a string", withElem(1, mp.AppendUint(nil, 5)), mp.ErrMalformed},
		{"field not a string", withElem(4, mp.AppendBytes(nil, []byte("f"))), mp.ErrMalformed},
		{"negative cl", withElem(5, crdt.EncodeInt(-1)), mp.ErrMalformed},
		{"hlc not an integer", withElem(10, mp.AppendNil(nil)), mp.ErrMalformed},
		{"winner replica of 15 bytes", withElem(7, mp.AppendBytes(nil, rB[:15])), mp.ErrMalformed},
		{"winner replica of 17 bytes", withElem(7, mp.AppendBytes(nil, append(rB[:], 0))), mp.ErrMalformed},
		{"loser replica of 0 bytes", withElem(11, mp.AppendBytes(nil, nil)), mp.ErrMalformed},
		{"replica as a string", withElem(11, mp.AppendString(nil, string(rA[:]))), mp.ErrMalformed},
		{"truncated value", withElem(12, []byte{0xa5, 'a'}), mp.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := materialize.DecodeConflict(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeConflict(%x) error = %v, want one wrapping %v", tt.in, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "materialize: decode conflict: ") {
				t.Errorf("error %q does not say what failed", err)
			}
			if got.Field != "" || got.Winner.Value != nil || got.Winner.Version != (crdt.Version{}) {
				t.Errorf("DecodeConflict returned %s with its error, want the zero Conflict", showConflict(got))
			}
		})
	}
	// Every truncation of a valid encoding is malformed.
	for n := range len(valid) {
		if _, err := materialize.DecodeConflict(valid[:n]); !errors.Is(err, mp.ErrMalformed) {
			t.Errorf("DecodeConflict(first %d of %d bytes) error = %v, want one wrapping mp.ErrMalformed", n, len(valid), err)
		}
	}
}

func FuzzDecodeConflict(f *testing.F) {
	for _, c := range sampleConflicts() {
		enc := materialize.AppendConflict(nil, &c)
		if len(enc) > 4096 {
			continue // big inputs slow the fuzzer down
		}
		f.Add(enc)
		f.Add(enc[:len(enc)/2])
	}
	f.Add(encodeElems(conflictElems()))
	f.Add(withElem(0, mp.AppendUint(nil, 2)))
	f.Add(withElem(7, mp.AppendBytes(nil, rB[:15])))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		c, err := materialize.DecodeConflict(b)
		if !bytes.Equal(b, in) {
			t.Fatalf("DecodeConflict modified its input")
		}
		if err != nil {
			if !errors.Is(err, mp.ErrMalformed) && !errors.Is(err, crdt.ErrUnknownVersion) {
				t.Fatalf("DecodeConflict error = %v, wraps neither mp.ErrMalformed nor crdt.ErrUnknownVersion", err)
			}
			return
		}
		// The decoder accepts any msgpack form of an integer, string or
		// header, while AppendConflict writes the smallest: re-encoding
		// gives the canonical form, which decodes to the same conflict and
		// re-encodes to itself.
		enc := materialize.AppendConflict(nil, &c)
		c2, err := materialize.DecodeConflict(enc)
		if err != nil {
			t.Fatalf("DecodeConflict(AppendConflict(%s)) error = %v", showConflict(c), err)
		}
		checkSameConflict(t, c2, c)
		if enc2 := materialize.AppendConflict(nil, &c2); !bytes.Equal(enc2, enc) {
			t.Fatalf("re-encoding is not stable:\n%x\n%x", enc, enc2)
		}
		if len(enc) > len(b) {
			t.Fatalf("canonical encoding (%d bytes) longer than the input (%d)", len(enc), len(b))
		}
	})
}
