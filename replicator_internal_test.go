package converge

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/convergedb/converge/transport"
)

// warnCounter is a slog handler that counts records at Warn and above.
type warnCounter struct{ n *atomic.Int64 }

func (h warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h warnCounter) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h warnCounter) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h warnCounter) WithGroup(string) slog.Handler                { return h }

// TestDBCloseStopsReplicators: a replicator left open when its DB closes
// is closed by the DB first: its goroutines end (none spins on the closed
// store, warning), its own Close is then harmless, and the DB refuses new
// replicators. It runs in a synctest bubble: the DB closes as the syncs
// at open start, 1ms later on the bubble's clock.
func TestDBCloseStopsReplicators(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		var warnings atomic.Int64
		app, err := Open(t.TempDir(), Options{Durability: NoSync, Logger: slog.New(warnCounter{&warnings})})
		if err != nil {
			t.Fatal(err)
		}
		hub, err := Open(t.TempDir(), Options{Durability: NoSync, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer hub.Close()
		peer := transport.NewMemPeer(hub.SyncStore(), transport.Limits{})
		r, err := app.OpenReplicator(peer, ReplicatorOptions{Namespaces: []string{"a", "b"},
			Debounce: time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // the syncs at open start with it
		if err := app.Close(); err != nil {
			t.Fatal(err)
		}
		stopped := make(chan struct{})
		go func() { r.wg.Wait(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second): // a failure bound, on the bubble's clock
			t.Fatalf("the replicator still runs after DB.Close (%d warnings so far)", warnings.Load())
		}
		if n := warnings.Load(); n != 0 {
			t.Errorf("%d warnings logged around DB.Close, want none", n)
		}
		if err := r.Close(ctx); err != nil {
			t.Errorf("Replicator.Close after DB.Close = %v, want nil", err)
		}
		if _, err := r.SyncNow(ctx, "a"); !errors.Is(err, ErrClosed) {
			t.Errorf("SyncNow after DB.Close = %v, want ErrClosed", err)
		}
		if _, err := app.OpenReplicator(peer, ReplicatorOptions{Namespaces: []string{"a"}}); !errors.Is(err, ErrClosed) {
			t.Errorf("OpenReplicator on a closed DB = %v, want ErrClosed", err)
		}
	})
}
