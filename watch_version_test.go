package converge_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

// TestWatchEmitsVersionOfLosingOp: an op from sync that loses to this
// replica's newer write changes nothing in the record's state but its
// Meta.Version (the count of ops applied here). The watch, woken by it,
// must emit the record with the new Version rather than take the result
// for unchanged (found by TestWatchFinalState: the watch's fingerprint
// left the applied count out).
func TestWatchEmitsVersionOfLosingOp(t *testing.T) {
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	// Fixed clocks: b's write is older than a's, whatever the machine does.
	var clockA atomic.Int64
	clockA.Store(1_000_000)
	a := open(t, converge.Options{Logger: quiet, Clock: clockA.Load})
	b := open(t, converge.Options{Logger: quiet, Clock: func() int64 { return 1_000_000 }})
	ca, err := converge.NewCollection[notifyRecT](a, "recs")
	if err != nil {
		t.Fatal(err)
	}
	cb, err := converge.NewCollection[notifyRecT](b, "recs")
	if err != nil {
		t.Fatal(err)
	}
	syncAB := func() {
		t.Helper()
		if _, err := a.SyncWith(ctx, transport.NewMemPeer(b.SyncStore(), transport.Limits{}), "ns"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ca.Put(ctx, "ns", &notifyRecT{ID: "r1", N: 1}); err != nil {
		t.Fatal(err)
	}
	syncAB()
	rb, err := cb.Get(ctx, "ns", "r1")
	if err != nil {
		t.Fatal(err)
	}
	rb.N = 2 // older: loses at a
	if _, err := cb.Put(ctx, "ns", &rb); err != nil {
		t.Fatal(err)
	}
	ra, err := ca.Get(ctx, "ns", "r1")
	if err != nil {
		t.Fatal(err)
	}
	ra.N = 3
	clockA.Store(1_000_100)
	if _, err := ca.Put(ctx, "ns", &ra); err != nil {
		t.Fatal(err)
	}

	// The deadline only bounds a failure.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	results := make(chan []notifyRecT)
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		for v, err := range ca.Watch(wctx, "ns", converge.Query{}) {
			if err != nil {
				t.Error(err)
				return
			}
			select {
			case results <- v.Value:
			case <-wctx.Done():
				return
			}
		}
	}()
	next := func() []notifyRecT {
		t.Helper()
		select {
		case v := <-results:
			return v
		case <-wctx.Done():
			t.Fatal("no result within the deadline")
			return nil
		}
	}
	before := next()
	if len(before) != 1 || before[0].N != 3 {
		t.Fatalf("first result %+v, want r1 with n 3", before)
	}
	syncAB()
	want, err := ca.Get(ctx, "ns", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if want.N != 3 || want.Meta.Version <= before[0].Meta.Version {
		t.Fatalf("after the sync: n %d version %d; want n 3, version above %d", want.N, want.Meta.Version, before[0].Meta.Version)
	}
	for got := before; len(got) != 1 || got[0].Meta.Version != want.Meta.Version; {
		got = next()
	}
}

type notifyRecT struct {
	ID   string `msgpack:"-" converge:"id"`
	N    int    `msgpack:"n"`
	Meta converge.Meta
}
