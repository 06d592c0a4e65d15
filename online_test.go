package converge_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
)

// firstTripAfter returns when the first round trip after t0 came, as an
// offset from t0, or -1 if none did.
func (p *tripLog) firstTripAfter(t0 time.Time) time.Duration {
	if trips := p.since(t0); len(trips) > 0 {
		return trips[0]
	}
	return -1
}

// TestReplicatorResumesWithinAProbeOfThePeer: after an outage long enough
// for the backoff to grow to an hour, the sync resumes within
// ProbeInterval (1s) of the peer being reachable again, without SyncNow.
func TestReplicatorResumesWithinAProbeOfThePeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		tasks := coll[Task](t, app, "tasks")
		peer := newTripLog(hub.SyncStore(), transport.Limits{})
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Interval: 24 * time.Hour,
			MinBackoff: time.Minute, MaxBackoff: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		settle(time.Second)
		for outage := range 5 {
			peer.SetDown(true)
			if _, err := tasks.Put(ctx, "ns", &Task{ID: "t" + string(rune('a'+outage))}); err != nil {
				t.Fatal(err)
			}
			settle(3 * time.Hour) // failures; the backoff grows to an hour
			if st, _ := r.Status(ctx, "ns"); st.State != converge.StateError || st.Failures < 2 {
				t.Fatalf("outage %d: status %+v, want failures", outage, st)
			}
			back := time.Now()
			peer.SetDown(false)
			settle(time.Second)
			if at := peer.firstTripAfter(back); at < 0 || at > time.Second {
				t.Errorf("outage %d: first round trip %v after the peer came back, want within 1s", outage, at)
			}
			if st, _ := r.Status(ctx, "ns"); st.State != converge.StateIdle || st.Pending != 0 {
				t.Errorf("outage %d: status %+v a second after the peer came back, want idle, nothing pending", outage, st)
			}
		}
	})
}

// TestReplicatorNotifyOnline: with probing off, NotifyOnline syncs every
// namespace at once and starts the backoff over.
func TestReplicatorNotifyOnline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		tasks := coll[Task](t, app, "tasks")
		peer := newTripLog(hub.SyncStore(), transport.Limits{})
		const minB = time.Minute
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns", "other"}, Interval: 24 * time.Hour,
			MinBackoff: minB, MaxBackoff: time.Hour, ProbeInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		settle(time.Second)
		peer.SetDown(true)
		if _, err := tasks.Put(ctx, "ns", &Task{ID: "offline"}); err != nil {
			t.Fatal(err)
		}
		settle(3 * time.Hour)
		peer.SetDown(false)
		settle(time.Minute)
		// Without a probe the wait may be up to an hour; NotifyOnline ends it.
		now := time.Now()
		r.NotifyOnline()
		synctest.Wait()
		trips := peer.since(now.Add(-time.Nanosecond))
		for _, at := range trips {
			if at != time.Nanosecond {
				t.Errorf("round trips after NotifyOnline at %v, want all at once", trips)
				break
			}
		}
		for _, ns := range []string{"ns", "other"} {
			if st, _ := r.Status(ctx, ns); !st.LastSync.Equal(now) {
				t.Errorf("%s last synced at %v, want at NotifyOnline (%v)", ns, st.LastSync, now)
			}
		}
		if st, _ := r.Status(ctx, "ns"); st.State != converge.StateIdle || st.Pending != 0 {
			t.Errorf("status after NotifyOnline: %+v", st)
		}
		// The backoff started over: the first retry after a new failure
		// waits at most MinBackoff.
		for range 10 {
			peer.SetDown(true)
			r.NotifyOnline()
			synctest.Wait()
			failed := time.Now()
			peer.SetDown(false)
			settle(minB)
			if at := peer.firstTripAfter(failed); at < 0 || at > minB {
				t.Fatalf("retry %v after a failure following NotifyOnline, want within %v", at, minB)
			}
		}
	})
}

// refusingPeer is reachable (its health check passes) but refuses every
// round trip.
type refusingPeer struct{ *tripLog }

func (p refusingPeer) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	p.tripLog.RoundTrip(ctx, req) // recorded; its answer is not given
	return nil, errors.New("403 forbidden")
}

// TestReplicatorProbeKeepsTheBackoff: a peer that is reachable but
// refuses syncs is not retried every probe: the backoff goes on.
func TestReplicatorProbeKeepsTheBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
		app, hub := open(t, quiet), open(t, quiet)
		peer := refusingPeer{newTripLog(hub.SyncStore(), transport.Limits{})}
		r, err := app.OpenReplicator(peer, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Interval: 24 * time.Hour,
			MinBackoff: time.Minute, MaxBackoff: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		start := time.Now()
		settle(time.Hour)
		// Waits of at most 1, 2, 4, 8, 16, 32 minutes, then an hour: at
		// least 7 trips in an hour, and no more than the jitter allows
		// (a trip per probe would be 3600).
		if n := len(peer.since(start.Add(-time.Nanosecond))); n < 7 || n > 100 {
			t.Errorf("%d round trips in an hour of refusals", n)
		}
	})
}

// TestHTTPReplicatorResumesAfterServerRestart: over real HTTP on
// loopback, a replicator whose backoff has grown long syncs on its own
// once the server is back on its address (its probe of /v1/health sees
// it), without SyncNow.
func TestHTTPReplicatorResumesAfterServerRestart(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, dir)
	url := h.ts.URL
	db := open(t, converge.Options{Logger: testLogger()})
	c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: url, Token: "secret", MaxRetries: -1, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := db.OpenReplicator(c, converge.ReplicatorOptions{Namespaces: []string{"ns"}, Debounce: time.Millisecond, Interval: time.Hour,
		MinBackoff: time.Hour, MaxBackoff: time.Hour, ProbeInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close(context.Background())
	waitStatus(t, rep, func(st converge.Status) bool { return !st.LastSync.IsZero() })
	h.stop()
	tasks := coll[Task](t, db, "tasks")
	if _, err := tasks.Put(t.Context(), "ns", &Task{ID: "written-offline"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rep, func(st converge.Status) bool { return st.State == converge.StateError })
	h2 := restartHubAt(t, dir, url)
	waitStatus(t, rep, func(st converge.Status) bool { return st.State == converge.StateIdle && st.Pending == 0 })
	if _, err := coll[Task](t, h2.db, "tasks").Get(t.Context(), "ns", "written-offline"); err != nil {
		t.Errorf("the hub lacks the task written offline: %v", err)
	}
}
