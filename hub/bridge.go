package hub

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/convergedb/converge/internal/backoff"
	"github.com/convergedb/converge/transport"
)

// The bounds of the bridge's retry backoff.
const (
	bridgeMinBackoff = 100 * time.Millisecond
	bridgeMaxBackoff = 10 * time.Second
)

// bridgeState is a namespace that HTTP clients write and the hub
// replicates over NATS: after HTTP clients' ops are applied, the hub syncs
// it over NATS at once (the NATS transport publishes live only the hub's
// own ops, so without this the NATS replicas would learn of them from the
// hub's next announcement).
type bridgeState struct {
	kick  chan struct{}
	dirty atomic.Bool // HTTP clients' ops applied and not yet synced over NATS
}

// applied is the HTTP server's OnApply: it is called after the ops an
// HTTP client pushed in a round trip went to the store.
func (h *Hub) applied(ns string, a transport.Applied) {
	if a.Applied == 0 {
		return
	}
	h.metrics.httpApplied.WithLabelValues(ns).Add(float64(a.Applied))
	if b, ok := h.bridge[ns]; ok {
		b.dirty.Store(true)
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// bridgeLoop syncs ns over NATS after HTTP clients' ops are applied. A
// failed sync is retried with backoff until one succeeds: the replicator's
// own syncs start only on the hub's own commits and periodically.
// Failures are logged at a bounded rate (the first, then a count).
func (h *Hub) bridgeLoop(ctx context.Context, ns string, b *bridgeState) {
	retries := backoff.New(backoff.Policy{Min: bridgeMinBackoff, Max: bridgeMaxBackoff}, nil)
	var retry <-chan time.Time
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-retry:
		}
		retry = nil
		b.dirty.Store(false)
		res, err := h.rep.SyncNow(ctx, ns)
		h.metrics.bridgeSync(err)
		if ctx.Err() != nil {
			b.dirty.Store(true)
			return
		}
		if err != nil {
			b.dirty.Store(true)
			h.failures.Failure("bridge "+ns, "bridge sync over NATS failed; retrying", err, "namespace", ns)
			retry = time.After(retries.Wait(failures))
			failures++
			continue
		}
		failures = 0
		h.failures.Success("bridge "+ns, "bridge sync over NATS recovered", "namespace", ns)
		h.log.Debug("bridged HTTP writes to NATS", "namespace", ns, "sent", res.Sent, "received", res.Received)
	}
}
