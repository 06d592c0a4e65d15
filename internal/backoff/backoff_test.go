package backoff

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestCeiling(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name   string
		policy Policy
		retry  int
		want   time.Duration
	}{
		{"first retry waits up to Min", Policy{ms, 40 * ms}, 0, ms},
		{"doubles", Policy{ms, 40 * ms}, 1, 2 * ms},
		{"below the cap", Policy{ms, 40 * ms}, 5, 32 * ms},
		{"capped", Policy{ms, 40 * ms}, 6, 40 * ms},
		{"capped far out", Policy{ms, 40 * ms}, 1000, 40 * ms},
		{"exactly the cap", Policy{10 * ms, 40 * ms}, 2, 40 * ms},
		{"a cap that is not a power of two times Min", Policy{20 * ms, 41 * ms}, 1, 40 * ms},
		{"negative retry counts as 0", Policy{ms, 40 * ms}, -3, ms},
		{"Max below Min caps at Max", Policy{time.Second, 100 * ms}, 0, 100 * ms},
		{"zero Min", Policy{0, time.Second}, 5, 0},
		{"no overflow", Policy{time.Hour, math.MaxInt64}, 200, math.MaxInt64},
		{"no overflow below the cap", Policy{1, math.MaxInt64}, 62, 1 << 62},
	} {
		if got := tc.policy.Ceiling(tc.retry); got != tc.want {
			t.Errorf("%s: %+v.Ceiling(%d) = %v, want %v", tc.name, tc.policy, tc.retry, got, tc.want)
		}
	}
}

// TestWaitFullJitter: every wait lies in [0, Ceiling(n)], and the draws
// span that range (full jitter, not a fixed fraction of it).
func TestWaitFullJitter(t *testing.T) {
	p := Policy{Min: time.Millisecond, Max: 40 * time.Millisecond}
	j := New(p, rand.New(rand.NewPCG(7, 9)))
	for n := range 20 {
		ceil := p.Ceiling(n)
		low, high := ceil, time.Duration(0)
		for range 400 {
			d := j.Wait(n)
			if d < 0 || d > ceil {
				t.Fatalf("Wait(%d) = %v, want within [0, %v]", n, d, ceil)
			}
			low, high = min(low, d), max(high, d)
		}
		if low > ceil/4 || high < ceil*3/4 {
			t.Errorf("Wait(%d): 400 draws span [%v, %v], want most of [0, %v]", n, low, high, ceil)
		}
	}
}

// TestWaitDeterministic: the same seed gives the same waits.
func TestWaitDeterministic(t *testing.T) {
	p := Policy{Min: time.Millisecond, Max: time.Second}
	a, b := New(p, rand.New(rand.NewPCG(1, 2))), New(p, rand.New(rand.NewPCG(1, 2)))
	for n := range 50 {
		if x, y := a.Wait(n), b.Wait(n); x != y {
			t.Fatalf("Wait(%d) = %v and %v from the same seed", n, x, y)
		}
	}
}

func TestWaitAtLeast(t *testing.T) {
	p := Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}
	j := New(p, nil)
	for range 100 {
		if d := j.WaitAtLeast(3, time.Second); d != time.Second {
			t.Fatalf("WaitAtLeast(3, 1s) = %v, want the floor, 1s", d)
		}
		if d := j.WaitAtLeast(3, 0); d < 0 || d > 5*time.Millisecond {
			t.Fatalf("WaitAtLeast(3, 0) = %v, want within [0, 5ms]", d)
		}
	}
}

// TestWaitHugeCeiling: a ceiling of the largest duration draws without
// overflowing.
func TestWaitHugeCeiling(t *testing.T) {
	j := New(Policy{Min: time.Hour, Max: math.MaxInt64}, rand.New(rand.NewPCG(3, 4)))
	for range 100 {
		if d := j.Wait(100); d < 0 {
			t.Fatalf("Wait(100) = %v, want non-negative", d)
		}
	}
}

// TestWaitConcurrent: a Jitter is safe for concurrent use (run with -race).
func TestWaitConcurrent(t *testing.T) {
	j := New(Policy{Min: time.Millisecond, Max: time.Second}, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for n := range 100 {
				if d := j.Wait(n); d < 0 || d > time.Second {
					t.Errorf("Wait(%d) = %v", n, d)
				}
			}
		})
	}
	wg.Wait()
}

func ExamplePolicy_Ceiling() {
	p := Policy{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for retry := range 9 {
		fmt.Print(p.Ceiling(retry), " ")
	}
	fmt.Println()
	// Output:
	// 100ms 200ms 400ms 800ms 1.6s 3.2s 6.4s 10s 10s
}
