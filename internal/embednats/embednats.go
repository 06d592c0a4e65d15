// Package embednats runs NATS servers in-process on loopback, for tests,
// benchmarks and the demo: single servers, clusters, leaf nodes, and a TCP
// proxy that can cut and heal a connection (a leaf node's link to its hub,
// say) without the servers noticing anything but a broken connection.
package embednats

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ReadyTimeout bounds how long Start waits for a server to accept clients.
const ReadyTimeout = 10 * time.Second

// Options returns server options for a loopback server on a free port,
// without logging or signal handlers. Callers adjust them before Start.
func Options() *server.Options {
	return &server.Options{
		Host:   "127.0.0.1",
		Port:   server.RANDOM_PORT,
		NoLog:  true,
		NoSigs: true,
		// Leaf nodes and routes retry quickly, so heals are fast in tests.
		LeafNode: server.LeafNodeOpts{ReconnectInterval: 50 * time.Millisecond},
	}
}

// Node is a running server and the options it runs with (the server
// writes the ports it picked back into them).
type Node struct {
	*server.Server
	Opts *server.Options
	port int // the client port it listened on
}

// Start starts a server with opts and waits until it accepts clients.
func Start(opts *server.Options) (*Node, error) {
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embednats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(ReadyTimeout) {
		s.Shutdown()
		return nil, errors.New("embednats: server not ready for connections")
	}
	return &Node{Server: s, Opts: opts, port: s.Addr().(*net.TCPAddr).Port}, nil
}

// Run starts a single loopback server with default options.
func Run() (*Node, error) { return Start(Options()) }

// Stop shuts the server down and waits until it has.
func (n *Node) Stop() {
	n.Shutdown()
	n.WaitForShutdown()
}

// LeafURL is the URL leaf nodes use to connect to n (which must accept
// leaf connections).
func (n *Node) LeafURL() *url.URL {
	return &url.URL{Scheme: "nats-leaf", Host: net.JoinHostPort(n.Opts.LeafNode.Host, fmt.Sprint(n.Opts.LeafNode.Port))}
}

// Restart starts a new server on the same ports and options (after Stop):
// clients reconnect to it.
func (n *Node) Restart() (*Node, error) {
	o := n.Opts.Clone()
	o.Port = n.port
	return Start(o)
}

// Cluster starts n servers routed to each other in a cluster named name,
// each also accepting leaf node connections on a free loopback port. It
// waits until every server has a route to every other.
func Cluster(name string, n int) ([]*Node, error) {
	var servers []*Node
	fail := func(err error) ([]*Node, error) {
		for _, s := range servers {
			s.Stop()
		}
		return nil, err
	}
	var routes []*url.URL
	for i := range n {
		o := Options()
		o.ServerName = fmt.Sprintf("%s-%d", name, i)
		o.Cluster = server.ClusterOpts{Name: name, Host: "127.0.0.1", Port: server.RANDOM_PORT}
		o.Routes = routes
		o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", server.RANDOM_PORT
		s, err := Start(o)
		if err != nil {
			return fail(err)
		}
		servers = append(servers, s)
		routes = append(routes, &url.URL{Scheme: "nats", Host: s.ClusterAddr().String()})
	}
	deadline := time.Now().Add(ReadyTimeout)
	for _, s := range servers {
		for s.NumRoutes() < n-1 {
			if time.Now().After(deadline) {
				return fail(fmt.Errorf("embednats: cluster %s: server %s has %d routes of %d", name, s.Name(), s.NumRoutes(), n-1))
			}
			time.Sleep(5 * time.Millisecond) // polling a condition, not synchronizing by time
		}
	}
	return servers, nil
}

// Leaf starts a server that connects as a leaf node to the hub URLs (see
// Node.LeafURL, or a Proxy's URL).
func Leaf(name string, hubs ...*url.URL) (*Node, error) {
	o := Options()
	o.ServerName = name
	// Only the given URLs: hubs advertise their own leaf addresses, and a
	// leaf that learned them would reconnect around a cut Proxy.
	o.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: hubs, IgnoreDiscoveredServers: true}}
	return Start(o)
}

// WaitLeafNodes waits until s has at least n leaf node connections.
func WaitLeafNodes(s *Node, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for s.NumLeafNodes() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("embednats: %s has %d leaf nodes, want %d", s.Name(), s.NumLeafNodes(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
	return nil
}

// WaitNoLeafNodes waits until s has no leaf node connection (after its
// link was cut, say).
func WaitNoLeafNodes(s *Node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for s.NumLeafNodes() > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("embednats: %s still has %d leaf nodes", s.Name(), s.NumLeafNodes())
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
	return nil
}

// Proxy forwards TCP connections from a loopback port to a target address.
// Cut closes every connection and refuses new ones until Heal: a network
// partition of one link.
type Proxy struct {
	target string
	ln     net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embednats: proxy: %w", err)
	}
	p := &Proxy{target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's listening address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's address as a URL with the given scheme.
func (p *Proxy) URL(scheme string) *url.URL { return &url.URL{Scheme: scheme, Host: p.Addr()} }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Go(func() { pipe(up, c) })
		p.wg.Go(func() { pipe(c, up) })
	}
}

// Cut closes every forwarded connection and refuses new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Heal accepts connections again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() error {
	p.Cut()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}
