package transport_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

type note struct {
	ID   string `msgpack:"-" converge:"id"`
	Text string `msgpack:"text"`
	Meta converge.Meta
}

// Sync runs anti-entropy rounds between a store and a peer until both hold
// the same ops. MemPeer is the in-memory transport: it encodes and decodes
// every message, as a network transport would.
func ExampleSync() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(root)
	n := 0
	open := func() (*converge.DB, *converge.Collection[note]) {
		n++
		db, err := converge.Open(fmt.Sprintf("%s/%d", root, n), converge.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			panic(err)
		}
		notes, _ := converge.NewCollection[note](db, "notes")
		return db, notes
	}
	a, notesA := open()
	defer a.Close()
	b, notesB := open()
	defer b.Close()
	notesA.Put(ctx, "ns", &note{ID: "1", Text: "from a"})
	notesB.Put(ctx, "ns", &note{ID: "2", Text: "from b"})

	peer := transport.NewMemPeer(b.SyncStore(), transport.Limits{})
	res, err := transport.Sync(ctx, a.SyncStore(), peer, "ns", transport.Options{})
	if err != nil {
		panic(err)
	}
	ha, _ := a.Admin().StateHash(ctx, "ns")
	hb, _ := b.Admin().StateHash(ctx, "ns")
	fmt.Println("sent:", res.Sent, "received:", res.Received, "same state:", ha == hb)
	// Output: sent: 1 received: 1 same state: true
}

// A Session is the sync engine as a value: Next says what to do, Step
// takes what came of it. This driver prints each action as it carries it
// out; transport.Sync is the same loop without the printing.
func ExampleSession() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(root)
	open := func(name string) (*converge.DB, *converge.Collection[note]) {
		db, err := converge.Open(root+"/"+name, converge.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			panic(err)
		}
		notes, _ := converge.NewCollection[note](db, "notes")
		return db, notes
	}
	a, notesA := open("a")
	defer a.Close()
	b, notesB := open("b")
	defer b.Close()
	notesA.Put(ctx, "ns", &note{ID: "1", Text: "from a"})
	notesB.Put(ctx, "ns", &note{ID: "2", Text: "from b"})

	store, peer := a.SyncStore(), transport.NewMemPeer(b.SyncStore(), transport.Limits{})
	s := transport.NewSession("ns", store.Self(), peer.PageLimits(), transport.Options{})
	for {
		act := s.Next()
		if act.Kind == transport.SessionDone {
			fmt.Println("done: sent", act.Result.Sent, "received", act.Result.Received, "error", act.Err)
			break
		}
		switch act.Kind {
		case transport.SendRequest:
			fmt.Println(act.Kind, "pushing", len(act.Request.Ops))
		case transport.ApplyOps:
			fmt.Println(act.Kind, len(act.Ops))
		default:
			fmt.Println(act.Kind)
		}
		s.Step(act.Do(ctx, store, peer))
	}
	// Output:
	// read vector
	// send request pushing 0
	// acknowledge
	// apply ops 1
	// read vector
	// read missing
	// send request pushing 1
	// acknowledge
	// read vector
	// done: sent 1 received 1 error <nil>
}
