package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
)

// syncNet connects Converge replicas to each other: the HTTP hub today
// (httpNet), NATS once transport/nats exists (natsNet). The replication and
// catch-up measurements are written against it, so a new transport only
// has to provide one.
type syncNet interface {
	// Name names the network in errors and descriptions.
	Name() string
	// Source is the replica that holds the ops a catching-up replica
	// pulls, and through which replicas meet: the hub.
	Source() *converge.DB
	// Connect returns the peer through which db syncs.
	Connect(ctx context.Context, db *converge.DB) (*peerConn, error)
	// Close shuts the network down (not the replicas connected to it).
	Close() error
}

// peerConn is a replica's connection to a syncNet.
type peerConn struct {
	Peer transport.Peer
	// WireBytes returns the bytes moved so far in both directions, as
	// they crossed the network (after compression); nil if unknown.
	WireBytes func() int64
	// Close releases the connection. May be nil.
	Close func() error
}

// benchToken is the one bearer token of the harness's hubs.
const benchToken = "bench-token"

// benchAuth grants benchToken every namespace.
type benchAuth struct{}

// Authorize implements httptransport.Authorizer.
func (benchAuth) Authorize(_ context.Context, token string) (httptransport.Grant, error) {
	if token != benchToken {
		return httptransport.Grant{}, httptransport.ErrUnauthorized
	}
	return httptransport.Grant{Namespaces: []string{">"}}, nil
}

// httpNet is an HTTP hub: a Converge replica served by
// httptransport.Server on a loopback listener (the server wakes its live
// streams on the hub's commits itself).
type httpNet struct {
	db     *converge.DB
	srv    *httptransport.Server
	http   *http.Server
	url    string
	served chan error
}

// startHTTPHub opens a hub replica in dir (no fsync) and serves it on a
// free loopback port.
func startHTTPHub(dir string) (*httpNet, error) {
	db, _, err := openConverge(dir, converge.NoSync)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	srv, err := httptransport.NewServer(httptransport.ServerOptions{Store: db.SyncStore(), Auth: benchAuth{}, Logger: quietLogger})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("hub: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("hub: listen: %w", err)
	}
	h := &httpNet{db: db, srv: srv, url: "http://" + ln.Addr().String(), served: make(chan error, 1)}
	h.http = &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { h.served <- h.http.Serve(ln) }()
	return h, nil
}

// Name implements syncNet.
func (h *httpNet) Name() string { return "HTTP hub" }

// Source implements syncNet.
func (h *httpNet) Source() *converge.DB { return h.db }

// URL is the hub's base URL.
func (h *httpNet) URL() string { return h.url }

// Connect implements syncNet: an httptransport.Client of the hub.
func (h *httpNet) Connect(_ context.Context, _ *converge.DB) (*peerConn, error) {
	return connectHTTP(h.url)
}

// connectHTTP returns a client of the hub at url, retrying quickly (the
// replicator backs off on its own).
func connectHTTP(url string) (*peerConn, error) {
	c, err := httptransport.NewClient(httptransport.ClientOptions{
		BaseURL: url, Token: benchToken, MaxRetries: -1, Logger: quietLogger,
	})
	if err != nil {
		return nil, err
	}
	return &peerConn{Peer: c, WireBytes: func() int64 {
		s := c.Stats()
		return s.BytesSent + s.BytesReceived
	}}, nil
}

// Close implements syncNet: it ends the live streams and the listener,
// and closes the hub replica.
func (h *httpNet) Close() error {
	h.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := h.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, h.http.Close())
	}
	if serr := <-h.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, h.db.Close())
}

// replica is a Converge replica replicating namespace benchNS through a
// syncNet with a Replicator.
type replica struct {
	db    *converge.DB
	tasks *converge.Collection[task]
	conn  *peerConn
	rep   *converge.Replicator
}

// connectFunc connects a replica's DB to a network (see syncNet.Connect).
type connectFunc func(ctx context.Context, db *converge.DB) (*peerConn, error)

// replicatorOptions are the harness's replicator settings: namespace
// benchNS, the given debounce, a periodic sync every minute (the
// measurements never wait for one) and a quick retry after a failed sync.
func replicatorOptions(debounce time.Duration) converge.ReplicatorOptions {
	return converge.ReplicatorOptions{
		Namespaces: []string{benchNS},
		Debounce:   debounce,
		Interval:   time.Minute,
		MinBackoff: time.Millisecond,
		MaxBackoff: 25 * time.Millisecond,
		Logger:     quietLogger,
	}
}

// openReplica opens a replica in dir (no fsync), connects it with connect
// and starts its replicator with replicatorOptions(debounce).
func openReplica(ctx context.Context, dir string, connect connectFunc, debounce time.Duration) (*replica, error) {
	return openReplicaWith(ctx, dir, connect, replicatorOptions(debounce))
}

// openReplicaWith is openReplica with the replicator's options.
func openReplicaWith(ctx context.Context, dir string, connect connectFunc, opts converge.ReplicatorOptions) (*replica, error) {
	db, tasks, err := openConverge(dir, converge.NoSync)
	if err != nil {
		return nil, err
	}
	conn, err := connect(ctx, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting a replica: %w", err)
	}
	rep, err := db.OpenReplicator(conn.Peer, opts)
	if err != nil {
		if conn.Close != nil {
			conn.Close()
		}
		db.Close()
		return nil, fmt.Errorf("replicator: %w", err)
	}
	return &replica{db: db, tasks: tasks, conn: conn, rep: rep}, nil
}

// close stops the replicator and closes the connection and the replica.
func (r *replica) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.rep.Close(ctx)
	if r.conn.Close != nil {
		err = errors.Join(err, r.conn.Close())
	}
	return errors.Join(err, r.db.Close())
}

// closeAll closes replicas, joining the errors.
func closeAll(rs []*replica) error {
	var errs []error
	for _, r := range rs {
		if r != nil {
			errs = append(errs, r.close())
		}
	}
	return errors.Join(errs...)
}

// countFrom counts the changes db commits that were written by origin (a
// replica id) on another replica, from now on: the ops of origin db has
// applied, since each op of the workloads changes one record. The count
// runs until ctx ends; stop waits for its goroutine.
func countFrom(ctx context.Context, db *converge.DB, origin string) (c *counter, stop func()) {
	c = newCounter()
	sub := db.Subscribe(benchNS)
	base := uint64(0)
	if vv, err := db.Admin().Vector(ctx, benchNS); err == nil {
		base = vv[origin]
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sub.Close()
		for {
			ch, err := sub.Next(ctx)
			switch {
			case errors.Is(err, converge.ErrLagged):
				// Changes were dropped: the vector says how many ops arrived.
				vv, verr := db.Admin().Vector(ctx, benchNS)
				if verr != nil {
					c.fail(verr)
					return
				}
				c.raise(int(vv[origin] - base))
			case err != nil:
				if ctx.Err() == nil {
					c.fail(err)
				}
				return
			case ch.Origin == origin && !ch.Local:
				c.add(1)
			}
		}
	}()
	return c, func() { cancel(); <-done }
}
