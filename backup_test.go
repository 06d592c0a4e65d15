package converge_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
)

// TestBackupRestore backs a replica up while it serves, writes more and
// syncs some of it to a peer, then restores the backup in its place: the
// restored replica writes under a new replica id, gets back from the peer
// what it wrote after the backup, and all replicas converge with no two
// different ops sharing a dot.
func TestBackupRestore(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "a")
	a, err := converge.Open(dir, converge.Options{Durability: converge.NoSync})
	if err != nil {
		t.Fatal(err)
	}
	b := open(t, converge.Options{})
	put := func(db *converge.DB, title string) {
		t.Helper()
		if _, err := coll[taskV1](t, db, "tasks").Put(ctx, "ns", &taskV1{Title: title}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		put(a, fmt.Sprintf("before %d", i))
	}
	backup := filepath.Join(t.TempDir(), "backup")
	if err := a.Admin().Backup(ctx, backup); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if err := a.Admin().Backup(ctx, backup); err == nil {
		t.Error("Backup into an existing directory succeeded")
	}
	for i := range 3 {
		put(a, fmt.Sprintf("after %d", i)) // lost with a, but synced to b
	}
	syncPair(t, b, a, "ns")
	old := a.ReplicaID()
	seen := make(map[crdt.Dot][]byte)
	see := func(db *converge.DB) {
		t.Helper()
		for e, err := range db.Admin().Log().Missing(ctx, "ns", nil) {
			if err != nil {
				t.Fatal(err)
			}
			if prev, ok := seen[e.Op.Dot]; ok && string(prev) != string(e.Raw) {
				t.Fatalf("dot %v reused by two different ops", e.Op.Dot)
			}
			seen[e.Op.Dot] = append([]byte(nil), e.Raw...)
		}
	}
	see(a)
	see(b)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Restore: the backup takes the store's place.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(backup, dir); err != nil {
		t.Fatal(err)
	}
	r, err := converge.Open(dir, converge.Options{Durability: converge.NoSync})
	if err != nil {
		t.Fatalf("Open restored: %v", err)
	}
	defer r.Close()
	c := r.Admin().IdentityChange()
	if c == nil || r.ReplicaID() == old || c.Old.String() != old {
		t.Fatalf("restored replica kept its id %s (change %+v)", r.ReplicaID(), c)
	}
	if n := count(t, r); n != 5 {
		t.Fatalf("restored replica holds %d records, want the 5 backed up", n)
	}
	put(r, "restored 0")
	put(b, "peer 0")
	see(r)
	syncPair(t, r, b, "ns")
	syncPair(t, b, r, "ns")
	see(r)
	see(b)
	for _, db := range []*converge.DB{r, b} {
		if n := count(t, db); n != 10 {
			t.Errorf("replica %s holds %d records, want 10", db.ReplicaID(), n)
		}
	}
	ha, _ := r.Admin().StateHash(ctx, "ns")
	hb, _ := b.Admin().StateHash(ctx, "ns")
	if ha != hb {
		t.Errorf("state hashes differ after sync: %s, %s", ha, hb)
	}
	vv, _ := r.Admin().Vector(ctx, "ns")
	if vv[old] != 8 || vv[r.ReplicaID()] != 1 {
		t.Errorf("restored vector = %v, want %s:8 (5 backed up, 3 back from the peer) and %s:1", vv, old, r.ReplicaID())
	}
}

func count(t *testing.T, db *converge.DB) int {
	t.Helper()
	n := 0
	for _, err := range coll[taskV1](t, db, "tasks").All(t.Context(), "ns") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
