package httptransport

import (
	"bytes"
	"compress/gzip"
	"io"
	"sync"
)

// The gzip writers and readers are pooled: a gzip.Writer allocates about
// 1.25 MB of compression state, which a message of a few KB would
// otherwise pay for every time.
var (
	gzipWriters = sync.Pool{New: func() any {
		zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed) // the level is valid
		return zw
	}}
	gzipReaders sync.Pool // of *gzip.Reader
)

// gzipped compresses b, and reports whether that paid.
func gzipped(b []byte) ([]byte, bool) {
	var buf bytes.Buffer
	buf.Grow(len(b) / 2)
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, false
	}
	if err := zw.Close(); err != nil {
		return nil, false
	}
	if buf.Len() >= len(b) {
		return nil, false
	}
	return buf.Bytes(), true
}

// gunzip decompresses data, reading at most limit bytes of its content.
func gunzip(data []byte, limit int64) ([]byte, error) {
	var zr *gzip.Reader
	if v := gzipReaders.Get(); v != nil {
		zr = v.(*gzip.Reader)
		if err := zr.Reset(bytes.NewReader(data)); err != nil {
			return nil, err
		}
	} else {
		var err error
		if zr, err = gzip.NewReader(bytes.NewReader(data)); err != nil {
			return nil, err
		}
	}
	defer gzipReaders.Put(zr)
	return io.ReadAll(io.LimitReader(zr, limit))
}
