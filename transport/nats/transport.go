package natstransport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrEcho: the connection would deliver the transport's own messages
	// back to it (it was made without nats.NoEcho).
	ErrEcho = errors.New("natstransport: the connection needs nats.NoEcho")
	// ErrTooLarge: a message would exceed the server's max_payload.
	ErrTooLarge = errors.New("natstransport: message exceeds the server's max payload")
	// ErrNoStore: serving needs a store.
	ErrNoStore = errors.New("natstransport: no store to serve")
	// ErrStreaming: the namespace is already streamed by this transport.
	ErrStreaming = errors.New("natstransport: namespace already streamed")
	// ErrClosed: the transport was closed.
	ErrClosed = errors.New("natstransport: closed")
	// ErrNotConnected is reported by [Transport.Health] while the
	// connection is not up: a transport made by [Connect] before any
	// server was reachable, or one reconnecting.
	ErrNotConnected = errors.New("natstransport: not connected to a server")
)

// defaultMaxPayload is the max payload assumed before the connection has
// learned the server's (the NATS default).
const defaultMaxPayload = 1 << 20

// RemoteError is a refusal from the replica that answered a request.
type RemoteError struct{ Reason string }

func (e *RemoteError) Error() string { return "natstransport: peer refused: " + e.Reason }

// Message headers.
const (
	hdrFrom   = "Converge-From"   // the sending transport's id
	hdrOrigin = "Converge-Origin" // the publishing replica's id (live batches)
	hdrError  = "Converge-Error"  // a responder's refusal
	// hdrRequestID carries a request's id (transport.WithRequestID on
	// the requester's context); the responder logs it.
	hdrRequestID = "Converge-Request-Id"
)

// Options configure a [Transport]. Zero fields get the defaults.
type Options struct {
	// Store is the local replica: it answers other replicas' requests, and
	// while a namespace streams, its own ops are published live as it
	// commits them (the transport hears of them through the store's
	// OnCommit). Nil makes a client that only requests (RoundTrip) and
	// receives (Stream).
	Store transport.Store
	// Prefix is the first subject tokens. Default "converge".
	Prefix string
	// QueueGroup of the responders. Default "converge".
	QueueGroup string
	// RequestTimeout bounds one request when the caller's context has no
	// deadline, and the work of answering one. Default 5s.
	RequestTimeout time.Duration
	// Heartbeat is the interval of vector announcements while streaming;
	// negative disables them. Default 5s.
	Heartbeat time.Duration
	// Limits bound the pages this transport serves and publishes; they are
	// further capped by the server's max payload.
	Limits transport.Limits
	// Logger receives dropped messages and errors. Default slog.Default().
	Logger *slog.Logger
	// OnRoundTrip, if set, is called after every anti-entropy round trip
	// of RoundTrip (not the live path's fetches) with its namespace, how
	// long it took and its error, for metrics. It must not block.
	OnRoundTrip func(ns string, took time.Duration, err error)
}

// Stats count what a transport did. Every field only grows.
type Stats struct {
	Requests int64 // requests sent (anti-entropy rounds and snapshot pages)
	Served   int64 // anti-entropy requests answered
	// SnapshotPages counts the snapshot pages answered.
	SnapshotPages int64
	// Bootstraps counts the snapshot bootstraps the live path ran: a
	// targeted fetch answered that this replica is below the publisher's
	// compaction horizon, so it synced with the publisher, snapshot first.
	Bootstraps   int64
	Published    int64 // live batches published (heartbeats included)
	PublishedOps int64
	Received     int64 // live batches received
	ReceivedOps  int64
	Fetches      int64 // targeted fetches after a gap or an announcement
	Malformed    int64 // messages on our subjects dropped as malformed
	Denied       int64 // permission violations reported by the server
	Reconnects   int64
	BytesOut     int64 // payload bytes published or sent as requests and replies
	BytesIn      int64 // payload bytes received
}

type counters struct {
	requests, served, published, publishedOps, received, receivedOps atomic.Int64
	fetches, malformed, denied, reconnects, bytesOut, bytesIn        atomic.Int64
	snapshotPages, bootstraps                                        atomic.Int64
}

// Transport is one replica's attachment to a NATS system: a
// [transport.Peer] with every ability (snapshots, page limits within the
// server's max payload, a health check, and a live path that streams,
// publishes the store's commits and reports reconnections). It is safe
// for concurrent use.
type Transport struct {
	nc      *nats.Conn
	owned   bool
	store   transport.Store
	self    crdt.ReplicaID
	hasSelf bool
	opts    Options
	id      string
	log     *slog.Logger
	c       counters
	// startedOffline: Connect returned before the first connection; the
	// first one is then announced as a reconnection is.
	startedOffline bool

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		pinned    map[string]string // ns -> id of the responder that last answered
		streams   map[string]*stream
		listeners map[int]func()
		nextL     int
		lastErr   error     // the last asynchronous error (permissions, slow consumer)
		denied    error     // the last permission violation
		deniedAt  time.Time // and when the server reported it
		closed    bool
	}
}

// Connect dials url with natsOpts (credentials, TLS, ...) plus the options
// the transport needs, and returns a transport that owns the connection.
//
// It does not wait for a server: when none is reachable (an edge device
// booting offline) it returns a transport whose connection keeps trying
// in the background, every 250ms unless natsOpts set nats.ReconnectWait
// (nats.RetryOnFailedConnect(false) makes it fail instead). Until it
// connects, Health reports ErrNotConnected, round trips fail, and what is
// published waits in the connection's buffer; once it connects, the
// transport tells its OnReconnect listeners (the converge replicator
// syncs every namespace) and its streams announce themselves. A server
// that answers but refuses the connection (a wrong credential) is an
// error, as are bad options.
func Connect(url string, opts Options, natsOpts ...nats.Option) (*Transport, error) {
	// A silent error handler first: nats.go's default prints to stderr;
	// the transport logs server errors itself, and the caller's handler,
	// if any, replaces this one and is chained.
	silent := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
	defaults := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), silent}
	// What the caller's options say of retrying and of connect handlers.
	given := nats.GetDefaultOptions()
	given.RetryOnFailedConnect = true
	for _, o := range natsOpts {
		if o != nil {
			_ = o(&given) // an option's error surfaces from nats.Connect below
		}
	}
	var made atomic.Pointer[Transport]
	connected := nats.ConnectHandler(func(nc *nats.Conn) {
		if t := made.Load(); t != nil && t.startedOffline {
			t.up(false)
		}
		if given.ConnectedCB != nil {
			given.ConnectedCB(nc)
		}
	})
	all := append(append(defaults, natsOpts...), connected, nats.NoEcho())
	// Dial once: a server that refuses us fails here. Only when no server
	// answers does the connection go on trying in the background.
	nc, err := nats.Connect(url, append(all, nats.RetryOnFailedConnect(false))...)
	offline := errors.Is(err, nats.ErrNoServers) && given.RetryOnFailedConnect
	if offline {
		nc, err = nats.Connect(url, append(all, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		return nil, fmt.Errorf("natstransport: connect %s: %w", url, err)
	}
	t, err := New(nc, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	t.owned = true
	if offline && !nc.IsConnected() {
		t.startedOffline = true
		t.log.Info("no server reachable yet: connecting in the background", "url", url)
	}
	made.Store(t)
	return t, nil
}

// New returns a transport on nc, which must have been made with
// nats.NoEcho. It chains nc's reconnect and async error handlers. Close
// does not close nc.
func New(nc *nats.Conn, opts Options) (*Transport, error) {
	if !nc.Opts.NoEcho {
		return nil, ErrEcho
	}
	if opts.Prefix == "" {
		opts.Prefix = "converge"
	}
	if err := checkPrefix(opts.Prefix); err != nil {
		return nil, err
	}
	if opts.QueueGroup == "" {
		opts.QueueGroup = "converge"
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	t := &Transport{nc: nc, store: opts.Store, opts: opts, id: nuid.Next()}
	t.log = opts.Logger.With("component", "natstransport", "transport", t.id)
	if opts.Store != nil {
		t.self = opts.Store.Self()
		t.hasSelf = !t.self.IsZero()
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mu.pinned = make(map[string]string)
	t.mu.streams = make(map[string]*stream)
	t.mu.listeners = make(map[int]func())

	prevReconnect, prevAsync := nc.Opts.ReconnectedCB, nc.Opts.AsyncErrorCB
	nc.SetReconnectHandler(func(nc *nats.Conn) {
		t.up(true)
		if prevReconnect != nil {
			prevReconnect(nc)
		}
	})
	nc.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		t.asyncError(sub, err)
		if prevAsync != nil {
			prevAsync(nc, sub, err)
		}
	})
	return t, nil
}

// ID is the transport's id on the bus (the last token of its direct
// subject). It is new for every transport.
func (t *Transport) ID() string { return t.id }

// Conn is the transport's connection.
func (t *Transport) Conn() *nats.Conn { return t.nc }

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	c := &t.c
	return Stats{
		Requests: c.requests.Load(), Served: c.served.Load(),
		SnapshotPages: c.snapshotPages.Load(), Bootstraps: c.bootstraps.Load(),
		Published: c.published.Load(), PublishedOps: c.publishedOps.Load(),
		Received: c.received.Load(), ReceivedOps: c.receivedOps.Load(),
		Fetches: c.fetches.Load(), Malformed: c.malformed.Load(), Denied: c.denied.Load(),
		Reconnects: c.reconnects.Load(), BytesOut: c.bytesOut.Load(), BytesIn: c.bytesIn.Load(),
	}
}

// maxPayload is the server's max payload, or the NATS default before the
// connection has learned it.
func (t *Transport) maxPayload() int {
	if n := t.nc.MaxPayload(); n > 0 {
		return int(n)
	}
	return defaultMaxPayload
}

// PageLimits bounds the pages of a sync so that its messages fit the
// server's max payload, with room for the vector.
func (t *Transport) PageLimits() transport.Limits {
	lim := t.opts.Limits
	mp := t.maxPayload()
	room := max(mp-mp/8-4096, 1024)
	if lim.MaxBytes <= 0 || lim.MaxBytes > room {
		lim.MaxBytes = room
	}
	return lim
}

// Live implements [transport.Peer]: the transport itself is its live
// path ([Transport.Stream], [Transport.PublishesCommits],
// [Transport.OnReconnect]).
func (t *Transport) Live() transport.Live { return t }

// PublishesCommits implements [transport.Live]: with a store of a replica
// of its own, a stream publishes the store's commits as they happen.
func (t *Transport) PublishesCommits() bool { return t.store != nil && t.hasSelf }

// OnReconnect registers fn to run after every reconnection to the
// server; the replicator uses it to run anti-entropy. The returned func
// unregisters it.
func (t *Transport) OnReconnect(fn func()) (stop func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.mu.nextL
	t.mu.nextL++
	t.mu.listeners[k] = fn
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.mu.listeners, k)
	}
}

// up runs when the connection comes up: after a reconnection, or the
// first connection of a transport that started offline. It tells the
// OnReconnect listeners and has every stream announce itself.
func (t *Transport) up(reconnected bool) {
	if reconnected {
		t.c.reconnects.Add(1)
		t.log.Info("reconnected", "server", t.nc.ConnectedUrlRedacted())
	} else {
		t.log.Info("connected", "server", t.nc.ConnectedUrlRedacted())
	}
	t.mu.Lock()
	fns := make([]func(), 0, len(t.mu.listeners))
	for _, fn := range t.mu.listeners {
		fns = append(fns, fn)
	}
	for _, st := range t.mu.streams {
		st.kick(st.announce) // others may have missed our ops while we were away
	}
	t.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// asyncError records errors the server reports asynchronously. A
// permission violation on one of a stream's subscriptions ends that
// stream.
func (t *Transport) asyncError(sub *nats.Subscription, err error) {
	t.mu.Lock()
	t.mu.lastErr = err
	var hit []*stream
	if errors.Is(err, nats.ErrPermissionViolation) {
		t.c.denied.Add(1)
		t.mu.denied, t.mu.deniedAt = err, time.Now()
		msg := err.Error()
		for _, st := range t.mu.streams {
			for _, s := range []string{st.subj.ops, st.subj.sync, st.subj.direct(t.id)} {
				if strings.Contains(msg, "Subscription to \""+s+"\"") {
					hit = append(hit, st)
					break
				}
			}
		}
	}
	t.mu.Unlock()
	t.log.Warn("server reported an error", "err", err)
	for _, st := range hit {
		select {
		case st.denied <- err:
		default:
		}
	}
}

// deniedHealthWindow is how long a permission violation makes Health fail.
const deniedHealthWindow = time.Minute

// Health reports whether the connection is up (else an error wrapping
// ErrNotConnected) and answers a round trip to the server, and a
// permission violation the server reported in the last minute.
func (t *Transport) Health(ctx context.Context) error {
	if st := t.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w (connection %s)", ErrNotConnected, st)
	}
	ctx, cancel := t.withTimeout(ctx)
	defer cancel()
	if err := t.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("natstransport: health: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.denied != nil && time.Since(t.mu.deniedAt) < deniedHealthWindow {
		return fmt.Errorf("natstransport: %w", t.mu.denied)
	}
	return nil
}

// Close stops every stream and subscription, and closes the connection
// if Connect made it.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil
	}
	t.mu.closed = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	if t.owned {
		t.nc.Close()
	}
	return nil
}

func (t *Transport) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, t.opts.RequestTimeout)
}

// RoundTrip sends one anti-entropy round of req.Namespace: to the
// transport that answered the last one while it answers, else to the
// queue group.
func (t *Transport) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	start := time.Now()
	var resp *transport.Response
	err := t.ask(ctx, req.Namespace, transport.AppendRequest(nil, req), func(b []byte) (err error) {
		resp, err = transport.DecodeResponse(b)
		return err
	})
	if t.opts.OnRoundTrip != nil {
		t.opts.OnRoundTrip(req.Namespace, time.Since(start), err)
	}
	return resp, err
}

// Snapshot implements [transport.Peer]: it asks for one snapshot
// page of req.Namespace as RoundTrip asks for a round, with the page's
// bytes capped by PageLimits so that it fits the max payload. The pages of
// one snapshot may come from different responders; transport.Sync takes
// care of that.
func (t *Transport) Snapshot(ctx context.Context, req *transport.SnapshotRequest) (*transport.SnapshotResponse, error) {
	r := *req
	pl := t.PageLimits()
	if r.Limits.MaxBytes <= 0 || r.Limits.MaxBytes > pl.MaxBytes {
		r.Limits.MaxBytes = pl.MaxBytes
	}
	if pl.MaxOps > 0 && (r.Limits.MaxOps <= 0 || r.Limits.MaxOps > pl.MaxOps) {
		r.Limits.MaxOps = pl.MaxOps
	}
	var resp *transport.SnapshotResponse
	err := t.ask(ctx, r.Namespace, transport.AppendSnapshotRequest(nil, &r), func(b []byte) (err error) {
		resp, err = transport.DecodeSnapshotResponse(b)
		return err
	})
	return resp, err
}

// ask sends an encoded request of ns to the transport that answered the
// last one while it answers, else to the queue group, and passes the
// answer to decode.
func (t *Transport) ask(ctx context.Context, ns string, data []byte, decode func([]byte) error) error {
	subj, err := subjectsFor(t.opts.Prefix, ns)
	if err != nil {
		return err
	}
	if len(data) > t.maxPayload() {
		return fmt.Errorf("natstransport: request of %d bytes: %w", len(data), ErrTooLarge)
	}
	t.mu.Lock()
	pinned := t.mu.pinned[ns]
	t.mu.Unlock()
	if pinned != "" {
		_, err := t.request(ctx, subj.direct(pinned), data, decode)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		var remote *RemoteError
		if errors.As(err, &remote) {
			return err
		}
		t.log.Debug("pinned peer did not answer; asking the group", "ns", ns, "peer", pinned, "err", err)
		t.mu.Lock()
		delete(t.mu.pinned, ns)
		t.mu.Unlock()
	}
	from, err := t.request(ctx, subj.sync, data, decode)
	if err != nil {
		return err
	}
	if validID(from) {
		t.mu.Lock()
		t.mu.pinned[ns] = from
		t.mu.Unlock()
	}
	return nil
}

// roundTrip sends one anti-entropy request to subject and decodes the
// answer.
func (t *Transport) roundTrip(ctx context.Context, subject string, req *transport.Request) (*transport.Response, error) {
	var resp *transport.Response
	_, err := t.request(ctx, subject, transport.AppendRequest(nil, req), func(b []byte) (err error) {
		resp, err = transport.DecodeResponse(b)
		return err
	})
	return resp, err
}

// request sends one encoded request and passes the answer to decode. It
// returns the id of the transport that answered.
func (t *Transport) request(ctx context.Context, subject string, data []byte, decode func([]byte) error) (string, error) {
	ctx, cancel := t.withTimeout(ctx)
	defer cancel()
	m := nats.NewMsg(subject)
	m.Header.Set(hdrFrom, t.id)
	if id := transport.RequestID(ctx); id != "" {
		m.Header.Set(hdrRequestID, id)
	}
	m.Data = data
	t.c.requests.Add(1)
	t.c.bytesOut.Add(int64(len(data)))
	reply, err := t.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return "", fmt.Errorf("natstransport: request %s: %w", subject, err)
	}
	t.c.bytesIn.Add(int64(len(reply.Data)))
	from := reply.Header.Get(hdrFrom)
	if reason := reply.Header.Get(hdrError); reason != "" {
		return from, fmt.Errorf("natstransport: request %s: %w", subject, &RemoteError{Reason: reason})
	}
	if err := decode(reply.Data); err != nil {
		t.c.malformed.Add(1)
		return from, fmt.Errorf("natstransport: reply to %s: %w", subject, err)
	}
	return from, nil
}

// validID reports whether s can be a transport id (a nuid: 22 base-62
// characters), so it is safe as a subject token.
func validID(s string) bool {
	if len(s) != 22 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
