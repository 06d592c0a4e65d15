package proptest

import (
	"sync/atomic"
	"time"
)

// Epoch is the time, in Unix milliseconds, at which a [Network]'s manual
// clocks start: 2025-01-01T00:00:00Z.
const Epoch int64 = 1735689600000

// ManualClock is a physical clock that moves only when told to: a
// deterministic time source for converge.Options.Clock. It may be set
// backwards, as a real clock stepped by NTP may be. It is safe for
// concurrent use.
type ManualClock struct{ ms atomic.Int64 }

// NewManualClock returns a clock reading ms (Unix milliseconds).
func NewManualClock(ms int64) *ManualClock {
	c := &ManualClock{}
	c.ms.Store(ms)
	return c
}

// Now returns the clock's time in Unix milliseconds. Pass c.Now as
// converge.Options.Clock.
func (c *ManualClock) Now() int64 { return c.ms.Load() }

// Set sets the clock to ms (Unix milliseconds), forwards or backwards.
func (c *ManualClock) Set(ms int64) { c.ms.Store(ms) }

// Advance moves the clock by d (backwards if d is negative).
func (c *ManualClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }
