package main

import (
	"context"
	"time"

	"github.com/convergedb/converge/transport"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// The NATS scenarios run Converge over transport/nats: every replica gets
// its own connection, which serves its store and publishes its commits.
func init() {
	natsConnect = func(_ context.Context, url string, store transport.Store) (*peerConn, error) {
		return connectNATS(url, store, 0)
	}
}

// connectNATS connects a replica's store to the NATS server at url with
// Converge's NATS transport, announcing its vector every heartbeat (0: the
// transport's default, 5s).
func connectNATS(url string, store transport.Store, heartbeat time.Duration) (*peerConn, error) {
	t, err := natstransport.Connect(url, natstransport.Options{Store: store, Heartbeat: heartbeat, Logger: quietLogger})
	if err != nil {
		return nil, err
	}
	wire := func() int64 { s := t.Stats(); return s.BytesIn + s.BytesOut }
	return &peerConn{Peer: t, WireBytes: wire, Close: t.Close}, nil
}
