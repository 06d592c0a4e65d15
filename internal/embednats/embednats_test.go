package embednats_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge/internal/embednats"
)

// TestLeafThroughProxy routes messages from a leaf node to a hub cluster
// through a proxy, cuts the link, and heals it.
func TestLeafThroughProxy(t *testing.T) {
	hubs, err := embednats.Cluster("hub", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range hubs {
			s.Stop()
		}
	}()
	proxy, err := embednats.NewProxy(hubs[0].LeafURL().Host)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	leaf, err := embednats.Leaf("edge", proxy.URL("nats-leaf"))
	if err != nil {
		t.Fatal(err)
	}
	defer leaf.Stop()
	if err := embednats.WaitLeafNodes(leaf, 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	hubConn, err := nats.Connect(hubs[1].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer hubConn.Close()
	sub, err := hubConn.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := hubConn.Flush(); err != nil {
		t.Fatal(err)
	}
	edgeConn, err := nats.Connect(leaf.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer edgeConn.Close()

	// Interest propagates asynchronously: publish until one arrives.
	recv := func() bool {
		for range 200 {
			if err := edgeConn.Publish("x", []byte("hi")); err != nil {
				t.Fatal(err)
			}
			if _, err := sub.NextMsg(10 * time.Millisecond); err == nil {
				return true
			}
		}
		return false
	}
	if !recv() {
		t.Fatal("no message crossed the leaf link")
	}

	proxy.Cut()
	// The leaf notices the broken link asynchronously; wait for it.
	if err := embednats.WaitNoLeafNodes(leaf, 10*time.Second); err != nil {
		t.Fatalf("after Cut: %v", err)
	}
	for {
		if _, err := sub.NextMsg(0); err != nil {
			break // drain what crossed before the cut
		}
	}
	if err := edgeConn.Publish("x", []byte("lost")); err != nil {
		t.Fatal(err)
	}
	if err := edgeConn.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(50 * time.Millisecond); err == nil {
		t.Fatalf("message %q crossed a cut link", m.Data)
	}

	proxy.Heal()
	if err := embednats.WaitLeafNodes(leaf, 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if !recv() {
		t.Fatal("no message crossed the healed link")
	}
}
