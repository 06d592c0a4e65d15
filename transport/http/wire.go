package httptransport

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
	"github.com/convergedb/converge/transport"
)

// Media types of the bodies.
const (
	contentTypeMsg    = "application/vnd.converge.sync+msgpack"
	contentTypeStream = "application/vnd.converge.stream"
)

// RequestIDHeader carries the request id of a round trip, a snapshot
// page or a stream ([transport.WithRequestID] on the client's context):
// the server logs it with what it served, so a hub's log line can be
// found from a client's.
const RequestIDHeader = "X-Converge-Request-Id"

// maxVectorOrigins bounds a decoded vector, as the transport decoders do.
const maxVectorOrigins = 1 << 16

// appendVector appends the vector encoding of the transport messages:
// [origin bin(16), seq uint, ...] sorted by origin.
func appendVector(b []byte, v crdt.VersionVector) []byte {
	origins := v.Origins()
	b = mp.AppendArrayHeader(b, 2*len(origins))
	for _, o := range origins {
		b = mp.AppendBytes(b, o[:])
		b = mp.AppendUint(b, v[o])
	}
	return b
}

func decodeVector(b []byte) (crdt.VersionVector, error) {
	r := mp.NewReader(b)
	n, err := r.ArrayHeader()
	if err != nil {
		return nil, fmt.Errorf("%w: vector: %w", transport.ErrBadMessage, err)
	}
	if n%2 != 0 || n/2 > maxVectorOrigins {
		return nil, fmt.Errorf("%w: vector of %d items", transport.ErrBadMessage, n)
	}
	v := make(crdt.VersionVector, n/2)
	for range n / 2 {
		id, err := r.Bytes()
		if err != nil || len(id) != len(crdt.ReplicaID{}) {
			return nil, fmt.Errorf("%w: vector origin of %d bytes: %v", transport.ErrBadMessage, len(id), err)
		}
		seq, err := r.Uint()
		if err != nil {
			return nil, fmt.Errorf("%w: vector seq: %w", transport.ErrBadMessage, err)
		}
		v[crdt.ReplicaID(id)] = seq
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: vector: %d trailing bytes", transport.ErrBadMessage, r.Len())
	}
	return v, nil
}

// encodeVectorParam returns the v query parameter of a stream.
func encodeVectorParam(v crdt.VersionVector) string {
	return base64.RawURLEncoding.EncodeToString(appendVector(nil, v))
}

func decodeVectorParam(s string) (crdt.VersionVector, error) {
	if s == "" {
		return crdt.VersionVector{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: vector parameter: %w", transport.ErrBadMessage, err)
	}
	return decodeVector(b)
}

// appendFrame appends one stream frame: a big-endian uint32 length and
// the response encoding.
func appendFrame(b []byte, r *transport.Response) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = transport.AppendResponse(b, r)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// readFrame reads and decodes one stream frame, and returns its wire size.
// The response owns its memory.
func readFrame(r io.Reader) (*transport.Response, int, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, 0, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > transport.MaxMessageSize {
		return nil, 4, fmt.Errorf("%w: frame of %d bytes, limit %d", transport.ErrBadMessage, n, transport.MaxMessageSize)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, 4, err
	}
	resp, err := transport.DecodeResponse(buf)
	return resp, 4 + int(n), err
}

// escapeNamespace path-escapes ns as one segment of a URL, the dots of a
// namespace "." or ".." too (%2E): ServeMux, and proxies, would take
// those for path syntax.
func escapeNamespace(ns string) string {
	if ns == "." || ns == ".." {
		return strings.Repeat("%2E", len(ns))
	}
	return url.PathEscape(ns)
}
