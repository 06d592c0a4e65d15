package converge_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/proptest"
	httptransport "github.com/convergedb/converge/transport/http"
)

// grantAll authorizes one token for the namespaces given.
type grantAll struct {
	token string
	ns    []string
}

func (g grantAll) Authorize(ctx context.Context, token string) (httptransport.Grant, error) {
	if token != g.token {
		return httptransport.Grant{}, httptransport.ErrUnauthorized
	}
	return httptransport.Grant{Namespaces: g.ns}, nil
}

// hub is a server DB behind a real HTTP listener on loopback (the server
// wakes its live streams on the DB's commits itself).
type hub struct {
	db  *converge.DB
	srv *httptransport.Server
	ts  *httptest.Server
}

func startHub(t *testing.T, dir string) *hub { return startHubOn(t, dir, nil) }

func startHubB(b *testing.B) *hub { return startHubOn(b, b.TempDir(), nil) }

// restartHubAt starts a hub on dir listening on the address of url, as a
// restarted server would.
func restartHubAt(t *testing.T, dir, url string) *hub {
	t.Helper()
	l, err := net.Listen("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatalf("listen on the old address: %v", err)
	}
	return startHubOn(t, dir, l)
}

func startHubOn(t testing.TB, dir string, l net.Listener) *hub {
	t.Helper()
	db, err := converge.Open(dir, converge.Options{Durability: converge.NoSync, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := httptransport.NewServer(httptransport.ServerOptions{Store: db.SyncStore(), Auth: grantAll{"secret", []string{"ns"}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	if l != nil {
		ts.Listener.Close()
		ts.Listener = l
	}
	ts.Start()
	h := &hub{db: db, srv: srv, ts: ts}
	t.Cleanup(h.stop)
	return h
}

func (h *hub) stop() {
	if h.ts != nil {
		h.srv.Close()
		h.ts.Close()
		h.db.Close()
		h.ts = nil
	}
}

type client struct {
	db    *converge.DB
	tasks *converge.Collection[Task]
	rep   *converge.Replicator
}

func startClientB(b *testing.B, url string) *client { return startClientTB(b, url) }

func startClient(t *testing.T, url string) *client { return startClientTB(t, url) }

func startClientTB(t testing.TB, url string) *client {
	t.Helper()
	db, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: url, Token: "secret", MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := db.OpenReplicator(c, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Debounce: time.Millisecond, Interval: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close(context.Background()) })
	tasks, err := converge.NewCollection[Task](db, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	return &client{db: db, tasks: tasks, rep: rep}
}

// waitConverged waits until every DB holds the same ops and state
// (proptest.WaitConverged).
func waitConverged(t *testing.T, dbs ...*converge.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second) // a failure bound
	defer cancel()
	if err := proptest.WaitConverged(ctx, "ns", dbs...); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPThreeClientsConverge(t *testing.T) {
	h := startHub(t, t.TempDir())
	clients := []*client{startClient(t, h.ts.URL), startClient(t, h.ts.URL), startClient(t, h.ts.URL)}
	done := make(chan error, len(clients))
	for i, c := range clients {
		go func() {
			for j := range 20 {
				if _, err := c.tasks.Put(context.Background(), "ns", &Task{ID: fmt.Sprint("k", j%4), Title: fmt.Sprint("c", i, "-", j), Votes: int64(j)}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range clients {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, h.db, clients[0].db, clients[1].db, clients[2].db)
}

func TestHTTPOfflineClientCatchesUp(t *testing.T) {
	h := startHub(t, t.TempDir())
	a, b := startClient(t, h.ts.URL), startClient(t, h.ts.URL)
	b.rep.Pause() // offline
	for i := range 200 {
		if _, err := a.tasks.Put(t.Context(), "ns", &Task{ID: fmt.Sprint("t", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.tasks.Put(t.Context(), "ns", &Task{ID: "written-offline"}); err != nil {
		t.Fatal(err)
	}
	st, _ := b.rep.Status(t.Context(), "ns")
	if st.Pending != 1 || st.State != converge.StatePaused {
		t.Errorf("offline status %+v", st)
	}
	b.rep.Resume()
	waitConverged(t, h.db, a.db, b.db)
	// The hub may hold b's op before b's sync records the acknowledgement:
	// one more sync makes the status current.
	if _, err := b.rep.SyncNow(t.Context(), "ns"); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.rep.Status(t.Context(), "ns"); st.Pending != 0 {
		t.Errorf("after catching up: %d pending", st.Pending)
	}
}

func TestHTTPServerRestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, dir)
	a := startClient(t, h.ts.URL)
	for i := range 50 {
		if _, err := a.tasks.Put(t.Context(), "ns", &Task{ID: fmt.Sprint("t", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The server goes away mid-stream; the client keeps writing.
	url := h.ts.URL
	h.stop()
	for i := 50; i < 100; i++ {
		if _, err := a.tasks.Put(t.Context(), "ns", &Task{ID: fmt.Sprint("t", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// It comes back on the same address and store.
	h2 := restartHubAt(t, dir, url)
	if _, err := a.rep.SyncNow(t.Context(), "ns"); err != nil {
		t.Fatalf("SyncNow after restart: %v", err)
	}
	waitConverged(t, h2.db, a.db)
	n, err := coll[Task](t, h2.db, "tasks").Count(t.Context(), "ns", converge.Query{})
	if err != nil || n != 100 {
		t.Errorf("server holds %d records after restart, want 100 (%v)", n, err)
	}
}
