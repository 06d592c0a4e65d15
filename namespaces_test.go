package converge_test

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

// TestReplicatorAddRemoveNamespaces: a replicator opened with no
// namespace replicates one once it is added (a sync at once, then on
// commits), and stops once it is removed; the data stays.
func TestReplicatorAddRemoveNamespaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		tasks, hubTasks := coll[Task](t, app, "tasks"), coll[Task](t, hub, "tasks")
		if _, err := hubTasks.Put(ctx, "alice", &Task{ID: "from-hub"}); err != nil {
			t.Fatal(err)
		}
		r, err := app.OpenReplicator(transport.NewMemPeer(hub.SyncStore(), transport.Limits{}), converge.ReplicatorOptions{Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		settle(time.Second)
		if got := r.Namespaces(); len(got) != 0 {
			t.Fatalf("Namespaces = %v, want none", got)
		}
		// Log in: the namespace syncs at once.
		if err := r.AddNamespace("alice"); err != nil {
			t.Fatal(err)
		}
		if err := r.AddNamespace("alice"); err != nil {
			t.Fatalf("adding it again: %v", err)
		}
		settle(100 * time.Millisecond)
		if _, err := tasks.Get(ctx, "alice", "from-hub"); err != nil {
			t.Fatalf("after AddNamespace: %v", err)
		}
		if _, err := tasks.Put(ctx, "alice", &Task{ID: "from-app"}); err != nil {
			t.Fatal(err)
		}
		settle(100 * time.Millisecond)
		if _, err := hubTasks.Get(ctx, "alice", "from-app"); err != nil {
			t.Fatalf("a commit after AddNamespace did not sync: %v", err)
		}
		if got := r.Namespaces(); !slices.Equal(got, []string{"alice"}) {
			t.Errorf("Namespaces = %v, want [alice]", got)
		}
		// Log out: nothing more goes out, the data stays.
		if err := r.RemoveNamespace(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := tasks.Put(ctx, "alice", &Task{ID: "after-logout"}); err != nil {
			t.Fatal(err)
		}
		settle(time.Hour + time.Minute)
		if _, err := hubTasks.Get(ctx, "alice", "after-logout"); !errors.Is(err, converge.ErrNotFound) {
			t.Errorf("a commit after RemoveNamespace reached the hub: %v", err)
		}
		if _, err := r.Status(ctx, "alice"); !errors.Is(err, converge.ErrInvalid) {
			t.Errorf("Status of a removed namespace: %v, want ErrInvalid", err)
		}
		if _, err := r.SyncNow(ctx, "alice"); !errors.Is(err, converge.ErrInvalid) {
			t.Errorf("SyncNow of a removed namespace: %v, want ErrInvalid", err)
		}
		if _, err := tasks.Get(ctx, "alice", "from-hub"); err != nil {
			t.Errorf("the data went with the namespace: %v", err)
		}
		if err := r.RemoveNamespace(ctx, "alice"); err != nil {
			t.Errorf("removing it again: %v", err)
		}
		// Added while paused: nothing until Resume.
		r.Pause()
		if err := r.AddNamespace("bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := hubTasks.Put(ctx, "bob", &Task{ID: "b"}); err != nil {
			t.Fatal(err)
		}
		settle(time.Minute)
		if _, err := tasks.Get(ctx, "bob", "b"); !errors.Is(err, converge.ErrNotFound) {
			t.Errorf("a namespace added while paused synced: %v", err)
		}
		r.Resume()
		settle(time.Second)
		if _, err := tasks.Get(ctx, "bob", "b"); err != nil {
			t.Errorf("after Resume: %v", err)
		}
		r.Close(ctx)
		if err := r.AddNamespace("carol"); !errors.Is(err, converge.ErrClosed) {
			t.Errorf("AddNamespace after Close: %v, want ErrClosed", err)
		}
	})
}
