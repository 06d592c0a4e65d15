package oplog_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/materialize"
	"github.com/convergedb/converge/oplog"
)

func scanKeys(t *testing.T, l *oplog.Log, ns, coll string, idx materialize.Index, lo, hi []byte) []string {
	t.Helper()
	var keys []string
	for e, err := range l.IndexScan(t.Context(), ns, coll, idx, lo, hi, false) {
		if err != nil {
			t.Fatalf("IndexScan: %v", err)
		}
		keys = append(keys, e.Key)
	}
	return keys
}

func setStatus(t *testing.T, l *oplog.Log, ns, key, status string) {
	t.Helper()
	put(t, l, ns, "tasks", key, crdt.Change{Name: "status", Type: crdt.Set, Value: crdt.EncodeString(status)})
}

func TestIndexRegistryAndMaintenance(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l, err := oplog.Open(dir, oplog.Options{Durability: oplog.NoSync})
	if err != nil {
		t.Fatal(err)
	}
	setStatus(t, l, "a", "k1", "open") // before the index: built from state
	byStatus := materialize.Index{Name: "status", Fields: []string{"status"}}
	if err := l.EnsureIndex(ctx, "tasks", byStatus); err != nil {
		t.Fatal(err)
	}
	open := crdt.AppendValueKey(nil, crdt.EncodeString("open"))
	openHi := append(slices.Clone(open), 0xff)
	if got := scanKeys(t, l, "a", "tasks", byStatus, open, openHi); !slices.Equal(got, []string{"k1"}) {
		t.Fatalf("after build: %v, want [k1]", got)
	}
	l.Close()

	// Reopened, the registry keeps the index current without EnsureIndex.
	l, err = oplog.Open(dir, oplog.Options{Durability: oplog.NoSync})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Indexes("tasks"); len(got) != 1 || got[0].Name != "status" {
		t.Fatalf("Indexes after reopen = %+v", got)
	}
	setStatus(t, l, "a", "k2", "open")
	setStatus(t, l, "a", "k1", "closed")
	setStatus(t, l, "b", "k3", "open") // another namespace: its own entries
	if got := scanKeys(t, l, "a", "tasks", byStatus, open, openHi); !slices.Equal(got, []string{"k2"}) {
		t.Errorf("namespace a after updates: %v, want [k2]", got)
	}
	if got := scanKeys(t, l, "b", "tasks", byStatus, nil, nil); !slices.Equal(got, []string{"k3"}) {
		t.Errorf("namespace b: %v, want [k3]", got)
	}
	// A delete leaves no entry.
	if _, err := l.Write(ctx, "a", func(tx *oplog.Tx) error {
		_, err := tx.Mutate("tasks", "k2", crdt.IntentDelete, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := scanKeys(t, l, "a", "tasks", byStatus, nil, nil); !slices.Equal(got, []string{"k1"}) {
		t.Errorf("after delete: %v, want [k1]", got)
	}
	// EnsureIndex of the same definition is a no-op; another definition
	// under the same name rebuilds.
	if err := l.EnsureIndex(ctx, "tasks", byStatus); err != nil {
		t.Fatal(err)
	}
	byKeyAndStatus := materialize.Index{Name: "status", Fields: []string{"status", "owner"}}
	if err := l.EnsureIndex(ctx, "tasks", byKeyAndStatus); err != nil {
		t.Fatal(err)
	}
	if got := scanKeys(t, l, "a", "tasks", byKeyAndStatus, nil, nil); !slices.Equal(got, []string{"k1"}) {
		t.Errorf("after redefinition: %v, want [k1]", got)
	}
	if err := l.DropIndex(ctx, "tasks", "status"); err != nil {
		t.Fatal(err)
	}
	if got := scanKeys(t, l, "a", "tasks", byKeyAndStatus, nil, nil); len(got) != 0 {
		t.Errorf("after drop: %v, want none", got)
	}
	if err := l.RebuildIndex(ctx, "tasks", "status"); !errors.Is(err, oplog.ErrNotFound) {
		t.Errorf("rebuild of a dropped index: %v, want ErrNotFound", err)
	}
}
