package transport

import (
	"errors"
	"fmt"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
)

// Request is the requester's half of a round trip.
type Request struct {
	Namespace string
	Vector    crdt.VersionVector // the requester's
	Ops       [][]byte           // encoded ops pushed to the responder
	Limits    Limits             // the page the requester wants back
	// From is the requester's replica id, when it has one: the responder
	// records Vector as what that replica holds. Zero for a client that
	// does not say (a relay, an older version).
	From crdt.ReplicaID
}

// Response is the responder's half of a round trip.
type Response struct {
	Vector  crdt.VersionVector // the responder's, after applying the pushed ops
	Ops     [][]byte           // encoded ops the requester lacks
	More    bool               // more ops remain beyond this page
	Applied Applied            // what the responder did with the pushed ops
	// From is the responder's replica id, when it has one.
	From crdt.ReplicaID
}

// MessageVersion is the version of the wire encoding of requests and
// responses.
const MessageVersion = 1

// Limits on decoded messages.
const (
	MaxMessageSize = 64 << 20 // bytes
	maxVectorLen   = 1 << 16  // origins in one vector
	maxOpsPerMsg   = 1 << 17
	maxReasonLen   = 4096
)

// ErrBadMessage is wrapped by the errors of the message decoders and of
// [Request.Validate].
var ErrBadMessage = errors.New("transport: bad message")

// # Encoding
//
//	request:  [version=1, 'q', namespace, vector, [op bin, ...], max-ops, max-bytes, (from bin(16))]
//	response: [version=1, 'r', vector, [op bin, ...], more bool,
//	           applied, duplicates, refused, conflicts, reason, (from bin(16))]
//
// The trailing from (the sender's replica id) is written only when known;
// decoders accept messages with or without it.
//	vector:   [origin bin(16), seq uint, ...]  sorted by origin

// Validate checks a request's fields.
func (r *Request) Validate() error {
	if r.Namespace == "" || len(r.Namespace) > crdt.MaxNameLen {
		return fmt.Errorf("%w: namespace must be 1 to %d bytes", ErrBadMessage, crdt.MaxNameLen)
	}
	return nil
}

func appendVector(b []byte, v crdt.VersionVector) []byte {
	origins := v.Origins()
	b = mp.AppendArrayHeader(b, 2*len(origins))
	for _, o := range origins {
		b = mp.AppendBytes(b, o[:])
		b = mp.AppendUint(b, v[o])
	}
	return b
}

func appendOps(b []byte, ops [][]byte) []byte {
	b = mp.AppendArrayHeader(b, len(ops))
	for _, op := range ops {
		b = mp.AppendBytes(b, op)
	}
	return b
}

// AppendRequest appends the encoding of r to b.
func AppendRequest(b []byte, r *Request) []byte {
	n := 7
	if !r.From.IsZero() {
		n++
	}
	b = mp.AppendArrayHeader(b, n)
	b = mp.AppendUint(b, MessageVersion)
	b = mp.AppendUint(b, 'q')
	b = mp.AppendString(b, r.Namespace)
	b = appendVector(b, r.Vector)
	b = appendOps(b, r.Ops)
	b = mp.AppendUint(b, uint64(max(r.Limits.MaxOps, 0)))
	b = mp.AppendUint(b, uint64(max(r.Limits.MaxBytes, 0)))
	if !r.From.IsZero() {
		b = mp.AppendBytes(b, r.From[:])
	}
	return b
}

// AppendResponse appends the encoding of r to b.
func AppendResponse(b []byte, r *Response) []byte {
	n := 10
	if !r.From.IsZero() {
		n++
	}
	b = mp.AppendArrayHeader(b, n)
	b = mp.AppendUint(b, MessageVersion)
	b = mp.AppendUint(b, 'r')
	b = appendVector(b, r.Vector)
	b = appendOps(b, r.Ops)
	b = mp.AppendBool(b, r.More)
	b = mp.AppendUint(b, uint64(r.Applied.Applied))
	b = mp.AppendUint(b, uint64(r.Applied.Duplicates))
	b = mp.AppendUint(b, uint64(r.Applied.Refused))
	b = mp.AppendUint(b, uint64(r.Applied.Conflicts))
	reason := r.Applied.Reason
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	b = mp.AppendString(b, reason)
	if !r.From.IsZero() {
		b = mp.AppendBytes(b, r.From[:])
	}
	return b
}

type msgReader struct {
	mp.Reader
	err error
}

func (m *msgReader) fail(err error) {
	if m.err == nil && err != nil {
		m.err = err
	}
}

func (m *msgReader) uint() uint64 {
	if m.err != nil {
		return 0
	}
	v, err := m.Uint()
	m.fail(err)
	return v
}

func (m *msgReader) count() int {
	v := m.uint()
	if v > 1<<31 {
		m.fail(fmt.Errorf("count %d out of range", v))
		return 0
	}
	return int(v)
}

// header reads the array header, version and kind, and reports whether
// the optional trailing sender id follows (want+1 elements).
func (m *msgReader) header(want int, kind byte) (withFrom bool) {
	if m.err != nil {
		return false
	}
	n, err := m.ArrayHeader()
	if err != nil {
		m.fail(err)
		return false
	}
	if n != want && n != want+1 {
		m.fail(fmt.Errorf("array of %d elements, want %d or %d", n, want, want+1))
		return false
	}
	withFrom = n == want+1
	if v := m.uint(); m.err == nil && v != MessageVersion {
		m.fail(fmt.Errorf("message version %d, this build reads %d", v, MessageVersion))
		return
	}
	if k := m.uint(); m.err == nil && k != uint64(kind) {
		m.fail(fmt.Errorf("message kind %q, want %q", rune(k), rune(kind)))
	}
	return withFrom
}

// from reads the sender's replica id: 16 bytes, not zero.
func (m *msgReader) from() crdt.ReplicaID {
	if m.err != nil {
		return crdt.ReplicaID{}
	}
	b, err := m.Bytes()
	if err != nil || len(b) != 16 {
		m.fail(fmt.Errorf("sender id: %d bytes: %v", len(b), err))
		return crdt.ReplicaID{}
	}
	id := crdt.ReplicaID(b)
	if id.IsZero() {
		m.fail(errors.New("sender id is zero"))
	}
	return id
}

func (m *msgReader) vector() crdt.VersionVector {
	if m.err != nil {
		return nil
	}
	n, err := m.ArrayHeader()
	if err != nil || n%2 != 0 || n/2 > maxVectorLen {
		m.fail(fmt.Errorf("vector of %d items: %v", n, err))
		return nil
	}
	v := make(crdt.VersionVector, n/2)
	for range n / 2 {
		id, err := m.Bytes()
		if err != nil || len(id) != 16 {
			m.fail(fmt.Errorf("vector origin: %d bytes: %v", len(id), err))
			return nil
		}
		seq := m.uint()
		if _, dup := v[crdt.ReplicaID(id)]; dup {
			m.fail(fmt.Errorf("vector origin %x appears twice", id))
			return nil
		}
		if seq > 0 { // a zero entry says nothing; encoders omit it
			v[crdt.ReplicaID(id)] = seq
		}
	}
	return v
}

func (m *msgReader) ops() [][]byte {
	if m.err != nil {
		return nil
	}
	n, err := m.ArrayHeader()
	if err != nil || n > maxOpsPerMsg {
		m.fail(fmt.Errorf("op list of %d: %v", n, err))
		return nil
	}
	ops := make([][]byte, n)
	for i := range ops {
		p, err := m.Bytes()
		if err != nil {
			m.fail(err)
			return nil
		}
		ops[i] = p
	}
	return ops
}

func (m *msgReader) done(what string) error {
	if m.err == nil && m.Len() != 0 {
		m.fail(fmt.Errorf("%d trailing bytes", m.Len()))
	}
	if m.err != nil {
		return fmt.Errorf("%w: %s at byte %d: %w", ErrBadMessage, what, m.Offset(), m.err)
	}
	return nil
}

// DecodeRequest decodes a request. Op slices alias b.
func DecodeRequest(b []byte) (*Request, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: request of %d bytes, limit %d", ErrBadMessage, len(b), MaxMessageSize)
	}
	m := &msgReader{}
	m.Reset(b)
	withFrom := m.header(7, 'q')
	r := &Request{}
	if m.err == nil {
		var err error
		r.Namespace, err = m.String()
		m.fail(err)
	}
	r.Vector = m.vector()
	r.Ops = m.ops()
	r.Limits.MaxOps = m.count()
	r.Limits.MaxBytes = m.count()
	if withFrom {
		r.From = m.from()
	}
	if err := m.done("request"); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// DecodeResponse decodes a response. Op slices alias b.
func DecodeResponse(b []byte) (*Response, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: response of %d bytes, limit %d", ErrBadMessage, len(b), MaxMessageSize)
	}
	m := &msgReader{}
	m.Reset(b)
	withFrom := m.header(10, 'r')
	r := &Response{}
	r.Vector = m.vector()
	r.Ops = m.ops()
	if m.err == nil {
		var err error
		r.More, err = m.Bool()
		m.fail(err)
	}
	r.Applied.Applied = m.count()
	r.Applied.Duplicates = m.count()
	r.Applied.Refused = m.count()
	r.Applied.Conflicts = m.count()
	if m.err == nil {
		var err error
		r.Applied.Reason, err = m.String()
		m.fail(err)
	}
	if withFrom {
		r.From = m.from()
	}
	if err := m.done("response"); err != nil {
		return nil, err
	}
	return r, nil
}
