package httptransport

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"testing"
)

func gzipSample(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":"task-%d","title":"write the report","done":false}`, i)
	}
	return b.Bytes()[:n]
}

// TestGzipPoolRoundTrip: pooled writers and readers, reused across
// messages of different sizes, give back what was compressed.
func TestGzipPoolRoundTrip(t *testing.T) {
	for range 3 {
		for _, n := range []int{2 << 10, 300, 64 << 10} {
			in := gzipSample(n)
			z, ok := gzipped(in)
			if !ok {
				t.Fatalf("%d bytes did not compress", n)
			}
			out, err := gunzip(z, int64(n)+1)
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("round trip of %d bytes: %d bytes back, %v", n, len(out), err)
			}
		}
	}
	if _, err := gunzip([]byte("not gzip"), 100); err == nil {
		t.Fatal("gunzip of garbage: no error")
	}
}

// BenchmarkGzipMessage compresses a 2 KB message with the pooled writer
// (pooled) and, as the baseline in the same run, with a new writer per
// message as the transport did before (new).
func BenchmarkGzipMessage(b *testing.B) {
	msg := gzipSample(2 << 10)
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := gzipped(msg); !ok {
				b.Fatal("did not compress")
			}
		}
	})
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
			zw.Write(msg)
			zw.Close()
		}
	})
}
