package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// demoNet is the network the demo's replicas replicate over. Replica 0 is
// the one that gets cut off: its link can be cut and healed.
type demoNet interface {
	// describe returns lines telling the topology.
	describe(names []string) []string
	// connect returns replica i's peer for its replicator, and a func that
	// closes it.
	connect(i int, name string, db *converge.DB) (transport.Peer, func() error, error)
	// hub is the relay replica, if the network has one.
	hub() *converge.DB
	// cut cuts replica 0's link: once it returns, nothing crosses it.
	cut()
	// heal restores the link and waits until it is up.
	heal() error
	cutStory(name string) string
	healStory(name string) string
	// stats describes what replica i's transport did.
	stats(i int) string
	// joiner returns a peer for a replica that joins late, through the
	// hub, and a func that closes it.
	joiner(name string, db *converge.DB) (transport.Peer, func() error, error)
	close() error
}

// natsNet is an in-process NATS server (the hub) and, for replica 0, a
// server of its own (its site), a leaf node of the hub linked through a
// TCP proxy that can cut the link. The others connect to the hub.
type natsNet struct {
	hubSrv, edge *embednats.Node
	link         *embednats.Proxy
	logger       *slog.Logger

	mu  sync.Mutex
	trs map[int]*natstransport.Transport
}

// demoHeartbeat is the NATS transports' vector announcement interval:
// after the heal, the announcements show each side what it lacks.
const demoHeartbeat = 200 * time.Millisecond

func startNATSNet(names []string, logger *slog.Logger) (_ *natsNet, err error) {
	n := &natsNet{logger: logger, trs: map[int]*natstransport.Transport{}}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	o := embednats.Options()
	o.ServerName = "hub"
	o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", server.RANDOM_PORT
	if n.hubSrv, err = embednats.Start(o); err != nil {
		return nil, err
	}
	if n.link, err = embednats.NewProxy(n.hubSrv.LeafURL().Host); err != nil {
		return nil, err
	}
	if n.edge, err = embednats.Leaf(names[0]+"-site", n.link.URL("nats-leaf")); err != nil {
		return nil, err
	}
	if err := embednats.WaitLeafNodes(n.hubSrv, 1, demoBound); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *natsNet) describe(names []string) []string {
	return []string{
		fmt.Sprintf("They replicate over NATS: an in-process NATS server on %s is the hub, and %s connect to it;", n.hubSrv.ClientURL(), joinNames(names[1:])),
		fmt.Sprintf("%s's site runs its own NATS server (%s), a leaf node of the hub, over a link the demo can cut.", names[0], n.edge.ClientURL()),
		"Each replica publishes its writes live, answers the others' anti-entropy requests and fetches what it misses.",
	}
}

func (n *natsNet) connect(i int, name string, db *converge.DB) (transport.Peer, func() error, error) {
	url := n.hubSrv.ClientURL()
	if i == 0 {
		url = n.edge.ClientURL()
	}
	tr, err := natstransport.Connect(url, natstransport.Options{Store: db.SyncStore(), Heartbeat: demoHeartbeat, Logger: n.logger.With("replica", name)}, nats.Name(name))
	if err != nil {
		return nil, nil, err
	}
	n.mu.Lock()
	n.trs[i] = tr
	n.mu.Unlock()
	return tr, tr.Close, nil
}

func (n *natsNet) hub() *converge.DB { return nil }

func (n *natsNet) joiner(name string, db *converge.DB) (transport.Peer, func() error, error) {
	tr, err := natstransport.Connect(n.hubSrv.ClientURL(), natstransport.Options{Store: db.SyncStore(), Logger: n.logger.With("replica", name)}, nats.Name(name))
	if err != nil {
		return nil, nil, err
	}
	return tr, tr.Close, nil
}

func (n *natsNet) cut() { n.link.Cut() }

func (n *natsNet) heal() error {
	n.link.Heal()
	return embednats.WaitLeafNodes(n.edge, 1, demoBound)
}

func (n *natsNet) cutStory(name string) string {
	return fmt.Sprintf("The link between %s's site and the hub is cut:", name)
}

func (n *natsNet) healStory(name string) string {
	return fmt.Sprintf("The link heals: %s's site rejoins the hub. The replicas' vector announcements show\n"+
		"   each side what it lacks and they fetch it from each other; %s's replicator, which found\n"+
		"   no peer to sync with while apart, retries and its anti-entropy sync confirms the rest.", name, name)
}

func (n *natsNet) stats(i int) string {
	n.mu.Lock()
	tr := n.trs[i]
	n.mu.Unlock()
	if tr == nil {
		return "-"
	}
	s := tr.Stats()
	return fmt.Sprintf("published %d ops live (%d messages with heartbeats), received %d ops live, %d targeted fetches, %d anti-entropy requests sent, %d served",
		s.PublishedOps, s.Published, s.ReceivedOps, s.Fetches, s.Requests, s.Served)
}

func (n *natsNet) close() error {
	if n.edge != nil {
		n.edge.Stop()
	}
	var err error
	if n.link != nil {
		err = n.link.Close()
	}
	if n.hubSrv != nil {
		n.hubSrv.Stop()
	}
	return err
}

func joinNames(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	s := ""
	for i, n := range names[:len(names)-1] {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s + " and " + names[len(names)-1]
}

// demoToken is the bearer token of the demo's HTTP hub.
const demoToken = "demo-token"

// demoAuth grants demoToken the demo's namespace.
type demoAuth struct{}

func (demoAuth) Authorize(_ context.Context, token string) (httptransport.Grant, error) {
	if token != demoToken {
		return httptransport.Grant{}, httptransport.ErrUnauthorized
	}
	return httptransport.Grant{Namespaces: []string{demoNS}}, nil
}

// httpNet is an in-process hub: a replica of its own behind the HTTP
// transport's server on loopback (which wakes its live streams on the
// hub's commits itself).
// Replica 0 reaches it through a TCP proxy that can cut the link.
type httpNet struct {
	db     *converge.DB
	srv    *httptransport.Server
	hs     *http.Server
	url    string
	link   *embednats.Proxy
	logger *slog.Logger
	wg     sync.WaitGroup

	mu      sync.Mutex
	clients map[int]*httptransport.Client
}

func startHTTPNet(dir string, opts converge.Options, logger *slog.Logger) (_ *httpNet, err error) {
	n := &httpNet{logger: logger, clients: map[int]*httptransport.Client{}}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	opts.Logger = logger.With("replica", "hub")
	if n.db, err = converge.Open(dir, opts); err != nil {
		return nil, err
	}
	if n.srv, err = httptransport.NewServer(httptransport.ServerOptions{Store: n.db.SyncStore(), Auth: demoAuth{}, Logger: opts.Logger}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n.url = "http://" + ln.Addr().String()
	n.hs = &http.Server{Handler: n.srv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	n.hs.RegisterOnShutdown(n.srv.Close)   // ends the live streams
	n.wg.Go(func() { _ = n.hs.Serve(ln) }) // ErrServerClosed after Shutdown
	if n.link, err = embednats.NewProxy(ln.Addr().String()); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *httpNet) describe(names []string) []string {
	return []string{
		fmt.Sprintf("They replicate over HTTP through an in-process hub on %s: a replica of its own that", n.url),
		fmt.Sprintf("relays, serving the sync protocol and live streams; %s reach it directly,", joinNames(names[1:])),
		fmt.Sprintf("%s over a link the demo can cut.", names[0]),
	}
}

func (n *httpNet) connect(i int, name string, db *converge.DB) (transport.Peer, func() error, error) {
	url := n.url
	if i == 0 {
		url = "http://" + n.link.Addr()
	}
	c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: url, Token: demoToken,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: n.logger.With("replica", name)})
	if err != nil {
		return nil, nil, err
	}
	n.mu.Lock()
	n.clients[i] = c
	n.mu.Unlock()
	return c, func() error { return nil }, nil
}

func (n *httpNet) hub() *converge.DB { return n.db }

func (n *httpNet) joiner(name string, db *converge.DB) (transport.Peer, func() error, error) {
	c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: n.url, Token: demoToken, Logger: n.logger.With("replica", name)})
	if err != nil {
		return nil, nil, err
	}
	return c, func() error { return nil }, nil
}

func (n *httpNet) cut() { n.link.Cut() }

func (n *httpNet) heal() error { n.link.Heal(); return nil }

func (n *httpNet) cutStory(name string) string {
	return fmt.Sprintf("%s's link to the hub is cut:", name)
}

func (n *httpNet) healStory(name string) string {
	return fmt.Sprintf("The link heals: %s's replicator, retrying with backoff, gets through. Its anti-entropy\n"+
		"   sync sends her queued writes to the hub and fetches what she missed; the hub's live\n"+
		"   streams push her writes to the others.", name)
}

func (n *httpNet) stats(i int) string {
	n.mu.Lock()
	c := n.clients[i]
	n.mu.Unlock()
	if c == nil {
		return "-"
	}
	s := c.Stats()
	return fmt.Sprintf("%d HTTP requests (%d retries), %d bytes sent, %d received", s.Requests, s.Retries, s.BytesSent, s.BytesReceived)
}

func (n *httpNet) close() error {
	var err error
	if n.hs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), demoBound)
		err = n.hs.Shutdown(ctx)
		cancel()
	}
	n.wg.Wait()
	if n.link != nil {
		err = errors.Join(err, n.link.Close())
	}
	if n.db != nil {
		err = errors.Join(err, n.db.Close())
	}
	return err
}
