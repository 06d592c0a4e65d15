package oplog_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// TestOpenExistingOnly: with ExistingOnly, Open opens the store a
// directory holds and creates none.
func TestOpenExistingOnly(t *testing.T) {
	root := t.TempDir()
	missing := filepath.Join(root, "missing")
	if _, err := oplog.Open(missing, oplog.Options{ExistingOnly: true, Logger: quietLogger}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want an error wrapping fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) created it: %v", err)
	}
	empty := filepath.Join(root, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := oplog.Open(empty, oplog.Options{ExistingOnly: true, Logger: quietLogger}); !errors.Is(err, oplog.ErrNotStore) {
		t.Errorf("Open(empty) = %v, want ErrNotStore", err)
	}
	if names, _ := os.ReadDir(empty); len(names) != 0 {
		t.Errorf("Open(empty) wrote %d files", len(names))
	}
	store := filepath.Join(root, "store")
	l, err := oplog.Open(store, oplog.Options{Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	id := l.ReplicaID()
	l.Close()
	l, err = oplog.Open(store, oplog.Options{ExistingOnly: true, Logger: quietLogger})
	if err != nil {
		t.Fatalf("Open(store) = %v", err)
	}
	defer l.Close()
	if l.ReplicaID() != id {
		t.Errorf("reopened replica %v, want %v", l.ReplicaID(), id)
	}
}

// TestUpstreams: the peers that answered this replica's syncs are kept
// across reopens, and forgetting a peer forgets it as an upstream too.
func TestUpstreams(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l := openLog(t, dir, oplog.Options{})
	a, b := crdt.ReplicaID{1}, crdt.ReplicaID{2}
	for _, p := range []crdt.ReplicaID{a, b, a, {}, l.ReplicaID()} {
		if err := l.NoteUpstream(ctx, "ns", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Acknowledge(ctx, "ns", a, crdt.VersionVector{l.ReplicaID(): 3}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, dir, oplog.Options{})
	ups, err := l.Upstreams(ctx, "ns")
	slices.SortFunc(ups, crdt.ReplicaID.Compare)
	if err != nil || !slices.Equal(ups, []crdt.ReplicaID{a, b}) {
		t.Fatalf("Upstreams = %v, %v; want %v", ups, err, []crdt.ReplicaID{a, b})
	}
	if seq, known, err := l.PeerHolds(ctx, "ns", a, l.ReplicaID()); err != nil || !known || seq != 3 {
		t.Errorf("PeerHolds(a) = %d, %v, %v; want 3, known", seq, known, err)
	}
	if seq, known, err := l.PeerHolds(ctx, "ns", b, l.ReplicaID()); err != nil || known || seq != 0 {
		t.Errorf("PeerHolds(b) = %d, %v, %v; want 0, unknown", seq, known, err)
	}
	if err := l.ForgetPeer(ctx, "ns", a); err != nil {
		t.Fatal(err)
	}
	if ups, err := l.Upstreams(ctx, "ns"); err != nil || !slices.Equal(ups, []crdt.ReplicaID{b}) {
		t.Fatalf("Upstreams after forgetting a = %v, %v", ups, err)
	}
	if other, err := l.Upstreams(ctx, "other"); err != nil || len(other) != 0 {
		t.Errorf("Upstreams of another namespace = %v, %v", other, err)
	}
}

// TestOnChange: OnChange hears of every change a replication status
// reads: commits, what peers hold, the quarantine.
func TestOnChange(t *testing.T) {
	ctx := t.Context()
	var mu sync.Mutex
	var heard []string
	l := openMem(t, oplog.Options{OnChange: func(ns string) {
		mu.Lock()
		defer mu.Unlock()
		heard = append(heard, ns)
	}})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(heard)
	}
	put(t, l, "ns", "c", "k", setStr("f", "v"))
	if count() != 1 {
		t.Fatalf("after a commit: heard %v", heard)
	}
	peer := crdt.ReplicaID{7}
	if err := l.Acknowledge(ctx, "ns", peer, crdt.VersionVector{l.ReplicaID(): 1}); err != nil {
		t.Fatal(err)
	}
	if count() != 2 {
		t.Fatalf("after an acknowledgement: heard %v", heard)
	}
	if err := l.Acknowledge(ctx, "ns", peer, crdt.VersionVector{l.ReplicaID(): 1}); err != nil {
		t.Fatal(err)
	}
	if count() != 2 {
		t.Fatalf("an acknowledgement that changed nothing was heard: %v", heard)
	}
	// An invalid op is quarantined, in a batch of no ops.
	bad := crdt.Op{Namespace: "ns", Collection: "c", Key: "x", Dot: crdt.Dot{Origin: peer, Seq: 1}, TxEnd: true}
	res, err := l.Ingest(ctx, "ns", []crdt.Op{bad})
	if err != nil || len(res.Refused) != 1 {
		t.Fatalf("Ingest of an invalid op = %+v, %v", res, err)
	}
	if count() != 3 {
		t.Fatalf("after a quarantine: heard %v", heard)
	}
	if err := l.DiscardQuarantined(ctx, "ns", bad.Dot); err != nil {
		t.Fatal(err)
	}
	if count() != 4 || slices.ContainsFunc(heard, func(ns string) bool { return ns != "ns" }) {
		t.Fatalf("after a discard: heard %v", heard)
	}
}
