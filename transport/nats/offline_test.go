package natstransport_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// freePort returns a loopback port nothing listens on (now).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// TestConnectOffline: an edge device that boots with no server reachable
// still starts: Connect returns, the replica writes, Health says it is not
// connected. When the server appears, the transport connects in the
// background and the replicator syncs what was written offline, both ways.
func TestConnectOffline(t *testing.T) {
	ctx := t.Context()
	const ns = "site"
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)

	edge := startReplica(t, "edge", replicaConfig{url: url, ns: []string{ns},
		natsOpts: []nats.Option{nats.ReconnectWait(20 * time.Millisecond)}})
	edge.put(t, ns, Item{ID: "offline-1", Name: "written before any server"})
	edge.put(t, ns, Item{ID: "offline-2", Name: "still offline"})
	if h := edge.rep.Health(ctx); !errors.Is(h.Peer, natstransport.ErrNotConnected) || h.Store != nil {
		t.Fatalf("Health offline = %+v, want the peer not connected", h)
	}
	if st, err := edge.rep.Status(ctx, ns); err != nil || st.Pending != 2 {
		t.Fatalf("status offline = %+v, %v; want 2 pending", st, err)
	}

	opts := embednats.Options()
	opts.Port = port
	srv, err := embednats.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	hub := startReplica(t, "hub", replicaConfig{url: url, ns: []string{ns}})
	hub.put(t, ns, Item{ID: "from-hub", Name: "written online"})
	waitConverged(t, ns, edge, hub)
	if n := count(t, hub, ns); n != 3 {
		t.Errorf("the hub holds %d items, want 3", n)
	}
	if h := edge.rep.Health(ctx); !h.OK() {
		t.Errorf("Health once connected = %+v", h)
	}
	waitPending(t, edge.rep, ns, 0)
}

// waitPending waits on the replicator's status stream until the pending
// count of ns is n.
func waitPending(t *testing.T, r *converge.Replicator, ns string, n uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), failBound)
	defer cancel()
	for st := range r.Statuses(ctx) {
		if st.Namespace == ns && st.Pending == n {
			return
		}
	}
	t.Fatalf("pending ops of %q never reached %d", ns, n)
}
