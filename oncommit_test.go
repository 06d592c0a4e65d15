package converge_test

import (
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

// TestOnCommitSeesInvisibleCommits: a remote write that loses to a newer
// local one changes nothing visible, so subscriptions see nothing, but it
// adds an op to the log, and OnCommit hooks hear of it.
func TestOnCommitSeesInvisibleCommits(t *testing.T) {
	ctx := t.Context()
	a, b := open(t, converge.Options{}), open(t, converge.Options{})
	tasksA, tasksB := coll[Task](t, a, "tasks"), coll[Task](t, b, "tasks")
	if _, err := tasksA.Put(ctx, "ns", &Task{ID: "x", Title: "older"}); err != nil {
		t.Fatal(err)
	}
	older, _, err := a.SyncStore().Missing(ctx, "ns", crdt.VersionVector{}, transport.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tasksB.Put(ctx, "ns", &Task{ID: "x", Title: "newer"}); err != nil {
		t.Fatal(err)
	}
	var hooked []string
	stop := b.OnCommit(func(ns string) { hooked = append(hooked, ns) })
	sub := b.Subscribe("ns")
	defer sub.Close()

	res, err := b.SyncStore().Apply(ctx, "ns", older)
	if err != nil || res.Applied != 1 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if len(hooked) != 1 || hooked[0] != "ns" {
		t.Fatalf("OnCommit calls = %v, want one for ns", hooked)
	}
	if got, _ := tasksB.Get(ctx, "ns", "x"); got.Title != "newer" {
		t.Fatalf("title = %q: the older write won", got.Title)
	}
	stop()
	if _, err := tasksB.Put(ctx, "ns", &Task{ID: "y"}); err != nil {
		t.Fatal(err)
	}
	if len(hooked) != 1 {
		t.Fatalf("a stopped hook was called: %v", hooked)
	}
	// The subscription saw only the visible change of "y".
	c, err := sub.Next(ctx)
	if err != nil || c.ID != "y" {
		t.Fatalf("first change seen = %+v, %v; want y's", c, err)
	}
}
