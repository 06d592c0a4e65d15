package ratelog

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// records keeps what was logged.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *records) WithGroup(string) slog.Handler      { return h }

// at returns the records at level.
func (h *records) at(level slog.Level) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.recs {
		if r.Level == level {
			out = append(out, r)
		}
	}
	return out
}

func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// advance moves the bubble's fake clock by d (the test runs in a
// synctest bubble: nothing waits in real time).
func advance(d time.Duration) { <-time.After(d) }

// A device offline for an hour, failing every 10s: the first failure,
// one line per interval (5 min) with the counts, and the recovery.
func TestFailuresAtABoundedRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &records{}
		l := New(slog.New(h), 5*time.Minute)
		errOffline := errors.New("offline")
		warned := 0
		for range 360 { // an hour of failures every 10s
			if l.Failure("ns", "sync failed", errOffline, "namespace", "ns") {
				warned++
			}
			advance(10 * time.Second)
		}
		if want := 1 + 60/5 - 1; warned != want+1 && warned != want {
			t.Errorf("%d warnings for an hour of failures, want about %d", warned, want)
		}
		warns := h.at(slog.LevelWarn)
		if len(warns) != warned {
			t.Fatalf("%d warn records, Failure said %d", len(warns), warned)
		}
		if v := attr(warns[0], "failures"); v.Kind() != slog.KindAny || v.Any() != nil {
			t.Errorf("the first failure carries a count %v, want none", v)
		}
		second := warns[1]
		if got := attr(second, "failures").Int64(); got != 31 {
			t.Errorf("the second line counts %d failures, want 31 (5 min at 10s, and the first)", got)
		}
		if got := attr(second, "suppressed").Int64(); got != 29 {
			t.Errorf("the second line says %d suppressed, want 29", got)
		}
		if n := len(h.at(slog.LevelDebug)); n != 360-warned {
			t.Errorf("%d debug records, want %d (every failure not at warn)", n, 360-warned)
		}
		if !l.Success("ns", "sync recovered", "namespace", "ns") {
			t.Fatal("Success after failures reports no run ended")
		}
		infos := h.at(slog.LevelInfo)
		if len(infos) != 1 || attr(infos[0], "failures").Int64() != 360 || attr(infos[0], "failed_for").Duration() != time.Hour {
			t.Errorf("recovery records %v, want one with 360 failures over an hour", infos)
		}
		// A success with no run on logs nothing; a new run starts over.
		if l.Success("ns", "sync recovered") {
			t.Error("a second Success reports a run ended")
		}
		if !l.Failure("ns", "sync failed", errOffline) {
			t.Error("the first failure of a new run was not logged at warn")
		}
	})
}

// Keys are independent: one failing key does not silence another.
func TestKeysAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &records{}
		l := New(slog.New(h), 0)
		err := errors.New("down")
		if !l.Failure("a", "failed", err) || !l.Failure("b", "failed", err) {
			t.Error("the first failure of each key was not logged")
		}
		if l.Failure("a", "failed", err) {
			t.Error("a second failure at once was logged at warn")
		}
		advance(DefaultInterval)
		if !l.Failure("a", "failed", err) {
			t.Error("a failure an interval later was not logged at warn")
		}
	})
}
