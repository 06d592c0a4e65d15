package converge_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkHTTPLiveLatency measures end to end latency over loopback HTTP:
// a write on client A, its replicator's push to the hub (debounce 1ms),
// the hub's live stream, until the record is visible on client B. It
// reports p50 and p99 over the iterations.
func BenchmarkHTTPLiveLatency(b *testing.B) {
	h := startHubB(b)
	a, c := startClientB(b, h.ts.URL), startClientB(b, h.ts.URL)
	sub := c.db.Subscribe("ns")
	defer sub.Close()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		id := fmt.Sprint("k", i)
		i++
		start := time.Now()
		if _, err := a.tasks.Put(context.Background(), "ns", &Task{ID: id}); err != nil {
			b.Fatal(err)
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ch, err := sub.Next(ctx)
			cancel()
			if err != nil {
				b.Fatalf("waiting for %s on B: %v", id, err)
			}
			if ch.ID == id {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
