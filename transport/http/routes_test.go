package httptransport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

// awkwardNamespaces need escaping in a URL path, or look like path syntax
// once unescaped: each must reach the store as itself.
var awkwardNamespaces = []string{
	"plain", "a/b", "a//b", "/lead", "trail/", "a b", "a%b", "%2F", "a?b#c",
	".", "..", "a/../b", "./x", "ünï.côdé", "a+b", "semi;colon", "tab\tnl\n", "nul\x00",
	"acme.>",
}

// TestAwkwardNamespaces syncs, snapshots and streams each awkward namespace
// through a Client and a Server: the namespace the server's store sees is
// the client's, whatever it holds.
func TestAwkwardNamespaces(t *testing.T) {
	hub := transporttest.OpenReplica(t)
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), Auth: staticAuth{"all": {Namespaces: []string{">"}}}})
	c := newClient(t, ts.URL, "all", func(o *ClientOptions) { o.MaxRetries = 1 })
	for _, ns := range awkwardNamespaces {
		t.Run(fmt.Sprintf("%q", ns), func(t *testing.T) {
			cl := transporttest.OpenReplica(t)
			putItems(t, cl, ns, 2, "client")
			putItems(t, hub, ns, 1, "hub")
			res, err := transport.Sync(t.Context(), cl.DB.SyncStore(), c, ns, transport.Options{})
			if err != nil {
				t.Fatalf("sync: %v", err)
			}
			if res.Sent != 2 || res.Received != 1 {
				t.Errorf("sent %d, received %d; want 2 and 1", res.Sent, res.Received)
			}
			transporttest.CheckConverged(t, ns, cl, hub)
			page, err := c.Snapshot(t.Context(), &transport.SnapshotRequest{Namespace: ns})
			if err != nil {
				t.Errorf("snapshot: %v", err)
			} else if len(page.Records) != 3 {
				t.Errorf("snapshot: %d records, want 3", len(page.Records))
			}
			// A stream from nothing: its first frame holds the namespace's 3 ops.
			if n, err := firstFrame(t, c, ns); err != nil || n != 3 {
				t.Errorf("stream: first frame of %d ops, %v; want 3", n, err)
			}
		})
	}
}

// firstFrame streams ns from nothing and returns the number of ops of the
// first frame, or why the stream ended before one.
func firstFrame(t *testing.T, c *Client, ns string) (int, error) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	frames := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Stream(ctx, ns, nil, func(ops [][]byte) error {
			select {
			case frames <- len(ops):
			default:
			}
			return nil
		})
	}()
	defer func() { cancel(); <-errc }()
	select {
	case n := <-frames:
		return n, nil
	case err := <-errc:
		errc <- err
		return 0, fmt.Errorf("stream ended: %w", err)
	case <-time.After(10 * time.Second): // a failure bound, not synchronization
		return 0, errors.New("no frame within 10s")
	}
}

// TestRoutesStatuses pins the status and Allow header of each route and
// method, and the 404 of paths outside them.
func TestRoutesStatuses(t *testing.T) {
	hub := transporttest.OpenReplica(t)
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore()})
	cases := []struct {
		method, path string
		want         int
		allow        string // for a 405
	}{
		{http.MethodGet, "/v1/health", http.StatusOK, ""},
		{http.MethodHead, "/v1/health", http.StatusMethodNotAllowed, "GET"},
		{http.MethodPost, "/v1/health", http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/v1/sync/ns", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, "/v1/sync/ns", http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/v1/snapshot/ns", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPost, "/v1/stream/ns", http.StatusMethodNotAllowed, "GET"},
		{http.MethodHead, "/v1/stream/ns", http.StatusMethodNotAllowed, "GET"},
		{http.MethodDelete, "/v1/stream/ns", http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/v1/stream/ns?v=!!", http.StatusBadRequest, ""},
		{http.MethodPost, "/v1/sync/ns", http.StatusBadRequest, ""}, // an empty body
		{http.MethodPost, "/v1/sync/other", http.StatusForbidden, ""},
		{http.MethodPost, "/v1/sync/" + strings.Repeat("x", 1025), http.StatusBadRequest, ""},
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodGet, "/v1", http.StatusNotFound, ""},
		{http.MethodGet, "/v1/", http.StatusNotFound, ""},
		{http.MethodGet, "/v1/nope", http.StatusNotFound, ""},
		{http.MethodGet, "/v1/health/x", http.StatusNotFound, ""},
		{http.MethodGet, "/v2/sync/ns", http.StatusNotFound, ""},
		{http.MethodPost, "/v1/sync/", http.StatusNotFound, ""},
		{http.MethodPost, "/v1/sync", http.StatusNotFound, ""},
		{http.MethodPost, "/v1/sync/a/b", http.StatusNotFound, ""},
		{http.MethodPost, "/v1/snapshot/a/b", http.StatusNotFound, ""},
		{http.MethodGet, "/v1/stream/a/b", http.StatusNotFound, ""},
		{http.MethodPost, "/v1/sync/%zz", http.StatusBadRequest, ""}, // refused by net/http before any handler
	}
	for _, c := range cases {
		req, err := http.NewRequestWithContext(t.Context(), c.method, ts.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = "//" + req.URL.Host + c.path // sent as written, bad escapes too
		req.Header.Set("Authorization", "Bearer tok")
		code, body, hdr := do(t, req)
		if code != c.want {
			t.Errorf("%s %s: %d %q, want %d", c.method, c.path, code, body, c.want)
		}
		if c.want == http.StatusMethodNotAllowed {
			if got := hdr.Get("Allow"); got != c.allow {
				t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
			}
			if want := "method " + c.method + " not allowed, use " + c.allow; c.method != http.MethodHead && body != want {
				t.Errorf("%s %s: body %q, want %q", c.method, c.path, body, want)
			}
		}
	}
}

// TestDotNamespacesUnescaped: clients before escapeNamespace sent a
// namespace "." or ".." as it is; the server still takes it for the
// namespace, not for path syntax.
func TestDotNamespacesUnescaped(t *testing.T) {
	hub := transporttest.OpenReplica(t)
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), Auth: staticAuth{"all": {Namespaces: []string{">"}}}})
	for _, ns := range []string{".", ".."} {
		putItems(t, hub, ns, 1, "hub")
		for route, body := range map[string][]byte{
			"sync":     transport.AppendRequest(nil, &transport.Request{Namespace: ns, Vector: crdt.VersionVector{}}),
			"snapshot": transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: ns}),
		} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = "//" + req.URL.Host + "/v1/" + route + "/" + ns
			req.Header.Set("Authorization", "Bearer all")
			if code, msg, _ := do(t, req); code != http.StatusOK {
				t.Errorf("POST /v1/%s/%s: %d %q, want 200", route, ns, code, msg)
			}
		}
	}
	if got := escapeNamespace(".."); got != "%2E%2E" {
		t.Errorf("escapeNamespace(..) = %q", got)
	}
}

// TestRoutesNonCanonical: a path with an empty, "." or ".." segment is
// redirected to its cleaned form (ServeMux's rule), not served.
func TestRoutesNonCanonical(t *testing.T) {
	hub := transporttest.OpenReplica(t)
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore()})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]string{
		"/v1//health":       "/v1/health",
		"/v1/sync/x/../ns":  "/v1/sync/ns",
		"/v1/./stream/ns":   "/v1/stream/ns",
		"/v1/sync/./ns?a=b": "/v1/sync/ns?a=b",
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = "//" + req.URL.Host + path
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want {
			t.Errorf("POST %s: %d to %q, want 307 to %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}
