package httptransport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

var quiet = slog.New(slog.DiscardHandler)

// staticAuth grants by token.
type staticAuth map[string]Grant

func (a staticAuth) Authorize(ctx context.Context, token string) (Grant, error) {
	g, ok := a[token]
	if !ok {
		return Grant{}, ErrUnauthorized
	}
	return g, nil
}

// testAuth grants "ns" to "tok", and "acme.>" to "acme".
var testAuth = staticAuth{
	"tok":  {Namespaces: []string{"ns"}},
	"acme": {Namespaces: []string{"acme.>"}},
}

// startServer serves opts (Auth defaults to testAuth) on loopback. The
// server is closed, then the listener, when the test ends.
func startServer(t *testing.T, opts ServerOptions) (*Server, *httptest.Server) {
	t.Helper()
	if opts.Auth == nil {
		opts.Auth = testAuth
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return srv, serve(t, srv, srv)
}

// serve starts h on loopback, closing srv before the listener.
func serve(t *testing.T, srv *Server, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	t.Cleanup(srv.Close) // runs first: ends the streams ts.Close would wait for
	return ts
}

// newClient returns a client of url with token and tiny backoffs.
func newClient(t *testing.T, url, token string, mod ...func(*ClientOptions)) *Client {
	t.Helper()
	opts := ClientOptions{
		BaseURL: url, Token: token,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Rand:   rand.New(rand.NewPCG(1, 2)),
		Logger: quiet,
	}
	for _, m := range mod {
		m(&opts)
	}
	c, err := NewClient(opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func putItems(t testing.TB, r *transporttest.Replica, ns string, n int, name string) {
	t.Helper()
	for i := range n {
		if _, err := r.Items.Put(context.Background(), ns, &transporttest.Item{ID: fmt.Sprintf("%s-%05d", name, i), Name: name}); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
}

// opsOf returns the encoded ops r holds in ns.
func opsOf(t testing.TB, r *transporttest.Replica, ns string) [][]byte {
	t.Helper()
	ops, _, err := r.DB.SyncStore().Missing(context.Background(), ns, crdt.VersionVector{}, transport.Limits{MaxOps: 1 << 20, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatalf("missing: %v", err)
	}
	return ops
}

func stateHash(t testing.TB, r *transporttest.Replica, ns string) string {
	t.Helper()
	h, err := r.DB.Admin().StateHash(context.Background(), ns)
	if err != nil {
		t.Fatalf("state hash: %v", err)
	}
	return h
}

// post sends body to the server raw, and returns the status and body.
func post(t *testing.T, url, token string, body []byte, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// recorder is an http.RoundTripper that records the Content-Encoding of
// requests and responses.
type recorder struct {
	mu         sync.Mutex
	reqEnc     []string
	respEnc    []string
	underlying http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.underlying.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqEnc = append(r.reqEnc, req.Header.Get("Content-Encoding"))
	if err == nil {
		r.respEnc = append(r.respEnc, resp.Header.Get("Content-Encoding"))
	}
	return resp, err
}
