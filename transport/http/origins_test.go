package httptransport

import (
	"errors"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

// TestOriginGrant: a token limited to its writer's origin cannot push ops
// of another origin (a forged or relayed one): 403, nothing applied. Its
// own ops go through, and pulling others' ops is unaffected.
func TestOriginGrant(t *testing.T) {
	hub, alice, mallory := transporttest.OpenReplica(t), transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putItems(t, hub, "ns", 2, "hub")
	putItems(t, alice, "ns", 2, "alice")
	putItems(t, mallory, "ns", 2, "mallory")
	aliceID, err := crdt.ParseReplicaID(alice.DB.ReplicaID())
	if err != nil {
		t.Fatal(err)
	}
	tf, err := LoadTokenFile(writeFile(t, "alice-token ns origins="+alice.DB.ReplicaID()+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := tf.Authorize(t.Context(), "alice-token")
	if err != nil || len(g.Origins) != 1 || g.Origins[0] != aliceID || !g.WritesAs(aliceID) {
		t.Fatalf("grant = %+v, %v", g, err)
	}
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), Auth: tf})
	c := newClient(t, ts.URL, "alice-token")
	before := stateHash(t, hub, "ns")

	// Alice's token pushing mallory's ops (forged or relayed): refused.
	forged := append(opsOf(t, alice, "ns"), opsOf(t, mallory, "ns")...)
	_, err = c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Ops: forged})
	var se *StatusError
	if !errors.Is(err, ErrForbidden) || !errors.As(err, &se) || !strings.Contains(se.Message, "may not write as") {
		t.Fatalf("push of another origin's ops: %v, want 403 naming the origin", err)
	}
	if stateHash(t, hub, "ns") != before {
		t.Fatal("a refused push changed the hub")
	}

	// Her own ops go through; she still pulls everyone's.
	res, err := transport.Sync(t.Context(), alice.DB.SyncStore(), c, "ns", transport.Options{})
	if err != nil || res.Sent != 2 || res.Received != 2 {
		t.Fatalf("alice's sync = %+v, %v; want 2 sent, 2 received", res, err)
	}

	for _, bad := range []string{"tok ns origins=", "tok ns origins=nope", "tok ns extra", "tok ns origins=" + alice.DB.ReplicaID() + " more"} {
		if _, err := LoadTokenFile(writeFile(t, bad+"\n")); err == nil {
			t.Errorf("token file line %q: no error", bad)
		}
	}
}
