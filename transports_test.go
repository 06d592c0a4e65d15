package converge_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// A network connects replicas to each other through one transport: the
// app code in testApp never knows which.
type network interface {
	// connect returns the peer a replica's replicator uses.
	connect(t *testing.T, db *converge.DB) transport.Peer
}

// httpNetwork is a hub DB behind the HTTP server; replicas are clients.
type httpNetwork struct{ h *hub }

func (n httpNetwork) connect(t *testing.T, db *converge.DB) transport.Peer {
	c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: n.h.ts.URL, Token: "secret", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// natsNetwork is an embedded NATS server; replicas are peers of each
// other, and a hub replica stands where the HTTP hub would.
type natsNetwork struct{ url string }

func (n natsNetwork) connect(t *testing.T, db *converge.DB) transport.Peer {
	tr, err := natstransport.Connect(n.url, natstransport.Options{Store: db.SyncStore(), Heartbeat: 100 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func newNATSNetwork(t *testing.T) natsNetwork {
	s, err := embednats.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	n := natsNetwork{url: s.ClientURL()}
	// The hub: a replica that only relays, like `converge serve`.
	hubDB := open(t, converge.Options{Durability: converge.NoSync, Logger: slog.New(slog.DiscardHandler)})
	startReplicator(t, hubDB, n.connect(t, hubDB))
	return n
}

func startReplicator(t *testing.T, db *converge.DB, peer transport.Peer) *converge.Replicator {
	r, err := db.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Debounce: 5 * time.Millisecond,
		Interval: 500 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.Close(ctx)
	})
	return r
}

// TestSwitchTransports runs the same app code, replicator API and conflict
// policy over HTTP and over NATS.
func TestSwitchTransports(t *testing.T) {
	t.Run("http", func(t *testing.T) { testApp(t, httpNetwork{startHub(t, t.TempDir())}) })
	t.Run("nats", func(t *testing.T) { testApp(t, newNATSNetwork(t)) })
}

func testApp(t *testing.T, net network) {
	ctx := t.Context()
	var resolved atomic.Int64
	// b resolves conflicts on its writes by keeping the longer title.
	longer := converge.Resolve(func(c converge.Conflict, local, remote []byte) ([]byte, bool) {
		resolved.Add(1)
		if len(local) >= len(remote) {
			return local, true
		}
		return remote, true
	})
	quiet := slog.New(slog.DiscardHandler)
	a := open(t, converge.Options{Durability: converge.NoSync, Logger: quiet})
	b := open(t, converge.Options{Durability: converge.NoSync, Logger: quiet, ConflictPolicy: longer})
	tasksA, tasksB := coll[Task](t, a, "tasks"), coll[Task](t, b, "tasks")
	ra := startReplicator(t, a, net.connect(t, a))
	rb := startReplicator(t, b, net.connect(t, b))
	has := func(c *converge.Collection[Task], id string, title string) func() bool {
		return func() bool {
			got, err := c.Get(ctx, "ns", id)
			return err == nil && got.Title == title
		}
	}

	// A write on a reaches b in the background.
	if _, err := tasksA.Put(ctx, "ns", &Task{ID: "t1", Title: "from a"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, "ns", has(tasksB, "t1", "from a"))

	// b goes offline: its writes queue, a's writes do not reach it.
	rb.Pause()
	if st, _ := rb.Status(ctx, "ns"); st.State != converge.StatePaused {
		t.Errorf("paused status: %+v", st)
	}
	for i := range 3 {
		if _, err := tasksB.Put(ctx, "ns", &Task{ID: fmt.Sprintf("offline-%d", i), Title: "queued on b"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tasksA.Put(ctx, "ns", &Task{ID: "t1", Title: "a edits while b is away"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tasksB.Put(ctx, "ns", &Task{ID: "t1", Title: "b edits offline, a longer title"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ra.SyncNow(ctx, "ns"); err != nil { // a's edit is with the hub now
		t.Fatal(err)
	}
	st, err := rb.Status(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 4 {
		t.Errorf("b's offline queue = %d ops, want 4", st.Pending)
	}
	if _, err := rb.SyncNow(ctx, "ns"); !errors.Is(err, converge.ErrPaused) {
		t.Errorf("SyncNow while paused: %v", err)
	}
	if !has(tasksB, "t1", "b edits offline, a longer title")() {
		t.Error("a paused replicator applied a remote write")
	}

	// Back online: the queue drains, the conflict is resolved by b's
	// policy, and everyone converges on the longer title.
	rb.Resume()
	const want = "b edits offline, a longer title"
	waitFor(t, a, "ns", has(tasksA, "t1", want))
	waitFor(t, a, "ns", has(tasksA, "offline-2", "queued on b"))
	waitStatus(t, rb, func(st converge.Status) bool { return st.Pending == 0 })
	res, err := rb.SyncNow(ctx, "ns")
	if err != nil {
		t.Fatalf("SyncNow: %+v, %v", res, err)
	}
	if !has(tasksB, "t1", want)() {
		t.Errorf("b ended with a different title")
	}
	if st, _ := rb.Status(ctx, "ns"); st.State != converge.StateIdle || st.LastSync.IsZero() || st.LastError != nil {
		t.Errorf("status after resume: %+v", st)
	}
	for _, r := range []*converge.Replicator{ra, rb} {
		if h := r.Health(ctx); !h.OK() {
			t.Errorf("health: %+v", h)
		}
	}
	ha, _ := a.Admin().StateHash(ctx, "ns")
	hb, _ := b.Admin().StateHash(ctx, "ns")
	if ha != hb {
		// Converged on the title but not on everything yet: wait for it.
		waitFor(t, a, "ns", func() bool {
			ha, _ := a.Admin().StateHash(ctx, "ns")
			hb, _ := b.Admin().StateHash(ctx, "ns")
			return ha == hb
		})
	}
	t.Logf("resolver calls on b: %d", resolved.Load())
}

func testLogger() *slog.Logger {
	if os.Getenv("CONVERGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// waitStatus reads r's status stream until cond holds for "ns".
func waitStatus(t *testing.T, r *converge.Replicator, cond func(converge.Status) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a failure bound
	defer cancel()
	for st := range r.Statuses(ctx) {
		if st.Namespace == "ns" && cond(st) {
			return
		}
	}
	t.Fatal("the status never met the condition")
}
