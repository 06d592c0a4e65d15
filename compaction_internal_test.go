package converge

import (
	"context"
	"testing"
	"time"

	"github.com/convergedb/converge/transport"
)

// TestPacer: batches are admitted at the rate, whatever their sizes; time
// spent working counts toward the wait.
func TestPacer(t *testing.T) {
	now := time.Unix(0, 0)
	var slept []time.Duration
	p := newPacer(1000)
	p.now = func() time.Time { return now }
	p.sleep = func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		now = now.Add(d)
		return nil
	}
	for _, n := range []int{100, 300, 100} {
		if err := p.wait(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	// 100 units take 100ms at 1000/s, then 300 take 300ms.
	want := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond}
	if len(slept) != len(want) || slept[0] != want[0] || slept[1] != want[1] {
		t.Fatalf("slept %v, want %v", slept, want)
	}
	// Work that took longer than its share needs no wait.
	now = now.Add(time.Second)
	slept = nil
	if err := p.wait(t.Context(), 50); err != nil || len(slept) != 0 {
		t.Fatalf("after a slow batch: slept %v, %v", slept, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p = newPacer(1)
	if err := p.wait(ctx, 1); err != nil {
		t.Fatalf("first wait: %v", err)
	}
	if err := p.wait(ctx, 1); err == nil {
		t.Fatal("a cancelled wait returned nil")
	}
}

// TestCompactAll: the background pass compacts every namespace.
func TestCompactAll(t *testing.T) {
	ctx := t.Context()
	opts := Options{Durability: NoSync, Compaction: CompactionOptions{Disabled: true}}
	a, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	hub, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	type rec struct {
		ID   string `msgpack:"-" converge:"id"`
		V    int    `msgpack:"v"`
		Meta Meta
	}
	c, err := NewCollection[rec](a, "c")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"n1", "n2"} {
		for i := range 10 {
			if _, err := c.Put(ctx, ns, &rec{ID: "k", V: i}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.SyncWith(ctx, transport.NewMemPeer(hub.SyncStore(), transport.Limits{}), ns); err != nil {
			t.Fatal(err)
		}
	}
	a.compactAll(ctx, 1_000_000)
	for _, ns := range []string{"n1", "n2"} {
		h, err := a.Admin().Horizon(ctx, ns)
		if err != nil || h[a.ReplicaID()] != 10 {
			t.Fatalf("horizon of %s after the background pass = %v, %v; want all 10 ops", ns, h, err)
		}
	}
}

// TestCompactionVisitsChangedNamespaces: the first background pass takes
// every namespace; the next ones only those that changed meanwhile.
func TestCompactionVisitsChangedNamespaces(t *testing.T) {
	ctx := t.Context()
	db, err := Open(t.TempDir(), Options{Compaction: CompactionOptions{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := NewCollection[notifyRec](db, "recs")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"a", "b", "c"} {
		if _, err := c.Put(ctx, ns, &notifyRec{ID: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	due := func() []string {
		t.Helper()
		nss, err := db.compactionDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return nss
	}
	if got := due(); len(got) != 3 {
		t.Fatalf("first pass visits %v, want every namespace", got)
	}
	if got := due(); len(got) != 0 {
		t.Fatalf("pass with nothing changed visits %v", got)
	}
	if _, err := c.Put(ctx, "b", &notifyRec{ID: "y"}); err != nil {
		t.Fatal(err)
	}
	if got := due(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("pass after a write to b visits %v, want [b]", got)
	}
}
