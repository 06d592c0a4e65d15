// Command readme is the code that README.md shows, whole and compiled:
// every Go block of the README is a region of this file between a
// "README:begin" and a "README:end" comment, copied verbatim.
// readme_test.go checks that they still agree (so the README cannot drift
// from code that compiles) and runs the program against a hub in the
// same process.
//
// Usage:
//
//	readme -dir DIR -hub URL -token T
//
// It writes a task to namespace team-1 of the store in DIR, watches a
// query once, and syncs with the hub (`converge serve`) at URL.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/convergedb/converge"
	httptransport "github.com/convergedb/converge/transport/http"
)

func main() {
	dir := flag.String("dir", "readme-data", "the store's directory")
	hubURL := flag.String("hub", "http://127.0.0.1:8080", "the hub's address")
	token := flag.String("token", os.Getenv("CONVERGE_TOKEN"), "the hub's bearer token for team-1")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *dir, *hubURL, *token); err != nil {
		log.Fatal(err)
	}
}

// README:begin
type Task struct {
	ID    string        `msgpack:"-" converge:"id"` // a ULID unless you set one
	Meta  converge.Meta // required: the version read, so Put writes only your changes
	Title string        `msgpack:"title"`
	Done  bool          `msgpack:"done"`
	Tags  []string      `msgpack:"tags" converge:"set"`      // add-wins set
	Votes int64         `msgpack:"votes" converge:"counter"` // concurrent increments add up
}

func run(ctx context.Context, dir, hubURL, token string) error {
	db, err := converge.Open(dir, converge.Options{}) // a Pebble store; fsync per write by default
	if err != nil {
		return err
	}
	defer db.Close() // it closes what was opened on it, the replicator below too
	tasks, err := converge.NewCollection[Task](db, "tasks")
	if err != nil {
		return err
	}
	id, err := tasks.Put(ctx, "team-1", &Task{Title: "ship it", Tags: []string{"q4"}})
	if err != nil {
		return err
	}
	t, err := tasks.Get(ctx, "team-1", id)
	if err != nil {
		return err
	}
	t.Done = true
	if _, err := tasks.Put(ctx, "team-1", &t); err != nil { // writes "done" only: others' changes since the Get stay
		return err
	}
	err = tasks.Update(ctx, "team-1", id, converge.AddToSet("tags", "release"), converge.Increment("votes", 1))
	if err != nil {
		return err
	}

	// A live query: the result now, then a new one after every change that
	// alters it, until ctx ends or the loop breaks.
	q := converge.Where(converge.Contains("tags", "q4")).OrderByDesc("votes").Limit(20)
	for res, err := range tasks.Watch(ctx, "team-1", q) {
		if err != nil {
			return err
		}
		// res.Synced is false until a sync with a peer completes (show
		// "loading"); res.SyncErr is the last sync's error while it retries.
		fmt.Println(len(res.Value), "tasks tagged q4")
		break // a UI keeps ranging: each result replaces the last
	}

	peer, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: hubURL, Token: token})
	// or: peer, err := natstransport.Connect(natsURL, natstransport.Options{Store: db.SyncStore()})
	if err != nil {
		return err
	}
	rep, err := db.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"team-1"}})
	if err != nil {
		return err
	}
	defer rep.Close(ctx)
	if _, err := rep.SyncNow(ctx, "team-1"); err != nil {
		return err // offline: nothing is lost, the writes wait in the log
	}
	st, err := rep.Status(ctx, "team-1") // st.Pending: your writes not yet acknowledged
	if err != nil {
		return err
	}
	fmt.Println(st.Pending, "writes pending")
	return nil
}

// README:end
