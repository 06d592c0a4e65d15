package httptransport_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
	"github.com/convergedb/converge/transport/transporttest"
)

// benchOps is the number of ops behind; CONVERGE_BENCH_OPS overrides it
// (the figure is 100,000).
func benchOps() int {
	if n, err := strconv.Atoi(os.Getenv("CONVERGE_BENCH_OPS")); err == nil && n > 0 {
		return n
	}
	return 10_000
}

type oneToken struct{}

func (oneToken) Authorize(_ context.Context, token string) (httptransport.Grant, error) {
	if token != "t" {
		return httptransport.Grant{}, httptransport.ErrUnauthorized
	}
	return httptransport.Grant{Namespaces: []string{"ns"}}, nil
}

// fill writes n records to r in transactions of 1000 and returns the total
// encoded size of its ops.
func fill(b *testing.B, r *transporttest.Replica, n int) int {
	b.Helper()
	for i := 0; i < n; i += 1000 {
		err := r.DB.Update(context.Background(), "ns", func(tx *converge.Tx) error {
			for j := i; j < min(i+1000, n); j++ {
				if _, err := r.Items.Tx(tx).Put(&transporttest.Item{ID: fmt.Sprintf("item-%07d", j), Name: "a record of some length", N: int64(j), Tags: []string{"x"}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	size := 0
	for e, err := range r.DB.Admin().Log().Missing(context.Background(), "ns", nil) {
		if err != nil {
			b.Fatal(err)
		}
		size += len(e.Raw)
	}
	return size
}

// BenchmarkHTTPSync measures moving benchOps() ops over real loopback
// HTTP: "catchup", a fresh client pulling them from the server, and
// "push", a client sending them to a fresh server. It reports ops/s and
// the wire bytes (both directions, after compression) per byte of encoded
// ops.
func BenchmarkHTTPSync(b *testing.B) {
	n := benchOps()
	quiet := slog.New(slog.DiscardHandler)
	for _, dir := range []string{"catchup", "push"} {
		b.Run(dir, func(b *testing.B) {
			full := transporttest.OpenReplica(b)
			opsBytes := fill(b, full, n)
			var wire, moved int
			for b.Loop() {
				b.StopTimer()
				empty := transporttest.OpenReplica(b)
				server, client := full, empty
				if dir == "push" {
					server, client = empty, full
				}
				srv, err := httptransport.NewServer(httptransport.ServerOptions{Store: server.DB.SyncStore(), Auth: oneToken{}, Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				ts := httptest.NewServer(srv)
				c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: ts.URL, Token: "t", Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := transport.Sync(context.Background(), client.DB.SyncStore(), c, "ns", transport.Options{})
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if res.Sent+res.Received != n {
					b.Fatalf("moved %d ops, want %d", res.Sent+res.Received, n)
				}
				st := c.Stats()
				wire += int(st.BytesSent + st.BytesReceived)
				moved += n
				srv.Close()
				ts.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(moved)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(wire)/float64(opsBytes*b.N), "wire/op-bytes")
			b.ReportMetric(float64(opsBytes)/float64(n), "op-bytes/op")
		})
	}
}
