package httptransport

import (
	"net/http"
	"testing"

	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

func TestConformance(t *testing.T) {
	tf, err := LoadTokenFile(writeFile(t, "# conformance\nsecret-token ns\n"))
	if err != nil {
		t.Fatal(err)
	}
	transporttest.Run(t, func(t *testing.T, server transport.Store) transport.Peer {
		_, ts := startServer(t, ServerOptions{Store: server, Auth: tf})
		return newClient(t, ts.URL, "secret-token")
	})
}

func TestConformanceGzipAndPrefix(t *testing.T) {
	// Mounted under a prefix, with pages small enough and bodies large
	// enough that compression is used both ways.
	transporttest.Run(t, func(t *testing.T, server transport.Store) transport.Peer {
		srv, err := NewServer(ServerOptions{Store: server, Auth: testAuth, Logger: quiet, Limits: transport.Limits{MaxOps: 64}})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/converge/", http.StripPrefix("/converge", srv))
		ts := serve(t, srv, mux)
		return newClient(t, ts.URL+"/converge/", "tok")
	})
}
