package converge_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

// logRecords keeps the records logged at Warn and above, and Info.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecords) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

func (h *logRecords) count(level slog.Level, msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level == level && r.Message == msg {
			n++
		}
	}
	return n
}

// An offline peer for a minute, retried every 800ms at most: the
// replicator logs the first failure and then one line per
// FailureLogInterval, not one per failure, and the recovery once.
func TestReplicatorLogsFailuresAtABoundedRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		tasks := coll[Task](t, app, "tasks")
		peer := newTripLog(hub.SyncStore(), transport.Limits{})
		logs := &logRecords{}
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Interval: time.Hour,
			MinBackoff: 100 * time.Millisecond, MaxBackoff: 800 * time.Millisecond,
			Logger: slog.New(logs), FailureLogInterval: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		settle(time.Second) // the sync at open
		peer.SetDown(true)
		start := time.Now()
		if _, err := tasks.Put(ctx, "ns", &Task{ID: "x"}); err != nil {
			t.Fatal(err)
		}
		settle(time.Minute)
		failures := len(peer.since(start))
		warned := logs.count(slog.LevelWarn, "sync failed")
		if failures < 60 || warned < 6 || warned > 8 {
			t.Errorf("%d failed syncs in a minute logged %d warnings, want the first and one per 10s (6 to 8)", failures, warned)
		}
		peer.SetDown(false)
		settle(time.Second)
		if n := logs.count(slog.LevelInfo, "sync recovered"); n != 1 {
			t.Errorf("%d recovery lines, want 1", n)
		}
	})
}
