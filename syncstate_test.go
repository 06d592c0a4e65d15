package converge_test

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

// watched is one result of a watch, as the tests see it.
type watched[V any] struct {
	converge.Watched[V]
	err error
}

// watchAll runs a watch in a goroutine and hands over every result; the
// channel closes when the watch ends.
func watchAll[V any](seq iter.Seq2[converge.Watched[V], error]) <-chan watched[V] {
	ch := make(chan watched[V], 100)
	go func() {
		defer close(ch)
		for w, err := range seq {
			ch <- watched[V]{w, err}
		}
	}()
	return ch
}

// nextResult returns the watch's next result; the timeout bounds a
// failure, it is no synchronization.
func nextResult[V any](t *testing.T, ch <-chan watched[V]) watched[V] {
	t.Helper()
	select {
	case w, ok := <-ch:
		if !ok {
			t.Fatal("the watch ended")
		}
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("no result within 10s")
	}
	panic("unreachable")
}

// resultUntil returns the first result of the watch for which ok holds.
func resultUntil[V any](t *testing.T, ch <-chan watched[V], ok func(watched[V]) bool) watched[V] {
	t.Helper()
	for {
		if w := nextResult(t, ch); ok(w) {
			return w
		}
	}
}

// ended waits for the watch to end.
func ended[V any](t *testing.T, ch <-chan watched[V]) {
	t.Helper()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the watch did not end within 10s")
		}
	}
}

// TestWatchCarriesSyncState: a watch's results say whether the namespace
// synced since the DB opened and carry the last sync's error; a sync
// state change yields a result even when the data did not change, a
// repeated error does not, and sync errors never end the watch.
func TestWatchCarriesSyncState(t *testing.T) {
	ctx := t.Context()
	a, b := open(t, converge.Options{}), open(t, converge.Options{})
	ia, ib := coll[Issue](t, a, "issues"), coll[Issue](t, b, "issues")
	peer := transport.NewMemPeer(b.SyncStore(), transport.Limits{})
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	results := watchAll(ia.Watch(wctx, "ns", converge.Query{}))

	if w := nextResult(t, results); w.err != nil || w.Synced || w.SyncErr != nil || len(w.Value) != 0 {
		t.Fatalf("first result: %+v; want empty, not synced, no error", w)
	}
	if synced, err := a.Synced("ns"); synced || err != nil {
		t.Fatalf("Synced before any sync = %v, %v", synced, err)
	}

	peer.SetDown(true)
	for range 2 { // the second failure, with the same error, changes nothing
		if _, err := a.SyncWith(ctx, peer, "ns"); !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("SyncWith a peer down: %v", err)
		}
	}
	w := nextResult(t, results)
	if w.err != nil || w.Synced || !errors.Is(w.SyncErr, transport.ErrUnreachable) || len(w.Value) != 0 {
		t.Fatalf("after a failed sync: %+v; want the same data with the sync error", w)
	}
	must(ia.Put(ctx, "ns", &Issue{ID: "a1", Title: "local"}))(t)
	w = nextResult(t, results) // the put, not a second result for the second failure
	if w.err != nil || len(w.Value) != 1 || !errors.Is(w.SyncErr, transport.ErrUnreachable) {
		t.Fatalf("after a local put while offline: %+v", w)
	}

	peer.SetDown(false)
	must(ib.Put(ctx, "ns", &Issue{ID: "b1", Title: "remote"}))(t)
	if _, err := a.SyncWith(ctx, peer, "ns"); err != nil {
		t.Fatal(err)
	}
	resultUntil(t, results, func(w watched[[]Issue]) bool {
		if w.err != nil {
			t.Fatalf("watch error: %v", w.err)
		}
		return w.Synced && w.SyncErr == nil && len(w.Value) == 2
	})
	if synced, err := a.Synced("ns"); !synced || err != nil {
		t.Fatalf("Synced after a sync = %v, %v", synced, err)
	}

	// A sync the caller cancelled is no outcome.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.SyncWith(cctx, peer, "ns"); err == nil {
		t.Fatal("SyncWith with a cancelled context succeeded")
	}
	if synced, err := a.Synced("ns"); !synced || err != nil {
		t.Fatalf("Synced after a cancelled sync = %v, %v; want true, nil", synced, err)
	}
	// Another failure after a success: synced stays true, the error shows.
	peer.SetDown(true)
	if _, err := a.SyncWith(ctx, peer, "ns"); err == nil {
		t.Fatal("SyncWith a peer down succeeded")
	}
	if w := nextResult(t, results); !w.Synced || !errors.Is(w.SyncErr, transport.ErrUnreachable) || len(w.Value) != 2 {
		t.Fatalf("after a failure following a success: %+v", w)
	}
	stop()
	ended(t, results)
}

// TestWatchEndsOnClose: closing the DB ends a watch; so does its context.
func TestWatchEndsOnClose(t *testing.T) {
	db := open(t, converge.Options{})
	c := coll[Issue](t, db, "issues")
	results := watchAll(c.WatchCount(t.Context(), "ns", converge.Query{}))
	nextResult(t, results)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ended(t, results)
}

// TestWatchGoesOnAfterErrors: an error does not end a watch; the result
// after it comes with the next change.
func TestWatchGoesOnAfterErrors(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	c := coll[Issue](t, db, "issues")
	type wrong struct {
		ID       string `msgpack:"-" converge:"id"`
		Priority string `msgpack:"priority"` // an int in Issue
		Meta     converge.Meta
	}
	w := coll[wrong](t, db, "issues")
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	results := watchAll(w.Watch(wctx, "ns", converge.Query{}))
	nextResult(t, results)
	must(c.Put(ctx, "ns", &Issue{ID: "x", Priority: 3}))(t)
	if r := nextResult(t, results); !errors.Is(r.err, converge.ErrSchema) {
		t.Fatalf("a record that does not fit: %+v, want ErrSchema", r)
	}
	if err := c.Delete(ctx, "ns", "x"); err != nil {
		t.Fatal(err)
	}
	if r := nextResult(t, results); r.err != nil || len(r.Value) != 0 {
		t.Fatalf("after the record went: %+v", r)
	}
}

// TestReplicatorFeedsSynced: the replicator's syncs, SyncNow's included,
// count in DB.Synced and the watches.
func TestReplicatorFeedsSynced(t *testing.T) {
	ctx := t.Context()
	a, b := open(t, converge.Options{}), open(t, converge.Options{})
	ca, cb := coll[Issue](t, a, "issues"), coll[Issue](t, b, "issues")
	must(cb.Put(ctx, "ns", &Issue{ID: "b1", Status: "open"}))(t)
	peer := transport.NewMemPeer(b.SyncStore(), transport.Limits{})
	rep, err := a.OpenReplicator(peer, idle("ns"))
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close(ctx)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	results := watchAll(ca.WatchCount(wctx, "ns", converge.Where(converge.Eq("status", "open"))))
	if w := nextResult(t, results); w.Synced || w.Value != 0 {
		t.Fatalf("first: %+v, want 0 and not synced", w)
	}
	peer.SetDown(true)
	if _, err := rep.SyncNow(ctx, "ns"); err == nil {
		t.Fatal("SyncNow with the peer down succeeded")
	}
	if w := nextResult(t, results); w.Synced || w.SyncErr == nil || w.Value != 0 {
		t.Fatalf("after a failed SyncNow: %+v", w)
	}
	peer.SetDown(false)
	if _, err := rep.SyncNow(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	resultUntil(t, results, func(w watched[int]) bool { return w.Synced && w.SyncErr == nil && w.Value == 1 })
}

// TestWatchFollowsReplicator: a watch shows the background syncs of a
// replicator: loading while the first sync fails (with its error), synced
// once a retry succeeds, and a sync error again when the peer goes away,
// without a new data change and without ending. On a fake clock.
func TestWatchFollowsReplicator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		tasks := coll[Task](t, app, "tasks")
		peer := transport.NewMemPeer(hub.SyncStore(), transport.Limits{})
		peer.SetDown(true)
		// The watch starts before the replicator: with no debounce (the
		// default) the sync at open may fail before a later watch's first
		// read.
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		results := watchAll(tasks.Watch(wctx, "ns", converge.Query{}))
		if w := nextResult(t, results); w.Synced || w.SyncErr != nil {
			t.Fatalf("first: %+v, want loading", w)
		}
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"},
			Interval: time.Minute, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		settle(20 * time.Millisecond) // the sync at open fails
		if w := nextResult(t, results); w.Synced || !errors.Is(w.SyncErr, transport.ErrUnreachable) {
			t.Fatalf("after the first sync: %+v, want loading with the sync error", w)
		}
		peer.SetDown(false)
		settle(time.Second) // the retry, within MinBackoff (500ms)
		if w := nextResult(t, results); !w.Synced || w.SyncErr != nil {
			t.Fatalf("after the retry: %+v, want synced", w)
		}
		peer.SetDown(true)
		settle(time.Minute) // the periodic sync fails
		if w := nextResult(t, results); !w.Synced || !errors.Is(w.SyncErr, transport.ErrUnreachable) {
			t.Fatalf("after the peer went away: %+v, want synced with the sync error", w)
		}
		select {
		case w := <-results:
			t.Fatalf("an extra result %+v", w)
		default:
		}
	})
}

// TestWatchCoalesce: with Coalesce, a burst of changes within the delay
// yields one result, after the delay. On a fake clock.
func TestWatchCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		c := coll[Issue](t, open(t, converge.Options{Logger: slog.New(slog.DiscardHandler)}), "issues")
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		results := watchAll(c.WatchCount(wctx, "ns", converge.Query{}, converge.Coalesce(time.Second)))
		if w := nextResult(t, results); w.Value != 0 {
			t.Fatalf("first: %+v", w)
		}
		for _, id := range []string{"a", "b", "c"} {
			must(c.Put(ctx, "ns", &Issue{ID: id}))(t)
			settle(100 * time.Millisecond)
		}
		select {
		case w := <-results:
			t.Fatalf("a result %+v before the delay passed", w)
		default:
		}
		settle(time.Second)
		if w := nextResult(t, results); w.Value != 3 {
			t.Fatalf("after the burst: %+v, want one result of 3", w)
		}
	})
}
