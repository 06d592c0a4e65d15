package httptransport

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport/transporttest"
)

// mutableAuth is an authorizer whose grants change, as a reloaded token
// file's do.
type mutableAuth struct {
	mu     sync.Mutex
	grants map[string]Grant
}

func (a *mutableAuth) Authorize(_ context.Context, token string) (Grant, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	g, ok := a.grants[token]
	if !ok {
		return Grant{}, ErrUnauthorized
	}
	return g, nil
}

func (a *mutableAuth) set(token string, g *Grant) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if g == nil {
		delete(a.grants, token)
	} else {
		a.grants[token] = *g
	}
}

// openRawStream opens a live stream of ns with token and returns a channel
// closed when its body ends.
func openRawStream(t *testing.T, url, token, ns string) <-chan struct{} {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/v1/stream/"+ns+"?v="+encodeVectorParam(crdt.VersionVector{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream %s with %s: %d", ns, token, resp.StatusCode)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body) // until the stream ends; the error is the end
	}()
	return ended
}

// A revoked token's open live streams end when the server revalidates;
// the streams of tokens still granted go on, and so does a stream whose
// token lost only other namespaces.
func TestRevalidateEndsRevokedStreams(t *testing.T) {
	hub := transporttest.OpenReplica(t)
	auth := &mutableAuth{grants: map[string]Grant{
		"revoked":  {Namespaces: []string{"ns"}},
		"kept":     {Namespaces: []string{"ns", "other"}},
		"narrowed": {Namespaces: []string{"ns", "other"}},
	}}
	srv, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), Auth: auth, HeartbeatInterval: time.Hour})
	revoked := openRawStream(t, ts.URL, "revoked", "ns")
	kept := openRawStream(t, ts.URL, "kept", "ns")
	narrowedNS := openRawStream(t, ts.URL, "narrowed", "ns")
	narrowedOther := openRawStream(t, ts.URL, "narrowed", "other")
	waitOpen(t, srv, 4)

	if n := srv.Revalidate(t.Context()); n != 0 {
		t.Errorf("Revalidate with no change ended %d streams, want 0", n)
	}
	auth.set("revoked", nil)
	auth.set("narrowed", &Grant{Namespaces: []string{"ns"}})
	if n := srv.Revalidate(t.Context()); n != 2 {
		t.Errorf("Revalidate ended %d streams, want 2 (the revoked token's, the namespace no longer granted)", n)
	}
	for name, ch := range map[string]<-chan struct{}{"revoked": revoked, "narrowed other": narrowedOther} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second): // a failure bound
			t.Errorf("the %s stream is still open after Revalidate", name)
		}
	}
	waitOpen(t, srv, 2)
	for name, ch := range map[string]<-chan struct{}{"kept": kept, "narrowed ns": narrowedNS} {
		select {
		case <-ch:
			t.Errorf("the %s stream ended; its token still grants the namespace", name)
		default:
		}
	}
	// The revoked token reconnects: 401.
	if code, _, _ := do(t, mustRequest(t, ts.URL+"/v1/stream/ns", "revoked")); code != http.StatusUnauthorized {
		t.Errorf("stream with the revoked token = %d, want 401", code)
	}
}

func mustRequest(t *testing.T, url, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// waitOpen waits until srv serves n live streams.
func waitOpen(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		srv.mu.Lock()
		got := len(srv.mu.open)
		srv.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open, want %d", got, n)
		}
		<-time.After(time.Millisecond) // polling a condition, not synchronizing by time
	}
}
