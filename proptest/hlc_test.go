package proptest_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/proptest"
	"pgregory.net/rapid"
)

// TestHLCAcrossReplicas: replicas whose physical clocks disagree (by up to
// 50 s, inside the one-minute drift bound), that step backwards, and that
// restart, exchange ops by lossy delivery and by sync. Every local op a
// replica writes has an HLC greater than the HLC of every op the replica
// held before it, its own and those it ingested (causality), and not
// behind its physical clock.
func TestHLCAcrossReplicas(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ctx := t.Context()
		dir := t.TempDir()
		n := rapid.IntRange(2, 3).Draw(rt, "replicas")
		net, err := proptest.Open(dir, n, converge.Options{})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() {
			if err := net.Close(); err != nil {
				rt.Error(err)
			}
			_ = os.RemoveAll(dir)
		}()
		const bound = 25_000 // ms either side of the common time
		genSkew := rapid.OneOf(rapid.SampledFrom([]int64{0, -bound, bound}), rapid.Int64Range(-bound, bound))
		now := proptest.Epoch
		skew := make([]int64, n)
		setClocks := func() {
			for i := range skew {
				net.Clock(i).Set(now + skew[i])
			}
		}
		for i := range skew {
			skew[i] = genSkew.Draw(rt, "skew")
		}
		setClocks()
		writes := 0
		for range rapid.IntRange(1, 40).Draw(rt, "steps") {
			i := rapid.IntRange(0, n-1).Draw(rt, "replica")
			j := (i + 1 + rapid.IntRange(0, n-2).Draw(rt, "other")) % n
			switch rapid.IntRange(0, 5).Draw(rt, "action") {
			case 0, 1:
				db := net.Replica(i)
				held, latest := heldOps(rt, db)
				c, err := converge.NewCollection[Item](db, "items")
				if err != nil {
					rt.Fatal(err)
				}
				writes++
				item := &Item{ID: rapid.SampledFrom([]string{"a", "b"}).Draw(rt, "key"), Title: fmt.Sprint("w", writes)}
				if _, err := c.Put(ctx, ns, item); err != nil {
					rt.Fatal(err)
				}
				var fresh []crdt.Op
				for e, err := range db.Admin().Log().Missing(ctx, ns, held) {
					if err != nil {
						rt.Fatal(err)
					}
					fresh = append(fresh, e.Op)
				}
				if len(fresh) != 1 || fresh[0].Dot.Origin.String() != db.ReplicaID() {
					rt.Fatalf("replica %d: a put added %d ops (%+v), want 1 of its own", i, len(fresh), fresh)
				}
				op := fresh[0]
				if op.HLC <= latest {
					rt.Fatalf("replica %d: local op %v has HLC %v, not after the latest op it held, %v", i, op.Dot, op.HLC, latest)
				}
				if pt := net.Clock(i).Now(); op.HLC.Wall() < pt {
					rt.Fatalf("replica %d: local op %v has HLC %v, behind its physical clock %d", i, op.Dot, op.HLC, pt)
				}
			case 2:
				if _, err := net.Deliver(ctx, j, i, ns, newRand(rt), proptest.LossyDelivery); err != nil {
					rt.Fatal(err)
				}
			case 3:
				if _, err := net.Sync(ctx, i, j, ns); err != nil {
					rt.Fatal(err)
				}
			case 4: // restart, maybe with the clock stepped back
				skew[i] = genSkew.Draw(rt, "skew")
				setClocks()
				if err := net.Reopen(ctx, i); err != nil {
					rt.Fatal(err)
				}
			case 5:
				now += rapid.Int64Range(0, int64(5*time.Second/time.Millisecond)).Draw(rt, "advance")
				setClocks()
			}
		}
	})
}

// heldOps returns the vector of the ops db holds and the greatest HLC
// among them.
func heldOps(t *rapid.T, db *converge.DB) (crdt.VersionVector, hlc.Timestamp) {
	vv, err := db.Admin().Log().Vector(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	var latest hlc.Timestamp
	for e, err := range db.Admin().Log().Missing(t.Context(), ns, nil) {
		if err != nil {
			t.Fatal(err)
		}
		latest = max(latest, e.Op.HLC)
	}
	return vv, latest
}
