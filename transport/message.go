package transport

import (
	"errors"
	"fmt"
	"strings"

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
	// SnapshotNeeded says that the requester's vector is below the
	// responder's compaction horizon: the ops it lacks are gone from the
	// responder's log, so it must bootstrap from a snapshot
	// ([Peer].Snapshot) before op sync can go on. Ops is then empty and More
	// false; Vector and Applied are as usual (pushed ops were applied).
	SnapshotNeeded bool
}

// MessageVersion is the version of the wire encoding of requests and
// responses.
const MessageVersion = 1

// Message kinds: the second element of every message ([MessageKind]).
const (
	KindRequest          = 'q' // a [Request]
	KindResponse         = 'r' // a [Response]
	KindSnapshotRequest  = 's' // a [SnapshotRequest]
	KindSnapshotResponse = 't' // a [SnapshotResponse]
)

// Limits on decoded messages.
const (
	MaxMessageSize = 64 << 20 // bytes
	maxVectorLen   = 1 << 20  // origins in one vector: 1,048,576 (about 20 MB)
	maxOpsPerMsg   = 1 << 17
	minVectorEntry = 19 // bytes: a bin(16) origin and a one-byte seq
	maxReasonLen   = 4096
	// MaxSnapshotRecords bounds the records of one snapshot page.
	MaxSnapshotRecords = 1 << 17
	// MaxStateSize bounds one record state in a snapshot page.
	MaxStateSize = 32 << 20
)

// Response flags: the optional element after a response's from.
const (
	flagSnapshotNeeded = 1 << 0
	knownFlags         = flagSnapshotNeeded
)

// ErrBadMessage is wrapped by the errors of the message decoders and of
// [Request.Validate].
var ErrBadMessage = errors.New("transport: bad message")

// # Encoding
//
//	request:  [version=1, 'q', namespace, vector, [op bin, ...], max-ops, max-bytes, (from bin(16))]
//	response: [version=1, 'r', vector, [op bin, ...], more bool,
//	           applied, duplicates, refused, conflicts, reason, (from bin(16) | nil, (flags uint))]
//	snapshot request:  [version=1, 's', namespace, after, max-records, max-bytes, (from bin(16))]
//	snapshot response: [version=1, 't', vector, [record, ...], more bool, (from bin(16))]
//	after:    nil | [collection str, key str]
//	record:   [collection str, key str, state bin]   sorted by (collection, key), no repeats
//	vector:   [origin bin(16), seq uint, ...]  sorted by origin
//
// The trailing from (the sender's replica id) is written only when known;
// decoders accept messages with or without it. A response's flags (bit 0:
// snapshot needed; other bits must be 0) are written only when not zero,
// after from, which is then nil if the sender has no id. Each message has
// exactly one encoding.

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
	var flags uint64
	if r.SnapshotNeeded {
		flags |= flagSnapshotNeeded
	}
	n := 10
	switch {
	case flags != 0:
		n += 2
	case !r.From.IsZero():
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
	switch {
	case !r.From.IsZero():
		b = mp.AppendBytes(b, r.From[:])
	case flags != 0:
		b = mp.AppendNil(b)
	}
	if flags != 0 {
		b = mp.AppendUint(b, flags)
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

// header reads the array header, version and kind, and returns how many
// optional trailing elements follow the want mandatory ones (at most
// extra).
func (m *msgReader) header(want, extra int, kind byte) (optional int) {
	if m.err != nil {
		return 0
	}
	n, err := m.ArrayHeader()
	if err != nil {
		m.fail(err)
		return 0
	}
	if n < want || n > want+extra {
		m.fail(fmt.Errorf("array of %d elements, want %d to %d", n, want, want+extra))
		return 0
	}
	if v := m.uint(); m.err == nil && v != MessageVersion {
		m.fail(fmt.Errorf("message version %d, this build reads %d", v, MessageVersion))
		return 0
	}
	if k := m.uint(); m.err == nil && k != uint64(kind) {
		m.fail(fmt.Errorf("message kind %q, want %q", rune(k), rune(kind)))
	}
	return n - want
}

// MessageKind returns the kind of an encoded message ([KindRequest],
// [KindSnapshotRequest], ...), read from its first elements, so that a
// receiver serving several kinds on one channel knows which decoder to
// use. It does not check the rest of the message; the error wraps
// [ErrBadMessage].
func MessageKind(b []byte) (byte, error) {
	m := &msgReader{}
	m.Reset(b)
	if n, err := m.ArrayHeader(); err != nil || n < 2 {
		m.fail(fmt.Errorf("array of %d elements: %v", n, err))
	}
	if v := m.uint(); m.err == nil && v != MessageVersion {
		m.fail(fmt.Errorf("message version %d, this build reads %d", v, MessageVersion))
	}
	k := m.uint()
	if m.err == nil && k > 0x7f {
		m.fail(fmt.Errorf("message kind %d", k))
	}
	if m.err != nil {
		return 0, fmt.Errorf("%w: message header at byte %d: %w", ErrBadMessage, m.Offset(), m.err)
	}
	return byte(k), nil
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

// name reads a string of 1 to crdt.MaxNameLen bytes.
func (m *msgReader) name(what string) string {
	if m.err != nil {
		return ""
	}
	s, err := m.StringBytes()
	if err != nil {
		m.fail(fmt.Errorf("%s: %w", what, err))
		return ""
	}
	if len(s) == 0 || len(s) > crdt.MaxNameLen {
		m.fail(fmt.Errorf("%s of %d bytes, want 1 to %d", what, len(s), crdt.MaxNameLen))
		return ""
	}
	return string(s)
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
	// An entry takes at least minVectorEntry bytes: the header's count
	// sizes the map only as far as the bytes left can back it.
	v := make(crdt.VersionVector, min(n/2, m.Len()/minVectorEntry))
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
	withFrom := m.header(7, 1, KindRequest) == 1
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
	optional := m.header(10, 2, KindResponse)
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
	switch {
	case optional == 1:
		r.From = m.from()
	case optional == 2 && m.err == nil && !m.IsNil(): // nil: flags without a sender id
		r.From = m.from()
	}
	if optional == 2 && m.err == nil {
		flags := m.uint()
		switch {
		case m.err != nil:
		case flags == 0:
			m.fail(errors.New("flags of 0 written")) // encoders omit them
		case flags&^knownFlags != 0:
			m.fail(fmt.Errorf("unknown flags %#x", flags&^knownFlags))
		}
		r.SnapshotNeeded = flags&flagSnapshotNeeded != 0
	}
	if m.err == nil && r.SnapshotNeeded && (len(r.Ops) > 0 || r.More) {
		m.fail(errors.New("a snapshot-needed response with ops"))
	}
	if err := m.done("response"); err != nil {
		return nil, err
	}
	return r, nil
}

// Validate checks a snapshot request's fields.
func (r *SnapshotRequest) Validate() error {
	if r.Namespace == "" || len(r.Namespace) > crdt.MaxNameLen {
		return fmt.Errorf("%w: namespace must be 1 to %d bytes", ErrBadMessage, crdt.MaxNameLen)
	}
	if a := r.After; a != nil {
		if a.Collection == "" || len(a.Collection) > crdt.MaxNameLen || a.Key == "" || len(a.Key) > crdt.MaxNameLen {
			return fmt.Errorf("%w: cursor collection and key must be 1 to %d bytes", ErrBadMessage, crdt.MaxNameLen)
		}
	}
	return nil
}

// AppendSnapshotRequest appends the encoding of r to b.
func AppendSnapshotRequest(b []byte, r *SnapshotRequest) []byte {
	n := 6
	if !r.From.IsZero() {
		n++
	}
	b = mp.AppendArrayHeader(b, n)
	b = mp.AppendUint(b, MessageVersion)
	b = mp.AppendUint(b, KindSnapshotRequest)
	b = mp.AppendString(b, r.Namespace)
	if r.After == nil {
		b = mp.AppendNil(b)
	} else {
		b = mp.AppendArrayHeader(b, 2)
		b = mp.AppendString(b, r.After.Collection)
		b = mp.AppendString(b, r.After.Key)
	}
	b = mp.AppendUint(b, uint64(max(r.Limits.MaxOps, 0)))
	b = mp.AppendUint(b, uint64(max(r.Limits.MaxBytes, 0)))
	if !r.From.IsZero() {
		b = mp.AppendBytes(b, r.From[:])
	}
	return b
}

// AppendSnapshotResponse appends the encoding of r to b.
func AppendSnapshotResponse(b []byte, r *SnapshotResponse) []byte {
	n := 5
	if !r.From.IsZero() {
		n++
	}
	b = mp.AppendArrayHeader(b, n)
	b = mp.AppendUint(b, MessageVersion)
	b = mp.AppendUint(b, KindSnapshotResponse)
	b = appendVector(b, r.Vector)
	b = mp.AppendArrayHeader(b, len(r.Records))
	for i := range r.Records {
		rec := &r.Records[i]
		b = mp.AppendArrayHeader(b, 3)
		b = mp.AppendString(b, rec.Collection)
		b = mp.AppendString(b, rec.Key)
		b = mp.AppendBytes(b, rec.State)
	}
	b = mp.AppendBool(b, r.More)
	if !r.From.IsZero() {
		b = mp.AppendBytes(b, r.From[:])
	}
	return b
}

// DecodeSnapshotRequest decodes a snapshot request.
func DecodeSnapshotRequest(b []byte) (*SnapshotRequest, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: snapshot request of %d bytes, limit %d", ErrBadMessage, len(b), MaxMessageSize)
	}
	m := &msgReader{}
	m.Reset(b)
	withFrom := m.header(6, 1, KindSnapshotRequest) == 1
	r := &SnapshotRequest{}
	r.Namespace = m.name("namespace")
	if m.err == nil && !m.IsNil() {
		if n, err := m.ArrayHeader(); err != nil || n != 2 {
			m.fail(fmt.Errorf("cursor of %d elements, want 2: %v", n, err))
		}
		c := &SnapshotCursor{Collection: m.name("cursor collection"), Key: m.name("cursor key")}
		r.After = c
	}
	r.Limits.MaxOps = m.count()
	r.Limits.MaxBytes = m.count()
	if withFrom {
		r.From = m.from()
	}
	if err := m.done("snapshot request"); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// DecodeSnapshotResponse decodes a snapshot response: records in strictly
// increasing (collection, key) order, each state 1 to [MaxStateSize]
// bytes, at most [MaxSnapshotRecords] of them, and at least one when more
// follow. State slices alias b.
func DecodeSnapshotResponse(b []byte) (*SnapshotResponse, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: snapshot response of %d bytes, limit %d", ErrBadMessage, len(b), MaxMessageSize)
	}
	m := &msgReader{}
	m.Reset(b)
	withFrom := m.header(5, 1, KindSnapshotResponse) == 1
	r := &SnapshotResponse{}
	r.Vector = m.vector()
	r.Records = m.records()
	if m.err == nil {
		var err error
		r.More, err = m.Bool()
		m.fail(err)
	}
	if withFrom {
		r.From = m.from()
	}
	if m.err == nil && r.More && len(r.Records) == 0 {
		m.fail(errors.New("more records follow a page of none"))
	}
	if err := m.done("snapshot response"); err != nil {
		return nil, err
	}
	return r, nil
}

// records reads the records of a snapshot page.
func (m *msgReader) records() []SnapshotRecord {
	if m.err != nil {
		return nil
	}
	n, err := m.ArrayHeader()
	if err != nil || n > MaxSnapshotRecords {
		m.fail(fmt.Errorf("record list of %d: %v", n, err))
		return nil
	}
	recs := make([]SnapshotRecord, n)
	for i := range recs {
		if k, err := m.ArrayHeader(); err != nil || k != 3 {
			m.fail(fmt.Errorf("record %d: array of %d elements, want 3: %v", i, k, err))
			return nil
		}
		rec := &recs[i]
		rec.Collection = m.name("record collection")
		rec.Key = m.name("record key")
		if m.err != nil {
			return nil
		}
		st, err := m.Bytes()
		if err != nil {
			m.fail(fmt.Errorf("record %d state: %w", i, err))
			return nil
		}
		if len(st) == 0 || len(st) > MaxStateSize {
			m.fail(fmt.Errorf("record %d: state of %d bytes, want 1 to %d", i, len(st), MaxStateSize))
			return nil
		}
		rec.State = st
		if i > 0 && compareKeys(recs[i-1].Collection, recs[i-1].Key, rec.Collection, rec.Key) >= 0 {
			m.fail(fmt.Errorf("record %d (%q, %q) is not after the one before it", i, rec.Collection, rec.Key))
			return nil
		}
	}
	return recs
}

// compareKeys orders records by collection, then key.
func compareKeys(c1, k1, c2, k2 string) int {
	if c := strings.Compare(c1, c2); c != 0 {
		return c
	}
	return strings.Compare(k1, k2)
}
