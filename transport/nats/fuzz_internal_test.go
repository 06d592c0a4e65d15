package natstransport

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/oplog"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

// FuzzHandleMessage passes arbitrary bytes, as NATS messages built
// directly, to the two handlers of incoming messages: a stream's receive
// (a live batch) and answer (an anti-entropy request or a snapshot page
// request, with and without a reply subject). One transport with a real
// store, its log partly compacted, on an embedded server serves every
// input. Neither may panic; a message that does not decode, or is of
// another namespace, is counted in Stats.Malformed by each handler and
// leaves the store as it was; a request with a reply subject always gets a
// reply (an answer of its kind, or a Converge-Error refusal); a request
// without one is counted and dropped.
func FuzzHandleMessage(f *testing.F) {
	srv, err := embednats.Run()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Stop)
	quiet := slog.New(slog.DiscardHandler)
	local, remote := transporttest.OpenReplica(f), transporttest.OpenReplica(f)
	ctx := context.Background()
	for i := range 3 {
		if _, err := local.Items.Put(ctx, "ns", &transporttest.Item{ID: fmt.Sprint("local-", i), Name: "local"}); err != nil {
			f.Fatal(err)
		}
		if _, err := remote.Items.Put(ctx, "ns", &transporttest.Item{ID: fmt.Sprint("remote-", i), Name: "remote", Tags: []string{"t"}}); err != nil {
			f.Fatal(err)
		}
	}
	// Compact the first two ops: a request below them is answered
	// "snapshot needed".
	self, err := crdt.ParseReplicaID(local.DB.ReplicaID())
	if err != nil {
		f.Fatal(err)
	}
	if _, err := local.DB.Admin().Log().Compact(ctx, "ns", oplog.CompactOptions{Horizon: crdt.VersionVector{self: 2}}); err != nil {
		f.Fatal(err)
	}
	store := local.DB.SyncStore()
	tr, err := Connect(srv.ClientURL(), Options{Store: store, Logger: quiet, RequestTimeout: 2 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tr.Close() })
	// The requester's side: replies to answer arrive on its inbox.
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(nc.Close)
	inbox := nc.NewInbox()
	replies, err := nc.SubscribeSync(inbox)
	if err != nil {
		f.Fatal(err)
	}
	subj, err := subjectsFor(tr.opts.Prefix, "ns")
	if err != nil {
		f.Fatal(err)
	}
	// No targeted fetch: the publisher's id below answers nothing, and a
	// fetch would only wait for its timeout.
	st := &stream{ns: "ns", subj: subj, fetchBack: time.Now().Add(24 * time.Hour)}
	have := func() crdt.VersionVector {
		v, _ := store.Vector(ctx, "ns") // an error shows as a changed vector
		return v
	}
	apply := func(ops [][]byte) error {
		_, err := store.Apply(ctx, "ns", ops)
		return err
	}
	publisher := strings.Repeat("P", 22) // a valid transport id, not ours

	ops, _, err := remote.DB.SyncStore().Missing(ctx, "ns", nil, transport.Limits{})
	if err != nil {
		f.Fatal(err)
	}
	remoteVV, err := remote.DB.SyncStore().Vector(ctx, "ns")
	if err != nil {
		f.Fatal(err)
	}
	origin := remote.DB.ReplicaID()
	f.Add(transport.AppendRequest(nil, &transport.Request{Namespace: "ns", Vector: remoteVV, Ops: ops}), origin)
	f.Add(transport.AppendRequest(nil, &transport.Request{Namespace: "ns", Vector: remoteVV}), "")
	f.Add(transport.AppendRequest(nil, &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Limits: transport.Limits{MaxOps: 1}}), "")
	f.Add(transport.AppendRequest(nil, &transport.Request{Namespace: "other", Vector: remoteVV, Ops: ops}), origin)
	f.Add(transport.AppendRequest(nil, &transport.Request{Namespace: "ns", Vector: remoteVV, Ops: [][]byte{ops[0][:10], ops[1]}}), origin)
	f.Add([]byte("garbage"), "not a replica id")
	f.Add([]byte{}, "")
	f.Add(transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "ns", Limits: transport.Limits{MaxOps: 2}}), "")
	f.Add(transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "ns", After: &transport.SnapshotCursor{Collection: "items", Key: "local-0"}}), origin)
	f.Add(transport.AppendSnapshotRequest(nil, &transport.SnapshotRequest{Namespace: "other"}), "")
	f.Add(transport.AppendSnapshotResponse(nil, &transport.SnapshotResponse{Vector: remoteVV}), "")

	state := func(t *testing.T) (string, crdt.VersionVector) {
		h, err := local.DB.Admin().StateHash(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		return h, have()
	}
	f.Fuzz(func(t *testing.T, data []byte, origin string) {
		req, err := transport.DecodeRequest(data)
		malformed := err != nil || req.Namespace != "ns" // as a live batch, and a request unless a snapshot one
		liveMalformed := malformed
		kind, _ := transport.MessageKind(data)
		if kind == transport.KindSnapshotRequest {
			sreq, err := transport.DecodeSnapshotRequest(data)
			malformed = err != nil || sreq.Namespace != "ns"
		}
		h0, v0 := state(t)
		m0 := tr.Stats().Malformed

		// A live batch.
		hdr := nats.Header{}
		hdr.Set(hdrFrom, publisher)
		hdr.Set(hdrOrigin, origin)
		live := &nats.Msg{Subject: subj.ops, Header: hdr, Data: data}
		if err := tr.receive(ctx, st, live, have, apply); err != nil {
			t.Fatalf("receive: %v", err)
		}
		m1 := tr.Stats().Malformed
		// A request without a reply subject: counted, dropped.
		tr.answer("ns", &nats.Msg{Subject: subj.sync, Data: data})
		m2 := tr.Stats().Malformed
		// A request with one: always answered.
		tr.answer("ns", &nats.Msg{Subject: subj.sync, Reply: inbox, Data: data, Sub: replies})
		m3 := tr.Stats().Malformed
		reply, err := replies.NextMsg(5 * time.Second) // a failure bound
		if err != nil {
			t.Fatalf("no reply to a request: %v", err)
		}

		wantLive, want := int64(0), int64(0)
		if liveMalformed {
			wantLive = 1
		}
		if malformed {
			want = 1
		}
		if m1-m0 != wantLive || m2-m1 != 1 || m3-m2 != want {
			t.Fatalf("malformed counted %d, %d, %d; want %d, 1, %d", m1-m0, m2-m1, m3-m2, wantLive, want)
		}
		reason := reply.Header.Get(hdrError)
		if malformed {
			if reason == "" {
				t.Fatal("a malformed request answered without a refusal")
			}
			if h1, v1 := state(t); h1 != h0 || !v1.Equal(v0) {
				t.Fatalf("a malformed message changed the store: vector %v -> %v", v0, v1)
			}
			return
		}
		if reason != "" {
			return // a refusal of a well-formed request (by transport.Serve)
		}
		if kind == transport.KindSnapshotRequest {
			if _, err := transport.DecodeSnapshotResponse(reply.Data); err != nil {
				t.Fatalf("undecodable snapshot page: %v", err)
			}
			if h1, v1 := state(t); h1 != h0 || !v1.Equal(v0) {
				t.Fatalf("a snapshot request changed the store: vector %v -> %v", v0, v1)
			}
			return
		}
		if _, err := transport.DecodeResponse(reply.Data); err != nil {
			t.Fatalf("undecodable answer: %v", err)
		}
	})
}
