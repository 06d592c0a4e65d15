package httptransport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

// flaky answers the first n requests with status code (and Retry-After
// ra, if not empty), then passes them to h.
func flaky(h http.Handler, n int32, code int, ra string) (http.Handler, *atomic.Int32) {
	var seen atomic.Int32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= n {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			http.Error(w, "try later", code)
			return
		}
		h.ServeHTTP(w, r)
	}), &seen
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int
		ra   string
	}{
		{"503 Retry-After 0", http.StatusServiceUnavailable, "0"},
		{"500", http.StatusInternalServerError, ""},
		{"429 past date", http.StatusTooManyRequests, "Mon, 02 Jan 2006 15:04:05 GMT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
			putItems(t, a, "ns", 3, "a")
			putItems(t, b, "ns", 4, "b")
			srv, err := NewServer(ServerOptions{Store: b.DB.SyncStore(), Auth: testAuth, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			h, seen := flaky(srv, 2, tc.code, tc.ra)
			ts := serve(t, srv, h)
			c := newClient(t, ts.URL, "tok")
			res, err := transport.Sync(t.Context(), a.DB.SyncStore(), c, "ns", transport.Options{})
			if err != nil {
				t.Fatalf("sync through a flaky server: %v", err)
			}
			if res.Sent != 3 || res.Received != 4 {
				t.Errorf("sent %d received %d, want 3 and 4", res.Sent, res.Received)
			}
			transporttest.CheckConverged(t, "ns", a, b)
			st := c.Stats()
			if st.Retries != 2 || st.Requests != int64(seen.Load()) || st.Requests != int64(res.Rounds)+2 {
				t.Errorf("stats %+v after %d rounds, %d requests served; want 2 retries", st, res.Rounds, seen.Load())
			}
		})
	}
}

func TestNoRetryOn4xx(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 409, 413} {
		h, seen := flaky(http.NotFoundHandler(), 100, code, "0")
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		c := newClient(t, ts.URL, "tok")
		_, err := c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}})
		se, ok := errors.AsType[*StatusError](err)
		if !ok || se.Code != code || se.Message != "try later" {
			t.Errorf("%d: RoundTrip error %v, want a *StatusError %d \"try later\"", code, err, code)
		}
		if n, st := seen.Load(), c.Stats(); n != 1 || st.Retries != 0 || st.Requests != 1 {
			t.Errorf("%d: %d requests served, stats %+v; want exactly 1 and no retry", code, n, st)
		}
	}
}

func TestRetriesExhausted(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close() // nothing listens there now
	c := newClient(t, url, "tok", func(o *ClientOptions) { o.MaxRetries = 3 })
	start := time.Now()
	_, err := c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}})
	if err == nil {
		t.Fatal("RoundTrip to a closed server succeeded")
	}
	if st := c.Stats(); st.Requests != 4 || st.Retries != 3 {
		t.Errorf("stats %+v, want 4 requests and 3 retries", st)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v with backoffs of at most 5ms", d)
	}

	// Persistent 503s: bounded too, and reported with the status.
	h, seen := flaky(http.NotFoundHandler(), 1000, http.StatusServiceUnavailable, "")
	ts = httptest.NewServer(h)
	t.Cleanup(ts.Close)
	c = newClient(t, ts.URL, "tok", func(o *ClientOptions) { o.MaxRetries = 2 })
	_, err = c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}})
	if se, ok := errors.AsType[*StatusError](err); !ok || se.Code != 503 || seen.Load() != 3 {
		t.Errorf("persistent 503: %v after %d requests, want a 503 after 3", err, seen.Load())
	}

	// Negative MaxRetries: none.
	c = newClient(t, url, "tok", func(o *ClientOptions) { o.MaxRetries = -1 })
	if _, err := c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}}); err == nil || c.Stats().Requests != 1 {
		t.Errorf("MaxRetries -1: %v, %d requests; want an error after 1", err, c.Stats().Requests)
	}
}

func TestRetryStopsWithContext(t *testing.T) {
	asked := make(chan struct{})
	var once sync.Once
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600") // an hour
		http.Error(w, "try much later", http.StatusServiceUnavailable)
		once.Do(func() { close(asked) })
	}))
	t.Cleanup(ts.Close)
	c := newClient(t, ts.URL, "tok")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.RoundTrip(ctx, &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}})
		done <- err
	}()
	<-asked
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("RoundTrip = %v, want context.Canceled", err)
	}
}

func TestBackoffBounds(t *testing.T) {
	c, err := NewClient(ClientOptions{
		BaseURL: "http://localhost", MinBackoff: time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		Rand: rand.New(rand.NewPCG(7, 9)), Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	for n := range 100 {
		ceil := 40 * time.Millisecond
		if n < 6 {
			ceil = time.Millisecond << n
		}
		var top time.Duration
		for range 200 {
			d := c.backoff(n)
			if d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, d, ceil)
			}
			top = max(top, d)
		}
		if top < ceil/2 {
			t.Errorf("backoff(%d): largest of 200 draws %v, want jitter spanning [0, %v]", n, top, ceil)
		}
	}
}

func TestRetryAfterParse(t *testing.T) {
	for _, tc := range []struct {
		in       string
		min, max time.Duration
	}{
		{"", 0, 0},
		{"0", 0, 0},
		{"-3", 0, 0},
		{"3", 3 * time.Second, 3 * time.Second},
		{"999999", MaxRetryAfter, MaxRetryAfter},
		{"soon", 0, 0},
		{"Mon, 02 Jan 2006 15:04:05 GMT", 0, 0},
		{time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), 59 * time.Minute, time.Hour},
	} {
		if got := retryAfter(tc.in); got < tc.min || got > tc.max {
			t.Errorf("retryAfter(%q) = %v, want in [%v, %v]", tc.in, got, tc.min, tc.max)
		}
	}
}

func TestNewClientBadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://host", "http://", "::"} {
		if _, err := NewClient(ClientOptions{BaseURL: u}); err == nil {
			t.Errorf("NewClient(%q) succeeded", u)
		}
	}
}

func TestCompression(t *testing.T) {
	srvRep, cl := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putItems(t, srvRep, "ns", 300, "server-side-item")
	putItems(t, cl, "ns", 300, "client-side-item")
	_, ts := startServer(t, ServerOptions{Store: srvRep.DB.SyncStore()})
	rec := &recorder{underlying: http.DefaultTransport}
	c := newClient(t, ts.URL, "tok", func(o *ClientOptions) { o.HTTPClient = &http.Client{Transport: rec} })
	push := opsOf(t, cl, "ns")
	req := &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Ops: push}
	resp, err := c.RoundTrip(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Applied.Applied != 300 || len(resp.Ops) != 600 {
		t.Errorf("applied %d, answered %d ops; want 300 and 600", resp.Applied.Applied, len(resp.Ops))
	}
	if rec.reqEnc[0] != "gzip" || rec.respEnc[0] != "gzip" {
		t.Errorf("Content-Encoding of request %q, response %q; want gzip both", rec.reqEnc[0], rec.respEnc[0])
	}
	st := c.Stats()
	if plain := len(transport.AppendRequest(nil, req)); st.BytesSent*2 > int64(plain) {
		t.Errorf("sent %d wire bytes for a %d-byte request: compression does not pay", st.BytesSent, plain)
	}
	if plain := len(transport.AppendResponse(nil, resp)); st.BytesReceived*2 > int64(plain) {
		t.Errorf("received %d wire bytes for a %d-byte response: compression does not pay", st.BytesReceived, plain)
	}

	// Small messages go plain.
	if _, err := c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Limits: transport.Limits{MaxOps: 1}}); err != nil {
		t.Fatal(err)
	}
	if rec.reqEnc[1] != "" || rec.respEnc[1] != "" {
		t.Errorf("small messages: Content-Encoding %q, %q; want none", rec.reqEnc[1], rec.respEnc[1])
	}

	// A client that does not accept gzip gets plain bytes.
	body := transport.AppendRequest(nil, &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}})
	if code, _, hdr := post(t, ts.URL+"/v1/sync/ns", "tok", body, "Accept-Encoding", "identity"); code != 200 || hdr.Get("Content-Encoding") != "" {
		t.Errorf("Accept-Encoding identity: %d, Content-Encoding %q", code, hdr.Get("Content-Encoding"))
	}
}

func TestCatchUpInPages(t *testing.T) {
	srvRep, late := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	const n = 5000
	for tx := range n / 100 {
		err := srvRep.DB.Update(t.Context(), "ns", func(x *converge.Tx) error {
			for i := range 100 {
				if _, err := srvRep.Items.Tx(x).Put(&transporttest.Item{ID: fmt.Sprintf("i-%02d-%03d", tx, i), Name: "bulk"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	_, ts := startServer(t, ServerOptions{Store: srvRep.DB.SyncStore(), Limits: transport.Limits{MaxOps: 500}})
	c := newClient(t, ts.URL, "tok")
	// The late replica asks for more per page than the server allows.
	res, err := transport.Sync(t.Context(), late.DB.SyncStore(), c, "ns", transport.Options{Limits: transport.Limits{MaxOps: 100000}})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if res.Received != n || res.Rounds < 10 {
		t.Errorf("received %d in %d rounds, want %d in at least 10", res.Received, res.Rounds, n)
	}
	if st := c.Stats(); st.Requests != int64(res.Rounds) {
		t.Errorf("%d requests for %d rounds", st.Requests, res.Rounds)
	}
	transporttest.CheckConverged(t, "ns", srvRep, late)
}

// TestRetryStatuses: ClientOptions.RetryStatuses chooses the statuses a
// round trip retries; nil keeps the default, empty retries none.
func TestRetryStatuses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int
		code     int
		served   int32 // requests served: 1 without a retry, 3 with two
	}{
		{"default retries 503", nil, http.StatusServiceUnavailable, 3},
		{"default does not retry 501", nil, http.StatusNotImplemented, 1},
		{"default does not retry 408", nil, http.StatusRequestTimeout, 1},
		{"408 chosen", []int{http.StatusRequestTimeout}, http.StatusRequestTimeout, 3},
		{"503 not chosen", []int{http.StatusRequestTimeout}, http.StatusServiceUnavailable, 1},
		{"none", []int{}, http.StatusTooManyRequests, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, seen := flaky(http.NotFoundHandler(), 1000, tc.code, "")
			ts := httptest.NewServer(h)
			t.Cleanup(ts.Close)
			c := newClient(t, ts.URL, "tok", func(o *ClientOptions) { o.MaxRetries = 2; o.RetryStatuses = tc.statuses })
			_, err := c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}})
			if se, ok := errors.AsType[*StatusError](err); !ok || se.Code != tc.code || seen.Load() != tc.served {
				t.Errorf("%v after %d requests, want a %d after %d", err, seen.Load(), tc.code, tc.served)
			}
		})
	}
}

// TestHealthChecksTheServer: Health is nil while the server answers its
// health route, and an error once nothing listens.
func TestHealthChecksTheServer(t *testing.T) {
	srv, err := NewServer(ServerOptions{Store: transporttest.OpenReplica(t).DB.SyncStore(), Auth: testAuth, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	c := newClient(t, ts.URL, "")
	if err := c.Health(t.Context()); err != nil {
		t.Errorf("Health of a running server: %v", err)
	}
	srv.Close() // closing: 503
	if err := c.Health(t.Context()); err == nil {
		t.Error("Health of a closing server: nil")
	}
	ts.Close()
	if err := c.Health(t.Context()); err == nil {
		t.Error("Health with nothing listening: nil")
	}
}
