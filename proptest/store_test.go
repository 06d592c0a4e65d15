package proptest_test

import (
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/proptest"
)

// TestApplyAccountsForEveryOp: transport.Store.Apply promises that ops it
// cannot apply ("malformed, beyond a gap, beyond the clock bound") are
// counted in its result, so Applied+Duplicates+Refused is the number of
// ops given. Ops beyond a gap in their origin's sequence must count as
// refused.
func TestApplyAccountsForEveryOp(t *testing.T) {
	ctx := t.Context()
	net, err := proptest.Open(t.TempDir(), 2, converge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	items, err := converge.NewCollection[Item](net.Replica(0), "items")
	if err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"a", "b", "c"} {
		if _, err := items.Put(ctx, ns, &Item{ID: "k", Title: title}); err != nil {
			t.Fatal(err)
		}
	}
	var raw [][]byte
	for e, err := range net.Replica(0).Admin().Log().Missing(ctx, ns, nil) {
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, e.Raw)
	}
	if len(raw) != 3 {
		t.Fatalf("%d ops, want 3", len(raw))
	}
	// Ops 2 and 3 without op 1: both beyond a gap.
	given := raw[1:]
	a, err := net.Replica(1).SyncStore().Apply(ctx, ns, given)
	if err != nil {
		t.Fatal(err)
	}
	if a.Applied != 0 {
		t.Fatalf("applied %d ops beyond a gap", a.Applied)
	}
	if got := a.Applied + a.Duplicates + a.Refused; got != len(given) {
		t.Errorf("Apply of %d ops beyond a gap reported %+v: accounts for %d ops, want %d (Refused %d)", len(given), a, got, len(given), len(given))
	}
}
