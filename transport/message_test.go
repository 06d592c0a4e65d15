package transport_test

import (
	"bytes"
	"errors"
	"reflect"
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
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := transport.DecodeResponse(b)
		if err != nil {
			if !errors.Is(err, transport.ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if _, err := transport.DecodeResponse(transport.AppendResponse(nil, resp)); err != nil {
			t.Fatalf("re-decode: %v", err)
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
