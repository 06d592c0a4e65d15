package transport_test

import (
	"errors"
	"testing"

	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

func TestMemPeerConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, server transport.Store) transport.Peer {
		return transport.NewMemPeer(server, transport.Limits{})
	})
}

func TestMemPeerDown(t *testing.T) {
	a, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	if _, err := a.Items.Put(t.Context(), "ns", &transporttest.Item{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	peer := transport.NewMemPeer(b.DB.SyncStore(), transport.Limits{})
	peer.SetDown(true)
	if _, err := a.DB.SyncWith(t.Context(), peer, "ns"); !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("sync with a down peer: %v, want ErrUnreachable", err)
	}
	peer.SetDown(false)
	if _, err := a.DB.SyncWith(t.Context(), peer, "ns"); err != nil {
		t.Fatalf("sync after reconnect: %v", err)
	}
	transporttest.CheckConverged(t, "ns", a, b)
	trips, sent, recv := peer.Stats()
	if trips == 0 || sent == 0 || recv == 0 {
		t.Errorf("Stats() = %d trips, %d bytes sent, %d received; want all > 0", trips, sent, recv)
	}
}
