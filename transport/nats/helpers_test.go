package natstransport_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/proptest"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// quiet discards logs unless CONVERGE_TEST_LOG is set.
var quiet = func() *slog.Logger {
	if os.Getenv("CONVERGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}()

// failBound bounds every wait: a failure bound, not synchronization.
const failBound = 30 * time.Second

func startServer(t testing.TB) *embednats.Node {
	t.Helper()
	s, err := embednats.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Item is the record the tests write.
type Item struct {
	ID   string   `msgpack:"-" converge:"id"`
	Name string   `msgpack:"name"`
	Site string   `msgpack:"site"`
	N    int64    `msgpack:"n"`
	Tags []string `msgpack:"tags" converge:"set"`
	Meta converge.Meta
}

// replica is a DB with a NATS transport and a replicator.
type replica struct {
	name  string
	dir   string
	db    *converge.DB
	items *converge.Collection[Item]
	tr    *natstransport.Transport
	rep   *converge.Replicator
}

func openDB(t testing.TB, dir string, opts converge.Options) (*converge.DB, *converge.Collection[Item]) {
	t.Helper()
	opts.Durability = converge.NoSync
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	db, err := converge.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	items, err := converge.NewCollection[Item](db, "items")
	if err != nil {
		t.Fatal(err)
	}
	return db, items
}

type replicaConfig struct {
	url       string
	ns        []string
	dir       string // "" means a new temp dir
	dbOpts    converge.Options
	trOpts    natstransport.Options
	repOpts   converge.ReplicatorOptions
	natsOpts  []nats.Option
	noReplica bool // transport only, no replicator
}

// startReplica opens a DB, connects its transport to cfg.url and starts a
// replicator for cfg.ns. Everything is closed when the test ends.
func startReplica(t testing.TB, name string, cfg replicaConfig) *replica {
	t.Helper()
	if cfg.dir == "" {
		cfg.dir = t.TempDir()
	}
	db, items := openDB(t, cfg.dir, cfg.dbOpts)
	r := &replica{name: name, dir: cfg.dir, db: db, items: items}
	cfg.trOpts.Store = db.SyncStore()
	if cfg.trOpts.Logger == nil {
		cfg.trOpts.Logger = quiet.With("replica", name)
	}
	if cfg.trOpts.Heartbeat == 0 {
		cfg.trOpts.Heartbeat = 200 * time.Millisecond
	}
	tr, err := natstransport.Connect(cfg.url, cfg.trOpts, append([]nats.Option{nats.Name(name)}, cfg.natsOpts...)...)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	r.tr = tr
	if !cfg.noReplica {
		o := cfg.repOpts
		o.Namespaces = cfg.ns
		if o.Interval == 0 {
			o.Interval = time.Second
		}
		if o.MinBackoff == 0 {
			o.MinBackoff, o.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
		}
		rep, err := db.OpenReplicator(tr, o)
		if err != nil {
			t.Fatal(err)
		}
		r.rep = rep
	}
	t.Cleanup(r.close)
	return r
}

// close stops the replicator, the transport and the DB (idempotent).
func (r *replica) close() {
	if r.rep != nil {
		ctx, cancel := context.WithTimeout(context.Background(), failBound)
		_ = r.rep.Close(ctx)
		cancel()
		r.rep = nil
	}
	if r.tr != nil {
		_ = r.tr.Close()
		r.tr = nil
	}
	if r.db != nil {
		_ = r.db.Close()
		r.db = nil
	}
}

func (r *replica) put(t testing.TB, ns string, it Item) {
	t.Helper()
	if _, err := r.items.Put(context.Background(), ns, &it); err != nil {
		t.Fatalf("%s: put %s: %v", r.name, it.ID, err)
	}
}

// waitConverged waits until every replica holds the same ops and state in
// ns (proptest.WaitConverged).
func waitConverged(t testing.TB, ns string, reps ...*replica) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failBound)
	defer cancel()
	if err := proptest.WaitConverged(ctx, ns, dbsOf(reps)...); err != nil {
		t.Fatal(err)
	}
}

// difference describes how the replicas differ in ns, or is ""
// (proptest.CheckConverged).
func difference(ns string, reps ...*replica) (string, error) {
	if err := proptest.CheckConverged(context.Background(), ns, dbsOf(reps)...); err != nil {
		return err.Error(), nil
	}
	return "", nil
}

func dbsOf(reps []*replica) []*converge.DB {
	dbs := make([]*converge.DB, len(reps))
	for i, r := range reps {
		dbs[i] = r.db
	}
	return dbs
}

// waitUntil re-checks cond after each change r commits in ns.
func waitUntil(t testing.TB, r *replica, ns string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failBound)
	defer cancel()
	sub := r.db.Subscribe(ns)
	defer sub.Close()
	for !cond() {
		if _, err := sub.Next(ctx); err != nil && !errors.Is(err, converge.ErrLagged) {
			t.Fatalf("%s: waiting for a condition: %v", r.name, err)
		}
	}
}

// poll re-checks cond every few milliseconds, for conditions that no
// change event announces (connection counts, counters).
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition, not synchronizing by time
	}
}

// count returns the number of items r holds in ns.
func count(t testing.TB, r *replica, ns string) int {
	t.Helper()
	n := 0
	for _, err := range r.items.All(context.Background(), ns) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
