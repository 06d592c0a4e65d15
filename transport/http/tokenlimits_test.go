package httptransport

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

// tokensInUse returns how many tokens hold a stream or round-trip slot.
func (s *Server) tokensInUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.use)
}

// pollUntil re-checks cond every millisecond, for conditions no event
// announces (a server noticing that a client went).
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // a failure bound
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling a condition, not synchronizing by time
	}
}

func TestLimitDefaults(t *testing.T) {
	srv, err := NewServer(ServerOptions{Store: transporttest.OpenReplica(t).DB.SyncStore(), Auth: testAuth})
	if err != nil {
		t.Fatal(err)
	}
	if srv.maxOps != DefaultMaxOpsPerRequest || srv.maxStreams != DefaultMaxStreamsPerToken || srv.maxSyncs != DefaultMaxSyncsPerToken || srv.maxBody != DefaultMaxBody {
		t.Errorf("defaults: ops %d, streams %d, syncs %d, body %d", srv.maxOps, srv.maxStreams, srv.maxSyncs, srv.maxBody)
	}
	if DefaultMaxOpsPerRequest != 10000 || DefaultMaxStreamsPerToken != 16 || DefaultMaxSyncsPerToken != 32 {
		t.Error("the defaults differ from their doc comments")
	}
}

// openStream opens a raw stream of ns and returns once the server has
// answered its header; cancel ends it.
func openStream(t *testing.T, url, token, ns string) (code int, retryAfter, body string, end func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/stream/"+ns, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		b := make([]byte, 512)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		cancel()
		return resp.StatusCode, resp.Header.Get("Retry-After"), strings.TrimSpace(string(b[:n])), func() {}
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return resp.StatusCode, "", "", func() { cancel(); resp.Body.Close() }
}

func TestStreamsPerToken(t *testing.T) {
	hub := transporttest.OpenReplica(t)
	srv, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), MaxStreamsPerToken: 2})
	var cancels []func()
	for i := range 2 {
		code, _, _, cancel := openStream(t, ts.URL, "tok", "ns")
		if code != http.StatusOK {
			t.Fatalf("stream %d: %d, want 200", i, code)
		}
		cancels = append(cancels, cancel)
	}

	// The third stream of the token is refused, with a reason and a
	// Retry-After; nothing was opened for it.
	code, ra, body, _ := openStream(t, ts.URL, "tok", "ns")
	if code != http.StatusTooManyRequests || ra != "5" || !strings.Contains(body, "limit 2") || !strings.Contains(body, "MaxStreamsPerToken") {
		t.Errorf("third stream: %d, Retry-After %q, body %q; want 429, 5 and the limit", code, ra, body)
	}
	// Through the client: a *StatusError matching ErrTooManyRequests, with
	// the server's Retry-After.
	err := newClient(t, ts.URL, "tok").Stream(t.Context(), "ns", nil, func([][]byte) error { return nil })
	se, ok := errors.AsType[*StatusError](err)
	if !errors.Is(err, ErrTooManyRequests) || !ok || se.RetryAfter != 5*time.Second {
		t.Errorf("client stream over the limit: %v (%+v), want ErrTooManyRequests with RetryAfter 5s", err, se)
	}
	// Round trips of the same token are not streams: they go on.
	if _, err := newClient(t, ts.URL, "tok").RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}}); err != nil {
		t.Errorf("round trip while the token holds its streams: %v", err)
	}
	// Another token has slots of its own.
	if code, _, body, _ := openStream(t, ts.URL, "acme", "acme.x"); code != http.StatusOK {
		t.Errorf("stream of another token: %d %q, want 200", code, body)
	}

	// A stream that ends gives its slot back.
	cancels[0]()
	pollUntil(t, "the server to release the stream's slot", func() bool {
		code, _, _, cancel := openStream(t, ts.URL, "tok", "ns")
		if code == http.StatusOK {
			cancels[0] = cancel
			return true
		}
		return false
	})
	// A live stream through the client, in a freed slot, gets frames.
	cancels[1]()
	pollUntil(t, "the server to release the second slot", func() bool { return srv.streamsOf("tok") == 1 })
	putItems(t, hub, "ns", 1, "x")
	got := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		errc <- newClient(t, ts.URL, "tok").Stream(ctx, "ns", nil, func([][]byte) error {
			select {
			case got <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	select {
	case <-got:
	case err := <-errc:
		t.Fatalf("stream in a freed slot: %v", err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("stream after cancel: %v", err)
	}

	// Every slot is released once every stream has ended.
	cancels[0]()
	srv.Close()
	pollUntil(t, "every slot to be released", func() bool { return srv.tokensInUse() == 0 })
}

// streamsOf returns the streams token holds.
func (s *Server) streamsOf(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.mu.use[sha256.Sum256([]byte(token))]; u != nil {
		return u.streams
	}
	return 0
}

// gatedStore holds every Missing of ns until gate is closed, after
// signalling on entered.
type gatedStore struct {
	transport.Store
	ns      string
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedStore) Missing(ctx context.Context, ns string, have crdt.VersionVector, lim transport.Limits) ([][]byte, bool, error) {
	if ns == g.ns {
		g.entered <- struct{}{}
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	return g.Store.Missing(ctx, ns, have, lim)
}

func TestSyncsPerToken(t *testing.T) {
	hub := transporttest.OpenReplica(t)
	store := &gatedStore{Store: hub.DB.SyncStore(), ns: "ns", entered: make(chan struct{}, 10), gate: make(chan struct{})}
	srv, ts := startServer(t, ServerOptions{Store: store, MaxSyncsPerToken: 2})
	body := transport.AppendRequest(nil, &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}})
	held := make(chan int, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.URL+"/v1/sync/ns", strings.NewReader(string(body)))
			req.Header.Set("Authorization", "Bearer tok")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				held <- 0
				return
			}
			resp.Body.Close()
			held <- resp.StatusCode
		}()
	}
	<-store.entered
	<-store.entered // both round trips are in progress

	code, msg, hdr := post(t, ts.URL+"/v1/sync/ns", "tok", body)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "1" || !strings.Contains(msg, "limit 2") || !strings.Contains(msg, "MaxSyncsPerToken") {
		t.Errorf("third round trip: %d, Retry-After %q, %q; want 429, 1 and the limit", code, hdr.Get("Retry-After"), msg)
	}
	// Another token is not held back by this one's.
	if code, msg, _ := post(t, ts.URL+"/v1/sync/acme.x", "acme", transport.AppendRequest(nil, &transport.Request{Namespace: "acme.x", Vector: crdt.VersionVector{}})); code != http.StatusOK {
		t.Errorf("round trip of another token: %d %q", code, msg)
	}

	// The client retries a 429 after the server's Retry-After, and gets
	// through once a slot frees.
	c := newClient(t, ts.URL, "tok")
	done := make(chan error, 1)
	go func() {
		_, err := c.RoundTrip(context.Background(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}})
		done <- err
	}()
	pollUntil(t, "the client to meet the limit", func() bool { return c.Stats().Retries >= 1 })
	close(store.gate)
	for range 2 {
		if code := <-held; code != http.StatusOK {
			t.Errorf("held round trip: %d", code)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("client round trip after a 429: %v", err)
	}
	if srv.tokensInUse() != 0 {
		t.Errorf("%d tokens hold slots after every round trip ended", srv.tokensInUse())
	}
}

func TestOpsPerRequest(t *testing.T) {
	srvRep, cl := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putItems(t, cl, "ns", 11, "client")
	ops := opsOf(t, cl, "ns")
	before := stateHash(t, srvRep, "ns")
	_, ts := startServer(t, ServerOptions{Store: srvRep.DB.SyncStore(), MaxOpsPerRequest: 10})

	// 11 ops: refused whole, with the reason; nothing applied.
	req := &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Ops: ops}
	code, msg, _ := post(t, ts.URL+"/v1/sync/ns", "tok", transport.AppendRequest(nil, req))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "11 ops, limit 10") || !strings.Contains(msg, "nothing applied") {
		t.Errorf("11 ops: %d %q, want 413 naming the limit", code, msg)
	}
	c := newClient(t, ts.URL, "tok")
	if _, err := c.RoundTrip(t.Context(), req); !errors.Is(err, ErrTooLarge) {
		t.Errorf("client, 11 ops: %v, want ErrTooLarge", err)
	}
	if st := c.Stats(); st.Retries != 0 {
		t.Errorf("%d retries of a 413", st.Retries)
	}
	if got := stateHash(t, srvRep, "ns"); got != before {
		t.Error("state changed after refused requests")
	}

	// 10 ops: the limit itself is allowed.
	resp, err := c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Ops: ops[:10]})
	if err != nil || resp.Applied.Applied != 10 {
		t.Fatalf("10 ops: %+v, %v; want all applied", resp, err)
	}
	// A sync whose pages stay within the limit moves everything.
	if _, err := transport.Sync(t.Context(), cl.DB.SyncStore(), c, "ns", transport.Options{Limits: transport.Limits{MaxOps: 10}}); err != nil {
		t.Fatalf("sync in pages of 10: %v", err)
	}
	transporttest.CheckConverged(t, "ns", srvRep, cl)

	// Negative: no bound of the server's own.
	other := transporttest.OpenReplica(t)
	_, ts2 := startServer(t, ServerOptions{Store: other.DB.SyncStore(), MaxOpsPerRequest: -1})
	if code, msg, _ := post(t, ts2.URL+"/v1/sync/ns", "tok", transport.AppendRequest(nil, req)); code != http.StatusOK {
		t.Errorf("11 ops, no bound: %d %q", code, msg)
	}
	transporttest.CheckConverged(t, "ns", other, cl)
}
