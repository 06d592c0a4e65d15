package transport

import (
	"bytes"
	"context"
	"errors"
	"sync"
)

// ErrUnreachable is returned by a [MemPeer] that is disconnected.
var ErrUnreachable = errors.New("transport: peer unreachable")

// MemPeer is an in-memory transport: a [Peer] (and [Snapshotter]) that
// serves round trips and snapshot pages from another replica's [Store] in
// the same process. Every message is encoded and decoded as it would be on
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
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		return nil, ErrUnreachable
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	wire := AppendRequest(nil, req)
	in, err := DecodeRequest(bytes.Clone(wire))
	if err != nil {
		return nil, err
	}
	resp, err := Serve(ctx, p.store, in, p.limits)
	if err != nil {
		return nil, err
	}
	out := AppendResponse(nil, resp)
	p.mu.Lock()
	p.trips++
	p.bytesTx += len(wire)
	p.bytesRx += len(out)
	p.mu.Unlock()
	return DecodeResponse(out)
}

// Snapshot implements [Snapshotter]: it serves a snapshot page from the
// peer's store ([ServeSnapshot]), through the wire encoding.
func (p *MemPeer) Snapshot(ctx context.Context, req *SnapshotRequest) (*SnapshotResponse, error) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		return nil, ErrUnreachable
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	wire := AppendSnapshotRequest(nil, req)
	in, err := DecodeSnapshotRequest(bytes.Clone(wire))
	if err != nil {
		return nil, err
	}
	resp, err := ServeSnapshot(ctx, p.store, in, p.limits)
	if err != nil {
		return nil, err
	}
	out := AppendSnapshotResponse(nil, resp)
	p.mu.Lock()
	p.trips++
	p.bytesTx += len(wire)
	p.bytesRx += len(out)
	p.mu.Unlock()
	return DecodeSnapshotResponse(out)
}
