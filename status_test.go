package converge_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

// openAt opens the replica stored in dir, quietly.
func openAt(t *testing.T, dir string, opts converge.Options) *converge.DB {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := converge.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

// idle are replicator options under which nothing syncs in the
// background during a test: only SyncNow does.
func idle(ns string) converge.ReplicatorOptions {
	return converge.ReplicatorOptions{Namespaces: []string{ns}, Interval: time.Hour, Debounce: time.Hour,
		MinBackoff: time.Hour, MaxBackoff: time.Hour, Logger: slog.New(slog.DiscardHandler)}
}

// TestStatusPendingAfterReopen: what the peer acknowledged outlives the
// replicator and the DB. Reopened, with the peer unreachable, the
// replicator reports exactly the writes the peer lacks, not every write
// ever made.
func TestStatusPendingAfterReopen(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "app")
	app := openAt(t, dir, converge.Options{})
	hub := open(t, converge.Options{})
	peer := transport.NewMemPeer(hub.SyncStore(), transport.Limits{})
	tasks := coll[Task](t, app, "tasks")
	for _, id := range []string{"a", "b", "c"} {
		if _, err := tasks.Put(ctx, "ns", &Task{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := app.OpenReplicator(peer, idle("ns"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SyncNow(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	if st, err := r.Status(ctx, "ns"); err != nil || st.Pending != 0 {
		t.Fatalf("status after the sync = %+v, %v; want 0 pending", st, err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}

	app = openAt(t, dir, converge.Options{})
	defer app.Close()
	peer.SetDown(true)
	r, err = app.OpenReplicator(peer, idle("ns"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if st, err := r.Status(ctx, "ns"); err != nil || st.Pending != 0 {
		t.Fatalf("reopened, before any sync: status = %+v, %v; want 0 pending (the peer holds every write)", st, err)
	}
	if _, err := coll[Task](t, app, "tasks").Put(ctx, "ns", &Task{ID: "d"}); err != nil {
		t.Fatal(err)
	}
	if st, err := r.Status(ctx, "ns"); err != nil || st.Pending != 1 {
		t.Fatalf("reopened, one write later: status = %+v, %v; want 1 pending", st, err)
	}
}

// TestStatusPendingNeverUnderReports: reopened before it knows which
// peer answers, a replicator counts an op as pending unless every peer
// that answered this DB's syncs holds it.
func TestStatusPendingNeverUnderReports(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "app")
	app := openAt(t, dir, converge.Options{})
	hubA, hubB := open(t, converge.Options{}), open(t, converge.Options{})
	peerA := transport.NewMemPeer(hubA.SyncStore(), transport.Limits{})
	peerB := transport.NewMemPeer(hubB.SyncStore(), transport.Limits{})
	tasks := coll[Task](t, app, "tasks")
	put := func(id string) {
		t.Helper()
		if _, err := tasks.Put(ctx, "ns", &Task{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	syncWith := func(p transport.Peer) {
		t.Helper()
		r, err := app.OpenReplicator(p, idle("ns"))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		if _, err := r.SyncNow(ctx, "ns"); err != nil {
			t.Fatal(err)
		}
	}
	put("a")
	syncWith(peerA)
	syncWith(peerB)
	put("b")
	syncWith(peerA) // hub B lacks b
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}

	app = openAt(t, dir, converge.Options{})
	defer app.Close()
	peerB.SetDown(true)
	r, err := app.OpenReplicator(peerB, idle("ns"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if st, err := r.Status(ctx, "ns"); err != nil || st.Pending != 1 {
		t.Fatalf("reopened with hub B, offline: status = %+v, %v; want 1 pending (hub B lacks b)", st, err)
	}
	// Once a sync names its peer, Pending is what that peer acknowledged.
	peerB.SetDown(false)
	if _, err := r.SyncNow(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	if st, err := r.Status(ctx, "ns"); err != nil || st.Pending != 0 {
		t.Fatalf("after syncing with hub B: status = %+v, %v; want 0 pending", st, err)
	}
}

// nextStatus returns the next status the stream yields, or fails after a
// failure bound.
func nextStatus(t *testing.T, statuses <-chan converge.Status) converge.Status {
	t.Helper()
	select {
	case s := <-statuses:
		return s
	case <-time.After(10 * time.Second): // a failure bound, not synchronization
		t.Fatal("the status stream yielded nothing")
		return converge.Status{}
	}
}

// TestStatusesWhilePaused: the status stream yields a new status for
// every change of one, here Pending growing with local writes while
// replication is paused.
func TestStatusesWhilePaused(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	app, hub := open(t, converge.Options{}), open(t, converge.Options{})
	r, err := app.OpenReplicator(transport.NewMemPeer(hub.SyncStore(), transport.Limits{}), idle("ns"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	r.Pause()
	statuses := make(chan converge.Status)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range r.Statuses(ctx) {
			select {
			case statuses <- s:
			case <-ctx.Done():
				return
			}
		}
	}()
	if s := nextStatus(t, statuses); s.State != converge.StatePaused || s.Pending != 0 {
		t.Fatalf("first status = %+v, want paused, 0 pending", s)
	}
	tasks := coll[Task](t, app, "tasks")
	for i, id := range []string{"a", "b", "c"} {
		if _, err := tasks.Put(ctx, "ns", &Task{ID: id}); err != nil {
			t.Fatal(err)
		}
		if s := nextStatus(t, statuses); s.State != converge.StatePaused || s.Pending != uint64(i+1) {
			t.Fatalf("status after write %d = %+v, want paused, %d pending", i+1, s, i+1)
		}
	}
	cancel()
	<-done
}

// streamingPeer is the in-memory transport with a live stream the test
// drives: each round trip first pushes the batch armed (if any) through
// the replicator's live stream and waits until it is applied, as a live
// delivery racing a sync would.
type streamingPeer struct {
	*transport.MemPeer
	batches chan [][]byte
	applied chan error

	mu    sync.Mutex
	armed [][]byte
}

func newStreamingPeer(store transport.Store) *streamingPeer {
	return &streamingPeer{MemPeer: transport.NewMemPeer(store, transport.Limits{}),
		batches: make(chan [][]byte), applied: make(chan error)}
}

func (p *streamingPeer) arm(batch [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = batch
}

func (p *streamingPeer) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	p.mu.Lock()
	batch := p.armed
	p.armed = nil
	p.mu.Unlock()
	if batch != nil {
		select {
		case p.batches <- batch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case err := <-p.applied:
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return p.MemPeer.RoundTrip(ctx, req)
}

// Live implements transport.Peer: the test's stream is the live path.
func (p *streamingPeer) Live() transport.Live { return p }

// PublishesCommits implements transport.Live: it does not.
func (p *streamingPeer) PublishesCommits() bool { return false }

// OnReconnect implements transport.Live: it never reconnects.
func (p *streamingPeer) OnReconnect(func()) func() { return func() {} }

// Stream implements transport.Live.
func (p *streamingPeer) Stream(ctx context.Context, ns string, have func() crdt.VersionVector, apply func(ops [][]byte) error) error {
	for {
		select {
		case b := <-p.batches:
			err := apply(b)
			select {
			case p.applied <- err:
			case <-ctx.Done():
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// TestSyncNowCountsLiveApplies: what the live stream applies while
// SyncNow runs comes to the sync as duplicates; SyncNow still counts it,
// with the conflicts it revealed, the ones the policy resolved, and the
// ops refused.
func TestSyncNowCountsLiveApplies(t *testing.T) {
	ctx := t.Context()
	start := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC).UnixMilli()
	app := open(t, converge.Options{Clock: func() int64 { return start }, ConflictPolicy: converge.PreferLocal})
	hub := open(t, converge.Options{Clock: func() int64 { return start + 1000 }}) // the hub's writes win
	appTasks, hubTasks := coll[Task](t, app, "tasks"), coll[Task](t, hub, "tasks")
	if _, err := appTasks.Put(ctx, "ns", &Task{ID: "t1", Title: "app's"}); err != nil {
		t.Fatal(err)
	}
	for _, task := range []Task{{ID: "t1", Title: "hub's"}, {ID: "t2", Title: "hub's only"}} {
		if _, err := hubTasks.Put(ctx, "ns", &task); err != nil {
			t.Fatal(err)
		}
	}
	hubOps, _, err := hub.SyncStore().Missing(ctx, "ns", crdt.VersionVector{}, transport.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	peer := newStreamingPeer(hub.SyncStore())
	r, err := app.OpenReplicator(peer, idle("ns"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	peer.arm(append(hubOps, []byte("not an op")))
	res, err := r.SyncNow(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	conflicts, err := app.ConflictCount(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if conflicts == 0 {
		t.Fatal("no conflict detected: the test's writes are not concurrent")
	}
	if res.Received != len(hubOps) || res.Conflicts != int(conflicts) || res.Refused != 1 || res.Resolved != int(conflicts) || res.Sent == 0 {
		t.Errorf("SyncNow = %+v; want %d received, %d conflicts, 1 refused, %d resolved, and ops sent", res, len(hubOps), conflicts, conflicts)
	}
	// The counts are per sync: the next one moved nothing.
	if res, err := r.SyncNow(ctx, "ns"); err != nil || res.Received != 0 || res.Conflicts != 0 || res.Refused != 0 || res.Resolved != 0 {
		t.Errorf("second SyncNow = %+v, %v; want nothing counted", res, err)
	}
}

// TestQuarantineReportsWaitingOps: the ops held back behind a
// quarantined op are counted, in the quarantine and in the status.
func TestQuarantineReportsWaitingOps(t *testing.T) {
	ctx := t.Context()
	small := open(t, converge.Options{MaxOpSize: 512})
	big := open(t, converge.Options{})
	tasksBig := coll[Task](t, big, "tasks")
	if _, err := tasksBig.Put(ctx, "ns", &Task{ID: "big", Title: string(make([]byte, 2000))}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"x", "y", "z"} {
		if _, err := tasksBig.Put(ctx, "ns", &Task{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := small.OpenReplicator(transport.NewMemPeer(big.SyncStore(), transport.Limits{}), idle("ns"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if _, err := r.SyncNow(ctx, "ns"); !errors.Is(err, converge.ErrTooLarge) {
		t.Fatalf("SyncNow = %v, want an error wrapping ErrTooLarge", err)
	}
	qs, err := small.Admin().Quarantine(ctx, "ns")
	if err != nil || len(qs) != 1 || qs[0].Key != "big" || qs[0].Waiting != 3 {
		t.Fatalf("quarantine = %+v, %v; want the big op, with 3 ops waiting behind it", qs, err)
	}
	if st, err := r.Status(ctx, "ns"); err != nil || st.Quarantined != 1 || st.QuarantineWaiting != 3 {
		t.Fatalf("status = %+v, %v; want 1 quarantined, 3 waiting", st, err)
	}
}
