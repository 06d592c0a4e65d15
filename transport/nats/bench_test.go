package natstransport_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

// benchItem is the 5-field record of the benchmarks.
func benchItem(i int) Item {
	return Item{ID: fmt.Sprintf("item-%07d", i), Name: "a benchmark record of modest size", Site: "writer", N: int64(i), Tags: []string{"bench"}}
}

// BenchmarkReplicate measures replication throughput from one writer to
// two replicas through an embedded server (b.N records, until both hold
// all), beside raw NATS publishing the same number of messages of the
// same size to two subscribers in the same run.
func BenchmarkReplicate(b *testing.B) {
	s := startServer(b)
	var opBytes int
	b.Run("converge", func(b *testing.B) {
		w := startReplica(b, "w", replicaConfig{url: s.ClientURL(), ns: []string{"ns"}, repOpts: converge.ReplicatorOptions{Interval: time.Minute}})
		r1 := startReplica(b, "r1", replicaConfig{url: s.ClientURL(), ns: []string{"ns"}, repOpts: converge.ReplicatorOptions{Interval: time.Minute}})
		r2 := startReplica(b, "r2", replicaConfig{url: s.ClientURL(), ns: []string{"ns"}, repOpts: converge.ReplicatorOptions{Interval: time.Minute}})
		b.ResetTimer()
		for i := range b.N {
			w.put(b, "ns", benchItem(i))
		}
		for _, r := range []*replica{r1, r2} {
			waitUntil(b, r, "ns", func() bool { return vectorSum(b, r) >= uint64(b.N) })
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		ops, _, err := w.db.SyncStore().Missing(context.Background(), "ns", crdt.VersionVector{}, transport.Limits{MaxOps: 1})
		if err == nil && len(ops) == 1 {
			opBytes = len(ops[0])
		}
	})
	if opBytes == 0 {
		opBytes = 150
	}
	b.Run("raw-nats", func(b *testing.B) {
		pub, err := nats.Connect(s.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		defer pub.Close()
		payload := make([]byte, opBytes)
		var subs []*nats.Subscription
		for range 2 {
			nc, err := nats.Connect(s.ClientURL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			sub, err := nc.SubscribeSync("raw.ops")
			if err != nil {
				b.Fatal(err)
			}
			_ = sub.SetPendingLimits(-1, -1)
			if err := nc.Flush(); err != nil {
				b.Fatal(err)
			}
			subs = append(subs, sub)
		}
		b.ResetTimer()
		for range b.N {
			if err := pub.Publish("raw.ops", payload); err != nil {
				b.Fatal(err)
			}
		}
		for _, sub := range subs {
			for range b.N {
				if _, err := sub.NextMsg(failBound); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
}

func vectorSum(tb testing.TB, r *replica) uint64 {
	vv, err := r.db.Admin().Vector(context.Background(), "ns")
	if err != nil {
		tb.Fatal(err)
	}
	var n uint64
	for _, v := range vv {
		n += v
	}
	return n
}

// BenchmarkLatency measures the time from a commit on a writer until a
// replica's change subscription sees it, through the server.
func BenchmarkLatency(b *testing.B) {
	s := startServer(b)
	w := startReplica(b, "w", replicaConfig{url: s.ClientURL(), ns: []string{"ns"}, repOpts: converge.ReplicatorOptions{Interval: time.Minute}})
	r := startReplica(b, "r", replicaConfig{url: s.ClientURL(), ns: []string{"ns"}, repOpts: converge.ReplicatorOptions{Interval: time.Minute}})
	sub := r.db.Subscribe("ns")
	defer sub.Close()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		w.put(b, "ns", benchItem(i))
		id := benchItem(i).ID
		for {
			c, err := sub.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if c.ID == id {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkCatchup measures a replica catching up on N ops (env
// CONVERGE_BENCH_OPS, default 10000) from a peer over NATS: the time, and
// the bytes on the wire against the ops' encoded size.
func BenchmarkCatchup(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("CONVERGE_BENCH_OPS")); err == nil && v > 0 {
		n = v
	}
	s := startServer(b)
	src := startReplica(b, "src", replicaConfig{url: s.ClientURL(), noReplica: true})
	ctx := context.Background()
	const perTx = 500
	for i := 0; i < n; i += perTx {
		err := src.db.Update(ctx, "ns", func(tx *converge.Tx) error {
			for j := i; j < min(i+perTx, n); j++ {
				it := benchItem(j)
				if _, err := src.items.Tx(tx).Put(&it); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	encoded := 0
	ops, more, err := src.db.SyncStore().Missing(ctx, "ns", crdt.VersionVector{}, transport.Limits{MaxOps: n + 1, MaxBytes: 1 << 30})
	if err != nil || more || len(ops) != n {
		b.Fatalf("reading the ops: %d ops, more %v, %v", len(ops), more, err)
	}
	for _, op := range ops {
		encoded += len(op)
	}
	stop, err := src.tr.Serve("ns")
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	b.ResetTimer()
	var wire int64
	for range b.N {
		b.StopTimer()
		dir, err := os.MkdirTemp("", "catchup")
		if err != nil {
			b.Fatal(err)
		}
		dst := startReplica(b, "dst", replicaConfig{url: s.ClientURL(), noReplica: true, dir: dir})
		b.StartTimer()
		res, err := transport.Sync(ctx, dst.db.SyncStore(), dst.tr, "ns", transport.Options{})
		if err != nil || res.Received != n {
			b.Fatalf("catch-up: %+v, %v", res, err)
		}
		b.StopTimer()
		st := dst.tr.Stats()
		wire += st.BytesIn + st.BytesOut
		dst.close()
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(wire)/float64(b.N)/float64(encoded), "wire/encoded")
}
