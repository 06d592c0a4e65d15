package proptest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/proptest"
	"github.com/convergedb/converge/transport"
)

// TestWaitConverged checks that WaitConverged returns once replicas that
// differ when it starts are made to agree by a sync it did not start (it
// wakes on their changes), and that it reports how they differ when its
// context ends first.
func TestWaitConverged(t *testing.T) {
	ctx := t.Context()
	net, err := proptest.Open(t.TempDir(), 3, converge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	a, b, c := net.Replica(0), net.Replica(1), net.Replica(2)
	tasks, err := converge.NewCollection[Task](a, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Put(ctx, "team", &Task{ID: "t1", Title: "a"}); err != nil {
		t.Fatal(err)
	}

	// Differing, and nothing makes them agree: the wait ends with ctx.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = proptest.WaitConverged(short, "team", a, b)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitConverged of differing replicas = %v, want DeadlineExceeded", err)
	}

	// A sync in another goroutine, started only once the wait has checked
	// (and found them differing) at least once: the wait wakes on it.
	checked := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		<-checked
		for _, p := range [][2]*converge.DB{{b, a}, {c, a}} {
			if _, err := p[0].SyncWith(ctx, transport.NewMemPeer(p[1].SyncStore(), transport.Limits{}), "team"); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := proptest.CheckConverged(ctx, "team", a, b, c); err == nil {
		t.Fatal("CheckConverged before the sync: nil, want a difference")
	}
	close(checked)
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := proptest.WaitConverged(wctx, "team", a, b, c); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := proptest.CheckConverged(ctx, "team", a, b, c); err != nil {
		t.Fatal(err)
	}
}
