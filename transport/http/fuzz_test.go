package httptransport

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

// Body modes of FuzzServeSync.
const (
	fuzzIdentity = iota // the body as is
	fuzzGzip            // the body gzip'd by the harness, sent with Content-Encoding: gzip
	fuzzRawGzip         // the body as is, labelled Content-Encoding: gzip (bombs, broken streams)
	fuzzModes
)

// The limits of the fuzzed server: small, so that the fuzzer reaches them.
const (
	fuzzMaxBody = 64 << 10
	fuzzMaxOps  = 16
)

// FuzzServeSync feeds arbitrary bodies to POST /v1/sync/ns, with a valid
// token, against one real store shared by every input. The handler must
// not panic, must answer 200, 400, 403 or 413, must answer a 200 with a
// decodable response, and must leave the store as it was when it refuses.
// The seed corpus is in testdata/fuzz/FuzzServeSync (a valid request, a
// truncated one, a gzip bomb, ops of another namespace, too many ops, a
// malformed op); more seeds are built here from a replica's ops.
func FuzzServeSync(f *testing.F) {
	hub, cl := transporttest.OpenReplica(f), transporttest.OpenReplica(f)
	putItems(f, hub, "ns", 3, "hub")
	putItems(f, cl, "ns", 3, "client")
	srv, err := NewServer(ServerOptions{
		Store: hub.DB.SyncStore(), Auth: testAuth, Logger: quiet,
		MaxBody: fuzzMaxBody, MaxOpsPerRequest: fuzzMaxOps, Limits: transport.Limits{MaxOps: 8},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Close)

	valid := transport.AppendRequest(nil, &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Ops: opsOf(f, cl, "ns")})
	f.Add(byte(fuzzIdentity), valid)
	f.Add(byte(fuzzGzip), valid)
	f.Add(byte(fuzzIdentity), transport.AppendRequest(nil, &transport.Request{Namespace: "ns"}))

	ctx := context.Background()
	store := hub.DB.SyncStore()
	state := func(t *testing.T) (string, crdt.VersionVector) {
		h, err := hub.DB.Admin().StateHash(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		v, err := store.Vector(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		return h, v
	}
	f.Fuzz(func(t *testing.T, mode byte, body []byte) {
		h0, v0 := state(t)
		rec := fuzzPost(ctx, srv, "/v1/sync/ns", mode, body)

		switch rec.Code {
		case http.StatusOK:
			resp, err := transport.DecodeResponse(rec.Body.Bytes())
			if err != nil {
				t.Fatalf("200 with an undecodable response: %v", err)
			}
			if len(resp.Ops) > 8 {
				t.Fatalf("a page of %d ops, limit 8", len(resp.Ops))
			}
			return
		case http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge:
			if rec.Body.Len() == 0 {
				t.Errorf("%d without a reason", rec.Code)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
		}
		if h1, v1 := state(t); h1 != h0 || !v1.Equal(v0) {
			t.Fatalf("%d changed the store: vector %v -> %v", rec.Code, v0, v1)
		}
	})
}

// FuzzServeSnapshot feeds arbitrary bodies to POST /v1/snapshot/ns, with a
// valid token, against one real store with a compacted log. The handler
// must not panic, must answer 200, 400 or 413, must answer a 200 with a
// decodable page within the server's limits, after the request's cursor,
// and must never change the store.
func FuzzServeSnapshot(f *testing.F) {
	hub := transporttest.OpenReplica(f)
	putItems(f, hub, "ns", 12, "hub")
	compactAll(f, hub, "ns")
	srv, err := NewServer(ServerOptions{
		Store: hub.DB.SyncStore(), Auth: testAuth, Logger: quiet,
		MaxBody: fuzzMaxBody, Limits: transport.Limits{MaxOps: 5},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Close)

	f.Add(byte(fuzzIdentity), transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "ns"}))
	f.Add(byte(fuzzGzip), transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "ns", After: &transport.SnapshotCursor{Collection: "items", Key: "hub-00004"}, Limits: transport.Limits{MaxOps: 100}}))
	f.Add(byte(fuzzIdentity), transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "ns", After: &transport.SnapshotCursor{Collection: "zzz", Key: "k"}, From: crdt.ReplicaID{1}}))
	f.Add(byte(fuzzIdentity), transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "other"}))
	f.Add(byte(fuzzRawGzip), []byte{0x1f, 0x8b, 8, 0})
	f.Add(byte(fuzzIdentity), transport.AppendRequest(nil, &transport.Request{Namespace: "ns"}))

	ctx := context.Background()
	state := func(t *testing.T) (string, crdt.VersionVector) {
		h, err := hub.DB.Admin().StateHash(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		v, err := hub.DB.SyncStore().Vector(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		return h, v
	}
	f.Fuzz(func(t *testing.T, mode byte, body []byte) {
		plain := body
		h0, v0 := state(t)
		rec := fuzzPost(ctx, srv, "/v1/snapshot/ns", mode, body)

		switch rec.Code {
		case http.StatusOK:
			resp, err := transport.DecodeSnapshotResponse(rec.Body.Bytes())
			if err != nil {
				t.Fatalf("200 with an undecodable page: %v", err)
			}
			if len(resp.Records) > 5 {
				t.Fatalf("a page of %d records, limit 5", len(resp.Records))
			}
			sreq, err := transport.DecodeSnapshotRequest(plain)
			if mode%fuzzModes != fuzzRawGzip && err != nil {
				t.Fatalf("200 to an undecodable request: %v", err)
			}
			if err == nil && sreq.After != nil && len(resp.Records) > 0 {
				a, r := sreq.After, resp.Records[0]
				if r.Collection < a.Collection || r.Collection == a.Collection && r.Key <= a.Key {
					t.Fatalf("page starts at %q/%q, not after the cursor %q/%q", r.Collection, r.Key, a.Collection, a.Key)
				}
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if rec.Body.Len() == 0 {
				t.Errorf("%d without a reason", rec.Code)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
		}
		if h1, v1 := state(t); h1 != h0 || !v1.Equal(v0) {
			t.Fatalf("a snapshot request changed the store: vector %v -> %v", v0, v1)
		}
	})
}

// fuzzPost posts body to path with a valid token: as it is, gzipped, or
// as it is but labelled gzip, by mode.
func fuzzPost(ctx context.Context, srv http.Handler, path string, mode byte, body []byte) *httptest.ResponseRecorder {
	hdr := http.Header{"Authorization": {"Bearer tok"}}
	switch mode % fuzzModes {
	case fuzzGzip:
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(body)
		zw.Close()
		body = z.Bytes()
		hdr.Set("Content-Encoding", "gzip")
	case fuzzRawGzip:
		hdr.Set("Content-Encoding", "gzip")
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, path, bytes.NewReader(body))
	req.Header = hdr
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec
}
