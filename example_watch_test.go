package converge_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

// A watch's results say whether the namespace has synced since the DB
// opened (a UI shows "loading" until then) and carry the last sync's
// error without ending.
func ExampleWatched() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	hub, doneHub := openTemp()
	defer doneHub()
	tasks, _ := converge.NewCollection[Task](db, "tasks")
	if _, err := tasks.Put(ctx, "team-1", &Task{Title: "buy milk"}); err != nil {
		log.Fatal(err)
	}
	peer := transport.NewMemPeer(hub.SyncStore(), transport.Limits{})

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	n := 0
	for res, err := range tasks.Watch(wctx, "team-1", converge.Query{}) {
		if err != nil {
			log.Fatal(err)
		}
		switch {
		case res.SyncErr != nil:
			fmt.Println(len(res.Value), "tasks, offline:", errors.Is(res.SyncErr, transport.ErrUnreachable))
		case !res.Synced:
			fmt.Println(len(res.Value), "tasks, loading")
		default:
			fmt.Println(len(res.Value), "tasks, synced")
		}
		switch n++; n {
		case 1:
			peer.SetDown(true)
			db.SyncWith(ctx, peer, "team-1") // fails: the watch says so, and goes on
		case 2:
			peer.SetDown(false)
			db.SyncWith(ctx, peer, "team-1")
		default:
			stop()
		}
	}
	// Output:
	// 1 tasks, loading
	// 1 tasks, offline: true
	// 1 tasks, synced
}

type Profile struct {
	ID   string `msgpack:"-" converge:"id"`
	Bio  string `msgpack:"bio"`
	Meta converge.Meta
}

type User struct {
	ID      string `msgpack:"-" converge:"id"`
	Name    string `msgpack:"name"`
	Profile string `msgpack:"profile"` // the id of a Profile
	Meta    converge.Meta
}

type Assignment struct {
	ID    string `msgpack:"-" converge:"id"`
	Title string `msgpack:"title"`
	User  string `msgpack:"user"` // the id of a User
	Meta  converge.Meta
}

// Watch an assignment with its user and the user's profile: a change to
// any of the three yields a new result, a transaction that changes
// several yields one.
func ExampleWatchFunc() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	profiles, _ := converge.NewCollection[Profile](db, "profiles")
	users, _ := converge.NewCollection[User](db, "users")
	assignments, _ := converge.NewCollection[Assignment](db, "assignments")
	assignee, _ := converge.NewBelongsTo(assignments, "user", users)
	profileOf, _ := converge.NewBelongsTo(users, "profile", profiles)
	profiles.Put(ctx, "team-1", &Profile{ID: "p1", Bio: "likes Go"})
	users.Put(ctx, "team-1", &User{ID: "u1", Name: "ann", Profile: "p1"})
	assignments.Put(ctx, "team-1", &Assignment{ID: "a1", Title: "write docs", User: "u1"})

	// The view of an assignment: what the watch yields, read through the
	// ctx it gives, which records what was read.
	type view struct{ Title, User, Bio string }
	read := func(ctx context.Context) (view, error) {
		a, err := assignments.Get(ctx, "team-1", "a1")
		if err != nil {
			return view{}, err
		}
		u, err := assignee.Parent(ctx, "team-1", a.ID)
		if err != nil {
			return view{}, err
		}
		p, err := profileOf.Parent(ctx, "team-1", u.ID)
		return view{a.Title, u.Name, p.Bio}, err
	}

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	n := 0
	for res, err := range converge.WatchFunc(wctx, db, read) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%+v\n", res.Value)
		switch n++; n {
		case 1:
			err = profiles.Update(ctx, "team-1", "p1", converge.Set("bio", "likes Go and CRDTs"))
		case 2:
			err = db.Update(ctx, "team-1", func(tx *converge.Tx) error {
				if err := users.Tx(tx).Update("u1", converge.Set("name", "Ann")); err != nil {
					return err
				}
				return assignments.Tx(tx).Update("a1", converge.Set("title", "review docs"))
			})
		default:
			stop()
		}
		if err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// {Title:write docs User:ann Bio:likes Go}
	// {Title:write docs User:ann Bio:likes Go and CRDTs}
	// {Title:review docs User:Ann Bio:likes Go and CRDTs}
}

// A numbered page with its totals, for a pager, and a live count.
func ExampleCollection_PageAt() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	tasks, _ := converge.NewCollection[Task](db, "tasks")
	for _, title := range []string{"a", "b", "c", "d", "e"} {
		tasks.Put(ctx, "team-1", &Task{Title: title})
	}
	q := converge.Query{}.OrderBy("title")
	p, err := tasks.PageAt(ctx, "team-1", q, converge.PageNumber{Number: 2, Size: 2})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("page %d of %d (%d tasks):", p.Number, p.Pages, p.Total)
	for _, t := range p.Items {
		fmt.Print(" ", t.Title)
	}
	fmt.Println()

	// The number of open tasks, live.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	for res, err := range tasks.WatchCount(wctx, "team-1", converge.Where(converge.Eq("done", false))) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(res.Value, "open")
		if res.Value < 5 {
			break
		}
		first, _ := tasks.Find(ctx, "team-1", q.Limit(1))
		tasks.Update(ctx, "team-1", first[0].ID, converge.Set("done", true))
	}
	// Output:
	// page 2 of 3 (5 tasks): c d
	// 5 open
	// 4 open
}
