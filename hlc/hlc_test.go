package hlc_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/convergedb/converge/hlc"
	"pgregory.net/rapid"
)

// fakePhysical is a physical clock that a test sets by hand.
type fakePhysical struct{ ms int64 }

func (f *fakePhysical) now() int64 { return f.ms }

func newFakeClock(ms int64, maxDrift time.Duration) (*hlc.Clock, *fakePhysical) {
	p := &fakePhysical{ms: ms}
	return hlc.NewClock(p.now, maxDrift), p
}

func TestNewWallLogical(t *testing.T) {
	tests := []struct {
		name        string
		wall        int64
		logical     uint16
		wantWall    int64
		wantLogical uint16
		wantRaw     uint64
	}{
		{"zero", 0, 0, 0, 0, 0},
		{"logical only", 0, 1, 0, 1, 1},
		{"wall only", 1, 0, 1, 0, 1 << 16},
		{"both", 1700000000000, 42, 1700000000000, 42, 1700000000000<<16 | 42},
		{"max logical", 5, math.MaxUint16, 5, math.MaxUint16, 5<<16 | 0xffff},
		{"max wall", hlc.MaxWall, 0, hlc.MaxWall, 0, hlc.MaxWall << 16},
		{"max", hlc.MaxWall, hlc.MaxLogical, hlc.MaxWall, hlc.MaxLogical, math.MaxUint64},
		{"negative wall clamps to 0", -5, 3, 0, 3, 3},
		{"min int64 clamps to 0", math.MinInt64, 0, 0, 0, 0},
		{"wall beyond 48 bits clamps", hlc.MaxWall + 1, 9, hlc.MaxWall, 9, hlc.MaxWall<<16 | 9},
		{"max int64 clamps", math.MaxInt64, 0, hlc.MaxWall, 0, hlc.MaxWall << 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := hlc.New(tt.wall, tt.logical)
			if got := ts.Wall(); got != tt.wantWall {
				t.Errorf("New(%d, %d).Wall() = %d, want %d", tt.wall, tt.logical, got, tt.wantWall)
			}
			if got := ts.Logical(); got != tt.wantLogical {
				t.Errorf("New(%d, %d).Logical() = %d, want %d", tt.wall, tt.logical, got, tt.wantLogical)
			}
			if got := uint64(ts); got != tt.wantRaw {
				t.Errorf("New(%d, %d) = %#x, want %#x", tt.wall, tt.logical, got, tt.wantRaw)
			}
			if got, want := ts.IsZero(), tt.wantRaw == 0; got != want {
				t.Errorf("New(%d, %d).IsZero() = %v, want %v", tt.wall, tt.logical, got, want)
			}
		})
	}
}

func TestTime(t *testing.T) {
	ts := hlc.New(1700000000123, 7)
	want := time.Date(2023, time.November, 14, 22, 13, 20, 123e6, time.UTC)
	if got := ts.Time(); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("Time() = %v, want %v", got, want)
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b hlc.Timestamp
		want int
	}{
		{0, 0, 0},
		{0, 1, -1},
		{1, 0, 1},
		{hlc.New(1, 0), hlc.New(0, hlc.MaxLogical), 1},
		{hlc.New(5, 1), hlc.New(5, 2), -1},
		{hlc.New(5, 2), hlc.New(5, 2), 0},
		{hlc.New(hlc.MaxWall, hlc.MaxLogical), hlc.New(hlc.MaxWall, hlc.MaxLogical-1), 1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("Compare(%v, %v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestStringParse(t *testing.T) {
	tests := []struct {
		ts   hlc.Timestamp
		want string
	}{
		{0, "0.0"},
		{hlc.New(0, 1), "0.1"},
		{hlc.New(1, 0), "1.0"},
		{hlc.New(1700000000000, 42), "1700000000000.42"},
		{hlc.New(12, hlc.MaxLogical), "12.65535"},
		{hlc.New(hlc.MaxWall, hlc.MaxLogical), "281474976710655.65535"},
	}
	for _, tt := range tests {
		if got := tt.ts.String(); got != tt.want {
			t.Errorf("%#x.String() = %q, want %q", uint64(tt.ts), got, tt.want)
		}
		got, err := hlc.Parse(tt.want)
		if err != nil {
			t.Errorf("Parse(%q) error: %v", tt.want, err)
			continue
		}
		if got != tt.ts {
			t.Errorf("Parse(%q) = %#x, want %#x", tt.want, uint64(got), uint64(tt.ts))
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{
		"",
		".",
		"1",
		"1.",
		".1",
		"a.1",
		"1.b",
		"-1.0",
		"1.-1",
		"1.65536",
		"281474976710656.0", // MaxWall+1
		"9223372036854775808.0",
		"1.2.3",
		" 1.2",
		"1.2 ",
		"1,2",
		"0x10.1",
	} {
		ts, err := hlc.Parse(s)
		if !errors.Is(err, hlc.ErrMalformed) {
			t.Errorf("Parse(%q) = %v, %v; want error wrapping ErrMalformed", s, ts, err)
		}
		if err == nil && ts != 0 {
			t.Errorf("Parse(%q) returned %v with an error", s, ts)
		}
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	for _, ts := range []hlc.Timestamp{0, 1, hlc.New(1700000000000, 42), hlc.New(hlc.MaxWall, hlc.MaxLogical)} {
		b, err := ts.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%v): %v", ts, err)
		}
		if len(b) != hlc.Size {
			t.Errorf("MarshalBinary(%v) has %d bytes, want %d", ts, len(b), hlc.Size)
		}
		got, err := hlc.Decode(b)
		if err != nil || got != ts {
			t.Errorf("Decode(MarshalBinary(%v)) = %v, %v; want %v", ts, got, err, ts)
		}
		var u hlc.Timestamp
		if err := u.UnmarshalBinary(b); err != nil || u != ts {
			t.Errorf("UnmarshalBinary(MarshalBinary(%v)) = %v, %v; want %v", ts, u, err, ts)
		}
		prefix := []byte("xy")
		a, err := ts.AppendBinary(prefix)
		if err != nil || !bytes.Equal(a[:2], prefix) || !bytes.Equal(a[2:], b) {
			t.Errorf("AppendBinary(%q) of %v = %x, %v; want %q followed by %x", prefix, ts, a, err, prefix, b)
		}
	}
	b, _ := hlc.New(0x0102030405, 0x0607).MarshalBinary()
	if want := []byte{0, 1, 2, 3, 4, 5, 6, 7}; !bytes.Equal(b, want) {
		t.Errorf("MarshalBinary(New(0x0102030405, 0x0607)) = %x, want big-endian %x", b, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, n := range []int{0, 1, 7, 9, 16} {
		b := make([]byte, n)
		ts, err := hlc.Decode(b)
		if !errors.Is(err, hlc.ErrMalformed) {
			t.Errorf("Decode(%d bytes) = %v, %v; want ErrMalformed", n, ts, err)
		}
		u := hlc.New(5, 5)
		if err := u.UnmarshalBinary(b); !errors.Is(err, hlc.ErrMalformed) {
			t.Errorf("UnmarshalBinary(%d bytes) = %v; want ErrMalformed", n, err)
		}
		if u != hlc.New(5, 5) {
			t.Errorf("UnmarshalBinary(%d bytes) changed the timestamp to %v", n, u)
		}
	}
}

func TestEncodingOrderIsNumericOrder(t *testing.T) {
	pairs := [][2]hlc.Timestamp{
		{0, 1},
		{hlc.New(0, hlc.MaxLogical), hlc.New(1, 0)},
		{hlc.New(255, 0), hlc.New(256, 0)},
		{hlc.New(1, 255), hlc.New(1, 256)},
		{hlc.New(1<<40, 0), hlc.New(1<<40+1, 0)},
		{hlc.New(hlc.MaxWall-1, hlc.MaxLogical), hlc.New(hlc.MaxWall, 0)},
	}
	for _, p := range pairs {
		a, _ := p[0].MarshalBinary()
		b, _ := p[1].MarshalBinary()
		if got := bytes.Compare(a, b); got != -1 {
			t.Errorf("bytes.Compare(%x, %x) = %d, want -1 (%v < %v)", a, b, got, p[0], p[1])
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		x := hlc.Timestamp(rapid.Uint64().Draw(t, "x"))
		y := hlc.Timestamp(rapid.Uint64().Draw(t, "y"))
		a, _ := x.MarshalBinary()
		b, _ := y.MarshalBinary()
		if got, want := bytes.Compare(a, b), x.Compare(y); got != want {
			t.Fatalf("bytes.Compare(%x, %x) = %d, want %d", a, b, got, want)
		}
		if (x < y) != (x.Compare(y) < 0) {
			t.Fatalf("Compare(%v, %v) = %d disagrees with <", x, y, x.Compare(y))
		}
	})
}

func TestNewClockDefaults(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		c, _ := newFakeClock(1000, d)
		if got := c.MaxDrift(); got != hlc.DefaultMaxDrift {
			t.Errorf("NewClock(_, %v).MaxDrift() = %v, want %v", d, got, hlc.DefaultMaxDrift)
		}
	}
	c, _ := newFakeClock(1000, 5*time.Second)
	if got := c.MaxDrift(); got != 5*time.Second {
		t.Errorf("MaxDrift() = %v, want 5s", got)
	}
	if got := c.Last(); got != 0 {
		t.Errorf("Last() of a new clock = %v, want 0", got)
	}
}

func TestNowFollowsPhysical(t *testing.T) {
	c, p := newFakeClock(1000, 0)
	if got, want := c.Now(), hlc.New(1000, 0); got != want {
		t.Errorf("Now() = %v, want %v", got, want)
	}
	p.ms = 2000
	if got, want := c.Now(), hlc.New(2000, 0); got != want {
		t.Errorf("Now() after physical moved forward = %v, want %v", got, want)
	}
	if got, want := c.Last(), hlc.New(2000, 0); got != want {
		t.Errorf("Last() = %v, want %v", got, want)
	}
}

func TestNowMonotonic(t *testing.T) {
	tests := []struct {
		name  string
		moves []int64 // physical time before each Now
		want  []hlc.Timestamp
	}{
		{
			name:  "stands still",
			moves: []int64{1000, 1000, 1000, 1000},
			want:  []hlc.Timestamp{hlc.New(1000, 0), hlc.New(1000, 1), hlc.New(1000, 2), hlc.New(1000, 3)},
		},
		{
			name:  "goes backwards",
			moves: []int64{1000, 999, 500, 0, -100},
			want:  []hlc.Timestamp{hlc.New(1000, 0), hlc.New(1000, 1), hlc.New(1000, 2), hlc.New(1000, 3), hlc.New(1000, 4)},
		},
		{
			name:  "back then forward",
			moves: []int64{1000, 900, 1000, 1001},
			want:  []hlc.Timestamp{hlc.New(1000, 0), hlc.New(1000, 1), hlc.New(1000, 2), hlc.New(1001, 0)},
		},
		{
			name:  "zero physical",
			moves: []int64{0, 0},
			want:  []hlc.Timestamp{hlc.New(0, 1), hlc.New(0, 2)},
		},
		{
			name:  "beyond 48 bits clamps",
			moves: []int64{hlc.MaxWall + 10, hlc.MaxWall + 20},
			want:  []hlc.Timestamp{hlc.New(hlc.MaxWall, 0), hlc.New(hlc.MaxWall, 1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := newFakeClock(0, 0)
			for i, ms := range tt.moves {
				p.ms = ms
				if got := c.Now(); got != tt.want[i] {
					t.Errorf("Now() #%d at physical %d = %v, want %v", i, ms, got, tt.want[i])
				}
			}
		})
	}
}

func TestNowLogicalOverflow(t *testing.T) {
	t.Run("observed", func(t *testing.T) {
		c, _ := newFakeClock(1000, 0)
		c.Observe(hlc.New(1000, hlc.MaxLogical))
		if got, want := c.Now(), hlc.New(1001, 0); got != want {
			t.Errorf("Now() after %v = %v, want %v", hlc.New(1000, hlc.MaxLogical), got, want)
		}
	})
	t.Run("counted", func(t *testing.T) {
		c, _ := newFakeClock(1000, 0)
		var last hlc.Timestamp
		for i := 0; i <= hlc.MaxLogical; i++ {
			last = c.Now()
		}
		if want := hlc.New(1000, hlc.MaxLogical); last != want {
			t.Fatalf("after %d calls Now() = %v, want %v", hlc.MaxLogical+1, last, want)
		}
		if got, want := c.Now(), hlc.New(1001, 0); got != want {
			t.Errorf("Now() past the logical counter = %v, want %v", got, want)
		}
		if got, want := c.Now(), hlc.New(1001, 1); got != want {
			t.Errorf("Now() = %v, want %v", got, want)
		}
	})
	t.Run("update", func(t *testing.T) {
		c, _ := newFakeClock(1000, 0)
		got, err := c.Update(hlc.New(1000, hlc.MaxLogical))
		if err != nil || got != hlc.New(1001, 0) {
			t.Errorf("Update(%v) = %v, %v; want %v", hlc.New(1000, hlc.MaxLogical), got, err, hlc.New(1001, 0))
		}
	})
	t.Run("exhausted", func(t *testing.T) {
		c, _ := newFakeClock(hlc.MaxWall, 0)
		c.Observe(hlc.New(hlc.MaxWall, hlc.MaxLogical))
		defer func() {
			if recover() == nil {
				t.Errorf("Now() after the last timestamp did not panic")
			}
		}()
		c.Now()
	})
}

func TestUpdate(t *testing.T) {
	const drift = time.Second
	tests := []struct {
		name     string
		physical int64
		last     hlc.Timestamp // observed before the update
		remote   hlc.Timestamp
		want     hlc.Timestamp
	}{
		{"remote behind physical", 1000, 0, hlc.New(500, 3), hlc.New(1000, 0)},
		{"remote equal wall", 1000, 0, hlc.New(1000, 3), hlc.New(1000, 4)},
		{"remote ahead within drift", 1000, 0, hlc.New(1500, 7), hlc.New(1500, 8)},
		{"remote exactly at the bound", 1000, 0, hlc.New(2000, 0), hlc.New(2000, 1)},
		{"local ahead of remote", 1000, hlc.New(1800, 9), hlc.New(1500, 7), hlc.New(1800, 10)},
		{"local equal to remote", 1000, hlc.New(1800, 9), hlc.New(1800, 9), hlc.New(1800, 10)},
		{"remote ahead of local", 1000, hlc.New(1800, 9), hlc.New(1800, 12), hlc.New(1800, 13)},
		{"zero remote", 1000, 0, 0, hlc.New(1000, 0)},
		{"physical backwards", 10, hlc.New(1000, 0), hlc.New(900, 0), hlc.New(1000, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFakeClock(tt.physical, drift)
			c.Observe(tt.last)
			if err := c.Check(tt.remote); err != nil {
				t.Errorf("Check(%v) = %v, want nil", tt.remote, err)
			}
			got, err := c.Update(tt.remote)
			if err != nil {
				t.Fatalf("Update(%v) error: %v", tt.remote, err)
			}
			if got != tt.want {
				t.Errorf("Update(%v) = %v, want %v", tt.remote, got, tt.want)
			}
			if c.Last() != got {
				t.Errorf("Last() = %v, want %v", c.Last(), got)
			}
			if next := c.Now(); next <= tt.remote || next <= got {
				t.Errorf("Now() after Update(%v) = %v, want > %v and > %v", tt.remote, next, tt.remote, got)
			}
		})
	}
}

func TestUpdateDrift(t *testing.T) {
	const physical = 1_700_000_000_000
	tests := []struct {
		name     string
		maxDrift time.Duration
		remote   hlc.Timestamp
	}{
		{"one ms beyond", time.Second, hlc.New(physical+1001, 0)},
		{"an hour ahead", time.Minute, hlc.New(physical+3600_000, 0)},
		{"sub-ms bound", 500 * time.Microsecond, hlc.New(physical+1, 0)},
		{"max wall", time.Minute, hlc.New(hlc.MaxWall, hlc.MaxLogical)},
		// Far enough ahead that the distance in nanoseconds overflows an
		// int64 (more than 292 years): still refused.
		{"300 years ahead", time.Minute, hlc.New(physical+300*365*24*3600_000, 0)},
		{"584 years ahead", time.Minute, hlc.New(physical+18_446_744_073_710, 0)},
		{"1000 years ahead", time.Minute, hlc.New(physical+1000*365*24*3600_000, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFakeClock(physical, tt.maxDrift)
			before := c.Now()

			err := c.Check(tt.remote)
			if !errors.Is(err, hlc.ErrClockDrift) {
				t.Errorf("Check(%v) = %v, want ErrClockDrift", tt.remote, err)
			}
			got, err := c.Update(tt.remote)
			if got != 0 {
				t.Errorf("Update(%v) = %v, want 0 on error", tt.remote, got)
			}
			if !errors.Is(err, hlc.ErrClockDrift) {
				t.Fatalf("Update(%v) error = %v, want ErrClockDrift", tt.remote, err)
			}
			var de *hlc.DriftError
			if !errors.As(err, &de) {
				t.Fatalf("Update(%v) error %T is not a *DriftError", tt.remote, err)
			}
			if de.Remote != tt.remote || de.Physical != physical || de.MaxDrift != tt.maxDrift {
				t.Errorf("DriftError = %+v, want Remote %v, Physical %d, MaxDrift %v", *de, tt.remote, int64(physical), tt.maxDrift)
			}
			if de.Error() == "" {
				t.Errorf("DriftError.Error() is empty")
			}
			if c.Last() != before {
				t.Errorf("Last() after a refused Update = %v, want unchanged %v", c.Last(), before)
			}
			if next := c.Now(); next != before+1 {
				t.Errorf("Now() after a refused Update = %v, want %v", next, before+1)
			}
		})
	}
}

func TestDriftErrorMessage(t *testing.T) {
	e := &hlc.DriftError{Remote: hlc.New(5000, 1), Physical: 1000, MaxDrift: time.Second}
	want := "hlc: remote timestamp 5000.1 is 4s ahead of local physical time, beyond the 1s bound"
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, hlc.ErrClockDrift) {
		t.Errorf("errors.Is(DriftError, ErrClockDrift) = false")
	}
}

func TestObserveRestart(t *testing.T) {
	// A store persisted this high-water mark; after a restart the
	// physical clock reads earlier than it.
	hw := hlc.New(5000, 17)
	c, p := newFakeClock(4000, 0)
	c.Observe(hw)
	if c.Last() != hw {
		t.Errorf("Last() after Observe(%v) = %v", hw, c.Last())
	}
	if got := c.Now(); got <= hw {
		t.Errorf("Now() after Observe(%v) at physical 4000 = %v, want > %v", hw, got, hw)
	}
	// Observing an earlier timestamp changes nothing.
	last := c.Last()
	c.Observe(hlc.New(10, 0))
	if c.Last() != last {
		t.Errorf("Observe of an earlier timestamp moved Last() from %v to %v", last, c.Last())
	}
	// Observe skips the drift check.
	p.ms = 1
	far := hlc.New(hlc.MaxWall-1, 0)
	c.Observe(far)
	if got := c.Now(); got != far+1 {
		t.Errorf("Now() after Observe(%v) = %v, want %v", far, got, far+1)
	}
}

// TestClockProperties drives a clock with random interleavings of Now,
// Update, Observe and physical time moving both ways.
func TestClockProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		maxDriftMs := rapid.Int64Range(1, 5000).Draw(t, "maxDriftMs")
		maxDrift := time.Duration(maxDriftMs) * time.Millisecond
		p := &fakePhysical{ms: rapid.Int64Range(0, 1<<41).Draw(t, "start")}
		c := hlc.NewClock(p.now, maxDrift)
		var last hlc.Timestamp // greatest timestamp issued or accepted so far
		issue := func(t *rapid.T, what string, ts hlc.Timestamp) {
			if ts <= last {
				t.Fatalf("%s = %v, not after %v", what, ts, last)
			}
			if ts != c.Last() {
				t.Fatalf("%s = %v but Last() = %v", what, ts, c.Last())
			}
			last = ts
		}
		t.Repeat(map[string]func(*rapid.T){
			"Now": func(t *rapid.T) {
				issue(t, "Now()", c.Now())
			},
			"Forward": func(t *rapid.T) {
				p.ms += rapid.Int64Range(0, 3000).Draw(t, "forward")
			},
			"Backward": func(t *rapid.T) {
				p.ms -= rapid.Int64Range(0, 3000).Draw(t, "backward")
			},
			"Update": func(t *rapid.T) {
				offset := rapid.OneOf(rapid.Int64Range(-10000, 10000), rapid.Int64Range(-10000, hlc.MaxWall)).Draw(t, "offset")
				remote := hlc.New(p.ms+offset, rapid.Uint16().Draw(t, "logical"))
				before := c.Last()
				checkErr := c.Check(remote)
				got, err := c.Update(remote)
				if (checkErr == nil) != (err == nil) {
					t.Fatalf("Check(%v) = %v but Update = %v", remote, checkErr, err)
				}
				aheadMs := remote.Wall() - p.ms
				if err != nil {
					if !errors.Is(err, hlc.ErrClockDrift) {
						t.Fatalf("Update(%v) error %v does not wrap ErrClockDrift", remote, err)
					}
					if aheadMs <= maxDriftMs {
						t.Fatalf("Update(%v) refused at %dms ahead, within %v", remote, aheadMs, maxDrift)
					}
					if c.Last() != before {
						t.Fatalf("refused Update moved Last() from %v to %v", before, c.Last())
					}
					return
				}
				if aheadMs > maxDriftMs {
					t.Fatalf("Update(%v) accepted at %dms ahead, beyond %v", remote, aheadMs, maxDrift)
				}
				if got <= remote {
					t.Fatalf("Update(%v) = %v, not after the remote", remote, got)
				}
				issue(t, "Update()", got)
				if next := c.Now(); next <= remote {
					t.Fatalf("Now() after Update(%v) = %v, not after the remote", remote, next)
				} else {
					issue(t, "Now()", next)
				}
			},
			"Observe": func(t *rapid.T) {
				ts := hlc.New(p.ms+rapid.Int64Range(-10000, 10000).Draw(t, "offset"), rapid.Uint16().Draw(t, "logical"))
				c.Observe(ts)
				if ts > last {
					last = ts
				}
				if c.Last() != last {
					t.Fatalf("Last() after Observe(%v) = %v, want %v", ts, c.Last(), last)
				}
			},
		})
	})
}

// FuzzParse checks that Parse never panics and that what it accepts
// formats back to an equal timestamp.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0.0", "1.1", "1700000000000.42", "281474976710655.65535", "281474976710656.0", "1.65536", "-1.0", "+1.0", "01.00", "1.2.3", "", ".", "1.", ".1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := hlc.Parse(s)
		if err != nil {
			if !errors.Is(err, hlc.ErrMalformed) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrMalformed", s, err)
			}
			return
		}
		str := ts.String()
		back, err := hlc.Parse(str)
		if err != nil || back != ts {
			t.Fatalf("Parse(%q) = %v; Parse(%q) = %v, %v", s, ts, str, back, err)
		}
		if back.String() != str {
			t.Fatalf("String is not stable: %q then %q", str, back.String())
		}
	})
}

func ExampleClock() {
	physical := int64(1_700_000_000_000) // a fake physical clock, in Unix ms
	c := hlc.NewClock(func() int64 { return physical }, time.Minute)

	fmt.Println(c.Now())
	fmt.Println(c.Now()) // physical time stood still: the logical counter moves

	physical -= 5000     // physical time went backwards
	fmt.Println(c.Now()) // timestamps do not

	ts, err := c.Update(hlc.New(physical+30_000, 4)) // a remote 30s ahead: accepted
	fmt.Println(ts, err)

	_, err = c.Update(hlc.New(physical+3_600_000, 0)) // an hour ahead: refused
	fmt.Println(errors.Is(err, hlc.ErrClockDrift), c.Last())
	// Output:
	// 1700000000000.0
	// 1700000000000.1
	// 1700000000000.2
	// 1700000025000.5 <nil>
	// true 1700000025000.5
}
