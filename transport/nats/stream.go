package natstransport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

// stream is the state of one streamed namespace.
type stream struct {
	ns        string
	subj      subjects
	publish   chan struct{} // a local commit: publish new own ops
	announce  chan struct{} // announce the vector now
	denied    chan error    // a permission violation on our subscriptions
	published uint64        // the highest own seq published
	fetchBack time.Time     // no targeted fetch before this (after a failed one)
}

func (st *stream) kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// fetchRounds bounds one targeted fetch.
const fetchRounds = 1000

// Stream runs ns on the bus until ctx ends (nil) or the connection closes
// or the server denies a subscription (an error): it answers other
// replicas' requests, publishes this replica's ops as the store commits
// them (its OnCommit), announces its vector every Heartbeat, and passes
// the ops others publish to apply, fetching from the publisher when what
// it announces is ahead of have(). It implements [transport.Live].
func (t *Transport) Stream(ctx context.Context, ns string, have func() crdt.VersionVector, apply func(ops [][]byte) error) error {
	subj, err := subjectsFor(t.opts.Prefix, ns)
	if err != nil {
		return err
	}
	st := &stream{ns: ns, subj: subj, publish: make(chan struct{}, 1), announce: make(chan struct{}, 1), denied: make(chan error, 1)}
	unregister, err := t.register(st)
	if err != nil {
		return err
	}
	defer unregister()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()

	msgs, unsubscribe, err := t.subscribeStream(ctx, st)
	if err != nil {
		return err
	}
	defer unsubscribe()
	// Offline, the subscriptions are sent when the connection comes up,
	// before anything published meanwhile.
	if t.nc.IsConnected() {
		if err := t.flush(ctx); err != nil {
			return ctx0(ctx, fmt.Errorf("natstransport: stream %q: %w", ns, err))
		}
	}
	stopPublishing, err := t.publishCommits(ctx, st)
	if err != nil {
		return ctx0(ctx, err)
	}
	defer stopPublishing()
	t.log.Debug("streaming", "ns", ns)
	return t.runStream(ctx, st, msgs, have, apply)
}

// register makes st the stream of its namespace, unless the transport is
// closed or streams the namespace already. unregister undoes it.
func (t *Transport) register(st *stream) (unregister func(), err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return nil, ErrClosed
	}
	if _, dup := t.mu.streams[st.ns]; dup {
		return nil, fmt.Errorf("%w: %q", ErrStreaming, st.ns)
	}
	t.mu.streams[st.ns] = st
	return func() {
		t.mu.Lock()
		delete(t.mu.streams, st.ns)
		t.mu.Unlock()
	}, nil
}

// subscribeStream subscribes to the live subject of st, whose messages
// come on msgs until ctx ends, and, with a store, serves the namespace's
// requests. unsubscribe ends both.
func (t *Transport) subscribeStream(ctx context.Context, st *stream) (msgs <-chan *nats.Msg, unsubscribe func(), err error) {
	sv := &subscription{}
	if t.store != nil {
		if sv, err = t.subscribeServe(st.ns, st.subj); err != nil {
			return nil, nil, err
		}
	}
	unsubscribe = func() { _ = t.unsubscribe(sv) }
	ch := make(chan *nats.Msg)
	live, err := t.nc.Subscribe(st.subj.ops, func(m *nats.Msg) {
		// Messages wait in the subscription's pending queue while the
		// stream is busy; if it overflows the server calls us a slow
		// consumer, and the gaps are fetched later.
		select {
		case ch <- m:
		case <-ctx.Done():
		}
	})
	if err != nil {
		unsubscribe()
		return nil, nil, fmt.Errorf("natstransport: stream %q: %w", st.ns, err)
	}
	sv.subs = append(sv.subs, live)
	return ch, unsubscribe, nil
}

// runStream handles the events of st until ctx ends (nil), the server
// denies a subscription or the connection closes (errors): live messages
// (applied, with a fetch from their publisher when they show a gap),
// local commits (published), and the heartbeat (an announcement of the
// vector).
func (t *Transport) runStream(ctx context.Context, st *stream, msgs <-chan *nats.Msg, have func() crdt.VersionVector, apply func(ops [][]byte) error) error {
	var heartbeat <-chan time.Time
	if t.opts.Heartbeat > 0 {
		tick := time.NewTicker(t.opts.Heartbeat)
		defer tick.Stop()
		heartbeat = tick.C
	}
	st.kick(st.announce)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-st.denied:
			return fmt.Errorf("natstransport: stream %q: %w", st.ns, err)
		case m := <-msgs:
			if err := t.receive(ctx, st, m, have, apply); err != nil {
				return ctx0(ctx, err)
			}
		case <-st.publish:
			if err := t.publishOwn(ctx, st); err != nil {
				t.log.Warn("publish failed", "ns", st.ns, "err", err)
			}
		case <-heartbeat:
			st.kick(st.announce)
		case <-st.announce:
			if err := t.announce(ctx, st); err != nil {
				t.log.Debug("announce failed", "ns", st.ns, "err", err)
			}
		}
		if t.nc.IsClosed() {
			return fmt.Errorf("natstransport: stream %q: %w", st.ns, nats.ErrConnectionClosed)
		}
	}
}

// publishCommits makes st publish the store's own ops as it commits them
// (through its OnCommit), from those it holds now on. stop ends it.
func (t *Transport) publishCommits(ctx context.Context, st *stream) (stop func(), err error) {
	if !t.PublishesCommits() {
		return func() {}, nil
	}
	// Registered before the vector is read: no commit is missed.
	stop = t.store.OnCommit(func(ns string) {
		if ns == st.ns {
			st.kick(st.publish)
		}
	})
	vv, err := t.store.Vector(ctx, st.ns)
	if err != nil {
		stop()
		return nil, fmt.Errorf("natstransport: stream %q: %w", st.ns, err)
	}
	st.published = vv[t.self]
	return stop, nil
}

// ctx0 turns an error caused by ctx ending into nil.
func ctx0(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (t *Transport) flush(ctx context.Context) error {
	ctx, cancel := t.withTimeout(ctx)
	defer cancel()
	return t.nc.FlushWithContext(ctx)
}

// publishOwn publishes the replica's own ops beyond st.published, in
// batches that fit the server's max payload, each with the current vector.
func (t *Transport) publishOwn(ctx context.Context, st *stream) error {
	if !t.hasSelf || t.store == nil {
		return nil
	}
	vv, err := t.store.Vector(ctx, st.ns)
	if err != nil {
		return err
	}
	if vv[t.self] <= st.published {
		return nil
	}
	have := vv.Clone()
	have[t.self] = st.published
	lim := t.PageLimits()
	for {
		ops, more, err := t.store.Missing(ctx, st.ns, have, lim)
		if errors.Is(err, transport.ErrSnapshotNeeded) {
			// Compacted: every known peer holds them. Receivers that lack
			// some see it in the announcements, and fetch or bootstrap.
			t.log.Debug("own ops compacted before they were published; skipping them", "ns", st.ns, "from", st.published+1, "to", vv[t.self])
			st.published = vv[t.self]
			return nil
		}
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			return nil
		}
		last := st.published
		for _, b := range ops {
			op, err := crdt.DecodeOpUnchecked(b) // our own, validated when written: only the dot is wanted
			if err != nil {
				return fmt.Errorf("natstransport: publish %q: own op: %w", st.ns, err)
			}
			if op.Dot.Origin == t.self && op.Dot.Seq > last {
				last = op.Dot.Seq
			}
		}
		// The batch's vector says what a receiver holds after applying it
		// in order: a receiver below it on our origin missed something.
		bv := vv.Clone()
		bv[t.self] = last
		if err := t.publishBatch(st, bv, ops); err != nil {
			return err
		}
		progress := last > st.published
		st.published = last
		have[t.self] = last
		if !more || !progress || last >= vv[t.self] {
			return nil
		}
	}
}

// announce publishes the vector with no ops.
func (t *Transport) announce(ctx context.Context, st *stream) error {
	if t.store == nil {
		return nil
	}
	vv, err := t.store.Vector(ctx, st.ns)
	if err != nil {
		return err
	}
	return t.publishBatch(st, vv, nil)
}

func (t *Transport) publishBatch(st *stream, vv crdt.VersionVector, ops [][]byte) error {
	m := nats.NewMsg(st.subj.ops)
	m.Header.Set(hdrFrom, t.id)
	if t.hasSelf {
		m.Header.Set(hdrOrigin, t.self.String())
	}
	m.Data = transport.AppendRequest(nil, &transport.Request{Namespace: st.ns, Vector: vv, Ops: ops})
	if len(m.Data) > t.maxPayload() {
		return fmt.Errorf("natstransport: batch of %d ops, %d bytes: %w", len(ops), len(m.Data), ErrTooLarge)
	}
	if err := t.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("natstransport: publish %q: %w", st.ns, err)
	}
	t.c.published.Add(1)
	t.c.publishedOps.Add(int64(len(ops)))
	t.c.bytesOut.Add(int64(len(m.Data)))
	return nil
}

// receive applies one live message and fetches from its publisher when
// it shows ops we lack: beyond a gap in the publisher's own ops (for a
// batch), or anything (for an announcement).
func (t *Transport) receive(ctx context.Context, st *stream, m *nats.Msg, have func() crdt.VersionVector, apply func([][]byte) error) error {
	t.c.bytesIn.Add(int64(len(m.Data)))
	from := m.Header.Get(hdrFrom)
	if from == t.id {
		return nil
	}
	b, err := transport.DecodeRequest(m.Data)
	if err != nil {
		t.drop(st.ns, m, err)
		return nil
	}
	if b.Namespace != st.ns {
		t.drop(st.ns, m, fmt.Errorf("batch of namespace %q on the subject of %q", b.Namespace, st.ns))
		return nil
	}
	t.c.received.Add(1)
	if len(b.Ops) > 0 {
		t.c.receivedOps.Add(int64(len(b.Ops)))
		if err := apply(b.Ops); err != nil {
			return fmt.Errorf("natstransport: stream %q: apply: %w", st.ns, err)
		}
	}
	if !validID(from) || have == nil {
		return nil
	}
	mine := have()
	behind := false
	origin, oerr := crdt.ParseReplicaID(m.Header.Get(hdrOrigin))
	if len(b.Ops) == 0 {
		behind = !mine.Covers(b.Vector)
		// An announcement says what its publisher holds.
		if t.store != nil && oerr == nil {
			if err := t.store.Acknowledged(ctx, st.ns, origin, b.Vector); err != nil {
				return fmt.Errorf("natstransport: stream %q: %w", st.ns, err)
			}
		}
	} else if oerr == nil {
		behind = mine[origin] < b.Vector[origin]
	}
	if !behind || time.Now().Before(st.fetchBack) {
		return nil
	}
	if err := t.fetch(ctx, st, from, have, apply); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		var remote *RemoteError
		if !errors.As(err, &remote) && errors.Is(err, errApply) {
			return err
		}
		t.log.Debug("targeted fetch failed", "ns", st.ns, "peer", from, "err", err)
		st.fetchBack = time.Now().Add(time.Second)
	}
	return nil
}

var errApply = errors.New("apply")

// fetch pulls from the transport with id from what have() lacks, page by
// page, until it has what the peer had or a page brings nothing. If the
// peer answers that have() is below its compaction horizon, it bootstraps
// from the peer's snapshot instead.
func (t *Transport) fetch(ctx context.Context, st *stream, from string, have func() crdt.VersionVector, apply func([][]byte) error) error {
	t.c.fetches.Add(1)
	lim := t.PageLimits()
	for range fetchRounds {
		req := &transport.Request{Namespace: st.ns, Vector: have(), Limits: lim}
		resp, err := t.roundTrip(ctx, st.subj.direct(from), req)
		if err != nil {
			return err
		}
		if resp.SnapshotNeeded {
			return t.bootstrap(ctx, st, from)
		}
		if len(resp.Ops) == 0 {
			return nil
		}
		if err := apply(resp.Ops); err != nil {
			return fmt.Errorf("natstransport: fetch %q: %w: %w", st.ns, errApply, err)
		}
		if !resp.More || req.Vector.Covers(have()) {
			return nil // done, or the page was refused: anti-entropy reports why
		}
	}
	return nil
}

// bootstrap syncs the store with the transport with id from, which
// answered that this replica is below its compaction horizon: a snapshot
// first, then the ops beyond it (transport.Sync).
func (t *Transport) bootstrap(ctx context.Context, st *stream, from string) error {
	if t.store == nil {
		return fmt.Errorf("natstransport: fetch %q: %w, and this transport has no store to install it in", st.ns, transport.ErrSnapshotNeeded)
	}
	t.c.bootstraps.Add(1)
	peer := &directPeer{t: t, subject: st.subj.direct(from)}
	res, err := transport.Sync(ctx, t.store, peer, st.ns, transport.Options{Limits: t.PageLimits()})
	if err != nil {
		return fmt.Errorf("natstransport: fetch %q: bootstrap from %s: %w", st.ns, from, err)
	}
	t.log.Info("bootstrapped from a snapshot", "ns", st.ns, "peer", from, "records", res.SnapshotRecords, "bytes", res.SnapshotBytes, "ops", res.Received)
	return nil
}

// directPeer is one transport, reached on its direct subject: the live
// path's bootstrap syncs with the publisher that answered, and only it.
type directPeer struct {
	t       *Transport
	subject string
}

// RoundTrip implements transport.Peer.
func (p *directPeer) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	return p.t.roundTrip(ctx, p.subject, req)
}

// Snapshot implements transport.Peer.
func (p *directPeer) Snapshot(ctx context.Context, req *transport.SnapshotRequest) (*transport.SnapshotResponse, error) {
	var resp *transport.SnapshotResponse
	_, err := p.t.request(ctx, p.subject, transport.AppendSnapshotRequest(nil, req), func(b []byte) (err error) {
		resp, err = transport.DecodeSnapshotResponse(b)
		return err
	})
	return resp, err
}

// PageLimits implements transport.Peer.
func (p *directPeer) PageLimits() transport.Limits { return p.t.PageLimits() }

// Health implements transport.Peer: the transport's connection.
func (p *directPeer) Health(ctx context.Context) error { return p.t.Health(ctx) }

// Live implements transport.Peer: nil, a bootstrap needs round trips only.
func (p *directPeer) Live() transport.Live { return nil }
