package main

import (
	"context"

	"github.com/convergedb/converge/transport"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// The NATS scenarios run Converge over transport/nats: every replica gets
// its own connection, which serves its store and publishes its commits.
func init() {
	natsConnect = func(_ context.Context, url string, store transport.Store) (*peerConn, error) {
		t, err := natstransport.Connect(url, natstransport.Options{Store: store, Logger: quietLogger})
		if err != nil {
			return nil, err
		}
		wire := func() int64 { s := t.Stats(); return s.BytesIn + s.BytesOut }
		return &peerConn{Peer: t, WireBytes: wire, Close: t.Close}, nil
	}
}
