package httptransport

import (
	"errors"
	"slices"
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

// TestOriginGrantHeldOpsAreDuplicates is issue 13.3 at the server: a
// writer whose token is limited to its own origin re-pushes ops of others
// that it received from the server (its live stream delivered them after
// its last sync). The server holds them: they are duplicates, never a
// refusal, and forged bytes under a held dot change nothing. Only ops the
// server does not hold are checked against the token's origins.
func TestOriginGrantHeldOpsAreDuplicates(t *testing.T) {
	hub, alice, bob := transporttest.OpenReplica(t), transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putItems(t, bob, "ns", 2, "bob")
	if _, err := bob.DB.SyncWith(t.Context(), transport.NewMemPeer(hub.DB.SyncStore(), transport.Limits{}), "ns"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.DB.SyncWith(t.Context(), transport.NewMemPeer(hub.DB.SyncStore(), transport.Limits{}), "ns"); err != nil {
		t.Fatal(err)
	}
	bobsHeld := opsOf(t, bob, "ns")
	putItems(t, alice, "ns", 2, "alice")
	alicesOwn, _, err := alice.DB.SyncStore().Missing(t.Context(), "ns", vector(t, hub, "ns"), transport.Limits{})
	if err != nil || len(alicesOwn) != 2 {
		t.Fatalf("alice's own ops: %d, %v", len(alicesOwn), err)
	}

	tf, err := LoadTokenFile(writeFile(t, "alice-token ns origins="+alice.DB.ReplicaID()+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var hooked []transport.Applied
	_, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), Auth: tf,
		OnApply: func(ns string, a transport.Applied) { hooked = append(hooked, a) }})
	c := newClient(t, ts.URL, "alice-token")

	// Bob's ops the hub holds, a forgery under one of their dots, and
	// alice's own new ops: the first two are duplicates, hers are applied.
	forged, err := crdt.DecodeOp(bobsHeld[0])
	if err != nil {
		t.Fatal(err)
	}
	forged.Fields = []crdt.FieldOp{{Name: "name", Type: crdt.Assign, Value: []byte{0xa6, 'f', 'o', 'r', 'g', 'e', 'd'}}}
	before := stateHash(t, hub, "ns")
	push := append(append(slices.Clone(bobsHeld), crdt.AppendOp(nil, &forged)), alicesOwn...)
	resp, err := c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: vector(t, alice, "ns"), Ops: push})
	if err != nil {
		t.Fatalf("push of held ops of another origin with her own: %v, want them taken as duplicates", err)
	}
	if a := resp.Applied; a.Applied != 2 || a.Duplicates != 3 || a.Refused != 0 {
		t.Errorf("applied %+v, want her 2 applied and bob's 3 (one forged) duplicates", a)
	}
	if len(hooked) != 1 || hooked[0].Applied != 2 {
		t.Errorf("OnApply calls %+v, want one with 2 applied", hooked)
	}
	if stateHash(t, hub, "ns") == before {
		t.Error("her own ops changed nothing at the hub")
	}
	if _, err := alice.DB.SyncWith(t.Context(), c, "ns"); err != nil {
		t.Fatalf("sync after the push: %v", err)
	}
	transporttest.CheckConverged(t, "ns", hub, alice) // the forgery was not applied

	// An op of bob's the hub does not hold is still refused, with the rest
	// of the request.
	putItems(t, bob, "ns", 1, "bob-later")
	if _, err := alice.DB.SyncWith(t.Context(), transport.NewMemPeer(bob.DB.SyncStore(), transport.Limits{}), "ns"); err != nil {
		t.Fatal(err)
	}
	putItems(t, alice, "ns", 1, "alice-later")
	before = stateHash(t, hub, "ns")
	_, err = c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: vector(t, alice, "ns"), Ops: opsOf(t, alice, "ns")})
	var se *StatusError
	if !errors.Is(err, ErrForbidden) || !errors.As(err, &se) || !strings.Contains(se.Message, "not held here") {
		t.Fatalf("push of an op of another origin the hub lacks: %v, want 403", err)
	}
	if stateHash(t, hub, "ns") != before {
		t.Error("a refused push changed the hub")
	}
}

func vector(t testing.TB, r *transporttest.Replica, ns string) crdt.VersionVector {
	t.Helper()
	vv, err := r.DB.SyncStore().Vector(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	return vv
}
