package proptest_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/proptest"
	"github.com/convergedb/converge/transport"
	"pgregory.net/rapid"
)

// txn is a transaction written in TestTransactionsAtomic: it adds marker
// to the tags of every record in keys.
type txn struct {
	origin int
	marker string
	keys   []string
}

// TestTransactionsAtomic: two replicas write multi-record transactions
// (each tags every record it touches with its own marker, in one
// db.Update), sync with each other now and then (with one-op pages), and
// deliver to a third replica with random loss, duplication, resends and
// reordering. After every delivery and sync, on every replica, each
// transaction is visible whole or not at all, and the visible transactions
// of each writer are a prefix of what it wrote. In the end everything is
// visible everywhere.
func TestTransactionsAtomic(t *testing.T) {
	var txCount, deliveries, held, checks int
	defer func() {
		t.Logf("%d transactions, %d deliveries with %d ops held back (beyond a gap or of an incomplete transaction), %d atomicity checks", txCount, deliveries, held, checks)
	}()
	rapid.Check(t, func(rt *rapid.T) {
		ctx := t.Context()
		dir := t.TempDir()
		net, err := proptest.Open(dir, 3, converge.Options{})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() {
			if err := net.Close(); err != nil {
				rt.Error(err)
			}
			_ = os.RemoveAll(dir)
		}()
		net.Limits = transport.Limits{MaxOps: 1} // pages must still end at a transaction's end
		writers, reader := []int{0, 2}, 1
		keys := []string{"k0", "k1", "k2", "k3"}
		colls := make([]*converge.Collection[Item], net.N())
		for i := range colls {
			if colls[i], err = converge.NewCollection[Item](net.Replica(i), "items"); err != nil {
				rt.Fatal(err)
			}
		}
		var txs []txn
		check := func(when string) {
			checks++
			for i := range net.N() {
				if err := checkAtomic(rt, colls[i], txs, i); err != nil {
					rt.Fatalf("%s: %v", when, err)
				}
			}
		}
		for range rapid.IntRange(1, 40).Draw(rt, "steps") {
			switch rapid.IntRange(0, 3).Draw(rt, "action") {
			case 0, 1:
				w := rapid.SampledFrom(writers).Draw(rt, "writer")
				tx := txn{
					origin: w,
					marker: fmt.Sprintf("t%d", len(txs)),
					keys:   rapid.SliceOfNDistinct(rapid.SampledFrom(keys), 2, 4, rapid.ID[string]).Draw(rt, "keys"),
				}
				c := colls[w]
				err := net.Replica(w).Update(ctx, ns, func(dtx *converge.Tx) error {
					ct := c.Tx(dtx)
					for _, k := range tx.keys {
						_, err := ct.Get(k)
						switch {
						case errors.Is(err, converge.ErrNotFound):
							_, err = ct.Put(&Item{ID: k, Title: tx.marker, Tags: []string{tx.marker}})
						case err == nil:
							err = ct.Update(k, converge.Set("title", tx.marker), converge.AddToSet("tags", tx.marker), converge.Increment("hits", 1))
						}
						if err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					rt.Fatal(err)
				}
				txs = append(txs, tx)
				txCount++
			case 2:
				if _, err := net.Sync(ctx, writers[0], writers[1], ns); err != nil {
					rt.Fatal(err)
				}
				check("after the writers synced")
			case 3:
				from := rapid.SampledFrom(writers).Draw(rt, "from")
				p := proptest.DeliverPolicy{
					Drop:      rapid.SampledFrom([]float64{0.2, 0.5, 0.8}).Draw(rt, "drop"),
					Duplicate: 0.3,
					Resend:    0.2,
					MaxBatch:  rapid.SampledFrom([]int{0, 0, 2}).Draw(rt, "max batch"),
				}
				d, err := net.Deliver(ctx, from, reader, ns, newRand(rt), p)
				if err != nil {
					rt.Fatal(err)
				}
				deliveries++
				held += d.Refused
				check(fmt.Sprintf("after a delivery from %d", from))
			}
		}
		if err := net.SyncAll(ctx, ns); err != nil {
			rt.Fatal(err)
		}
		check("after syncing all")
		for _, tx := range txs {
			for i := range net.N() {
				if !visible(rt, colls[i], tx.keys[0], tx.marker) {
					rt.Fatalf("transaction %s not visible on replica %d after syncing all", tx.marker, i)
				}
			}
		}
		if err := net.CheckConverged(ctx, ns); err != nil {
			rt.Fatal(err)
		}
	})
}

// checkAtomic checks that each transaction is visible on all its records
// or on none, and that the visible ones of each writer are a prefix of its
// transactions.
func checkAtomic(t *rapid.T, c *converge.Collection[Item], txs []txn, replica int) error {
	tags := make(map[string][]string)
	for it, err := range c.All(t.Context(), ns) {
		if err != nil {
			return err
		}
		tags[it.ID] = it.Tags
	}
	hidden := make(map[int]string) // writer → its first invisible transaction
	for _, tx := range txs {
		var on []string
		for _, k := range tx.keys {
			if slices.Contains(tags[k], tx.marker) {
				on = append(on, k)
			}
		}
		switch {
		case len(on) == len(tx.keys):
			if h, ok := hidden[tx.origin]; ok {
				return fmt.Errorf("replica %d: transaction %s of replica %d is visible, its earlier %s is not", replica, tx.marker, tx.origin, h)
			}
		case len(on) == 0:
			if _, ok := hidden[tx.origin]; !ok {
				hidden[tx.origin] = tx.marker
			}
		default:
			return fmt.Errorf("replica %d: transaction %s on %v is partly visible: only on %v", replica, tx.marker, tx.keys, on)
		}
	}
	return nil
}

func visible(t *rapid.T, c *converge.Collection[Item], key, marker string) bool {
	it, err := c.Get(t.Context(), ns, key)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(it.Tags, marker)
}
