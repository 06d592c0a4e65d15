package httptransport

import (
	"bytes"
	"errors"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

func TestVectorParam(t *testing.T) {
	v := crdt.VersionVector{crdt.ReplicaID{1}: 7, crdt.ReplicaID{2, 3}: 1 << 40}
	for _, in := range []crdt.VersionVector{nil, {}, v} {
		got, err := decodeVectorParam(encodeVectorParam(in))
		if err != nil || !got.Equal(in) {
			t.Errorf("round trip of %v = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"!!", "kQ", encodeVectorParam(v) + "AA", "kqCB"} {
		if _, err := decodeVectorParam(bad); !errors.Is(err, transport.ErrBadMessage) {
			t.Errorf("decodeVectorParam(%q) = %v, want ErrBadMessage", bad, err)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	r := &transport.Response{Vector: crdt.VersionVector{crdt.ReplicaID{1}: 2}, Ops: [][]byte{[]byte("a"), []byte("bc")}, More: true}
	b := appendFrame(appendFrame(nil, r), &transport.Response{})
	rd := bytes.NewReader(b)
	got, n, err := readFrame(rd)
	if err != nil || !got.More || len(got.Ops) != 2 || !got.Vector.Equal(r.Vector) {
		t.Fatalf("readFrame = %+v, %v", got, err)
	}
	if _, m, err := readFrame(rd); err != nil || n+m != len(b) {
		t.Fatalf("second frame: %v; %d+%d bytes of %d", err, n, m, len(b))
	}
	if _, _, err := readFrame(rd); err == nil {
		t.Error("read past the end")
	}
	one := appendFrame(nil, r)
	if _, _, err := readFrame(bytes.NewReader(one[:len(one)-1])); err == nil {
		t.Error("read a truncated frame")
	}
	if _, _, err := readFrame(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff})); !errors.Is(err, transport.ErrBadMessage) {
		t.Errorf("huge frame length: %v, want ErrBadMessage", err)
	}
}

func FuzzDecodeVector(f *testing.F) {
	f.Add(appendVector(nil, crdt.VersionVector{crdt.ReplicaID{1}: 7}))
	f.Add([]byte{0x90})
	f.Add([]byte{0x92, 0xc4, 0x01, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeVector(b)
		if err != nil {
			return
		}
		w, err := decodeVector(appendVector(nil, v))
		if err != nil || !w.Equal(v) {
			t.Fatalf("re-decode of %v = %v, %v", v, w, err)
		}
	})
}
