package main

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
	"github.com/convergedb/converge/transport/transporttest"
)

// TestServeSyncServerConformance runs the transport conformance suite
// through the HTTP sync server wired exactly as `converge serve` wires it
// (newSyncServer, with the hub's OnApply): every ability of the store it
// serves (snapshots, the record of its peers) must survive the wiring
// (issue 13.4).
func TestServeSyncServerConformance(t *testing.T) {
	auth, err := httptransport.LoadTokenFile(writeTokens(t, "tok ns"))
	if err != nil {
		t.Fatal(err)
	}
	transporttest.Run(t, func(t *testing.T, server transport.Store) transport.Peer {
		h := &hub{metrics: newServeMetrics(), bridge: map[string]*bridgeState{}}
		srv, err := newSyncServer(server, auth, 0, quietLogger(), h.applied)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		t.Cleanup(ts.Close)
		t.Cleanup(srv.Close) // runs first: ends the streams ts.Close would wait for
		c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: ts.URL, Token: "tok", Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

// TestServeHTTPHubKeepsStoreAbilities is issue 13.4 end to end: an
// HTTP-only hub records the peers it serves, so it compacts, and it
// serves snapshots (not 501), so a new replica below its horizon
// bootstraps.
func TestServeHTTPHubKeepsStoreAbilities(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := writeTokens(t, "tok-a team-1", "tok-new team-1")
	h := startServe(t, "-dir", dir, "-tokens", tokens, "-compact-interval", "5ms")
	a := httpReplica(t, h.url, "tok-a")
	for i := range 3 {
		a.put(t, fmt.Sprint("t", i), "from a")
	}
	a.waitStatus(t, "nothing pending", func(st converge.Status) bool { return st.Pending == 0 })

	// The hub knows what a holds (from a's requests): its background
	// compaction folds it.
	deadline := time.Now().Add(failBound)
	for scrape(t, h.url)[`converge_compacted_ops{namespace="team-1"}`] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the hub never compacted: it does not know what its client holds")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronizing by time
	}

	// A snapshot page is answered.
	c := mustClient(t, h.url, "tok-new")
	page, err := c.Snapshot(t.Context(), &transport.SnapshotRequest{Namespace: serveNS})
	if err != nil || len(page.Records) != 3 {
		t.Fatalf("snapshot page: %+v, %v; want the 3 records", page, err)
	}
	// A new replica, below the hub's horizon, bootstraps from it.
	fresh, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	res, err := fresh.SyncWith(t.Context(), c, serveNS)
	if err != nil || res.Snapshots != 1 {
		t.Fatalf("a new replica's sync: %+v, %v; want a bootstrap from a snapshot", res, err)
	}
	if n, err := collection(t, fresh).Count(t.Context(), serveNS, converge.Query{}); err != nil || n != 3 {
		t.Errorf("the new replica holds %d tasks (%v), want 3", n, err)
	}

	// The hub recorded both.
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	db, err := converge.Open(dir, converge.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps, err := db.Admin().Peers(t.Context(), serveNS)
	if err != nil {
		t.Fatal(err)
	}
	var known []string
	for _, p := range ps {
		known = append(known, p.Replica)
	}
	for _, id := range []string{a.db.ReplicaID(), fresh.ReplicaID()} {
		if !slices.Contains(known, id) {
			t.Errorf("the hub does not know %s; it knows %v", id, known)
		}
	}
}

func collection(t *testing.T, db *converge.DB) *converge.Collection[Task] {
	t.Helper()
	c, err := converge.NewCollection[Task](db, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
