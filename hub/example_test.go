package hub_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/convergedb/converge/hub"
)

// A hub embedded in a program: its handler in an http.Server of the
// program's own (here httptest), its background work in Run, and Close
// after the server stopped.
func Example() {
	dir, err := os.MkdirTemp("", "hub-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("secret-token acme.>\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	h, err := hub.New(hub.Config{Dir: filepath.Join(dir, "store"), TokenFile: tokens, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- h.Run(ctx) }()
	srv := httptest.NewUnstartedServer(h.Handler())
	srv.Config.RegisterOnShutdown(h.CloseStreams)
	srv.Start()

	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("healthz:", resp.StatusCode)

	srv.Close()
	stop()
	fmt.Println("run:", <-ran)
	fmt.Println("close:", h.Close(context.Background()))
	// Output:
	// healthz: 200
	// run: <nil>
	// close: <nil>
}
