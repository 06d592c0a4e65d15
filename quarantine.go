package converge

import (
	"context"
	"fmt"
	"time"

	"github.com/convergedb/converge/crdt"
)

// QuarantinedOp is a remote op this replica refused to apply (a poison
// op), kept with the reason. The ops after it from the same origin wait
// for it (Waiting counts them); other origins' ops are not held up.
type QuarantinedOp struct {
	Namespace string
	Origin    string // replica id
	Seq       uint64
	// Kind is "invalid" (fails validation here, perhaps written by a newer
	// version) or "clock-drift" (stamped beyond the clock bound; applied by
	// a later sync once within it, which clears the entry).
	Kind   string
	Reason string
	At     time.Time // when it was first refused
	// Collection and Key of the record it writes, when they could be read.
	Collection, Key string
	// Waiting counts the ops of the same origin after it that this
	// replica's known peers hold ([Admin.Peers]): they wait for it, since an
	// origin's ops apply in sequence order. They are not stored here; a
	// sync brings them once it applies.
	Waiting uint64
}

// Quarantine lists the quarantined ops of ns.
func (a *Admin) Quarantine(ctx context.Context, ns string) ([]QuarantinedOp, error) {
	qs, err := a.db.log.Quarantine(ctx, ns)
	if err != nil {
		return nil, storeErr(fmt.Errorf("converge: quarantine %q: %w", ns, err))
	}
	out := make([]QuarantinedOp, len(qs))
	for i, q := range qs {
		out[i] = QuarantinedOp{Namespace: ns, Origin: q.Dot.Origin.String(), Seq: q.Dot.Seq, Kind: q.Kind, Reason: q.Reason, At: q.At, Waiting: q.Waiting}
		if op, err := crdt.DecodeOpUnchecked(q.Op); err == nil {
			out[i].Collection, out[i].Key = op.Collection, op.Key
		}
	}
	return out, nil
}

// RetryQuarantine offers the quarantined ops of ns to the store again
// (after an upgrade, or once the clock has caught up) and returns how many
// applied; those leave the quarantine.
func (a *Admin) RetryQuarantine(ctx context.Context, ns string) (int, error) {
	res, err := a.db.log.RetryQuarantine(ctx, ns)
	if err != nil {
		return 0, storeErr(fmt.Errorf("converge: retry quarantine %q: %w", ns, err))
	}
	return res.Applied, nil
}

// DiscardQuarantined drops one quarantined op without applying it. A later
// sync may offer it again (its origin still holds it); the ops after it
// from the same origin keep waiting for it.
func (a *Admin) DiscardQuarantined(ctx context.Context, ns, origin string, seq uint64) error {
	id, err := crdt.ParseReplicaID(origin)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := a.db.log.DiscardQuarantined(ctx, ns, crdt.Dot{Origin: id, Seq: seq}); err != nil {
		return storeErr(fmt.Errorf("converge: discard %s:%d: %w", origin, seq, err))
	}
	return nil
}
