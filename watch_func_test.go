package converge_test

import (
	"context"
	"errors"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

type wTask struct {
	ID    string `msgpack:"-" converge:"id"`
	Title string `msgpack:"title"`
	Owner string `msgpack:"owner"` // a wUser
	Meta  converge.Meta
}

type wUser struct {
	ID      string `msgpack:"-" converge:"id"`
	Name    string `msgpack:"name"`
	Profile string `msgpack:"profile"` // a wProfile
	Meta    converge.Meta
}

type wProfile struct {
	ID   string `msgpack:"-" converge:"id"`
	Bio  string `msgpack:"bio"`
	Meta converge.Meta
}

// chain is a DB with tasks, their owners (users) and the owners'
// profiles: task → user → profile.
type chain struct {
	db       *converge.DB
	tasks    *converge.Collection[wTask]
	users    *converge.Collection[wUser]
	profiles *converge.Collection[wProfile]
	owner    *converge.BelongsTo[wTask, wUser]
	profile  *converge.BelongsTo[wUser, wProfile]
}

func newChain(t *testing.T) *chain {
	t.Helper()
	c := &chain{db: open(t, converge.Options{})}
	c.tasks = coll[wTask](t, c.db, "tasks")
	c.users = coll[wUser](t, c.db, "users")
	c.profiles = coll[wProfile](t, c.db, "profiles")
	c.owner = must(converge.NewBelongsTo(c.tasks, "owner", c.users))(t)
	c.profile = must(converge.NewBelongsTo(c.users, "profile", c.profiles))(t)
	ctx := t.Context()
	for _, p := range []wProfile{{ID: "p1", Bio: "bio one"}, {ID: "p2", Bio: "bio two"}} {
		must(c.profiles.Put(ctx, "ns", &p))(t)
	}
	for _, u := range []wUser{{ID: "u1", Name: "ann", Profile: "p1"}, {ID: "u2", Name: "bob", Profile: "p2"}} {
		must(c.users.Put(ctx, "ns", &u))(t)
	}
	for _, k := range []wTask{{ID: "t1", Title: "one", Owner: "u1"}, {ID: "t2", Title: "two", Owner: "u2"}} {
		must(c.tasks.Put(ctx, "ns", &k))(t)
	}
	return c
}

// taskView is a task with its owner's name and the owner's bio.
type taskView struct{ Title, Owner, Bio string }

// view reads task id, its owner and the owner's profile.
func (c *chain) view(ctx context.Context, id string) (taskView, error) {
	task, err := c.tasks.Get(ctx, "ns", id)
	if err != nil {
		return taskView{}, err
	}
	v := taskView{Title: task.Title}
	user, err := c.owner.Parent(ctx, "ns", id)
	if errors.Is(err, converge.ErrNotFound) {
		return v, nil
	} else if err != nil {
		return v, err
	}
	v.Owner = user.Name
	p, err := c.profile.Parent(ctx, "ns", user.ID)
	if errors.Is(err, converge.ErrNotFound) {
		return v, nil
	}
	v.Bio = p.Bio
	return v, err
}

// TestWatchFuncAcrossRelations: a watch of task → user → profile yields
// after a change at any depth, follows the chain when a key changes,
// ignores records it no longer reads, and yields once for a transaction
// that changes the three.
func TestWatchFuncAcrossRelations(t *testing.T) {
	ctx := t.Context()
	c := newChain(t)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	results := watchAll(converge.WatchFunc(wctx, c.db, func(ctx context.Context) (taskView, error) { return c.view(ctx, "t1") }))
	expect := func(what string, want taskView) {
		t.Helper()
		if w := nextResult(t, results); w.err != nil || w.Value != want {
			t.Fatalf("%s: %+v, %v; want %+v", what, w.Value, w.err, want)
		}
	}
	expect("first", taskView{"one", "ann", "bio one"})
	update(t, c.profiles, "p1", converge.Set("bio", "new bio"))
	expect("the profile, two relations away", taskView{"one", "ann", "new bio"})

	update(t, c.profiles, "p2", converge.Set("bio", "x")) // none of these is read
	update(t, c.users, "u2", converge.Set("name", "x"))
	update(t, c.tasks, "t2", converge.Set("title", "x"))
	update(t, c.tasks, "t1", converge.Set("title", "uno"))
	expect("the task (not the records it does not read)", taskView{"uno", "ann", "new bio"})

	err := c.db.Update(ctx, "ns", func(tx *converge.Tx) error {
		return errors.Join(
			c.tasks.Tx(tx).Update("t1", converge.Set("title", "1")),
			c.users.Tx(tx).Update("u1", converge.Set("name", "Ann")),
			c.profiles.Tx(tx).Update("p1", converge.Set("bio", "Bio")))
	})
	if err != nil {
		t.Fatal(err)
	}
	expect("a transaction of three changes", taskView{"1", "Ann", "Bio"})
	update(t, c.tasks, "t1", converge.Set("title", "marker"))
	expect("the next change (one result for the transaction)", taskView{"marker", "Ann", "Bio"})

	update(t, c.tasks, "t1", converge.Set("owner", "u2"))
	expect("a new owner", taskView{"marker", "x", "x"})
	update(t, c.profiles, "p1", converge.Set("bio", "old chain")) // no longer read
	update(t, c.profiles, "p2", converge.Set("bio", "bob's"))
	expect("the new owner's profile", taskView{"marker", "x", "bob's"})

	if err := c.tasks.Delete(ctx, "ns", "t1"); err != nil {
		t.Fatal(err)
	}
	if w := nextResult(t, results); !errors.Is(w.err, converge.ErrNotFound) {
		t.Fatalf("after the delete: %+v, want ErrNotFound", w)
	}
	must(c.tasks.Put(ctx, "ns", &wTask{ID: "t1", Title: "back", Owner: "u1"}))(t)
	expect("re-created: the watch went on", taskView{"back", "Ann", "old chain"})
}

// TestWatchWithParent: from a child to its parent, following the key.
func TestWatchWithParent(t *testing.T) {
	ctx := t.Context()
	c := newChain(t)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	results := watchAll(c.owner.WatchWithParent(wctx, "ns", "t1"))
	expect := func(what, title, parent string, has bool) {
		t.Helper()
		w := nextResult(t, results)
		if w.err != nil || w.Value.Record.Title != title || w.Value.Parent.Name != parent || w.Value.HasParent != has {
			t.Fatalf("%s: %q %q %v, %v; want %q %q %v", what, w.Value.Record.Title, w.Value.Parent.Name, w.Value.HasParent, w.err, title, parent, has)
		}
	}
	expect("first", "one", "ann", true)
	update(t, c.users, "u2", converge.Set("name", "x")) // another parent
	update(t, c.users, "u1", converge.Set("name", "Ann"))
	expect("the parent changed", "one", "Ann", true)
	update(t, c.tasks, "t1", converge.Set("owner", "ghost"))
	expect("a dangling key", "one", "", false)
	must(c.users.Put(ctx, "ns", &wUser{ID: "ghost", Name: "casper"}))(t)
	expect("the parent it names created", "one", "casper", true)
	update(t, c.tasks, "t1", converge.Set("owner", ""))
	expect("no key", "one", "", false)
	if err := c.tasks.Delete(ctx, "ns", "t1"); err != nil {
		t.Fatal(err)
	}
	if w := nextResult(t, results); !errors.Is(w.err, converge.ErrNotFound) {
		t.Fatalf("after the delete: %+v, want ErrNotFound", w)
	}
}

// TestWatchFuncSyncedAcrossNamespaces: a function reading two namespaces
// is synced once both are.
func TestWatchFuncSyncedAcrossNamespaces(t *testing.T) {
	ctx := t.Context()
	a, b := open(t, converge.Options{}), open(t, converge.Options{})
	ca := coll[Issue](t, a, "issues")
	peer := transport.NewMemPeer(b.SyncStore(), transport.Limits{})
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	results := watchAll(converge.WatchFunc(wctx, a, func(ctx context.Context) (int, error) {
		n, err := ca.Count(ctx, "one", converge.Query{})
		if err != nil {
			return 0, err
		}
		m, err := ca.Count(ctx, "two", converge.Query{})
		return n + m, err
	}))
	if w := nextResult(t, results); w.Synced {
		t.Fatalf("first: %+v, want not synced", w)
	}
	must(a.SyncWith(ctx, peer, "one"))(t)
	must(ca.Put(ctx, "two", &Issue{ID: "x"}))(t)
	if w := nextResult(t, results); w.Synced || w.Value != 1 {
		t.Fatalf("one namespace synced: %+v, want not synced", w)
	}
	must(a.SyncWith(ctx, peer, "two"))(t)
	if w := nextResult(t, results); !w.Synced || w.Value != 1 {
		t.Fatalf("both synced: %+v, want synced", w)
	}
}
