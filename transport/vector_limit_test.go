package transport_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
	"github.com/convergedb/converge/transport"
)

// TestVectorOf100kOriginsRoundTrips: a vector of 100,000 origins (above
// the former 65,536-entry bound) is encoded and decoded in a request and a
// response.
func TestVectorOf100kOriginsRoundTrips(t *testing.T) {
	vv := make(crdt.VersionVector, 100_000)
	for i := range 100_000 {
		var id crdt.ReplicaID
		binary.BigEndian.PutUint32(id[:], uint32(i+1))
		vv[id] = uint64(i%1000 + 1)
	}
	req, err := transport.DecodeRequest(transport.AppendRequest(nil, &transport.Request{Namespace: "ns", Vector: vv}))
	if err != nil || len(req.Vector) != len(vv) {
		t.Fatalf("request: %d origins back, %v", len(req.Vector), err)
	}
	resp, err := transport.DecodeResponse(transport.AppendResponse(nil, &transport.Response{Vector: vv}))
	if err != nil || len(resp.Vector) != len(vv) {
		t.Fatalf("response: %d origins back, %v", len(resp.Vector), err)
	}
}

// TestVectorHeaderBeyondItsBytes: a vector header that claims more entries
// than the message holds is refused as a bad message (and sizes nothing
// by the claim).
func TestVectorHeaderBeyondItsBytes(t *testing.T) {
	base := transport.AppendResponse(nil, &transport.Response{Vector: crdt.VersionVector{}})
	// [version, 'r', vector, ...]: the empty vector is the byte 0x90 after
	// the array header, the version and the kind.
	i := bytes.IndexByte(base[1:], 0x90) + 1
	for _, n := range []int{1 << 20, 1<<20 + 1} {
		b := append([]byte{}, base[:i]...)
		b = mp.AppendArrayHeader(b, 2*n)
		b = append(b, base[i+1:]...)
		_, err := transport.DecodeResponse(b)
		if !errors.Is(err, transport.ErrBadMessage) || !strings.Contains(err.Error(), "vector") {
			t.Fatalf("DecodeResponse of a %d-entry vector header with no entries: %v, want a bad vector", n, err)
		}
	}
}
