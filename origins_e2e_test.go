package converge_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
)

// TestOriginRestrictedWritersConverge is issue 13.3: two writers, each
// with a token limited to its own origin (docs/SECURITY.md), live streams
// on, writing in turns. A writer's sync used to re-push the ops of the
// other writer that its live stream delivered since its last sync, which
// the hub refused (403) for ever. Now the hub takes ops it holds as
// duplicates whatever their origin, a failed sync is not retried from the
// same stale vector, and a sync after live deliveries starts with a
// vector exchange, so nothing is even re-pushed: every round converges.
func TestOriginRestrictedWritersConverge(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	opts := converge.Options{Durability: converge.NoSync, Logger: quiet}
	hubDB, a, b := open(t, opts), open(t, opts), open(t, opts)
	tokens := filepath.Join(t.TempDir(), "tokens")
	lines := fmt.Sprintf("tok-a ns origins=%s\ntok-b ns origins=%s\n", a.ReplicaID(), b.ReplicaID())
	if err := os.WriteFile(tokens, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := httptransport.LoadTokenFile(tokens)
	if err != nil {
		t.Fatal(err)
	}
	var pushedBack atomic.Int64 // ops pushed to the hub that it held already
	srv, err := httptransport.NewServer(httptransport.ServerOptions{Store: hubDB.SyncStore(), Auth: auth, Logger: quiet,
		OnApply: func(_ string, a transport.Applied) { pushedBack.Add(int64(a.Duplicates)) }})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); ts.Close() })
	writers := map[string]*converge.Collection[Task]{}
	for name, db := range map[string]*converge.DB{"a": a, "b": b} {
		c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: ts.URL, Token: "tok-" + name,
			MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := db.OpenReplicator(c, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Debounce: time.Millisecond,
			Interval: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rep.Close(context.Background()) })
		writers[name] = coll[Task](t, db, "tasks")
	}
	for round := range 20 {
		for _, name := range []string{"a", "b"} {
			task := &Task{ID: fmt.Sprintf("%s-%d", name, round%3), Title: fmt.Sprintf("%s wrote in round %d", name, round)}
			if _, err := writers[name].Put(t.Context(), "ns", task); err != nil {
				t.Fatal(err)
			}
			// The other writer gets it from its live stream, not a sync.
			waitConverged(t, hubDB, a, b)
		}
	}
	if n := pushedBack.Load(); n != 0 {
		t.Errorf("%d ops pushed back to the hub that it held (its live stream had delivered them)", n)
	}
}
