package httptransport_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	httptransport "github.com/convergedb/converge/transport/http"
)

// A hub serves a namespace over HTTP to clients with a token; a client
// syncs with it, and streams what is written afterwards. In production the
// hub is `converge serve`, or the handler mounted in your own server: give
// the server the hub's store and nothing else, and it wakes the live
// streams on every commit by itself.
func Example() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(root)
	quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}

	hubDB, err := converge.Open(filepath.Join(root, "hub"), quiet)
	if err != nil {
		panic(err)
	}
	defer hubDB.Close()
	tokens := filepath.Join(root, "tokens")
	os.WriteFile(tokens, []byte("# token  namespaces\nteam-secret team-1,team-2\n"), 0o600)
	auth, err := httptransport.LoadTokenFile(tokens)
	if err != nil {
		panic(err)
	}
	srv, err := httptransport.NewServer(httptransport.ServerOptions{Store: hubDB.SyncStore(), Auth: auth, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	hub := httptest.NewServer(srv)
	defer hub.Close()
	defer srv.Close()

	type task struct {
		ID    string `msgpack:"-" converge:"id"`
		Title string `msgpack:"title"`
		Meta  converge.Meta
	}
	app, err := converge.Open(filepath.Join(root, "app"), quiet)
	if err != nil {
		panic(err)
	}
	defer app.Close()
	tasks, _ := converge.NewCollection[task](app, "tasks")
	tasks.Put(ctx, "team-1", &task{ID: "t1", Title: "write the docs"})

	client, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: hub.URL, Token: "team-secret"})
	if err != nil {
		panic(err)
	}
	res, err := app.SyncWith(ctx, client, "team-1")
	fmt.Println("sent:", res.Sent, err)

	_, err = app.SyncWith(ctx, client, "team-3") // not in the token's grant
	fmt.Println(err != nil)

	// A live stream (a replicator opens one per namespace) gets the
	// hub's next write at once.
	streaming, stop := context.WithCancel(ctx)
	defer stop()
	store := app.SyncStore()
	have := func() crdt.VersionVector { vv, _ := store.Vector(streaming, "team-1"); return vv }
	streamed := make(chan int, 1)
	go client.Stream(streaming, "team-1", have, func(ops [][]byte) error {
		store.Apply(streaming, "team-1", ops)
		streamed <- len(ops)
		stop()
		return nil
	})
	hubTasks, _ := converge.NewCollection[task](hubDB, "tasks")
	hubTasks.Put(ctx, "team-1", &task{ID: "t2", Title: "review the docs"})
	fmt.Println("streamed:", <-streamed)
	// Output:
	// sent: 1 <nil>
	// true
	// streamed: 1
}
