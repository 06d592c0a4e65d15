package converge

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/backoff"
)

// testTiming is a replicator's timing with ReplicatorOptions' defaults
// but for debounce (0 is the default), for a peer that publishes its
// commits or not, and retry waits at their longest (the ceiling of the
// jitter: min(1m, 500ms·2ⁿ⁻¹)), so that a transcript can say when a retry
// is due.
func testTiming(publishes bool, debounce time.Duration) *syncTiming {
	p := backoff.Policy{Min: 500 * time.Millisecond, Max: time.Minute}
	return &syncTiming{debounce: debounce, interval: 30 * time.Second, publishes: publishes,
		retryWait: func(failures int) time.Duration { return p.Ceiling(failures - 1) }}
}

// runTranscript steps a namespaceSync opened at t0 through the lines of
// script, each "<time since t0> <command> => <what it must answer>":
//
//	next                      => due | wait <time since t0> | idle (no wake-up before an event)
//	kick | live | online | pause | resume
//	begin bg|now              => push|exchange|refused <state>
//	done bg|now ok|fail|cancelled
//
// All but next and begin answer the status: "<state> f=<failures>".
// "ok" learns a peer vector; "fail" learns nothing. A line starting
// with # is a comment.
func runTranscript(t *testing.T, timing *syncTiming, script string) {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newNamespaceSync("ns", timing, t0)
	for i, line := range strings.Split(strings.TrimSpace(script), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cmd, want, _ := strings.Cut(line, "=>")
		fields := strings.Fields(cmd)
		at, err := time.ParseDuration(fields[0])
		if err != nil {
			t.Fatalf("line %d %q: %v", i+1, line, err)
		}
		got := stepTranscript(t, s, t0, t0.Add(at), fields[1:])
		if want = strings.TrimSpace(want); want != "" && got != want {
			t.Errorf("line %d: %s => %s, want %s", i+1, strings.TrimSpace(cmd), got, want)
		}
	}
}

// stepTranscript runs one command of a transcript on s at now.
func stepTranscript(t *testing.T, s *namespaceSync, t0, now time.Time, cmd []string) string {
	t.Helper()
	status := func() string { return fmt.Sprintf("%s f=%d", s.status.State, s.status.Failures) }
	switch cmd[0] {
	case "next":
		due, wake := s.Next(now)
		switch {
		case due:
			return "due"
		case wake.IsZero():
			return "idle"
		}
		return "wait " + wake.Sub(t0).String()
	case "kick":
		s.Kick(now)
	case "live":
		s.LiveApplied()
	case "online":
		s.Online(now)
	case "pause":
		s.Pause()
	case "resume":
		s.Resume(now)
	case "begin":
		from, ok := s.Begin(now, cmd[1] == "bg")
		switch {
		case !ok:
			return "refused " + string(s.status.State)
		case from == nil:
			return "exchange " + string(s.status.State)
		}
		return "push " + string(s.status.State)
	case "done":
		var out syncOutcome
		switch cmd[2] {
		case "ok":
			out = syncOutcome{peerVV: crdt.VersionVector{}, peer: crdt.ReplicaID{1}}
		case "fail":
			out = syncOutcome{err: errors.New("unreachable")}
		case "cancelled":
			out = syncOutcome{err: errors.New("context canceled"), cancelled: true}
		}
		s.Done(now, cmd[1] == "bg", out)
	default:
		t.Fatalf("unknown command %q", cmd)
	}
	return status()
}

func TestNamespaceSyncTranscripts(t *testing.T) {
	for _, tc := range []struct {
		name      string
		publishes bool
		debounce  time.Duration // ReplicatorOptions.Debounce; 0: none, the default
		script    string
	}{
		// The defaults: no debounce. A kick is due at once when idle; the
		// kicks made while a sync is in flight join the next one, due when
		// it ends.
		{name: "opening syncs at once, then ticks every interval", script: `
			0s     next         => due
			0s     begin bg     => exchange syncing
			0s     next         => idle
			5ms    done bg ok   => idle f=0
			5ms    next         => wait 30s`},
		{name: "an idle replicator syncs a kick at once", script: `
			0s     begin bg
			1ms    done bg ok   => idle f=0
			1s     next         => wait 30s
			1s     kick         => idle f=0
			1s     next         => due
			1s     begin bg     => push syncing
			1.001s done bg ok   => idle f=0
			1.001s next         => wait 30s`},
		{name: "kicks while a sync is in flight go out together when it ends", script: `
			0s     begin bg
			1ms    done bg ok
			1s     kick
			1s     begin bg     => push syncing
			1.001s kick         => syncing f=0
			1.002s kick
			1.003s kick
			1.003s next         => idle
			1.005s done bg ok   => idle f=0
			1.005s next         => due
			1.005s begin bg     => push syncing
			1.006s next         => idle
			1.007s done bg ok   => idle f=0
			1.007s next         => wait 30s`},
		{name: "no debounce: a failed sync's retry still backs off, a kick does not wait for it", script: `
			0s     begin bg     => exchange syncing
			1ms    done bg fail => error f=1
			1ms    next         => wait 501ms
			100ms  kick
			100ms  next         => due
			100ms  begin bg     => exchange syncing
			101ms  done bg ok   => idle f=0`},
		// With a Debounce of 20ms.
		{name: "opening kicks a debounced sync, then ticks every interval", debounce: 20 * time.Millisecond, script: `
			0s     next         => wait 20ms
			19ms   next         => wait 20ms
			20ms   next         => due
			# no vector learned yet: the first round exchanges vectors
			20ms   begin bg     => exchange syncing
			20ms   next         => idle
			25ms   done bg ok   => idle f=0
			25ms   next         => wait 30s
			30s    next         => due
			30s    begin bg     => push syncing
			30.1s  done bg ok   => idle f=0
			30.1s  next         => wait 1m0s`},
		{name: "kicks within the debounce join the first", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg     => exchange syncing
			21ms   done bg ok   => idle f=0
			1s     kick         => idle f=0
			1s     next         => wait 1.02s
			1.015s kick
			1.015s next         => wait 1.02s
			1.02s  next         => due
			1.02s  begin bg     => push syncing
			1.03s  done bg ok
			1.03s  next         => wait 30s`},
		{name: "a kick while a sync runs is debounced from its end", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg     => exchange syncing
			25ms   kick         => syncing f=0
			25ms   next         => idle
			100ms  done bg ok   => idle f=0
			100ms  next         => wait 120ms
			120ms  next         => due`},
		{name: "ticks missed while busy are dropped", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg
			21ms   done bg ok
			95s    next         => due
			95s    begin bg     => push syncing
			95.5s  done bg ok
			95.5s  next         => wait 2m0s`},
		{name: "a sync carries the kick whose debounce it began in", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg
			21ms   done bg ok
			29.99s kick
			29.99s next         => wait 30s
			30s    next         => due
			30s    begin bg     => push syncing
			30.01s done bg ok
			30.01s next         => wait 1m0s`},
		{name: "failures back off exponentially, kicks do not wait for the retry, success resets", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg     => exchange syncing
			21ms   done bg fail => error f=1
			21ms   next         => wait 521ms
			521ms  next         => due
			521ms  begin bg     => exchange syncing
			522ms  done bg fail => error f=2
			522ms  next         => wait 1.522s
			1.522s begin bg
			1.6s   done bg fail => error f=3
			1.6s   next         => wait 3.6s
			2s     kick         => error f=3
			2s     next         => wait 2.02s
			2.02s  begin bg     => exchange syncing
			2.03s  done bg ok   => idle f=0
			2.03s  next         => wait 30s`},
		{name: "online: a sync at once, and the backoff starts over", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg     => exchange syncing
			21ms   done bg fail => error f=1
			521ms  begin bg
			522ms  done bg fail => error f=2
			1.522s begin bg
			1.6s   done bg fail => error f=3
			1.6s   next         => wait 3.6s
			2s     online       => error f=3
			2s     next         => due
			2s     begin bg     => exchange syncing
			2.1s   done bg fail => error f=4
			# the streak counts from Online: the first retry's wait
			2.1s   next         => wait 2.6s
			2.6s   begin bg
			2.7s   done bg ok   => idle f=0`},
		{name: "online while a sync runs: another once it ends", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg     => exchange syncing
			30ms   online       => syncing f=0
			40ms   done bg fail => error f=1
			40ms   next         => wait 60ms`},
		{name: "after a success, a failed sync's retry exchanges vectors", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg     => exchange syncing
			21ms   done bg ok   => idle f=0
			1s     kick
			1.02s  begin bg     => push syncing
			1.03s  done bg fail => error f=1
			1.53s  begin bg     => exchange syncing
			1.54s  done bg ok   => idle f=0
			2s     kick
			2.02s  begin bg     => push syncing`},
		{name: "a SyncNow counts, but schedules no retry and carries no reason", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg     => exchange syncing
			21ms   done bg ok
			1s     kick
			1.005s begin now    => push syncing
			1.006s done now fail => error f=1
			1.006s next         => wait 1.02s
			1.02s  begin bg     => exchange syncing
			1.03s  done bg fail => error f=2
			# the second consecutive failure: up to 1s
			1.03s  next         => wait 2.03s`},
		{name: "a cancelled background sync is no failure and is not retried", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg     => exchange syncing
			21ms   done bg ok
			1s     kick
			1.02s  begin bg     => push syncing
			1.03s  done bg cancelled => idle f=0
			1.03s  next         => wait 30s
			2s     begin now    => exchange syncing`},
		{name: "paused: nothing is due; Resume syncs what came due at once", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg     => exchange syncing
			21ms   pause        => paused f=0
			22ms   done bg cancelled => paused f=0
			25ms   kick         => paused f=0
			30s    next         => idle
			40s    begin bg     => refused paused
			40s    resume       => idle f=0
			40s    next         => due
			40s    begin bg     => exchange syncing
			40.1s  done bg ok   => idle f=0
			40.1s  next         => wait 1m0s`},
		{name: "Resume with nothing due kicks a debounced sync", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg
			21ms   done bg ok
			1s     pause        => paused f=0
			1s     next         => idle
			2s     resume       => idle f=0
			2s     next         => wait 2.02s`},
		{name: "a SyncNow ending while paused leaves the state paused", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg
			21ms   done bg ok
			1s     begin now    => push syncing
			1.001s pause        => paused f=0
			1.002s done now fail => paused f=1
			1.003s begin bg     => refused paused`},
		{name: "a live delivery makes the next sync exchange vectors", debounce: 20 * time.Millisecond, script: `
			20ms   begin bg     => exchange syncing
			21ms   done bg ok
			1s     begin now    => push syncing
			1.001s done now ok
			2s     live         => idle f=0
			2s     begin now    => exchange syncing
			2.001s done now ok
			3s     begin now    => push syncing`},
		{name: "a live path that publishes commits: every sync exchanges vectors", publishes: true, debounce: 20 * time.Millisecond, script: `
			20ms   begin bg     => exchange syncing
			21ms   done bg ok
			1s     begin now    => exchange syncing
			1.001s done now ok
			2s     begin now    => exchange syncing`},
	} {
		t.Run(tc.name, func(t *testing.T) { runTranscript(t, testTiming(tc.publishes, tc.debounce), tc.script) })
	}
}

// TestNamespaceSyncRetryWaits: the retry after the n-th consecutive
// background failure waits what retryWait says for n.
func TestNamespaceSyncRetryWaits(t *testing.T) {
	timing := testTiming(false, 0)
	timing.interval = 1000 * time.Hour // no tick comes due
	var asked []int
	timing.retryWait = func(n int) time.Duration { asked = append(asked, n); return time.Duration(n) * time.Second }
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newNamespaceSync("ns", timing, now)
	for n := 1; n <= 12; n++ {
		if _, ok := s.Begin(now, true); !ok {
			t.Fatal("Begin refused")
		}
		s.Done(now, true, syncOutcome{err: errors.New("down")})
		_, wake := s.Next(now)
		if got, want := wake.Sub(now), time.Duration(n)*time.Second; got != want {
			t.Errorf("after failure %d: next sync in %v, want %v", n, got, want)
		}
		now = wake
	}
	if len(asked) != 12 || asked[0] != 1 || asked[11] != 12 {
		t.Errorf("retryWait asked for %v, want 1..12", asked)
	}
}

// TestNamespaceSyncKeepsWhatThePeerSaid: an outcome that learned no
// vector or peer keeps those learned before (the status counts pending
// ops against them).
func TestNamespaceSyncKeepsWhatThePeerSaid(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newNamespaceSync("ns", testTiming(false, 0), now)
	id := crdt.ReplicaID{7}
	vv := crdt.VersionVector{id: 3}
	s.Begin(now, false)
	s.Done(now, false, syncOutcome{peerVV: vv, peer: id})
	s.Begin(now, false)
	s.Done(now, false, syncOutcome{err: errors.New("down")})
	if s.peerID != id || s.peerVV[id] != 3 {
		t.Errorf("after a failed sync: peer %v, vector %v; want %v, %v", s.peerID, s.peerVV, id, vv)
	}
	if s.status.LastError == nil || s.status.LastSync != now {
		t.Errorf("status %+v, want the error and the last success's time", s.status)
	}
}
