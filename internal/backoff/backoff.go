// Package backoff computes the waits between retries: exponential from a
// minimum, capped at a maximum, with full jitter (a wait drawn uniformly
// between zero and the exponential bound; Brooker, "Exponential Backoff
// and Jitter", AWS Architecture Blog, 2015). Full jitter spreads the
// retries of many clients that failed together, so that they do not come
// back together.
//
// The HTTP client's round-trip retries and the replicator's sync retries
// and live-stream reconnects share it; each keeps its own defaults.
//
//	j := backoff.New(backoff.Policy{Min: 100 * time.Millisecond, Max: 10 * time.Second}, nil)
//	for retry := 0; ; retry++ {
//		if err := try(); err == nil {
//			break
//		}
//		time.Sleep(j.Wait(retry)) // or a timer that ctx can interrupt
//	}
package backoff

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Policy bounds an exponential backoff: the wait before retry n (from 0)
// is at most min(Max, Min·2ⁿ). A Max below Min caps every wait at Max.
type Policy struct {
	Min, Max time.Duration
}

// Ceiling returns the bound of the wait before retry n (from 0):
// min(Max, Min·2ⁿ), without overflow for any n. A negative n counts as 0.
func (p Policy) Ceiling(retry int) time.Duration {
	c := p.Min
	if c <= 0 {
		return 0
	}
	for range max(retry, 0) {
		if c > p.Max/2 { // doubling passes Max (and may overflow): Max it is
			return p.Max
		}
		c *= 2
	}
	return min(c, p.Max)
}

// Jitter draws the waits of a [Policy] with full jitter. It is safe for
// concurrent use.
type Jitter struct {
	policy Policy

	mu  sync.Mutex
	rng *rand.Rand
}

// New returns the jittered waits of p, drawn from rng (the Jitter locks
// around it). A nil rng means one seeded from the clock.
func New(p Policy, rng *rand.Rand) *Jitter {
	if rng == nil {
		seed := uint64(time.Now().UnixNano())
		rng = rand.New(rand.NewPCG(seed, seed>>17|1))
	}
	return &Jitter{policy: p, rng: rng}
}

// Policy returns the bounds the waits are drawn under.
func (j *Jitter) Policy() Policy { return j.policy }

// Wait returns the wait before retry n (from 0): a duration drawn
// uniformly from [0, Ceiling(n)].
func (j *Jitter) Wait(retry int) time.Duration {
	n := int64(j.policy.Ceiling(retry))
	if n < math.MaxInt64 {
		n++ // Int64N draws from [0, n)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return time.Duration(j.rng.Int64N(n))
}

// WaitAtLeast returns Wait(retry), or floor if that is longer: the wait
// before a retry when the other side asked for one (an HTTP Retry-After).
// The caller bounds floor.
func (j *Jitter) WaitAtLeast(retry int, floor time.Duration) time.Duration {
	return max(j.Wait(retry), floor)
}
