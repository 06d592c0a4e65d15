package natstransport_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	natstransport "github.com/convergedb/converge/transport/nats"
	"github.com/convergedb/converge/transport/transporttest"
)

// TestConformance runs the transport suite over a real NATS server: each
// serving store gets its own subject prefix, so stores never answer for
// each other, and every peer is a client transport of its own.
func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, server transport.Store) transport.Peer {
		s := conformanceServer(t)
		s.mu.Lock()
		prefix, ok := s.prefixes[server]
		if !ok {
			prefix = fmt.Sprintf("conf.s%d", len(s.prefixes))
			s.prefixes[server] = prefix
			resp, err := natstransport.Connect(s.url, natstransport.Options{Store: server, Prefix: prefix, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { resp.Close() })
			if _, err := resp.Serve("ns"); err != nil {
				t.Fatal(err)
			}
		}
		s.mu.Unlock()
		client, err := natstransport.Connect(s.url, natstransport.Options{Prefix: prefix, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		return client
	})
}

type confServer struct {
	url      string
	mu       sync.Mutex
	prefixes map[transport.Store]string
}

var confServers sync.Map // *testing.T -> *confServer

func conformanceServer(t *testing.T) *confServer {
	if s, ok := confServers.Load(t); ok {
		return s.(*confServer)
	}
	s := &confServer{url: startServer(t).ClientURL(), prefixes: make(map[transport.Store]string)}
	confServers.Store(t, s)
	t.Cleanup(func() { confServers.Delete(t) })
	return s
}

func TestEncodeNamespace(t *testing.T) {
	tests := []struct{ ns, want string }{
		{"ns", "ns"},
		{"acme.store-17.till-2", "acme.store-17.till-2"},
		{"a b", "a%20b"},
		{"a*.>", "a%2A.%3E"},
		{"100%", "100%25"},
		{"tab\there", "tab%09here"},
		{"ünï", "%C3%BCn%C3%AF"},
		{"$SYS", "%24SYS"},
		{"Under_Score", "Under_Score"},
	}
	for _, tt := range tests {
		got, err := natstransport.EncodeNamespace(tt.ns)
		if err != nil || got != tt.want {
			t.Errorf("EncodeNamespace(%q) = %q, %v; want %q", tt.ns, got, err, tt.want)
			continue
		}
		back, err := natstransport.DecodeNamespace(got)
		if err != nil || back != tt.ns {
			t.Errorf("DecodeNamespace(%q) = %q, %v; want %q", got, back, err, tt.ns)
		}
	}
	for _, bad := range []string{"", ".a", "a.", "a..b", "."} {
		if got, err := natstransport.EncodeNamespace(bad); !errors.Is(err, natstransport.ErrSubject) {
			t.Errorf("EncodeNamespace(%q) = %q, %v; want ErrSubject", bad, got, err)
		}
	}
	for _, bad := range []string{"%", "%4", "%zz", "a%4g"} {
		if got, err := natstransport.DecodeNamespace(bad); !errors.Is(err, natstransport.ErrSubject) {
			t.Errorf("DecodeNamespace(%q) = %q, %v; want ErrSubject", bad, got, err)
		}
	}
}

// FuzzEncodeNamespace: every namespace without empty tokens encodes to
// valid subject tokens (no whitespace, wildcards or empty tokens) that
// decode back to it, and distinct namespaces get distinct subjects.
func FuzzEncodeNamespace(f *testing.F) {
	for _, s := range []string{"ns", "a.b", "a b", "%", "a..b", "ü.>", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ns string) {
		enc, err := natstransport.EncodeNamespace(ns)
		if err != nil {
			if !errors.Is(err, natstransport.ErrSubject) {
				t.Fatalf("EncodeNamespace(%q): %v does not wrap ErrSubject", ns, err)
			}
			return
		}
		tokenStart := true
		for i := 0; i < len(enc); i++ {
			c := enc[i]
			if c == '.' {
				if tokenStart {
					t.Fatalf("EncodeNamespace(%q) = %q has an empty token", ns, enc)
				}
				tokenStart = true
				continue
			}
			tokenStart = false
			if c <= ' ' || c >= 0x7f || c == '*' || c == '>' || c == '$' {
				t.Fatalf("EncodeNamespace(%q) = %q contains %q", ns, enc, c)
			}
		}
		back, err := natstransport.DecodeNamespace(enc)
		if err != nil || back != ns {
			t.Fatalf("DecodeNamespace(EncodeNamespace(%q)) = %q, %v", ns, back, err)
		}
	})
}

func TestConnectRequiresNoEcho(t *testing.T) {
	s := startServer(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := natstransport.New(nc, natstransport.Options{}); !errors.Is(err, natstransport.ErrEcho) {
		t.Fatalf("New without NoEcho: %v, want ErrEcho", err)
	}
	if _, err := natstransport.Connect(s.ClientURL(), natstransport.Options{Prefix: "a.*"}); !errors.Is(err, natstransport.ErrSubject) {
		t.Fatalf("Connect with a wildcard prefix: %v, want ErrSubject", err)
	}
}

// TestGapTriggersTargetedFetch: a live batch that starts beyond the
// receiver's vector is not applied out of order; the receiver fetches the
// gap from the publisher, and only once.
func TestGapTriggersTargetedFetch(t *testing.T) {
	s := startServer(t)
	ctx := t.Context()
	a := startReplica(t, "a", replicaConfig{url: s.ClientURL(), noReplica: true, trOpts: natstransport.Options{Heartbeat: -1}})
	b := startReplica(t, "b", replicaConfig{url: s.ClientURL(), noReplica: true, trOpts: natstransport.Options{Heartbeat: -1}})
	for i := range 5 {
		a.put(t, "ns", Item{ID: fmt.Sprintf("early-%d", i)})
	}
	// a streams first: its opening announcement reaches nobody.
	streamCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	var applies atomic.Int64
	storeA, storeB := a.db.SyncStore(), b.db.SyncStore()
	wg.Go(func() {
		_ = a.tr.Stream(streamCtx, "ns", vectorOf(storeA), func(ops [][]byte) error {
			_, err := storeA.Apply(ctx, "ns", ops)
			return err
		})
	})
	poll(t, "a's stream to announce", func() bool { return a.tr.Stats().Published >= 1 })
	var refused atomic.Int64
	wg.Go(func() {
		_ = b.tr.Stream(streamCtx, "ns", vectorOf(storeB), func(ops [][]byte) error {
			applies.Add(1)
			res, err := storeB.Apply(ctx, "ns", ops)
			refused.Add(int64(res.Refused))
			return err
		})
	})
	// b's opening announcement reaching a means b's subscriptions are live.
	poll(t, "b's announcement to reach a", func() bool { return a.tr.Stats().Received >= 1 })

	a.put(t, "ns", Item{ID: "late"}) // the stream hears of the commit from the store
	waitUntil(t, b, "ns", func() bool { return count(t, b, "ns") == 6 })
	waitConverged(t, "ns", a, b)
	if refused.Load() == 0 {
		t.Errorf("the batch beyond the gap was not refused")
	}
	if f := b.tr.Stats().Fetches; f != 1 {
		t.Errorf("b made %d targeted fetches, want 1", f)
	}
	if st := a.tr.Stats(); st.PublishedOps != 1 {
		t.Errorf("a published %d ops live, want 1 (only the new one)", st.PublishedOps)
	}
}

func vectorOf(s transport.Store) func() crdt.VersionVector {
	return func() crdt.VersionVector {
		vv, err := s.Vector(context.Background(), "ns")
		if err != nil {
			return crdt.VersionVector{}
		}
		return vv
	}
}

// TestMalformedMessagesDropped publishes garbage and misdirected messages
// on a replica's subjects: each is counted and dropped, requests get a
// refusal instead of silence, and nothing stored changes.
func TestMalformedMessagesDropped(t *testing.T) {
	s := startServer(t)
	a := startReplica(t, "a", replicaConfig{url: s.ClientURL(), ns: []string{"ns"}})
	a.put(t, "ns", Item{ID: "keep", Name: "a"})
	before, err := a.db.Admin().StateHash(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "a to stream", func() bool { return a.tr.Stats().Published >= 1 })

	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// An op of another namespace, validly encoded, in a batch for "ns".
	other := startReplica(t, "other", replicaConfig{url: s.ClientURL(), noReplica: true})
	other.put(t, "elsewhere", Item{ID: "intruder"})
	foreign, _, err := other.db.SyncStore().Missing(t.Context(), "elsewhere", crdt.VersionVector{}, transport.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	garbage := [][]byte{
		nil,
		[]byte("not msgpack"),
		{0x97, 0x01, 0xa1, 'q'},
		transport.AppendRequest(nil, &transport.Request{Namespace: "elsewhere", Vector: crdt.VersionVector{}}),
		transport.AppendResponse(nil, &transport.Response{Vector: crdt.VersionVector{}}),
	}
	for _, g := range garbage {
		if err := nc.Publish("converge.ns.ops", g); err != nil {
			t.Fatal(err)
		}
	}
	// The foreign op inside a well-formed batch: decoded, then refused by
	// the store (wrong namespace), never applied.
	if err := nc.Publish("converge.ns.ops", transport.AppendRequest(nil, &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Ops: foreign})); err != nil {
		t.Fatal(err)
	}
	for _, g := range garbage {
		reply, err := nc.RequestWithContext(t.Context(), "converge.ns.sync", g)
		if err != nil {
			t.Fatalf("request with %x: %v", g, err)
		}
		if reply.Header.Get("Converge-Error") == "" {
			t.Errorf("request with %x was answered without a refusal", g)
		}
	}
	poll(t, "the malformed messages to be counted", func() bool { return a.tr.Stats().Malformed >= int64(2*len(garbage)) })
	after, err := a.db.Admin().StateHash(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatal("malformed messages changed the state")
	}
	if n := count(t, a, "ns"); n != 1 {
		t.Fatalf("a holds %d items, want 1", n)
	}
}

// TestAnnouncementsTrackPeers: on a bus every replica learns what the
// others hold from their announcements, without syncing with them.
func TestAnnouncementsTrackPeers(t *testing.T) {
	s := startServer(t)
	var reps []*replica
	for _, name := range []string{"a", "b", "c"} {
		reps = append(reps, startReplica(t, name, replicaConfig{url: s.ClientURL(), ns: []string{"ns"}}))
	}
	reps[0].put(t, "ns", Item{ID: "x"})
	waitConverged(t, "ns", reps...)
	for _, r := range reps {
		poll(t, r.name+" to know both others", func() bool {
			ps, err := r.db.Admin().Peers(context.Background(), "ns")
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, p := range ps {
				if p.Vector[reps[0].db.ReplicaID()] == 1 {
					n++
				}
			}
			return n == 2
		})
	}
	stable, err := reps[2].db.Admin().StableVector(t.Context(), "ns")
	if err != nil || stable[reps[0].db.ReplicaID()] != 1 {
		t.Fatalf("c's stable vector = %v, %v", stable, err)
	}
}
