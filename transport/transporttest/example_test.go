package transporttest_test

import (
	"testing"

	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

// A transport runs the conformance suite from a test of its own: NewPeer
// serves the given store through the transport and returns the client
// side. Here, the in-memory transport.
func ExampleRun() {
	_ = func(t *testing.T) { // in a _test.go file: func TestConformance(t *testing.T) { ... }
		transporttest.Run(t, func(t *testing.T, server transport.Store) transport.Peer {
			return transport.NewMemPeer(server, transport.Limits{})
		})
	}
}
