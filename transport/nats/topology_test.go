package natstransport_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/convergedb/converge/internal/embednats"
)

// writeConcurrently has every replica write n records at once: ids shared
// by all replicas (conflicting writes) and ids of its own. It returns the
// ids each replica wrote of its own.
func writeConcurrently(t *testing.T, ns string, n int, reps ...*replica) {
	t.Helper()
	var wg sync.WaitGroup
	for _, r := range reps {
		wg.Go(func() {
			for i := range n {
				shared := Item{ID: fmt.Sprintf("shared-%d", i%5), Name: r.name + fmt.Sprint(i), Site: r.name, N: int64(i), Tags: []string{r.name}}
				own := Item{ID: fmt.Sprintf("%s-%d", r.name, i), Name: r.name, Site: r.name, N: int64(i)}
				for _, it := range []Item{shared, own} {
					if _, err := r.items.Put(t.Context(), ns, &it); err != nil {
						t.Errorf("%s: put: %v", r.name, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// checkNothingLost checks that r holds every replica's own records.
func checkNothingLost(t *testing.T, ns string, n int, r *replica, writers ...*replica) {
	t.Helper()
	for _, w := range writers {
		for i := range n {
			id := fmt.Sprintf("%s-%d", w.name, i)
			it, err := r.items.Get(t.Context(), ns, id)
			if err != nil {
				t.Fatalf("%s lost %s: %v", r.name, id, err)
			}
			if it.N != int64(i) || it.Site != w.name {
				t.Fatalf("%s holds %s as %+v", r.name, id, it)
			}
		}
	}
}

// (a) Three replicas on one server write conflicting records at once.
func TestThreeReplicasOneServer(t *testing.T) {
	s := startServer(t)
	var reps []*replica
	for _, name := range []string{"a", "b", "c"} {
		reps = append(reps, startReplica(t, name, replicaConfig{url: s.ClientURL(), ns: []string{"ns"}}))
	}
	writeConcurrently(t, "ns", 50, reps...)
	waitConverged(t, "ns", reps...)
	checkNothingLost(t, "ns", 50, reps[0], reps...)
	var published, fetched int64
	for _, r := range reps {
		st := r.tr.Stats()
		published += st.PublishedOps
		fetched += st.Fetches
		if st.Malformed != 0 {
			t.Errorf("%s dropped %d messages as malformed", r.name, st.Malformed)
		}
	}
	if published == 0 {
		t.Error("no op was published live")
	}
	t.Logf("ops published live: %d, targeted fetches: %d", published, fetched)
}

// (b) A hub cluster of three servers and three edge servers connected to it
// as leaf nodes, one replica per edge. One edge is cut off while every site
// keeps writing, then healed: all converge and nothing is lost.
func TestLeafNodeFleetPartition(t *testing.T) {
	hubs, err := embednats.Cluster("hub", 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, h := range hubs {
			h.Stop()
		}
	})
	var edges []*embednats.Node
	var links []*embednats.Proxy
	var reps []*replica
	for i := range 3 {
		link, err := embednats.NewProxy(hubs[i].LeafURL().Host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { link.Close() })
		edge, err := embednats.Leaf(fmt.Sprintf("edge-%d", i), link.URL("nats-leaf"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(edge.Stop)
		if err := embednats.WaitLeafNodes(edge, 1, failBound); err != nil {
			t.Fatal(err)
		}
		edges, links = append(edges, edge), append(links, link)
		reps = append(reps, startReplica(t, fmt.Sprintf("site%d", i), replicaConfig{url: edge.ClientURL(), ns: []string{"fleet"}}))
	}

	writeConcurrently(t, "fleet", 20, reps...)
	waitConverged(t, "fleet", reps...)

	// Cut edge 0 off the hub; its replica stays connected to its edge.
	links[0].Cut()
	if err := embednats.WaitNoLeafNodes(edges[0], failBound); err != nil {
		t.Fatal(err)
	}
	before := reps[0].tr.Stats().Reconnects
	for round := range 3 {
		for _, r := range reps {
			for i := range 10 {
				r.put(t, "fleet", Item{ID: fmt.Sprintf("cut-%s-%d-%d", r.name, round, i), Name: "during the cut", Site: r.name, N: int64(i)})
				r.put(t, "fleet", Item{ID: fmt.Sprintf("shared-%d", i%5), Name: fmt.Sprintf("%s cut %d", r.name, round), Site: r.name})
			}
		}
	}
	// The two connected sites converge with each other meanwhile.
	waitConverged(t, "fleet", reps[1], reps[2])
	if d, _ := difference("fleet", reps[0], reps[1]); d == "" {
		t.Fatal("the cut-off site converged with the others through a cut link")
	}
	if _, err := reps[0].items.Get(t.Context(), "fleet", "cut-site1-2-9"); err == nil {
		t.Fatal("a write from the other side reached the cut-off site")
	}
	if n := edges[0].NumLeafNodes(); n != 0 {
		t.Fatalf("the cut-off edge has %d leaf connections: it found a way around the cut", n)
	}

	links[0].Heal()
	waitConverged(t, "fleet", reps...)
	for _, r := range reps {
		checkNothingLost(t, "fleet", 20, r, reps...)
		for _, w := range reps {
			for round := range 3 {
				for i := range 10 {
					if _, err := r.items.Get(t.Context(), "fleet", fmt.Sprintf("cut-%s-%d-%d", w.name, round, i)); err != nil {
						t.Fatalf("%s lost %s's write during the cut: %v", r.name, w.name, err)
					}
				}
			}
		}
	}
	if after := reps[0].tr.Stats().Reconnects; after != before {
		t.Errorf("the cut-off replica's own connection reconnected (%d -> %d): the test cut the wrong link", before, after)
	}
}

// (c) A replica closed while the others write, and reopened on the same
// store, catches up.
func TestReplicaRestartCatchesUp(t *testing.T) {
	s := startServer(t)
	a := startReplica(t, "a", replicaConfig{url: s.ClientURL(), ns: []string{"ns"}})
	b := startReplica(t, "b", replicaConfig{url: s.ClientURL(), ns: []string{"ns"}})
	c := startReplica(t, "c", replicaConfig{url: s.ClientURL(), ns: []string{"ns"}})
	writeConcurrently(t, "ns", 20, a, b, c)

	// Close c in the middle of the stream of writes.
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			a.put(t, "ns", Item{ID: fmt.Sprintf("stream-a-%d", i), Site: "a", N: int64(i)})
		}
	})
	waitUntil(t, c, "ns", func() bool { return count(t, c, "ns") > 60 })
	dir := c.dir
	c.close()
	for i := range 50 {
		b.put(t, "ns", Item{ID: fmt.Sprintf("while-c-away-%d", i), Site: "b", N: int64(i)})
	}
	wg.Wait()

	c2 := startReplica(t, "c", replicaConfig{url: s.ClientURL(), ns: []string{"ns"}, dir: dir})
	c2.put(t, "ns", Item{ID: "c-back", Site: "c"})
	waitConverged(t, "ns", a, b, c2)
	checkNothingLost(t, "ns", 20, c2, a, b)
	if n, want := count(t, c2, "ns"), 5+3*20+200+50+1; n != want {
		t.Fatalf("c holds %d records after restart, want %d", n, want)
	}
}

// (d) The NATS server restarts while replicas write: they reconnect and
// converge.
func TestServerRestartMidStream(t *testing.T) {
	s, err := embednats.Run()
	if err != nil {
		t.Fatal(err)
	}
	url := s.ClientURL()
	a := startReplica(t, "a", replicaConfig{url: url, ns: []string{"ns"}})
	b := startReplica(t, "b", replicaConfig{url: url, ns: []string{"ns"}})
	writeConcurrently(t, "ns", 20, a, b)
	waitConverged(t, "ns", a, b)

	s.Stop()
	// Both keep writing while the server is down.
	for i := range 30 {
		a.put(t, "ns", Item{ID: fmt.Sprintf("down-a-%d", i), Site: "a"})
		b.put(t, "ns", Item{ID: fmt.Sprintf("down-b-%d", i), Site: "b"})
	}
	s2, err := s.Restart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s2.Stop)
	poll(t, "both replicas to reconnect", func() bool {
		return a.tr.Stats().Reconnects > 0 && b.tr.Stats().Reconnects > 0
	})
	for i := range 10 {
		a.put(t, "ns", Item{ID: fmt.Sprintf("after-a-%d", i), Site: "a"})
	}
	waitConverged(t, "ns", a, b)
	if n, want := count(t, b, "ns"), 5+2*20+60+10; n != want {
		t.Fatalf("b holds %d records, want %d", n, want)
	}
}
