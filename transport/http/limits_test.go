package httptransport

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

func TestBodyTooLarge(t *testing.T) {
	srvRep, cl := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putItems(t, cl, "ns", 50, "client")
	before := stateHash(t, srvRep, "ns")
	_, ts := startServer(t, ServerOptions{Store: srvRep.DB.SyncStore(), MaxBody: 256})
	req := &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Ops: opsOf(t, cl, "ns")}

	// Through the client (gzip'd, still beyond 256 bytes): not retried.
	c := newClient(t, ts.URL, "tok")
	if _, err := c.RoundTrip(t.Context(), req); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("RoundTrip = %v, want ErrTooLarge", err)
	}
	if st := c.Stats(); st.Retries != 0 {
		t.Errorf("%d retries of a 413", st.Retries)
	}

	// Raw, uncompressed.
	body := transport.AppendRequest(nil, req)
	if code, msg, _ := post(t, ts.URL+"/v1/sync/ns", "tok", body); code != http.StatusRequestEntityTooLarge || msg == "" {
		t.Errorf("raw body of %d bytes: %d %q, want 413 with a reason", len(body), code, msg)
	}

	// A small gzip body that decompresses beyond the limit.
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(make([]byte, 64<<10))
	zw.Close()
	if z.Len() > 256 {
		t.Fatalf("test bomb of %d bytes", z.Len())
	}
	if code, _, _ := post(t, ts.URL+"/v1/sync/ns", "tok", z.Bytes(), "Content-Encoding", "gzip"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("gzip bomb: %d, want 413", code)
	}

	if got := stateHash(t, srvRep, "ns"); got != before {
		t.Error("state changed after refused requests")
	}
}

func TestMalformedBody(t *testing.T) {
	srvRep := transporttest.OpenReplica(t)
	_, ts := startServer(t, ServerOptions{Store: srvRep.DB.SyncStore()})
	valid := transport.AppendRequest(nil, &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}})
	for _, tc := range []struct {
		name string
		body []byte
		hdr  []string
		code int
		want string // in the body
	}{
		{"garbage", []byte("hello"), nil, 400, "bad message"},
		{"empty", nil, nil, 400, "bad message"},
		{"truncated", valid[:len(valid)-1], nil, 400, "bad message"},
		{"trailing bytes", append(bytes.Clone(valid), 0), nil, 400, "trailing"},
		{"not gzip", valid, []string{"Content-Encoding", "gzip"}, 400, "gzip"},
		{"unknown encoding", valid, []string{"Content-Encoding", "br"}, 415, "br"},
	} {
		code, msg, _ := post(t, ts.URL+"/v1/sync/ns", "tok", tc.body, tc.hdr...)
		if code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %q, want %d and a body saying %q", tc.name, code, msg, tc.code, tc.want)
		}
	}
	if code, _, _ := post(t, ts.URL+"/v1/sync/ns", "tok", valid); code != 200 {
		t.Errorf("valid body: %d", code)
	}
}

// Malformed op bytes in a valid request refuse the whole batch, in a 200
// answer (as transport.Serve and the conformance suite expect): valid ops
// of the same batch are not applied either.
func TestMalformedOpsRefuseBatch(t *testing.T) {
	srvRep, cl := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putItems(t, srvRep, "ns", 1, "server")
	putItems(t, cl, "ns", 3, "client")
	before := stateHash(t, srvRep, "ns")
	_, ts := startServer(t, ServerOptions{Store: srvRep.DB.SyncStore()})
	c := newClient(t, ts.URL, "tok")
	ops := append(opsOf(t, cl, "ns"), []byte("not an op"))
	resp, err := c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Ops: ops})
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	if resp.Applied.Applied != 0 || resp.Applied.Refused != len(ops) || !strings.Contains(resp.Applied.Reason, "op 3") {
		t.Errorf("applied %+v, want all %d refused, naming op 3", resp.Applied, len(ops))
	}
	if len(resp.Ops) != 1 {
		t.Errorf("answered %d ops, want the server's 1", len(resp.Ops))
	}
	if got := stateHash(t, srvRep, "ns"); got != before {
		t.Error("state changed after a batch with a malformed op")
	}
}

func TestRoutes(t *testing.T) {
	srvRep := transporttest.OpenReplica(t)
	srv, ts := startServer(t, ServerOptions{Store: srvRep.DB.SyncStore()})
	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		code, body, _ := do(t, req)
		return code, body
	}
	if code, body := get("/v1/health"); code != 200 || body != "ok" {
		t.Errorf("health: %d %q", code, body)
	}
	for _, p := range []string{"/", "/v1/", "/v1/nope", "/v2/sync/ns", "/v1/sync/", "/v1/sync/a/b"} {
		if code, _ := get(p); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	if code, _ := get("/v1/sync/ns"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/sync/ns: %d, want 405", code)
	}
	if code, _, _ := post(t, ts.URL+"/v1/stream/ns", "tok", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/stream/ns: %d, want 405", code)
	}
	if code, body := get("/v1/stream/ns?v=!!"); code != http.StatusBadRequest || body == "" {
		t.Errorf("stream with a bad vector: %d %q, want 400", code, body)
	}
	// An escaped namespace reaches the grant check as itself.
	if code, _ := get("/v1/stream/n%73?v=!!"); code != http.StatusBadRequest {
		t.Errorf("escaped granted namespace: %d, want 400 (bad vector, after auth)", code)
	}

	srv.Close()
	c := newClient(t, ts.URL, "tok", func(o *ClientOptions) { o.MaxRetries = 1 })
	_, err := c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}})
	if se, ok := errors.AsType[*StatusError](err); !ok || se.Code != http.StatusServiceUnavailable {
		t.Errorf("after Close: %v, want 503", err)
	}
	if st := c.Stats(); st.Retries != 1 {
		t.Errorf("after Close: %d retries, want 1 (503 is retried)", st.Retries)
	}
}
