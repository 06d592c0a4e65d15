package httptransport

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

// streamTo runs c.Stream of ns into replica r, and sends the count of
// ops of each frame on the returned channel. The stream ends with the test.
func streamTo(t *testing.T, c *Client, r *transporttest.Replica, ns string) (<-chan int, <-chan error) {
	frames := make(chan int, 100)
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	store := r.DB.SyncStore()
	go func() {
		errc <- c.Stream(ctx, ns, func() crdt.VersionVector {
			v, err := store.Vector(ctx, ns)
			if err != nil {
				t.Errorf("vector: %v", err)
			}
			return v
		}, func(ops [][]byte) error {
			a, err := store.Apply(ctx, ns, ops)
			if err != nil {
				return err
			}
			if a.Refused > 0 {
				return errors.New(a.Reason)
			}
			frames <- len(ops)
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("stream ended with %v, want nil after cancel", err)
		}
	})
	return frames, errc
}

func waitFrame(t *testing.T, frames <-chan int, errc <-chan error) int {
	t.Helper()
	select {
	case n := <-frames:
		return n
	case err := <-errc:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second): // a failure bound, not synchronization
		t.Fatal("no frame within 10s")
	}
	return 0
}

func TestStreamLive(t *testing.T) {
	hub, a, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	// Heartbeats every millisecond interleave with the frames; the client
	// must not hand them to apply (a frame of 0 ops fails the test).
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), HeartbeatInterval: time.Millisecond})
	ca, cb := newClient(t, ts.URL, "tok"), newClient(t, ts.URL, "tok")
	frames, errc := streamTo(t, cb, b, "ns")

	for round := range 3 {
		putItems(t, a, "ns", 1, "a-round-"+string(rune('0'+round)))
		if _, err := a.DB.SyncWith(t.Context(), ca, "ns"); err != nil {
			t.Fatalf("round %d: sync a: %v", round, err)
		}
		if n := waitFrame(t, frames, errc); n != 1 {
			t.Fatalf("round %d: frame of %d ops, want 1", round, n)
		}
		transporttest.CheckConverged(t, "ns", a, hub, b)
	}
}

func TestStreamCatchUpInPages(t *testing.T) {
	hub, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putItems(t, hub, "ns", 25, "old")
	putItems(t, b, "ns", 5, "b") // b's own ops: not sent back
	if _, err := b.DB.SyncWith(t.Context(), transport.NewMemPeer(hub.DB.SyncStore(), transport.Limits{}), "ns"); err != nil {
		t.Fatal(err)
	}
	putItems(t, hub, "ns", 20, "new")
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), Limits: transport.Limits{MaxOps: 6}})
	c := newClient(t, ts.URL, "tok")
	frames, errc := streamTo(t, c, b, "ns")
	got := 0
	for got < 20 {
		n := waitFrame(t, frames, errc)
		if n > 6 {
			t.Fatalf("frame of %d ops, pages of 6", n)
		}
		got += n
	}
	if got != 20 {
		t.Errorf("streamed %d ops, want the 20 b lacked", got)
	}
	transporttest.CheckConverged(t, "ns", hub, b)
}

// TestStreamWire reads a stream raw: frames of pages of what the vector
// in v lacks, then heartbeats.
func TestStreamWire(t *testing.T) {
	hub, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putItems(t, hub, "ns", 3, "old")
	if _, err := b.DB.SyncWith(t.Context(), transport.NewMemPeer(hub.DB.SyncStore(), transport.Limits{}), "ns"); err != nil {
		t.Fatal(err)
	}
	putItems(t, hub, "ns", 2, "new")
	have, err := b.DB.SyncStore().Vector(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), HeartbeatInterval: time.Millisecond, Limits: transport.Limits{MaxOps: 1}})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+"/v1/stream/ns?v="+encodeVectorParam(have), nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != contentTypeStream {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want, err := hub.DB.SyncStore().Vector(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	for i, wantOps := range []int{1, 1, 0, 0} {
		fr, _, err := readFrame(resp.Body)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(fr.Ops) != wantOps || fr.More != (i == 0) || !fr.Vector.Equal(want) {
			t.Errorf("frame %d: %d ops, more %v, vector %v; want %d ops, more %v, vector %v", i, len(fr.Ops), fr.More, fr.Vector, wantOps, i == 0, want)
		}
	}
}

func TestStreamRefused(t *testing.T) {
	hub := transporttest.OpenReplica(t)
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore()})
	apply := func([][]byte) error { return nil }
	for _, tc := range []struct {
		token, ns string
		want      error
	}{
		{"tok", "secret", ErrForbidden},
		{"", "ns", ErrUnauthorized},
		{"bad", "ns", ErrUnauthorized},
	} {
		err := newClient(t, ts.URL, tc.token).Stream(t.Context(), tc.ns, nil, apply)
		if !errors.Is(err, tc.want) {
			t.Errorf("Stream(%q) with token %q = %v, want %v", tc.ns, tc.token, err, tc.want)
		}
	}
}

func TestStreamEndsOnClose(t *testing.T) {
	hub := transporttest.OpenReplica(t)
	putItems(t, hub, "ns", 1, "x")
	srv, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore()})
	c := newClient(t, ts.URL, "tok")
	got := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- c.Stream(t.Context(), "ns", nil, func([][]byte) error { close(got); return nil })
	}()
	<-got // the stream is live
	srv.Close()
	if err := <-errc; !errors.Is(err, ErrStreamEnded) {
		t.Errorf("Stream after server Close = %v, want ErrStreamEnded", err)
	}
	if err := c.Stream(t.Context(), "ns", nil, nil); err == nil {
		t.Error("Stream after server Close succeeded")
	}
}

// TestStreamWakesOnCommits is issue 13.6: the obvious wiring (a server
// given the store, nothing else) streams every commit at once, a local
// write of the served replica as well as ops a client pushed. Heartbeats
// are an hour apart, so only the server's own wake-up can bring them.
func TestStreamWakesOnCommits(t *testing.T) {
	hub, a, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), HeartbeatInterval: time.Hour})
	frames, errc := streamTo(t, newClient(t, ts.URL, "tok"), b, "ns")

	putItems(t, hub, "ns", 1, "written-at-the-hub")
	if n := waitFrame(t, frames, errc); n != 1 {
		t.Fatalf("frame of %d ops, want the hub's 1", n)
	}
	putItems(t, a, "ns", 1, "pushed-by-a")
	if _, err := a.DB.SyncWith(t.Context(), newClient(t, ts.URL, "tok"), "ns"); err != nil {
		t.Fatal(err)
	}
	if n := waitFrame(t, frames, errc); n != 1 {
		t.Fatalf("frame of %d ops, want a's 1", n)
	}
	transporttest.CheckConverged(t, "ns", hub, a, b)
}
