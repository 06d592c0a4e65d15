package proptest_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/proptest"
	"github.com/convergedb/converge/transport"
)

// TestCompactionConcurrent runs what the property tests run one step at a
// time all at once: replicas write while they sync with each other (in
// pages of a few ops or records), compact, forget each other and verify,
// and a fourth replica joins half-way, bootstrapping from the snapshot of
// a replica that writes and compacts meanwhile. Each key is written by one
// replica only, so the outcome is known whatever the interleaving: once
// every replica synced with every other, each holds every op, the same
// state, the state its base states and log rebuild, and each key's last
// write. Every Verify along the way must pass too: each reads one
// consistent snapshot, whatever runs beside it.
func TestCompactionConcurrent(t *testing.T) {
	ctx := t.Context()
	const writers, writes = 3, 200
	net, err := proptest.Open(t.TempDir(), writers+1, converge.Options{Compaction: converge.CompactionOptions{Disabled: true, FeedRetention: 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	lim := transport.Limits{MaxOps: 4}

	var joined atomic.Bool // replica `writers` is in the fleet
	members := func(rng *rand.Rand) (int, int) {
		n := writers
		if joined.Load() {
			n++
		}
		i := rng.IntN(n)
		j := rng.IntN(n - 1)
		if j >= i {
			j++
		}
		return i, j
	}
	var (
		mu        sync.Mutex
		errs      []error
		bootstrap int
		compacted int
		refused   int // syncs that ended with ErrSnapshotNeeded
		dupes     int // syncs that ended with ErrNoProgress, nothing refused
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	syncPair := func(from, to int) (transport.Result, error) {
		peer := transport.NewMemPeer(net.Replica(to).SyncStore(), lim)
		res, err := transport.Sync(ctx, net.Replica(from).SyncStore(), peer, ns, transport.Options{Limits: lim})
		mu.Lock()
		bootstrap += res.Snapshots
		mu.Unlock()
		if err != nil {
			return res, fmt.Errorf("%w (result %+v)", err, res)
		}
		return res, nil
	}

	// What each key must end as: its writer's last write.
	want := make([]map[string]*Item, writers) // nil value: deleted
	var wg, bg sync.WaitGroup
	for w := range writers {
		want[w] = make(map[string]*Item)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			items, err := converge.NewCollection[Item](net.Replica(w), "items")
			if err != nil {
				fail(err)
				return
			}
			var keys []string
			for k := range writes {
				if k == writes/2 && w == 0 {
					joined.Store(true)
				}
				switch r := rng.IntN(10); {
				case r < 4 || len(keys) == 0:
					key := fmt.Sprintf("w%d-%d", w, k)
					keys = append(keys, key)
					v := &Item{ID: key, Title: fmt.Sprint(k)}
					if _, err := items.Put(ctx, ns, v); err != nil {
						fail(err)
						return
					}
					want[w][key] = v
				case r < 8:
					key := keys[rng.IntN(len(keys))]
					v := &Item{ID: key, Title: fmt.Sprint(k), Rank: k}
					if _, err := items.Put(ctx, ns, v); err != nil {
						fail(err)
						return
					}
					want[w][key] = v
				default:
					key := keys[rng.IntN(len(keys))]
					if err := items.Delete(ctx, ns, key); err != nil && !errors.Is(err, converge.ErrNotFound) {
						fail(err)
						return
					}
					want[w][key] = nil
				}
			}
		}()
	}
	// Each background task runs a fixed number of times, beside the
	// writers and after them.
	var syncs, compactions, verifies atomic.Int32
	background := func(seed uint64, runs int, f func(rng *rand.Rand) error) {
		bg.Add(1)
		go func() {
			defer bg.Done()
			rng := rand.New(rand.NewPCG(seed, 2))
			for range runs {
				if err := f(rng); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	for s := range 2 {
		background(uint64(10+s), 150, func(rng *rand.Rand) error {
			syncs.Add(1)
			from, to := members(rng)
			res, err := syncPair(from, to)
			switch {
			case err == nil:
			case errors.Is(err, transport.ErrSnapshotNeeded):
				// The peer is behind our horizon: it bootstraps when it
				// syncs from its side.
				mu.Lock()
				refused++
				mu.Unlock()
			case errors.Is(err, transport.ErrNoProgress) && res.Refused == 0 && res.Reason == "":
				// Nothing refused: another sync into the same store
				// applied the ops of a page first, so they came back as
				// duplicates, and Sync, which counts progress by what its
				// own rounds applied, gave up. It does so without
				// compaction too; the final syncs below must not.
				mu.Lock()
				dupes++
				mu.Unlock()
			default:
				return fmt.Errorf("sync %d→%d: %w", from, to, err)
			}
			return nil
		})
	}
	background(20, 150, func(rng *rand.Rand) error {
		compactions.Add(1)
		i, _ := members(rng)
		st, err := net.Replica(i).Admin().Compact(ctx, ns)
		mu.Lock()
		compacted += st.Ops
		mu.Unlock()
		return err
	})
	background(21, 300, func(rng *rand.Rand) error {
		i, j := members(rng)
		if rng.IntN(20) != 0 {
			return nil
		}
		err := net.Replica(i).Admin().ForgetPeer(ctx, ns, net.Replica(j).ReplicaID())
		if errors.Is(err, converge.ErrUnknownPeer) {
			return nil
		}
		return err
	})
	background(22, 100, func(rng *rand.Rand) error {
		verifies.Add(1)
		i, _ := members(rng)
		v, err := net.Replica(i).Admin().Verify(ctx, ns)
		if err != nil {
			return err
		}
		if !v.OK() {
			return fmt.Errorf("replica %d: stored state is not its base states ⊔ log: %+v", i, v)
		}
		return nil
	})
	wg.Wait()
	bg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}

	// Quiesce: every replica syncs with every other until all hold the
	// same ops; a push to a peer behind the pusher's horizon fails, the
	// peer bootstraps when its own turn comes.
	equal := func() bool {
		vv, err := net.Replica(0).Admin().Log().Vector(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < net.N(); i++ {
			v, err := net.Replica(i).Admin().Log().Vector(ctx, ns)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Equal(vv) {
				return false
			}
		}
		return true
	}
	for round := 0; !equal(); round++ {
		if round > net.N()+1 {
			t.Fatalf("replicas still differ after %d rounds of syncs", round)
		}
		for i := range net.N() {
			for j := range net.N() {
				if i == j {
					continue
				}
				if _, err := syncPair(i, j); err != nil && !errors.Is(err, transport.ErrSnapshotNeeded) {
					t.Fatalf("final sync %d→%d: %v", i, j, err)
				}
			}
		}
	}
	if err := net.CheckConverged(ctx, ns); err != nil {
		t.Fatal(err)
	}
	for i, db := range net.Replicas() {
		v, err := db.Admin().Verify(ctx, ns)
		if err != nil || !v.OK() {
			t.Fatalf("replica %d: Verify = %+v, %v", i, v, err)
		}
		vv, err := db.Admin().Log().Vector(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		items, err := converge.NewCollection[Item](db, "items")
		if err != nil {
			t.Fatal(err)
		}
		for w := range writers {
			// One op per write (puts and deletes of one record each).
			if got := vv[net.Replica(w).Admin().Log().ReplicaID()]; got > writes {
				t.Fatalf("replica %d holds %d ops of writer %d, which wrote %d", i, got, w, writes)
			}
			for key, v := range want[w] {
				got, err := items.Get(ctx, ns, key)
				switch {
				case v == nil:
					if !errors.Is(err, converge.ErrNotFound) {
						t.Fatalf("replica %d: %s was deleted last, Get = %+v, %v", i, key, got, err)
					}
				case err != nil:
					t.Fatalf("replica %d: %s: %v", i, key, err)
				case got.Title != v.Title || got.Rank != v.Rank:
					t.Fatalf("replica %d: %s = %+v, its last write was %+v", i, key, got, v)
				}
			}
		}
	}
	t.Logf("%d syncs, %d compactions, %d verifications beside %d writes; %d ops compacted, %d snapshot bootstraps, %d syncs ended by a peer behind the horizon, %d by no progress (duplicates)", syncs.Load(), compactions.Load(), verifies.Load(), writers*writes, compacted, bootstrap, refused, dupes)
}
