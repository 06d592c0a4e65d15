package transport_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

func sampleRequest() *transport.Request {
	return &transport.Request{
		Namespace: "acme.store-17",
		Vector:    crdt.VersionVector{{1}: 3, {2}: 9},
		Ops:       [][]byte{{0x90}, bytes.Repeat([]byte{7}, 300)},
		Limits:    transport.Limits{MaxOps: 10, MaxBytes: 4096},
	}
}

func sampleResponse() *transport.Response {
	return &transport.Response{
		Vector:  crdt.VersionVector{{1}: 4},
		Ops:     [][]byte{{1, 2, 3}},
		More:    true,
		Applied: transport.Applied{Applied: 2, Duplicates: 1, Refused: 3, Conflicts: 1, Reason: "gap"},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	req := sampleRequest()
	got, err := transport.DecodeRequest(transport.AppendRequest(nil, req))
	if err != nil {
		t.Fatalf("DecodeRequest: %v", err)
	}
	if !reflect.DeepEqual(got, req) {
		t.Errorf("request round trip:\n got %+v\nwant %+v", got, req)
	}
	resp := sampleResponse()
	gotResp, err := transport.DecodeResponse(transport.AppendResponse(nil, resp))
	if err != nil {
		t.Fatalf("DecodeResponse: %v", err)
	}
	if !reflect.DeepEqual(gotResp, resp) {
		t.Errorf("response round trip:\n got %+v\nwant %+v", gotResp, resp)
	}
}

func TestMessageMalformed(t *testing.T) {
	good := transport.AppendRequest(nil, sampleRequest())
	cases := map[string][]byte{
		"empty":          nil,
		"truncated":      good[:len(good)-3],
		"trailing":       append(append([]byte(nil), good...), 0),
		"response bytes": transport.AppendResponse(nil, sampleResponse()),
		"version 2":      append([]byte{good[0], 2}, good[2:]...),
		"no namespace":   transport.AppendRequest(nil, &transport.Request{}),
		"huge op count":  {0x97, 0x01, 'q', 0xa1, 'n', 0x90, 0xdd, 0xff, 0xff, 0xff, 0xff},
	}
	for name, b := range cases {
		if _, err := transport.DecodeRequest(b); !errors.Is(err, transport.ErrBadMessage) {
			t.Errorf("%s: DecodeRequest error = %v, want ErrBadMessage", name, err)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(transport.AppendRequest(nil, sampleRequest()))
	f.Add(transport.AppendRequest(nil, &transport.Request{Namespace: "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := transport.DecodeRequest(b)
		if err != nil {
			if !errors.Is(err, transport.ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		again, err := transport.DecodeRequest(transport.AppendRequest(nil, req))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(req)) {
			t.Fatalf("round trip changed the request: %+v vs %+v", again, req)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(transport.AppendResponse(nil, sampleResponse()))
	f.Add(transport.AppendResponse(nil, &transport.Response{}))
	f.Add(transport.AppendResponse(nil, &transport.Response{Vector: crdt.VersionVector{{1}: 2}, SnapshotNeeded: true}))
	f.Add(transport.AppendResponse(nil, &transport.Response{Vector: crdt.VersionVector{{1}: 2}, SnapshotNeeded: true, From: crdt.ReplicaID{5}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := transport.DecodeResponse(b)
		if err != nil {
			if !errors.Is(err, transport.ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		again, err := transport.DecodeResponse(transport.AppendResponse(nil, resp))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again.SnapshotNeeded != resp.SnapshotNeeded || again.From != resp.From || !again.Vector.Equal(resp.Vector) || len(again.Ops) != len(resp.Ops) {
			t.Fatalf("round trip changed the response: %+v vs %+v", again, resp)
		}
	})
}

// normalize maps empty op lists to nil so DeepEqual compares content.
func normalize(r *transport.Request) *transport.Request {
	c := *r
	if len(c.Ops) == 0 {
		c.Ops = nil
	}
	return &c
}

// TestMessageFrom: the sender's id travels when set, and messages without
// it (older senders, relays) still decode.
func TestMessageFrom(t *testing.T) {
	req := sampleRequest()
	plain := transport.AppendRequest(nil, req)
	req.From = crdt.ReplicaID{9, 9}
	with := transport.AppendRequest(nil, req)
	if len(with) != len(plain)+18 {
		t.Fatalf("request with From is %d bytes, without %d", len(with), len(plain))
	}
	got, err := transport.DecodeRequest(with)
	if err != nil || got.From != req.From {
		t.Fatalf("DecodeRequest with From = %+v, %v", got, err)
	}
	if got, err := transport.DecodeRequest(plain); err != nil || !got.From.IsZero() {
		t.Fatalf("DecodeRequest without From = %+v, %v", got, err)
	}
	resp := sampleResponse()
	resp.From = crdt.ReplicaID{7}
	gotResp, err := transport.DecodeResponse(transport.AppendResponse(nil, resp))
	if err != nil || gotResp.From != resp.From {
		t.Fatalf("DecodeResponse with From = %+v, %v", gotResp, err)
	}
	// A zero id in the trailing element is malformed.
	bad := append(append([]byte{}, plain...), 0)
	bad[0]++ // one more element in the array header (fixarray)
	bad = append(bad[:len(bad)-1], append([]byte{0xc4, 16}, make([]byte, 16)...)...)
	if _, err := transport.DecodeRequest(bad); !errors.Is(err, transport.ErrBadMessage) {
		t.Fatalf("request with a zero sender id: %v, want ErrBadMessage", err)
	}
}

func sampleSnapshotRequest() *transport.SnapshotRequest {
	return &transport.SnapshotRequest{
		Namespace: "acme.store-17",
		After:     &transport.SnapshotCursor{Collection: "items", Key: "k-07"},
		Limits:    transport.Limits{MaxOps: 16, MaxBytes: 1 << 16},
		From:      crdt.ReplicaID{3},
	}
}

func sampleSnapshotResponse() *transport.SnapshotResponse {
	return &transport.SnapshotResponse{
		Vector: crdt.VersionVector{{1}: 4, {2}: 1},
		Records: []transport.SnapshotRecord{
			{Collection: "a", Key: "z", State: []byte{0x91, 1}},
			{Collection: "items", Key: "k-08", State: bytes.Repeat([]byte{5}, 300)},
			{Collection: "items", Key: "k-09", State: []byte{1}},
		},
		More: true,
		From: crdt.ReplicaID{4},
	}
}

// TestSnapshotMessageRoundTrip: the snapshot messages, and a response
// saying a snapshot is needed, with and without the optional elements.
func TestSnapshotMessageRoundTrip(t *testing.T) {
	for _, req := range []*transport.SnapshotRequest{sampleSnapshotRequest(), {Namespace: "ns"}} {
		b := transport.AppendSnapshotRequest(nil, req)
		got, err := transport.DecodeSnapshotRequest(b)
		if err != nil {
			t.Fatalf("DecodeSnapshotRequest: %v", err)
		}
		if !reflect.DeepEqual(got, req) {
			t.Errorf("snapshot request round trip:\n got %+v\nwant %+v", got, req)
		}
		if k, err := transport.MessageKind(b); err != nil || k != transport.KindSnapshotRequest {
			t.Errorf("MessageKind = %q, %v", k, err)
		}
	}
	for _, resp := range []*transport.SnapshotResponse{sampleSnapshotResponse(), {Vector: crdt.VersionVector{}, Records: []transport.SnapshotRecord{}}} {
		b := transport.AppendSnapshotResponse(nil, resp)
		got, err := transport.DecodeSnapshotResponse(b)
		if err != nil {
			t.Fatalf("DecodeSnapshotResponse: %v", err)
		}
		if !reflect.DeepEqual(got, resp) {
			t.Errorf("snapshot response round trip:\n got %+v\nwant %+v", got, resp)
		}
	}
	for _, from := range []crdt.ReplicaID{{}, {8}} {
		resp := &transport.Response{Vector: crdt.VersionVector{{1}: 9}, Ops: [][]byte{}, SnapshotNeeded: true, From: from,
			Applied: transport.Applied{Applied: 1, Reason: "r"}}
		b := transport.AppendResponse(nil, resp)
		got, err := transport.DecodeResponse(b)
		if err != nil {
			t.Fatalf("DecodeResponse of a snapshot-needed response (from %v): %v", from, err)
		}
		if !reflect.DeepEqual(got, resp) {
			t.Errorf("snapshot-needed response round trip:\n got %+v\nwant %+v", got, resp)
		}
	}
	// Without the flag, the encoding is what it was: 10 or 11 elements.
	if b := transport.AppendResponse(nil, sampleResponse()); b[0] != 0x9a {
		t.Errorf("response without flags has header %#x, want a 10-element array", b[0])
	}
	for _, b := range [][]byte{transport.AppendRequest(nil, sampleRequest()), transport.AppendResponse(nil, sampleResponse()), transport.AppendSnapshotResponse(nil, sampleSnapshotResponse())} {
		k, err := transport.MessageKind(b)
		if err != nil || k != b[2] {
			t.Errorf("MessageKind = %q, %v; want %q", k, err, b[2])
		}
	}
	if _, err := transport.MessageKind([]byte{0x92, 2, 'q'}); !errors.Is(err, transport.ErrBadMessage) {
		t.Errorf("MessageKind of version 2: %v, want ErrBadMessage", err)
	}
}

// TestSnapshotMessageMalformed: the decoders are strict.
func TestSnapshotMessageMalformed(t *testing.T) {
	resp := func(mod func(r *transport.SnapshotResponse)) []byte {
		r := sampleSnapshotResponse()
		mod(r)
		return transport.AppendSnapshotResponse(nil, r)
	}
	respCases := map[string][]byte{
		"empty":           nil,
		"truncated":       transport.AppendSnapshotResponse(nil, sampleSnapshotResponse())[:40],
		"request":         transport.AppendSnapshotRequest(nil, sampleSnapshotRequest()),
		"out of order":    resp(func(r *transport.SnapshotResponse) { r.Records[0], r.Records[1] = r.Records[1], r.Records[0] }),
		"repeated record": resp(func(r *transport.SnapshotResponse) { r.Records[2] = r.Records[1] }),
		"empty state":     resp(func(r *transport.SnapshotResponse) { r.Records[0].State = nil }),
		"empty key":       resp(func(r *transport.SnapshotResponse) { r.Records[0].Key = "" }),
		"long collection": resp(func(r *transport.SnapshotResponse) { r.Records[0].Collection = strings.Repeat("c", crdt.MaxNameLen+1) }),
		"more of nothing": resp(func(r *transport.SnapshotResponse) { r.Records = nil }),
		"trailing":        append(transport.AppendSnapshotResponse(nil, sampleSnapshotResponse()), 0),
	}
	for name, b := range respCases {
		if _, err := transport.DecodeSnapshotResponse(b); !errors.Is(err, transport.ErrBadMessage) {
			t.Errorf("%s: DecodeSnapshotResponse error = %v, want ErrBadMessage", name, err)
		}
	}
	req := func(mod func(r *transport.SnapshotRequest)) []byte {
		r := sampleSnapshotRequest()
		mod(r)
		return transport.AppendSnapshotRequest(nil, r)
	}
	reqCases := map[string][]byte{
		"no namespace":        req(func(r *transport.SnapshotRequest) { r.Namespace = "" }),
		"empty cursor key":    req(func(r *transport.SnapshotRequest) { r.After.Key = "" }),
		"sync request":        transport.AppendRequest(nil, sampleRequest()),
		"cursor of 3":         {0x96, 1, 's', 0xa1, 'n', 0x93, 0xa1, 'c', 0xa1, 'k', 0xa1, 'x', 0, 0},
		"cursor not a list":   {0x96, 1, 's', 0xa1, 'n', 0xa1, 'c', 0, 0},
		"zero from":           append([]byte{0x97}, append(transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "n"})[1:], append([]byte{0xc4, 16}, make([]byte, 16)...)...)...),
		"huge record count":   {0x95, 1, 't', 0x90, 0xdd, 0xff, 0xff, 0xff, 0xff},
		"version 2":           {0x96, 2, 's', 0xa1, 'n', 0xc0, 0, 0},
		"response as request": transport.AppendSnapshotResponse(nil, sampleSnapshotResponse()),
	}
	for name, b := range reqCases {
		if _, err := transport.DecodeSnapshotRequest(b); !errors.Is(err, transport.ErrBadMessage) {
			t.Errorf("%s: DecodeSnapshotRequest error = %v, want ErrBadMessage", name, err)
		}
	}
	// A response's flags: written only when not zero, known bits only, no
	// ops with a snapshot-needed flag, a nil sender only before flags.
	base := transport.AppendResponse(nil, &transport.Response{Vector: crdt.VersionVector{}}) // 10 elements
	flagged := func(from []byte, flags byte) []byte {
		b := append([]byte{0x9c}, base[1:]...)
		return append(append(b, from...), flags)
	}
	nilFrom := []byte{0xc0}
	withFrom := append([]byte{0xc4, 16}, bytes.Repeat([]byte{1}, 16)...)
	if r, err := transport.DecodeResponse(flagged(nilFrom, 1)); err != nil || !r.SnapshotNeeded || !r.From.IsZero() {
		t.Fatalf("flagged response without a sender: %+v, %v", r, err)
	}
	if r, err := transport.DecodeResponse(flagged(withFrom, 1)); err != nil || !r.SnapshotNeeded || r.From.IsZero() {
		t.Fatalf("flagged response with a sender: %+v, %v", r, err)
	}
	flagCases := map[string][]byte{
		"zero flags":      flagged(withFrom, 0),
		"unknown flag":    flagged(withFrom, 2),
		"zero sender":     flagged(append([]byte{0xc4, 16}, make([]byte, 16)...), 1),
		"nil sender only": append(append([]byte{0x9b}, base[1:]...), 0xc0),
		"ops and flag": func() []byte {
			b := transport.AppendResponse(nil, &transport.Response{Vector: crdt.VersionVector{}, Ops: [][]byte{{1}}})
			return append(append(append([]byte{0x9c}, b[1:]...), nilFrom...), 1)
		}(),
	}
	for name, b := range flagCases {
		if _, err := transport.DecodeResponse(b); !errors.Is(err, transport.ErrBadMessage) {
			t.Errorf("%s: DecodeResponse error = %v, want ErrBadMessage", name, err)
		}
	}
}

func FuzzDecodeSnapshotRequest(f *testing.F) {
	f.Add(transport.AppendSnapshotRequest(nil, sampleSnapshotRequest()))
	f.Add(transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "x"}))
	f.Add(transport.AppendRequest(nil, sampleRequest()))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := transport.DecodeSnapshotRequest(b)
		if err != nil {
			if !errors.Is(err, transport.ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if k, err := transport.MessageKind(b); err != nil || k != transport.KindSnapshotRequest {
			t.Fatalf("MessageKind of a snapshot request = %q, %v", k, err)
		}
		again, err := transport.DecodeSnapshotRequest(transport.AppendSnapshotRequest(nil, req))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip changed the snapshot request: %+v vs %+v", again, req)
		}
	})
}

func FuzzDecodeSnapshotResponse(f *testing.F) {
	f.Add(transport.AppendSnapshotResponse(nil, sampleSnapshotResponse()))
	f.Add(transport.AppendSnapshotResponse(nil, &transport.SnapshotResponse{}))
	f.Add(transport.AppendResponse(nil, sampleResponse()))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := transport.DecodeSnapshotResponse(b)
		if err != nil {
			if !errors.Is(err, transport.ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		again, err := transport.DecodeSnapshotResponse(transport.AppendSnapshotResponse(nil, resp))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(again, resp) {
			t.Fatalf("round trip changed the snapshot response: %+v vs %+v", again, resp)
		}
	})
}
