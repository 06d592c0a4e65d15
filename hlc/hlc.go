// Package hlc implements hybrid logical clocks (Kulkarni, Demirbas, Madeppa,
// Avva and Leone, "Logical Physical Clocks and Consistent Snapshots in
// Globally Distributed Databases", 2014).
//
// A [Timestamp] packs physical milliseconds and a logical counter into one
// uint64 so that integer order, and the big-endian byte order of its
// encoding, is time order. A [Clock] issues timestamps that never go
// backwards and merges timestamps received from other replicas, refusing
// those that run further ahead of physical time than a configured bound.
//
// The package is pure: a Clock reads physical time only through the function
// it was given, and no type here is safe for concurrent use.
//
// # Encoding
//
//	 63                              16 15              0
//	+----------------------------------+-----------------+
//	|  wall time, Unix milliseconds    | logical counter |
//	|            (48 bits)             |    (16 bits)    |
//	+----------------------------------+-----------------+
//
// Encoded as 8 bytes, big-endian. 48 bits of milliseconds last until the
// year 10889.
package hlc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Timestamp is a hybrid logical clock reading: wall-clock milliseconds in the
// high 48 bits, a logical counter in the low 16. The zero Timestamp is before
// every other and means "none".
type Timestamp uint64

const (
	logicalBits = 16
	// MaxLogical is the largest logical counter a Timestamp can carry.
	MaxLogical = 1<<logicalBits - 1
	// MaxWall is the largest wall time, in Unix milliseconds, a Timestamp can carry.
	MaxWall = 1<<(64-logicalBits) - 1
	// Size is the length of a Timestamp's binary encoding.
	Size = 8
)

var (
	// ErrClockDrift is returned (wrapped in a [*DriftError]) by
	// [Clock.Update] when a remote timestamp runs further ahead of local
	// physical time than the clock's bound.
	ErrClockDrift = errors.New("hlc: remote clock beyond drift bound")
	// ErrMalformed is returned when a timestamp's encoding is invalid.
	ErrMalformed = errors.New("hlc: malformed timestamp")
)

// New returns the timestamp of wall time wallMillis (Unix milliseconds) and
// counter logical. wallMillis is clamped to [0, MaxWall].
func New(wallMillis int64, logical uint16) Timestamp {
	return Timestamp(uint64(clampWall(wallMillis))<<logicalBits | uint64(logical))
}

func clampWall(ms int64) int64 {
	if ms < 0 {
		return 0
	}
	if ms > MaxWall {
		return MaxWall
	}
	return ms
}

// Wall returns the timestamp's physical part in Unix milliseconds.
func (t Timestamp) Wall() int64 { return int64(t >> logicalBits) }

// Logical returns the timestamp's logical counter.
func (t Timestamp) Logical() uint16 { return uint16(t & MaxLogical) }

// Time returns the physical part as a time.Time in UTC.
func (t Timestamp) Time() time.Time { return time.UnixMilli(t.Wall()).UTC() }

// IsZero reports whether t is the zero Timestamp.
func (t Timestamp) IsZero() bool { return t == 0 }

// Compare returns -1, 0 or +1 as t is before, equal to or after u.
func (t Timestamp) Compare(u Timestamp) int {
	switch {
	case t < u:
		return -1
	case t > u:
		return 1
	}
	return 0
}

// String formats t as "<wall ms>.<logical>", which [Parse] reads back.
func (t Timestamp) String() string {
	return strconv.FormatInt(t.Wall(), 10) + "." + strconv.FormatUint(uint64(t.Logical()), 10)
}

// Parse reads a timestamp in the form written by [Timestamp.String].
func Parse(s string) (Timestamp, error) {
	wall, logical, ok := strings.Cut(s, ".")
	if !ok {
		return 0, fmt.Errorf("%w: %q: want <wall>.<logical>", ErrMalformed, s)
	}
	w, err := strconv.ParseInt(wall, 10, 64)
	if err != nil || w < 0 || w > MaxWall {
		return 0, fmt.Errorf("%w: %q: bad wall time", ErrMalformed, s)
	}
	l, err := strconv.ParseUint(logical, 10, logicalBits)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: bad logical counter", ErrMalformed, s)
	}
	return New(w, uint16(l)), nil
}

// AppendBinary appends t's 8-byte big-endian encoding to b.
func (t Timestamp) AppendBinary(b []byte) ([]byte, error) {
	return binary.BigEndian.AppendUint64(b, uint64(t)), nil
}

// MarshalBinary returns t's 8-byte big-endian encoding.
func (t Timestamp) MarshalBinary() ([]byte, error) { return t.AppendBinary(make([]byte, 0, Size)) }

// UnmarshalBinary decodes an 8-byte big-endian encoding.
func (t *Timestamp) UnmarshalBinary(b []byte) error {
	d, err := Decode(b)
	if err != nil {
		return err
	}
	*t = d
	return nil
}

// Decode decodes an 8-byte big-endian encoding. It returns ErrMalformed if b
// is not exactly [Size] bytes.
func Decode(b []byte) (Timestamp, error) {
	if len(b) != Size {
		return 0, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), Size)
	}
	return Timestamp(binary.BigEndian.Uint64(b)), nil
}

// DriftError describes a remote timestamp refused by [Clock.Update].
// It wraps [ErrClockDrift].
type DriftError struct {
	Remote   Timestamp     // the refused timestamp
	Physical int64         // local physical time, Unix milliseconds, when refused
	MaxDrift time.Duration // the clock's bound
}

func (e *DriftError) Error() string {
	ms := e.Remote.Wall() - e.Physical
	ahead := fmt.Sprintf("%dms", ms)
	if ms < int64(math.MaxInt64/time.Millisecond) {
		ahead = (time.Duration(ms) * time.Millisecond).String()
	}
	return fmt.Sprintf("hlc: remote timestamp %v is %s ahead of local physical time, beyond the %v bound", e.Remote, ahead, e.MaxDrift)
}

// Unwrap returns ErrClockDrift.
func (e *DriftError) Unwrap() error { return ErrClockDrift }

// DefaultMaxDrift is the drift bound a Clock uses when given none.
const DefaultMaxDrift = time.Minute

// Clock issues hybrid logical timestamps. It is not safe for concurrent use;
// its owner serializes calls.
type Clock struct {
	physical func() int64
	maxDrift time.Duration
	last     Timestamp
}

// NewClock returns a clock that reads physical time, in Unix milliseconds,
// from physical, and refuses remote timestamps more than maxDrift ahead of
// it. maxDrift <= 0 means [DefaultMaxDrift].
func NewClock(physical func() int64, maxDrift time.Duration) *Clock {
	if maxDrift <= 0 {
		maxDrift = DefaultMaxDrift
	}
	return &Clock{physical: physical, maxDrift: maxDrift}
}

// MaxDrift returns the clock's drift bound.
func (c *Clock) MaxDrift() time.Duration { return c.maxDrift }

// Last returns the latest timestamp the clock issued or observed.
func (c *Clock) Last() Timestamp { return c.last }

// Now returns a timestamp after every timestamp the clock has issued or
// observed. When the logical counter would overflow, the wall part advances
// by one millisecond instead.
func (c *Clock) Now() Timestamp {
	c.last = c.next(c.physical(), c.last)
	return c.last
}

// next returns the smallest timestamp > last whose wall part is at least pt.
func (c *Clock) next(pt int64, last Timestamp) Timestamp {
	pt = clampWall(pt)
	if pt > last.Wall() {
		return New(pt, 0)
	}
	if last.Logical() < MaxLogical {
		return last + 1
	}
	if last.Wall() >= MaxWall {
		// 2^48 ms after 1970: unreachable in practice, and there is no
		// later timestamp to give.
		panic("hlc: clock exhausted")
	}
	return New(last.Wall()+1, 0)
}

// Update merges a timestamp received from another replica and returns a new
// local timestamp after both it and every timestamp issued so far. If remote
// is more than the drift bound ahead of local physical time, Update returns a
// [*DriftError] wrapping [ErrClockDrift] and leaves the clock unchanged: a
// faulty remote clock cannot drag ours forward.
func (c *Clock) Update(remote Timestamp) (Timestamp, error) {
	pt := c.physical()
	if err := c.check(pt, remote); err != nil {
		return 0, err
	}
	c.last = c.next(pt, max(c.last, remote))
	return c.last, nil
}

// Check reports, without changing the clock, whether Update(remote) would
// succeed: nil, or a [*DriftError].
func (c *Clock) Check(remote Timestamp) error { return c.check(c.physical(), remote) }

func (c *Clock) check(pt int64, remote Timestamp) error {
	// Compare in milliseconds: the distance in nanoseconds overflows an
	// int64 for remotes more than 292 years ahead.
	if remote.Wall() > pt && remote.Wall()-pt > c.maxDrift.Milliseconds() {
		return &DriftError{Remote: remote, Physical: pt, MaxDrift: c.maxDrift}
	}
	return nil
}

// Observe raises the clock to at least t without a drift check. Stores use it
// on open to restore the persisted high-water mark, so that Now never goes
// backwards across a restart.
func (c *Clock) Observe(t Timestamp) {
	if t > c.last {
		c.last = t
	}
}
