package converge

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/convergedb/converge/crdt"
)

// Acknowledged records what a peer holds; the sync engine calls it for
// every message that names its sender.
func (s syncStore) Acknowledged(ctx context.Context, ns string, peer crdt.ReplicaID, vv crdt.VersionVector) error {
	return s.db.log.Acknowledge(ctx, ns, peer, vv)
}

// PeerState is what one known replica holds of a namespace, as it last
// told this replica (in a sync, either way). A requester says what it
// holds before it applies the answer, so what it received in a sync shows
// here after its next one.
type PeerState struct {
	Replica string
	// Vector is the peer's version vector: origin replica id → ops held.
	Vector map[string]uint64
	// Behind counts the ops this replica holds that the peer did not.
	Behind uint64
}

// Peers lists the replicas this one has synced ns with, directly, and
// what each held, ordered by replica id.
func (a *Admin) Peers(ctx context.Context, ns string) ([]PeerState, error) {
	ps, err := a.db.log.Peers(ctx, ns)
	if err != nil {
		return nil, storeErr(fmt.Errorf("converge: peers %q: %w", ns, err))
	}
	mine, err := a.db.log.Vector(ctx, ns)
	if err != nil {
		return nil, storeErr(fmt.Errorf("converge: peers %q: %w", ns, err))
	}
	out := make([]PeerState, 0, len(ps))
	for id, vv := range ps {
		st := PeerState{Replica: id.String(), Vector: make(map[string]uint64, len(vv))}
		for o, seq := range vv {
			st.Vector[o.String()] = seq
		}
		for o, seq := range mine {
			if seq > vv[o] {
				st.Behind += seq - vv[o]
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b PeerState) int { return strings.Compare(a.Replica, b.Replica) })
	return out, nil
}

// StableVector returns what this replica and every replica it knows hold
// of ns: an op in it is causally stable, every known replica has it. With
// no known peer it is this replica's vector.
func (a *Admin) StableVector(ctx context.Context, ns string) (map[string]uint64, error) {
	vv, err := a.db.log.StableVector(ctx, ns)
	if err != nil {
		return nil, storeErr(fmt.Errorf("converge: stable vector %q: %w", ns, err))
	}
	out := make(map[string]uint64, len(vv))
	for o, seq := range vv {
		out[o.String()] = seq
	}
	return out, nil
}

// ForgetPeer drops a replica removed from the fleet from the known peers
// of ns, so it no longer holds the stable vector back. If it syncs again,
// it is known again.
func (a *Admin) ForgetPeer(ctx context.Context, ns, replica string) error {
	id, err := crdt.ParseReplicaID(replica)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := a.db.log.ForgetPeer(ctx, ns, id); err != nil {
		return storeErr(fmt.Errorf("converge: forget %s: %w", replica, err))
	}
	return nil
}
