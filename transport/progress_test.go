package transport_test

import (
	"context"
	"testing"

	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

// racingPeer applies every page it returns to the requester before the
// requester does, as a concurrent sync or a live delivery may.
type racingPeer struct {
	*transport.MemPeer
	requester transport.Store
}

func (p racingPeer) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	resp, err := p.MemPeer.RoundTrip(ctx, req)
	if err == nil {
		_, err = p.requester.Apply(ctx, req.Namespace, resp.Ops)
	}
	return resp, err
}

// TestSyncCountsOpsAppliedByOthers: pages that arrive as duplicates
// because something else applied them first are progress, not a stall.
func TestSyncCountsOpsAppliedByOthers(t *testing.T) {
	a, b := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putN(t, b, "ns", "k", 5)
	lim := transport.Limits{MaxOps: 1}
	store := a.DB.SyncStore()
	res, err := transport.Sync(t.Context(), store, racingPeer{transport.NewMemPeer(b.DB.SyncStore(), lim), store}, "ns", transport.Options{Limits: lim})
	if err != nil {
		t.Fatalf("Sync = %+v, %v; want it to go on while its vector moves", res, err)
	}
	if got, want := vector(t, a, "ns"), vector(t, b, "ns"); !got.Equal(want) {
		t.Fatalf("vector %v after sync, want %v", got, want)
	}
}
