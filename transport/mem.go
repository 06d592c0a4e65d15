package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrUnreachable is returned by a [MemPeer] that is disconnected.
var ErrUnreachable = errors.New("transport: peer unreachable")

// MemPeer is an in-memory transport: a [Peer] that serves round trips and
// snapshot pages from another replica's [Store] in the same process. It
// has no live path and no page limits of its own. Every message is encoded and decoded as it would be on
// a network, so the wire codec is exercised. It is safe for concurrent use.
type MemPeer struct {
	store  Store
	limits Limits

	mu      sync.Mutex
	down    bool
	trips   int
	bytesTx int // request bytes
	bytesRx int // response bytes
}

// NewMemPeer returns a peer served by store, capping pages at limits.
func NewMemPeer(store Store, limits Limits) *MemPeer {
	return &MemPeer{store: store, limits: limits}
}

// SetDown disconnects (true) or reconnects (false) the peer.
func (p *MemPeer) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// Stats returns the round trips made (snapshot pages included) and the
// bytes sent and received.
func (p *MemPeer) Stats() (trips, sent, received int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trips, p.bytesTx, p.bytesRx
}

// RoundTrip implements [Peer].
func (p *MemPeer) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	return memTrip(ctx, p, req, AppendRequest, DecodeRequest, Serve, AppendResponse, DecodeResponse)
}

// Snapshot implements [Peer]: it serves a snapshot page from the peer's
// store ([ServeSnapshot]), through the wire encoding.
func (p *MemPeer) Snapshot(ctx context.Context, req *SnapshotRequest) (*SnapshotResponse, error) {
	return memTrip(ctx, p, req, AppendSnapshotRequest, DecodeSnapshotRequest, ServeSnapshot, AppendSnapshotResponse, DecodeSnapshotResponse)
}

// PageLimits implements [Peer]: no bound of its own (the serving side
// caps its pages at the limits given to [NewMemPeer]).
func (p *MemPeer) PageLimits() Limits { return Limits{} }

// Health implements [Peer]: ErrUnreachable while the peer is down
// ([MemPeer.SetDown]), else nil.
func (p *MemPeer) Health(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return fmt.Errorf("transport: in-memory peer: health check: %w", ErrUnreachable)
	}
	return nil
}

// Live implements [Peer]: nil, round trips only.
func (p *MemPeer) Live() Live { return nil }

// memTrip carries one exchange through the wire encoding both ways and
// counts it.
func memTrip[Q, R any](ctx context.Context, p *MemPeer, req Q,
	encodeReq func([]byte, Q) []byte, decodeReq func([]byte) (Q, error),
	serve func(context.Context, Store, Q, Limits) (R, error),
	encodeResp func([]byte, R) []byte, decodeResp func([]byte) (R, error)) (R, error) {
	var zero R
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		return zero, ErrUnreachable
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	wire := encodeReq(nil, req)
	in, err := decodeReq(bytes.Clone(wire))
	if err != nil {
		return zero, err
	}
	resp, err := serve(ctx, p.store, in, p.limits)
	if err != nil {
		return zero, err
	}
	out := encodeResp(nil, resp)
	p.mu.Lock()
	p.trips++
	p.bytesTx += len(wire)
	p.bytesRx += len(out)
	p.mu.Unlock()
	return decodeResp(out)
}
