package httptransport

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

// compactAll folds every op r holds of ns into base states.
func compactAll(t testing.TB, r *transporttest.Replica, ns string) {
	t.Helper()
	vv, err := r.DB.Admin().Log().Vector(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := r.DB.Admin().Log().Compact(context.Background(), ns, oplog.CompactOptions{Horizon: vv}); err != nil || st.Ops == 0 {
		t.Fatalf("compact: %+v, %v", st, err)
	}
}

// TestSnapshotEndpoint: POST /v1/snapshot/{ns} answers pages under the
// sync route's auth and limits, gzip'd when that pays.
func TestSnapshotEndpoint(t *testing.T) {
	hub := transporttest.OpenReplica(t)
	putItems(t, hub, "ns", 200, "hub-item-with-a-longish-name")
	compactAll(t, hub, "ns")
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), MaxBody: 4096, Limits: transport.Limits{MaxOps: 150}})
	u := ts.URL + "/v1/snapshot/ns"
	valid := transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "ns"})

	cases := []struct {
		name, url, token string
		body             []byte
		want             int
	}{
		{"no token", u, "", valid, http.StatusUnauthorized},
		{"bad token", u, "nope", valid, http.StatusUnauthorized},
		{"outside the grant", ts.URL + "/v1/snapshot/other", "tok", transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "other"}), http.StatusForbidden},
		{"malformed", u, "tok", []byte("not a message"), http.StatusBadRequest},
		{"a sync request", u, "tok", transport.AppendRequest(nil, &transport.Request{Namespace: "ns"}), http.StatusBadRequest},
		{"escaped, outside the grant", ts.URL + "/v1/snapshot/n%73x", "acme", transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "ns"}), http.StatusForbidden},
		{"too large", u, "tok", bytes.Repeat([]byte{0x90}, 5000), http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		if code, body, _ := post(t, c.url, c.token, c.body); code != c.want || body == "" {
			t.Errorf("%s: %d %q, want %d with a reason", c.name, code, body, c.want)
		}
	}
	mismatch := transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "acme.a"})
	if code, body, _ := post(t, ts.URL+"/v1/snapshot/acme.b", "acme", mismatch); code != http.StatusBadRequest {
		t.Errorf("namespace of the body not the URL's: %d %q, want 400", code, body)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer tok")
	if code, _, hdr := do(t, req); code != http.StatusMethodNotAllowed || hdr.Get("Allow") != http.MethodPost {
		t.Errorf("GET: %d, Allow %q; want 405, POST", code, hdr.Get("Allow"))
	}

	rec := &recorder{underlying: http.DefaultTransport}
	c := newClient(t, ts.URL, "tok", func(o *ClientOptions) { o.HTTPClient = &http.Client{Transport: rec} })
	resp, err := c.Snapshot(t.Context(), &transport.SnapshotRequest{Namespace: "ns", Limits: transport.Limits{MaxOps: 1000}})
	if err != nil {
		t.Fatalf("snapshot page: %v", err)
	}
	if len(resp.Records) != 150 || !resp.More {
		t.Errorf("page of %d records, more %v; want the server's 150 and more", len(resp.Records), resp.More)
	}
	if rec.respEnc[0] != "gzip" {
		t.Errorf("a large page's Content-Encoding %q, want gzip", rec.respEnc[0])
	}
	last := resp.Records[len(resp.Records)-1]
	resp, err = c.Snapshot(t.Context(), &transport.SnapshotRequest{Namespace: "ns", After: &transport.SnapshotCursor{Collection: last.Collection, Key: last.Key}})
	if err != nil || len(resp.Records) != 50 || resp.More {
		t.Fatalf("second page: %d records, more %v, %v; want the last 50", len(resp.Records), resp.More, err)
	}
	_, err = c.Snapshot(t.Context(), &transport.SnapshotRequest{Namespace: "other"})
	if !errors.Is(err, ErrForbidden) {
		t.Errorf("client outside its grant: %v, want ErrForbidden", err)
	}

	// A store that cannot make snapshots: 501, not retried.
	_, ts2 := startServer(t, ServerOptions{Store: transporttest.WithoutSnapshots{Store: hub.DB.SyncStore()}})
	c2 := newClient(t, ts2.URL, "tok")
	_, err = c2.Snapshot(t.Context(), &transport.SnapshotRequest{Namespace: "ns"})
	if se, ok := errors.AsType[*StatusError](err); !ok || se.Code != http.StatusNotImplemented {
		t.Errorf("snapshot from a plain store: %v, want 501", err)
	}
	if st := c2.Stats(); st.Retries != 0 {
		t.Errorf("%d retries of a 501", st.Retries)
	}
}

// TestStreamBelowHorizon: a stream asked for below the compaction horizon
// is a 409 (transport.ErrSnapshotNeeded); after a sync bootstraps the
// client, it streams.
func TestStreamBelowHorizon(t *testing.T) {
	hub, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putItems(t, hub, "ns", 10, "old")
	compactAll(t, hub, "ns")
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore()})
	c := newClient(t, ts.URL, "tok")
	err := c.Stream(t.Context(), "ns", func() crdt.VersionVector { return nil }, func([][]byte) error { return nil })
	if se, ok := errors.AsType[*StatusError](err); !ok || se.Code != http.StatusConflict || !errors.Is(err, transport.ErrSnapshotNeeded) {
		t.Fatalf("stream below the horizon: %v, want a 409 matching ErrSnapshotNeeded", err)
	}
	res, err := b.DB.SyncWith(t.Context(), c, "ns")
	if err != nil || res.Snapshots != 1 {
		t.Fatalf("sync: %+v, %v; want a bootstrap", res, err)
	}
	frames, errc := streamTo(t, c, b, "ns")
	putItems(t, hub, "ns", 1, "new")
	if n := waitFrame(t, frames, errc); n != 1 {
		t.Fatalf("frame of %d ops, want 1", n)
	}
	transporttest.CheckConverged(t, "ns", hub, b)
}

// TestReplicatorBootstrapsOverHTTP: a new replica's replicator, against a
// hub that compacted its log, bootstraps from a snapshot, and its live
// stream (refused with 409 until then) delivers what comes after.
func TestReplicatorBootstrapsOverHTTP(t *testing.T) {
	hub := transporttest.OpenReplica(t)
	putItems(t, hub, "ns", 120, "hub")
	compactAll(t, hub, "ns")
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), Limits: transport.Limits{MaxOps: 25}})

	db, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	items, err := converge.NewCollection[transporttest.Item](db, "items")
	if err != nil {
		t.Fatal(err)
	}
	b := &transporttest.Replica{DB: db, Items: items}
	sub := db.Subscribe("ns") // before anything arrives: no change slips by
	defer sub.Close()
	rep, err := db.OpenReplicator(newClient(t, ts.URL, "tok"), converge.ReplicatorOptions{
		Namespaces: []string{"ns"}, Interval: time.Hour, Debounce: time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Limits: transport.Limits{MaxOps: 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close(context.Background()) })
	if _, err := rep.SyncNow(t.Context(), "ns"); err != nil {
		t.Fatalf("sync now: %v", err)
	}
	transporttest.CheckConverged(t, "ns", hub, b)

	// Live: a write on the hub reaches b by its stream (the periodic sync
	// is an hour away).
	putItems(t, hub, "ns", 1, "live")
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second) // a failure bound
	defer cancel()
	for {
		h1, h2 := stateHash(t, hub, "ns"), stateHash(t, b, "ns")
		if h1 == h2 {
			break
		}
		if _, err := sub.Next(ctx); err != nil && !errors.Is(err, converge.ErrLagged) {
			t.Fatalf("waiting for the live write: %v", err)
		}
	}
	transporttest.CheckConverged(t, "ns", hub, b)
}
