package converge

import (
	"log/slog"
	"math"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
)

type notifyRec struct {
	ID    string
	Owner string `msgpack:"owner"`
	N     int    `msgpack:"n"`
	Meta  Meta
}

// settle waits until the notifier delivered every commit made so far (sub,
// a subscription made first, has seen the last change).
func settle(t *testing.T, db *DB, sub *Subscription) {
	t.Helper()
	if _, err := sub.Next(t.Context()); err != nil {
		t.Fatal(err)
	}
	db.notify.waitDelivered()
}

func woken(w *watcher) bool {
	select {
	case <-w.notify:
		return true
	default:
		return false
	}
}

// TestWatcherWokenOnlyByRelevantChanges: a watch of owner = "a" limit 2
// is woken by a change of a record that matches now, or of one in its last
// result (even one that stops matching, or an op that changes nothing
// visible), and not by others.
func TestWatcherWokenOnlyByRelevantChanges(t *testing.T) {
	ctx := t.Context()
	for _, indexed := range []bool{false, true} {
		db, err := Open(t.TempDir(), Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		c, err := NewCollection[notifyRec](db, "recs")
		if err != nil {
			t.Fatal(err)
		}
		if indexed {
			if err := c.EnsureIndex(ctx, "owner"); err != nil {
				t.Fatal(err)
			}
		}
		put := func(id, owner string, n int) {
			t.Helper()
			sub := db.Subscribe("ns")
			defer sub.Close()
			if _, err := c.Put(ctx, "ns", &notifyRec{ID: id, Owner: owner, N: n}); err != nil {
				t.Fatal(err)
			}
			settle(t, db, sub)
		}
		put("r1", "a", 1)
		q := Where(Eq("owner", "a")).Limit(2)
		w := db.notify.watch("ns", c.name, nil, "")
		w.beginRead()
		items, next, spec, err := c.watchRead(ctx, "ns", q, "")()
		if err != nil || len(items) != 1 || next != "" {
			t.Fatalf("read: %v %v %q", items, err, next)
		}
		w.endRead(spec)
		if w.mode != modeAnchor {
			t.Fatalf("mode %d, want anchored", w.mode)
		}
		for _, step := range []struct {
			id, owner string
			n         int
			want      bool
		}{
			{"r2", "b", 1, false}, // another owner
			{"r2", "b", 2, false}, // still another owner
			{"r3", "a", 1, true},  // matches now
			{"r1", "b", 1, true},  // in the result, stops matching
			{"r4", "a", 1, true},  // matches (beyond the limit: woken anyway)
			{"r2", "c", 2, false}, // another owner again
		} {
			put(step.id, step.owner, step.n)
			if got := woken(w); got != step.want {
				t.Fatalf("put %s owner %s: woken %v, want %v", step.id, step.owner, got, step.want)
			}
		}
		w.close()
		if n := len(db.notify.ns); n != 0 {
			t.Fatalf("%d namespaces still have listeners after close", n)
		}
	}
}

// TestAnchorKeyEqualValues: values that query equality finds equal have
// one anchor key (1 and 1.0, -0 and 0), so an anchored watch misses no
// record.
func TestAnchorKeyEqualValues(t *testing.T) {
	pairs := [][2][]byte{
		{crdt.EncodeInt(0), mp.AppendFloat64(nil, math.Copysign(0, -1))},
		{crdt.EncodeInt(1), mp.AppendFloat64(nil, 1)},
		{mp.AppendUint(nil, 1<<40), crdt.EncodeInt(1 << 40)},
		{crdt.EncodeString("x"), crdt.EncodeString("x")},
	}
	for _, p := range pairs {
		if crdt.CompareValues(p[0], p[1]) != 0 {
			t.Fatalf("%x and %x are not equal values", p[0], p[1])
		}
		a, oka := anchorKey(p[0])
		b, okb := anchorKey(p[1])
		if !oka || !okb || a != b {
			t.Fatalf("anchor keys of %x and %x: %x (%v), %x (%v)", p[0], p[1], a, oka, b, okb)
		}
	}
}
