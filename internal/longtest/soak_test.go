package longtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/proptest"
	httptransport "github.com/convergedb/converge/transport/http"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// The soak tests: replicas writing concurrently for a bounded time while
// their links are paused and cut at random, then healed; they must end
// converged, with every write on every replica, and leave no goroutine or
// heap behind once everything is closed.
//
//	CONVERGE_SOAK_DURATION=30s go test -run TestSoak -v .

const (
	soakReplicas = 8
	soakNS       = "ns"
	// soakBound bounds every wait: a failure bound, not synchronization.
	soakBound = 60 * time.Second
	// soakGoroutineSlack is how many more goroutines than at the start
	// are tolerated once everything is closed and the exits were waited
	// for: one, for a helper of the runtime or the test framework that
	// comes and goes (a leaked replicator leaves two).
	soakGoroutineSlack = 1
	// soakHeapSlack bounds the growth of the heap in use, after GC, from
	// before the soak to after it, everything closed: generous (a 3s soak
	// leaves well under 1 MiB), since pools and the allocator keep some.
	soakHeapSlack = 16 << 20
)

var soakQuiet = slog.New(slog.DiscardHandler)

// soakDuration is how long the replicas write: CONVERGE_SOAK_DURATION, or
// 3s (1s with -short).
func soakDuration(t *testing.T) time.Duration {
	if s := os.Getenv("CONVERGE_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("CONVERGE_SOAK_DURATION=%q: want a positive duration (%v)", s, err)
		}
		return d
	}
	if testing.Short() {
		return time.Second
	}
	return 3 * time.Second
}

// ownRecord is what a replica last wrote to a record only it writes: the
// state every replica must end with.
type ownRecord struct {
	exists bool
	title  string
	votes  int64
	tags   []string // sorted
}

// soakReplica is one writing replica and its link.
type soakReplica struct {
	name   string
	db     *converge.DB
	tasks  *converge.Collection[Task]
	rep    *converge.Replicator
	proxy  *embednats.Proxy // between it and the hub or server; nil: direct
	own    map[string]*ownRecord
	calls  int  // write calls that succeeded
	paused bool // as the chaos goroutine left it
}

func openSoakDB(t *testing.T) *converge.DB {
	t.Helper()
	db, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync, CacheSize: 1 << 20, Logger: soakQuiet})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// write makes one random write: a put, update (set, increment, set add)
// or delete of a record every replica writes, or of one only this replica
// writes, or a transaction of two of its own records.
func (r *soakReplica) write(ctx context.Context, rng *rand.Rand, i int) error {
	shared := fmt.Sprintf("shared-%d", rng.IntN(8))
	ownID := fmt.Sprintf("%s-own-%d", r.name, rng.IntN(6))
	own := r.own[ownID]
	if own == nil {
		own = &ownRecord{}
		r.own[ownID] = own
	}
	tolerate := func(err error) error {
		if errors.Is(err, converge.ErrNotFound) {
			return nil // another replica's delete got there first
		}
		return err
	}
	randomTags := func() []string {
		var tags []string
		for _, tag := range []string{"a", "b", "c", "d"} {
			if rng.IntN(2) == 0 {
				tags = append(tags, tag)
			}
		}
		return tags
	}
	title := fmt.Sprintf("%s-%d", r.name, i)
	switch k := rng.IntN(12); {
	case k < 2:
		_, err := r.tasks.Put(ctx, soakNS, &Task{ID: shared, Title: title, Done: rng.IntN(2) == 0, Tags: []string{r.name}})
		return err
	case k < 4:
		return tolerate(r.tasks.Update(ctx, soakNS, shared, converge.Set("title", title),
			converge.Increment("votes", 1), converge.AddToSet("tags", fmt.Sprint("t", rng.IntN(4)))))
	case k < 5:
		return tolerate(r.tasks.Delete(ctx, soakNS, shared))
	case k < 7:
		votes, tags := rng.Int64N(100), randomTags()
		if _, err := r.tasks.Put(ctx, soakNS, &Task{ID: ownID, Title: title, Votes: votes, Tags: tags}); err != nil {
			return err
		}
		*own = ownRecord{exists: true, title: title, votes: votes, tags: tags}
	case k < 10:
		if !own.exists {
			return nil
		}
		d, tag := rng.Int64N(10)-3, fmt.Sprint("x", rng.IntN(3))
		if err := r.tasks.Update(ctx, soakNS, ownID, converge.Set("title", title), converge.Increment("votes", d), converge.AddToSet("tags", tag)); err != nil {
			return err
		}
		own.title, own.votes = title, own.votes+d
		if !slices.Contains(own.tags, tag) {
			own.tags = append(own.tags, tag)
			slices.Sort(own.tags)
		}
	case k < 11:
		if !own.exists {
			return nil
		}
		if err := r.tasks.Delete(ctx, soakNS, ownID); err != nil {
			return err
		}
		*own = ownRecord{}
	default:
		// Two own records in one transaction: replicated as a unit.
		a, b := r.name+"-tx-a", r.name+"-tx-b"
		err := r.db.Update(ctx, soakNS, func(tx *converge.Tx) error {
			c := r.tasks.Tx(tx)
			if _, err := c.Put(&Task{ID: a, Title: title}); err != nil {
				return err
			}
			_, err := c.Put(&Task{ID: b, Title: title})
			return err
		})
		if err != nil {
			return err
		}
		r.own[a] = &ownRecord{exists: true, title: title}
		r.own[b] = &ownRecord{exists: true, title: title}
	}
	return nil
}

// writeFinal writes the replica's last record: its name and write count.
func (r *soakReplica) writeFinal(ctx context.Context) error {
	id, title := r.name+"-final", fmt.Sprintf("%s wrote %d times", r.name, r.calls)
	if _, err := r.tasks.Put(ctx, soakNS, &Task{ID: id, Title: title, Votes: int64(r.calls)}); err != nil {
		return err
	}
	r.own[id] = &ownRecord{exists: true, title: title, votes: int64(r.calls)}
	r.calls++
	return nil
}

// checkOwn fails unless db holds exactly what r last wrote to each of its
// own records.
func (r *soakReplica) checkOwn(t *testing.T, where string, db *converge.DB) {
	t.Helper()
	tasks := coll[Task](t, db, "tasks")
	for id, want := range r.own {
		got, err := tasks.Get(context.Background(), soakNS, id)
		switch {
		case !want.exists:
			if !errors.Is(err, converge.ErrNotFound) {
				t.Errorf("%s: %s deleted %s, which reads %+v, %v", where, r.name, id, got, err)
			}
		case err != nil:
			t.Errorf("%s: %s wrote %s, lost: %v", where, r.name, id, err)
		default:
			tags := slices.Sorted(slices.Values(got.Tags))
			if got.Title != want.title || got.Votes != want.votes || !slices.Equal(tags, want.tags) {
				t.Errorf("%s: %s wrote %s = %+v, reads %q votes %d tags %v", where, r.name, id, *want, got.Title, got.Votes, tags)
			}
		}
	}
}

// soakRun is the part both soaks share: writers, chaos, the heal, the
// convergence and the checks.
type soakRun struct {
	t        *testing.T
	closers  []func() // run in reverse order by close
	reps     []*soakReplica
	others   []*converge.DB // converging with the replicas (the hub)
	proxies  []*embednats.Proxy
	duration time.Duration
	// Written by the chaos goroutine, read after it ended.
	pauses, cuts int64
	maxPause     time.Duration // the longest Pause call
}

// write runs the writers and the chaos for the run's duration, then heals
// every link.
func (s *soakRun) write() {
	t := s.t
	ctx := context.Background()
	deadline := time.Now().Add(s.duration)
	var wg sync.WaitGroup
	errs := make(chan error, len(s.reps))
	for i, r := range s.reps {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))
			for n := 0; time.Now().Before(deadline); n++ {
				if err := r.write(ctx, rng, n); err != nil {
					errs <- fmt.Errorf("%s: write %d: %w", r.name, n, err)
					return
				}
				r.calls++
				if n%16 == 15 {
					runtime.Gosched() // let the syncs in between the writes
				}
			}
			if err := r.writeFinal(ctx); err != nil {
				errs <- fmt.Errorf("%s: final write: %w", r.name, err)
			}
		})
	}
	// Chaos: pause and resume replicators, cut and heal links.
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 99))
		for time.Now().Before(deadline) {
			time.Sleep(time.Duration(5+rng.IntN(30)) * time.Millisecond) // chaos pacing, not synchronization
			if len(s.proxies) == 0 || rng.IntN(2) == 0 {
				r := s.reps[rng.IntN(len(s.reps))]
				if r.paused {
					r.rep.Resume()
				} else {
					t0 := time.Now()
					r.rep.Pause()
					s.pauses++
					s.maxPause = max(s.maxPause, time.Since(t0))
				}
				r.paused = !r.paused
				continue
			}
			p := s.proxies[rng.IntN(len(s.proxies))]
			if rng.IntN(2) == 0 {
				p.Cut()
				s.cuts++
			} else {
				p.Heal()
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, p := range s.proxies {
		p.Heal()
	}
	for _, r := range s.reps {
		if r.paused {
			r.rep.Resume()
			r.paused = false
		}
	}
}

func (s *soakRun) dbs() []*converge.DB {
	dbs := slices.Clone(s.others)
	for _, r := range s.reps {
		dbs = append(dbs, r.db)
	}
	return dbs
}

// converge waits until every DB has the same state and vector
// (proptest.WaitConverged) and returns how long that took.
func (s *soakRun) converge() time.Duration {
	t := s.t
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), soakBound)
	defer cancel()
	if err := proptest.WaitConverged(ctx, soakNS, s.dbs()...); err != nil {
		t.Fatalf("not converged %v after the heal: %v", soakBound, err)
	}
	return time.Since(start)
}

// check verifies the converged replicas: every replica's own writes are
// on ref(r) as it last wrote them, its queue is empty after one more
// sync, and ref's stored state is what its log produces.
func (s *soakRun) check(ref func(*soakReplica) (string, *converge.DB)) (ops uint64) {
	t := s.t
	ctx := context.Background()
	for _, r := range s.reps {
		v, err := r.db.Admin().Vector(ctx, soakNS)
		if err != nil {
			t.Fatal(err)
		}
		ops += v[r.db.ReplicaID()]
		where, db := ref(r)
		r.checkOwn(t, where, db)
		if _, err := r.rep.SyncNow(ctx, soakNS); err != nil {
			t.Errorf("%s: sync after convergence: %v", r.name, err)
		}
		if st, err := r.rep.Status(ctx, soakNS); err != nil || st.Pending != 0 {
			t.Errorf("%s: status after convergence: %+v, %v; want nothing pending", r.name, st, err)
		}
	}
	for _, db := range s.dbs() {
		if v, err := db.Admin().Verify(ctx, soakNS); err != nil || !v.OK() {
			t.Errorf("verify %s: %+v, %v", db.ReplicaID(), v, err)
		}
	}
	return ops
}

// resources are the goroutine count and the heap in use, after GC.
type resources struct {
	goroutines int
	heap       uint64
}

func measure() resources {
	runtime.GC()
	runtime.GC() // the second collects what the first's finalizers freed
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return resources{goroutines: runtime.NumGoroutine(), heap: ms.HeapInuse}
}

// checkResources compares the resources after the soak, everything
// closed, with before: goroutines may take a moment to exit, so it polls
// for them.
func checkResources(t *testing.T, before resources) resources {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // a failure bound
	after := measure()
	for after.goroutines > before.goroutines+soakGoroutineSlack && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling for exits, not synchronizing
		after = measure()
	}
	if after.goroutines > before.goroutines+soakGoroutineSlack {
		var buf bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Errorf("goroutines: %d before, %d after everything closed (slack %d):\n%s", before.goroutines, after.goroutines, soakGoroutineSlack, buf.String())
	}
	if after.heap > before.heap+soakHeapSlack {
		t.Errorf("heap in use: %d MiB before, %d MiB after everything closed (slack %d MiB)", before.heap>>20, after.heap>>20, soakHeapSlack>>20)
	}
	return after
}

// onClose registers fn to run at close, before what was registered earlier.
func (s *soakRun) onClose(fn func()) { s.closers = append(s.closers, fn) }

// close closes everything the soak opened, in reverse order, and lets go
// of it, so that what is measured afterwards holds nothing of the soak.
func (s *soakRun) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// closeReplicator closes r's replicator, waiting for its goroutines.
func (s *soakRun) closeReplicator(r *soakReplica) {
	ctx, cancel := context.WithTimeout(context.Background(), soakBound)
	defer cancel()
	if err := r.rep.Close(ctx); err != nil {
		s.t.Errorf("%s: close replicator: %v", r.name, err)
	}
}

// soakSummary is what a soak reports: numbers only, so that nothing of
// the soak stays reachable for the resource check.
type soakSummary struct {
	replicas, calls int
	ops             uint64
	duration        time.Duration
	pauses, cuts    int64
	longestPause    time.Duration
	converged       time.Duration
}

func (s *soakRun) summary(ops uint64, converged time.Duration) soakSummary {
	sum := soakSummary{replicas: len(s.reps), ops: ops, duration: s.duration, pauses: s.pauses, cuts: s.cuts,
		longestPause: s.maxPause, converged: converged}
	for _, r := range s.reps {
		sum.calls += r.calls
	}
	return sum
}

// soak runs fn, which returns with everything it opened closed, and
// checks that it left no goroutine or heap behind.
func soak(t *testing.T, fn func(t *testing.T) soakSummary) {
	start := time.Now()
	before := measure()
	sum := fn(t)
	after := checkResources(t, before)
	t.Logf("%d replicas, %d write calls, %d ops, writing %v with %d pauses (longest %v) and %d cuts; converged %v after the heal; %v in all",
		sum.replicas, sum.calls, sum.ops, sum.duration, sum.pauses, sum.longestPause.Round(time.Millisecond), sum.cuts,
		sum.converged.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	t.Logf("goroutines %d before, %d after; heap in use %.1f MiB before, %.1f MiB after",
		before.goroutines, after.goroutines, float64(before.heap)/(1<<20), float64(after.heap)/(1<<20))
}

func newSoakRun(t *testing.T) *soakRun { return &soakRun{t: t, duration: soakDuration(t)} }

// newReplica opens a replica's DB and registers its closing.
func (s *soakRun) newReplica(i int) *soakReplica {
	r := &soakReplica{name: fmt.Sprintf("r%d", i), own: map[string]*ownRecord{}}
	r.db = openSoakDB(s.t)
	s.onClose(func() { r.db.Close() })
	r.tasks = coll[Task](s.t, r.db, "tasks")
	s.reps = append(s.reps, r)
	return r
}

// newProxy starts a cuttable TCP proxy to addr and registers its closing.
func (s *soakRun) newProxy(addr string) *embednats.Proxy {
	p, err := embednats.NewProxy(addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.onClose(func() { p.Close() })
	s.proxies = append(s.proxies, p)
	return p
}

// startSoakHub starts a hub DB behind the HTTP server on loopback (which
// wakes its live streams on the DB's commits), and registers its closing.
func (s *soakRun) startSoakHub() (*converge.DB, string) {
	t := s.t
	db := openSoakDB(t)
	s.onClose(func() { db.Close() })
	srv, err := httptransport.NewServer(httptransport.ServerOptions{Store: db.SyncStore(), Auth: grantAll{"secret", []string{soakNS}}, Logger: soakQuiet})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	s.onClose(func() { srv.Close(); ts.Close() }) // the streams end first
	s.others = append(s.others, db)
	return db, ts.URL
}

// TestSoakHTTP: eight replicas write concurrently through one HTTP hub,
// four of them behind TCP proxies that are cut and healed at random, all
// of them paused and resumed at random.
func TestSoakHTTP(t *testing.T) { soak(t, soakHTTP) }

func soakHTTP(t *testing.T) soakSummary {
	s := newSoakRun(t)
	defer s.close()
	hub, hubURL := s.startSoakHub()
	for i := range soakReplicas {
		r := s.newReplica(i)
		url := hubURL
		if i%2 == 0 {
			r.proxy = s.newProxy(strings.TrimPrefix(hubURL, "http://"))
			url = "http://" + r.proxy.Addr()
		}
		d := &net.Dialer{Timeout: 5 * time.Second}
		tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4, ResponseHeaderTimeout: 10 * time.Second, DisableCompression: true}
		s.onClose(tr.CloseIdleConnections)
		c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: url, Token: "secret", HTTPClient: &http.Client{Transport: tr},
			MaxRetries: 3, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Logger: soakQuiet})
		if err != nil {
			t.Fatal(err)
		}
		r.rep, err = r.db.OpenReplicator(c, converge.ReplicatorOptions{Namespaces: []string{soakNS},
			Interval: 200 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: soakQuiet})
		if err != nil {
			t.Fatal(err)
		}
		s.onClose(func() { s.closeReplicator(r) })
	}

	s.write()
	conv := s.converge()
	ops := s.check(func(r *soakReplica) (string, *converge.DB) { return "hub", hub })
	return s.summary(ops, conv)
}

// TestSoakNATS: eight replicas write concurrently over one NATS server,
// each a peer of the others, two of them behind TCP proxies that are cut
// and healed at random, all of them paused and resumed at random.
func TestSoakNATS(t *testing.T) { soak(t, soakNATS) }

func soakNATS(t *testing.T) soakSummary {
	s := newSoakRun(t)
	defer s.close()
	srv, err := embednats.Run()
	if err != nil {
		t.Fatal(err)
	}
	s.onClose(srv.Stop)
	srvAddr := strings.TrimPrefix(srv.ClientURL(), "nats://")
	for i := range soakReplicas {
		r := s.newReplica(i)
		url := srv.ClientURL()
		if i%4 == 0 {
			r.proxy = s.newProxy(srvAddr)
			url = "nats://" + r.proxy.Addr()
		}
		tr, err := natstransport.Connect(url, natstransport.Options{Store: r.db.SyncStore(), Heartbeat: 100 * time.Millisecond, RequestTimeout: 2 * time.Second, Logger: soakQuiet},
			nats.Name(r.name), nats.ReconnectWait(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		s.onClose(func() { tr.Close() })
		r.rep, err = r.db.OpenReplicator(tr, converge.ReplicatorOptions{Namespaces: []string{soakNS},
			Interval: 500 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: soakQuiet})
		if err != nil {
			t.Fatal(err)
		}
		s.onClose(func() { s.closeReplicator(r) })
	}

	s.write()
	conv := s.converge()
	// Each replica's writes, read on its neighbour: they crossed the bus.
	ops := s.check(func(r *soakReplica) (string, *converge.DB) {
		n := s.reps[(slices.Index(s.reps, r)+1)%len(s.reps)]
		return n.name, n.db
	})
	return s.summary(ops, conv)
}
