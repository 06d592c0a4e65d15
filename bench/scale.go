package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
)

// Scale scenarios (issue 20): how a cost grows along one axis of a fleet.
// Each metric is one size of the axis, so the rows are a curve; the
// baseline is the same work at size zero (no listener), or the algorithm
// the store used before (a stable vector computed over every peer).

// scaleSizes returns the sizes of an axis: quick keeps the two smallest.
func scaleSizes(e *env, sizes ...int) []int {
	if e.cfg.Quick {
		return sizes[:2]
	}
	return sizes
}

// scaleWatchesScenario is scale-watches: Put throughput in a namespace
// with N live queries, against the same Puts with none.
func scaleWatchesScenario() *Scenario {
	return &Scenario{
		Name: "scale-watches",
		Description: "Collection.Put (NoSync) of new records in a namespace that N indexed watches listen to " +
			"(Where(owner = user-i), one per user); the Puts go to other users, so the cost is the notification fan-out alone " +
			"(a watch whose result a Put alters also runs its query again). Baseline: the same Puts with no watch.",
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			sizes := scaleSizes(e, 10, 100, 1000)
			puts := max(1000, e.cfg.PutOps/5)
			var metrics []Metric
			for _, n := range sizes {
				metrics = append(metrics, Metric{Name: fmt.Sprintf("put, %d watches", n), Kind: Throughput, Unit: "records/s", Baseline: "no watch"})
			}
			measure := func(ctx context.Context, zero bool) (Values, error) {
				v := Values{}
				for i, n := range sizes {
					if zero {
						n = 0
					}
					r, err := putsWatched(ctx, e, n, puts)
					if err != nil {
						return nil, err
					}
					v[metrics[i].Name] = r
				}
				return v, nil
			}
			return &Trial{
				Metrics:  metrics,
				Ours:     func(ctx context.Context, _ int) (Values, error) { return measure(ctx, false) },
				Baseline: func(ctx context.Context, _ int) (Values, error) { return measure(ctx, true) },
			}, nil
		},
	}
}

type scaleRec struct {
	ID    string `msgpack:"-" converge:"id"`
	Owner string `msgpack:"owner"`
	Title string `msgpack:"title"`
	Meta  converge.Meta
}

// putsWatched returns the Put throughput with watches live queries open.
func putsWatched(ctx context.Context, e *env, watches, puts int) (float64, error) {
	dir, err := e.dir("scale-watches")
	if err != nil {
		return 0, err
	}
	db, err := converge.Open(dir, converge.Options{Durability: converge.NoSync, Logger: quietLogger})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	recs, err := converge.NewCollection[scaleRec](db, "recs")
	if err != nil {
		return 0, err
	}
	if err := recs.EnsureIndex(ctx, "owner"); err != nil {
		return 0, err
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	started := make(chan struct{}, watches)
	for i := range watches {
		q := converge.Where(converge.Eq("owner", "user-"+strconv.Itoa(i))).Limit(20)
		wg.Go(func() {
			first := true
			for range recs.Watch(wctx, benchNS, q) {
				if first {
					started <- struct{}{}
					first = false
				}
			}
		})
	}
	for range watches {
		<-started
	}
	start := time.Now()
	for i := range puts {
		r := scaleRec{ID: "rec-" + strconv.Itoa(i), Owner: "other-" + strconv.Itoa(i%100), Title: "a record"}
		if _, err := recs.Put(ctx, benchNS, &r); err != nil {
			return 0, err
		}
	}
	return float64(puts) / time.Since(start).Seconds(), nil
}

// scalePeersScenario is scale-peers: the stable vector of a hub that
// knows P peers of a namespace written by O origins.
func scalePeersScenario() *Scenario {
	return &Scenario{
		Name: "scale-peers",
		Description: "DB.StableVector on a hub that knows P peers (devices), each having acknowledged a vector of O = P origins, " +
			"after one more acknowledgement: the store keeps the least entry per origin as vectors grow, so the figure is O(origins). " +
			"Baseline: the same vectors, the stable vector computed the way the store did before, per origin over every peer (O(origins × peers)).",
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			sizes := scaleSizes(e, 100, 300, 1000)
			var metrics []Metric
			for _, n := range sizes {
				metrics = append(metrics, Metric{Name: fmt.Sprintf("stable vector, %d peers × %d origins", n, n), Kind: Latency, Unit: "ms", Baseline: "min over every peer"})
			}
			ours, base := Values{}, Values{}
			for i, n := range sizes {
				o, b, err := stableVectorTimes(ctx, e, n)
				if err != nil {
					return nil, err
				}
				ours[metrics[i].Name], base[metrics[i].Name] = o, b
			}
			return &Trial{
				Metrics:  metrics,
				Ours:     func(context.Context, int) (Values, error) { return ours, nil },
				Baseline: func(context.Context, int) (Values, error) { return base, nil },
			}, nil
		},
	}
}

// stableVectorTimes returns the time of the hub's stable vector with n
// peers × n origins, and of the naive computation over the same vectors,
// in milliseconds.
func stableVectorTimes(ctx context.Context, e *env, n int) (ours, naive float64, err error) {
	dir, err := e.dir("scale-peers")
	if err != nil {
		return 0, 0, err
	}
	db, err := converge.Open(dir, converge.Options{Durability: converge.NoSync, Logger: quietLogger, Compaction: converge.CompactionOptions{Disabled: true}})
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	ids := make([]crdt.ReplicaID, n)
	for i := range ids {
		ids[i][0], ids[i][1], ids[i][15] = byte(i>>8), byte(i), 1 // synthetic, distinct, not zero
	}
	vecs := make([]crdt.VersionVector, n)
	store := db.SyncStore()
	for p := range n {
		vv := make(crdt.VersionVector, n)
		for o := range n {
			vv[ids[o]] = uint64(1 + (p+o)%7)
		}
		vecs[p] = vv
		if err := store.Acknowledged(ctx, benchNS, ids[p], vv); err != nil {
			return 0, 0, err
		}
	}
	vecs[0][ids[0]]++ // one more acknowledgement, then the stable vector
	start := time.Now()
	if err := store.Acknowledged(ctx, benchNS, ids[0], vecs[0]); err != nil {
		return 0, 0, err
	}
	if _, err := db.Admin().StableVector(ctx, benchNS); err != nil {
		return 0, 0, err
	}
	ours = float64(time.Since(start).Microseconds()) / 1000
	start = time.Now()
	stable := crdt.VersionVector{}
	for o := range n {
		seq := uint64(1 << 62)
		for _, vv := range vecs {
			seq = min(seq, vv[ids[o]])
		}
		stable[ids[o]] = seq
	}
	naive = float64(time.Since(start).Microseconds()) / 1000
	return ours, naive, nil
}
