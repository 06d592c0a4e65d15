package proptest_test

import (
	"context"
	"errors"

	"pgregory.net/rapid"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/proptest"
)

// world is what the convergence machines share: a network of replicas,
// their collections, the keys they write, their clocks, and which
// replicas changed since the last check. Its writes take the replica that
// makes them; each machine draws it its own way.
type world struct {
	ctx   context.Context
	net   *proptest.Network
	colls []*converge.Collection[Item]
	keys  []string

	now      int64        // common physical time, ms
	skew     []int64      // each replica's clock is now+skew[i]
	maxClock int64        // the latest time any clock has shown
	dirty    map[int]bool // replicas changed since the last check
}

func (w *world) setClocks() {
	for i := range w.skew {
		c := w.now + w.skew[i]
		w.net.Clock(i).Set(c)
		w.maxClock = max(w.maxClock, c)
	}
}

// drifting reports whether some replica may refuse another's ops for
// clock drift: an HLC issued at maxClock is too far ahead of a clock at
// now-skewBound.
func (w *world) drifting() bool { return w.maxClock-(w.now-skewBound) > maxDrift }

func (w *world) key(t *rapid.T) string { return rapid.SampledFrom(w.keys).Draw(t, "key") }

func (w *world) collection(i int) *converge.Collection[Item] {
	if w.colls[i] == nil {
		c, err := converge.NewCollection[Item](w.net.Replica(i), "items")
		if err != nil {
			panic(err)
		}
		w.colls[i] = c
	}
	return w.colls[i]
}

func (w *world) putOn(t *rapid.T, i int) {
	v := drawItem(t, w.key(t))
	w.dirty[i] = true
	if _, err := w.collection(i).Put(w.ctx, ns, v); err != nil {
		t.Fatalf("put on %d: %v", i, err)
	}
}

func (w *world) updateOn(t *rapid.T, i int) {
	key := w.key(t)
	w.dirty[i] = true
	if err := w.collection(i).Update(w.ctx, ns, key, drawUpdates(t)...); err != nil && !errors.Is(err, converge.ErrNotFound) {
		t.Fatalf("update %s on %d: %v", key, i, err)
	}
}

func (w *world) deleteOn(t *rapid.T, i int) {
	key := w.key(t)
	w.dirty[i] = true
	if err := w.collection(i).Delete(w.ctx, ns, key); err != nil && !errors.Is(err, converge.ErrNotFound) {
		t.Fatalf("delete %s on %d: %v", key, i, err)
	}
}

// txOn writes several records in one transaction on replica i.
func (w *world) txOn(t *rapid.T, i int) {
	type sub struct {
		kind string
		key  string
		item *Item
		ups  []converge.FieldUpdate
	}
	var subs []sub
	for range rapid.IntRange(2, 4).Draw(t, "tx size") {
		s := sub{kind: rapid.SampledFrom([]string{"put", "update", "delete"}).Draw(t, "tx op"), key: w.key(t)}
		switch s.kind {
		case "put":
			s.item = drawItem(t, s.key)
		case "update":
			s.ups = drawUpdates(t)
		}
		subs = append(subs, s)
	}
	c := w.collection(i)
	w.dirty[i] = true
	err := w.net.Replica(i).Update(w.ctx, ns, func(tx *converge.Tx) error {
		ct := c.Tx(tx)
		for _, s := range subs {
			var err error
			switch s.kind {
			case "put":
				_, err = ct.Put(s.item)
			case "update":
				err = ct.Update(s.key, s.ups...)
			case "delete":
				err = ct.Delete(s.key)
			}
			if err != nil && !errors.Is(err, converge.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("transaction on %d: %v", i, err)
	}
}

// leapTo sends replica i's clock beyond the drift bound: the
// others refuse its ops (without losing them) until their clocks catch up.
func (w *world) leapTo(i int) {
	w.skew[i] = leap
	w.setClocks()
}
