package natstransport_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/oplog"
)

// compactAll folds every op r holds of ns into base states.
func compactAll(t *testing.T, r *replica, ns string) {
	t.Helper()
	vv, err := r.db.Admin().Log().Vector(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := r.db.Admin().Log().Compact(t.Context(), ns, oplog.CompactOptions{Horizon: vv}); err != nil || st.Ops == 0 {
		t.Fatalf("%s: compact: %+v, %v", r.name, st, err)
	}
}

// stream runs r's transport's Stream of ns into r's store until the test
// ends, as the replicator would, without a replicator (so no anti-entropy
// sync runs: only the live path).
func stream(t *testing.T, r *replica, ns string) {
	t.Helper()
	store := r.db.SyncStore()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Go(func() {
		errc <- r.tr.Stream(ctx, ns, func() crdt.VersionVector {
			v, _ := store.Vector(ctx, ns) // an error shows as an empty vector: a fetch
			return v
		}, func(ops [][]byte) error {
			_, err := store.Apply(ctx, ns, ops)
			return err
		})
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := <-errc; err != nil {
			t.Errorf("%s: stream: %v", r.name, err)
		}
	})
}

// TestLiveFetchBootstraps: a new replica that only streams hears the
// announcement of a replica that compacted its log, fetches, is answered
// "snapshot needed", and bootstraps from that replica's snapshot; later
// writes reach it live.
func TestLiveFetchBootstraps(t *testing.T) {
	srv := startServer(t)
	a := startReplica(t, "a", replicaConfig{url: srv.ClientURL(), ns: []string{"ns"}})
	for i := range 30 {
		a.put(t, "ns", Item{ID: fmt.Sprintf("k-%02d", i), Name: "a", N: int64(i)})
	}
	compactAll(t, a, "ns")
	b := startReplica(t, "b", replicaConfig{url: srv.ClientURL(), noReplica: true})
	stream(t, b, "ns")
	// FinishSnapshot moves the vector without a change event: poll.
	poll(t, "b to bootstrap from a's snapshot", func() bool {
		d, err := difference("ns", a, b)
		return err == nil && d == ""
	})
	if st := b.tr.Stats(); st.Bootstraps == 0 || st.Fetches == 0 {
		t.Errorf("b's stats %+v: want a fetch and a bootstrap", st)
	}
	if st := a.tr.Stats(); st.SnapshotPages == 0 {
		t.Errorf("a's stats %+v: want snapshot pages served", st)
	}
	a.put(t, "ns", Item{ID: "live", Name: "after the bootstrap"})
	waitConverged(t, "ns", a, b)
}

// TestSnapshotWithinMaxPayload: snapshot pages fit a small max payload,
// over the queue group (transport.Sync's bootstrap through RoundTrip and
// Snapshot).
func TestSnapshotWithinMaxPayload(t *testing.T) {
	opts := embednats.Options()
	opts.MaxPayload = 32 << 10
	srv, err := embednats.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	a := startReplica(t, "a", replicaConfig{url: srv.ClientURL(), noReplica: true})
	big := strings.Repeat("x", 6000)
	for i := range 40 {
		a.put(t, "ns", Item{ID: fmt.Sprintf("k-%02d", i), Name: big})
	}
	compactAll(t, a, "ns")
	stop, err := a.tr.Serve("ns")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })

	b := startReplica(t, "b", replicaConfig{url: srv.ClientURL(), noReplica: true})
	b.put(t, "ns", Item{ID: "from-b", Name: "b's own"})
	res, err := b.db.SyncWith(t.Context(), b.tr, "ns")
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if res.Snapshots != 1 || res.SnapshotRecords != 40 || res.Sent != 1 {
		t.Errorf("result %+v: want one snapshot of 40 records, and b's op sent", res)
	}
	// 40 states of about 6 KB in pages of at most 32 KiB.
	if pages := a.tr.Stats().SnapshotPages; pages < 240/32 {
		t.Errorf("%d snapshot pages for 240 KB in a 32 KiB max payload", pages)
	}
	d, err := difference("ns", a, b)
	if err != nil || d != "" {
		t.Fatalf("not converged: %s %v", d, err)
	}
}
