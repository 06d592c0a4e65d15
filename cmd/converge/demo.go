package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/proptest"
	"github.com/vmihailenco/msgpack/v5"
)

// Task is the demo's record type.
type Task struct {
	ID       string   `msgpack:"-" converge:"id"`
	Title    string   `msgpack:"title"`
	Status   string   `msgpack:"status"`
	Assignee string   `msgpack:"assignee"`
	Tags     []string `msgpack:"tags" converge:"set"`
	Votes    int64    `msgpack:"votes" converge:"counter"`
	Meta     converge.Meta
}

const demoNS = "team-rocket"

// demoBound bounds every wait of the demo: a failure bound, never a way
// to synchronize.
const demoBound = time.Minute

var demoNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "ursula", "victor", "walter", "xavier", "yvonne", "zoe", "amir", "bea", "cyd"}

type demoConfig struct {
	replicas  int
	ops       int
	transport string
	dir       string
	verbose   bool
}

// demoReplica is one replica of the demo: a store, its collection, and
// its replicator over the demo's network.
type demoReplica struct {
	name  string
	db    *converge.DB
	tasks *converge.Collection[Task]
	rep   *converge.Replicator
}

// scriptClock is the demo's physical clock, shared by every replica: the
// script sets it before each write, so every write gets the HLC of its
// step (wall time, logical 0) and every run tells the same story.
type scriptClock struct{ now atomic.Int64 }

// demoStart is when the demo's story begins.
var demoStart = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

func (c *scriptClock) read() int64     { return c.now.Load() }
func (c *scriptClock) set(t time.Time) { c.now.Store(t.UnixMilli()) }
func (c *scriptClock) String() string  { return time.UnixMilli(c.read()).UTC().Format("15:04:05") }

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	cfg := demoConfig{}
	fs.IntVar(&cfg.replicas, "replicas", 3, "number of replicas (2 to 26)")
	fs.IntVar(&cfg.ops, "ops", 2, "votes each replica casts on task-3 while partitioned, besides the scripted edits (0 to 100000)")
	fs.StringVar(&cfg.transport, "transport", "nats", "replicate over `nats` (an in-process NATS server, a leaf node for the cut-off site) or http (an in-process hub)")
	fs.StringVar(&cfg.dir, "dir", "", "keep the stores in this directory, which must be empty or absent (default: a temp dir, removed afterwards)")
	fs.BoolVar(&cfg.verbose, "v", false, "verbose: log to stderr and show each replica's change feed and transport counters")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: converge demo [flags]")
		fmt.Fprintln(stderr, "\nReplicas in one process, a partition with conflicting writes on both sides, the heal.")
		fmt.Fprintln(stderr, "The last line is \"converged: <n> replicas, <records> records, state <hash>\", where n counts")
		fmt.Fprintln(stderr, "the -replicas and the one that joins late (\"<n> replicas and the hub\" with -transport http).")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo: unexpected argument %q", fs.Arg(0))
	}
	if cfg.replicas < 2 || cfg.replicas > len(demoNames) {
		return fmt.Errorf("demo: -replicas must be 2 to %d", len(demoNames))
	}
	if cfg.ops < 0 || cfg.ops > 100000 {
		return fmt.Errorf("demo: -ops must be 0 to 100000")
	}
	if cfg.transport != "nats" && cfg.transport != "http" {
		return fmt.Errorf("demo: -transport must be nats or http, not %q", cfg.transport)
	}
	return demo(ctx, cfg, stdout, stderr)
}

// demoRun is the state the steps of the demo share: the configuration,
// the output, the clock, the network and the replicas, and what one step
// measures for a later one.
type demoRun struct {
	ctx    context.Context
	cfg    demoConfig
	stdout io.Writer
	dir    string
	logger *slog.Logger
	clock  *scriptClock
	names  []string
	dbOpts converge.Options

	// Everything opened is closed: every replicator, then every transport,
	// then every store, then the servers.
	closeReps, closePeers, closeDBs, closeNet []func() error

	network           demoNet
	reps              []*demoReplica
	who               map[string]string // replica id -> name
	all               []*converge.DB    // the replicas, then the hub if any
	hub               *converge.DB
	width             int // of the longest name
	alice, bob, carol *demoReplica
	left, right       []*demoReplica
	rightDBs          []*converge.DB // the hub, if any, is on the right side of the cut
	before            []map[string]uint64
	conflictsBefore   []uint64
	feedBefore        []uint64
	started           time.Time
	hash              string
	records           int
}

func demo(ctx context.Context, cfg demoConfig, stdout, stderr io.Writer) (err error) {
	dir := cfg.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "converge-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("demo: -dir %s is not empty: the demo starts from empty stores", dir)
	}
	d := &demoRun{ctx: ctx, cfg: cfg, stdout: stdout, dir: dir, clock: &scriptClock{}}
	d.logger = slog.New(slog.DiscardHandler)
	if cfg.verbose {
		d.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d.clock.set(demoStart)
	d.names = demoNames[:cfg.replicas]
	d.dbOpts = converge.Options{Clock: d.clock.read, Logger: d.logger}
	defer func() { err = errors.Join(err, d.close()) }()
	for _, step := range []func() error{
		d.startNetwork,
		d.openReplicas,
		d.intro,
		d.createTasks,
		d.partition,
		d.vote,
		d.showApart,
		d.heal,
		d.showConverged,
		d.showConflicts,
		d.showVerbose,
		d.checkVectors,
		d.compactAndJoin,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// p prints one line of the demo's story.
func (d *demoRun) p(format string, args ...any) { fmt.Fprintf(d.stdout, format+"\n", args...) }

// name is the demo's name of a replica id (the id itself if unknown).
func (d *demoRun) name(id string) string {
	if s, ok := d.who[id]; ok {
		return s
	}
	return id
}

// close closes everything the demo opened, in order.
func (d *demoRun) close() error {
	var err error
	for _, closers := range [][]func() error{d.closeReps, d.closePeers, d.closeDBs, d.closeNet} {
		for _, c := range slices.Backward(closers) {
			err = errors.Join(err, c())
		}
	}
	return err
}

// startNetwork starts the NATS servers or the HTTP hub.
func (d *demoRun) startNetwork() error {
	var err error
	if d.cfg.transport == "nats" {
		d.network, err = startNATSNet(d.names, d.logger)
	} else {
		d.network, err = startHTTPNet(filepath.Join(d.dir, "hub"), d.dbOpts, d.logger)
	}
	if err != nil {
		return err
	}
	d.closeNet = append(d.closeNet, d.network.close)
	return nil
}

// openReplicas opens every replica's store, collection and replicator.
func (d *demoRun) openReplicas() error {
	d.reps = make([]*demoReplica, len(d.names))
	d.who = map[string]string{}
	for i, name := range d.names {
		r, err := d.openReplica(i, name)
		if err != nil {
			return err
		}
		d.reps[i] = r
		d.who[r.db.ReplicaID()] = name
	}
	d.all = make([]*converge.DB, 0, len(d.reps)+1)
	for _, r := range d.reps {
		d.all = append(d.all, r.db)
	}
	d.hub = d.network.hub()
	if d.hub != nil {
		d.who[d.hub.ReplicaID()] = "hub"
		d.all = append(d.all, d.hub)
	}
	for _, n := range d.who {
		d.width = max(d.width, len(n))
	}
	d.alice, d.bob, d.carol = d.reps[0], d.reps[1], d.reps[len(d.reps)-1]
	d.left, d.right = d.reps[:1], d.reps[1:]
	d.rightDBs = d.all[1:]
	return nil
}

// openReplica opens replica i.
func (d *demoRun) openReplica(i int, name string) (*demoReplica, error) {
	db, err := converge.Open(filepath.Join(d.dir, name), d.dbOpts)
	if err != nil {
		return nil, err
	}
	d.closeDBs = append(d.closeDBs, db.Close)
	tasks, err := converge.NewCollection[Task](db, "tasks")
	if err != nil {
		return nil, err
	}
	peer, closePeer, err := d.network.connect(i, name, db)
	if err != nil {
		return nil, err
	}
	d.closePeers = append(d.closePeers, closePeer)
	rep, err := db.OpenReplicator(peer, converge.ReplicatorOptions{
		Namespaces: []string{demoNS},
		Interval:   2 * time.Second, // anti-entropy also heals what the live path missed
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 250 * time.Millisecond,
		Logger:     d.logger.With("replica", name),
	})
	if err != nil {
		return nil, err
	}
	d.closeReps = append(d.closeReps, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), demoBound)
		defer cancel()
		return rep.Close(ctx)
	})
	return &demoReplica{name: name, db: db, tasks: tasks, rep: rep}, nil
}

// intro prints the demo's setting.
func (d *demoRun) intro() error {
	d.p("Converge demo: %d replicas (%s), each with its own Pebble store under %s.", len(d.reps), strings.Join(d.names, ", "), d.dir)
	for _, line := range d.network.describe(d.names) {
		d.p("%s", line)
	}
	d.p("Every replica reads one scripted clock, so every run tells the same story.")
	d.p("")
	return nil
}

// createTasks is step 1: everyone starts from the same three tasks.
func (d *demoRun) createTasks() error {
	ctx, alice := d.ctx, d.alice
	d.p("1. %s creates three tasks; they replicate live to everyone.", alice.name)
	for i, title := range []string{"write the README", "fix the flaky test", "plan the offsite"} {
		d.clock.set(demoStart.Add(time.Duration(i+1) * time.Second))
		id := fmt.Sprintf("task-%d", i+1)
		if _, err := alice.tasks.Put(ctx, demoNS, &Task{ID: id, Title: title, Status: "todo", Tags: []string{"q4"}}); err != nil {
			return err
		}
		d.p("   %s  %-*s creates %s %q", d.clock, d.width, alice.name, id, title)
	}
	if err := waitSame(ctx, d.all); err != nil {
		return fmt.Errorf("before the partition: %w", err)
	}
	// One sync each, so every replicator knows its peer holds its ops: the
	// pending counts below are then exactly the writes made while apart.
	for _, r := range d.reps {
		if _, err := r.rep.SyncNow(ctx, demoNS); err != nil {
			return fmt.Errorf("%s: sync: %w", r.name, err)
		}
	}
	h, err := alice.db.Admin().StateHash(ctx, demoNS)
	if err != nil {
		return err
	}
	d.p("   every replica holds %d tasks, state %s.", countTasks(ctx, d.bob), h[:12])
	d.p("")
	return nil
}

// demoEdit is one scripted write made while the network is cut.
type demoEdit struct {
	r    *demoReplica
	what string
	at   time.Duration // after demoStart
	do   func() error
}

// partition is step 2: the cut, and conflicting writes on both sides.
func (d *demoRun) partition() error {
	d.clock.set(demoStart.Add(time.Minute))
	d.network.cut()
	d.p("2. %s {%s} | {%s}. Both sides keep working.", d.network.cutStory(d.alice.name), namesOf(d.left), namesOf(d.right))
	for _, s := range d.edits() {
		d.clock.set(demoStart.Add(s.at))
		if err := s.do(); err != nil {
			return fmt.Errorf("%s %s: %w", s.r.name, s.what, err)
		}
		d.p("   %s  %-*s %s", d.clock, d.width, s.r.name, s.what)
		if s.r != d.alice {
			// The right side replicates live: wait until it agrees, so each
			// write there sees the ones before it.
			if err := waitSame(d.ctx, d.rightDBs); err != nil {
				return fmt.Errorf("right side of the partition: %w", err)
			}
		}
	}
	return nil
}

// edits is the script of the partition.
func (d *demoRun) edits() []demoEdit {
	ctx, alice, bob, carol := d.ctx, d.alice, d.bob, d.carol
	return []demoEdit{
		{alice, `renames task-1 to "write the README and the docs"`, 60 * time.Second, func() error {
			return alice.tasks.Update(ctx, demoNS, "task-1", converge.Set("title", "write the README and the docs"))
		}},
		{bob, `renames task-1 to "README: rewrite from scratch"`, 61 * time.Second, func() error {
			return bob.tasks.Update(ctx, demoNS, "task-1", converge.Set("title", "README: rewrite from scratch"))
		}},
		{alice, "assigns task-2 to herself and tags it urgent", 62 * time.Second, func() error {
			return alice.tasks.Update(ctx, demoNS, "task-2", converge.Set("assignee", "alice"), converge.AddToSet("tags", "urgent"))
		}},
		{bob, "deletes task-2 (it was fixed already)", 63 * time.Second, func() error {
			return bob.tasks.Delete(ctx, demoNS, "task-2")
		}},
		{alice, "removes the q4 tag from task-3", 64 * time.Second, func() error {
			return alice.tasks.Update(ctx, demoNS, "task-3", converge.RemoveFromSet("tags", "q4"))
		}},
		{carol, "tags task-3 offsite and q4 (an add concurrent with the remove)", 65 * time.Second, func() error {
			return carol.tasks.Update(ctx, demoNS, "task-3", converge.AddToSet("tags", "offsite", "q4"))
		}},
		{alice, `sets task-3's status to "done"`, 66 * time.Second, func() error {
			return alice.tasks.Update(ctx, demoNS, "task-3", converge.Set("status", "done"))
		}},
		{carol, `sets task-3's status to "doing", in the same millisecond`, 66 * time.Second, func() error {
			return carol.tasks.Update(ctx, demoNS, "task-3", converge.Set("status", "doing"))
		}},
		{carol, "creates task-4", 67 * time.Second, func() error {
			_, err := carol.tasks.Put(ctx, demoNS, &Task{ID: "task-4", Title: "book the venue", Status: "todo", Assignee: carol.name})
			return err
		}},
	}
}

// vote casts -ops votes from each replica while apart.
func (d *demoRun) vote() error {
	if d.cfg.ops <= 0 {
		return nil
	}
	d.clock.set(demoStart.Add(2 * time.Minute))
	from := d.clock.String()
	n := 0
	for _, r := range d.reps {
		for range d.cfg.ops {
			d.clock.set(demoStart.Add(2*time.Minute + time.Duration(n)*time.Millisecond))
			n++
			if err := r.tasks.Update(d.ctx, demoNS, "task-3", converge.Increment("votes", 1)); err != nil {
				return fmt.Errorf("%s votes: %w", r.name, err)
			}
		}
	}
	d.p("   %s  each replica votes +1 on task-3, %s (-ops %d): %d votes cast, one op each",
		from, plural(d.cfg.ops, "time"), d.cfg.ops, n)
	if err := waitSame(d.ctx, d.rightDBs); err != nil {
		return fmt.Errorf("right side of the partition: %w", err)
	}
	return nil
}

// showApart shows how the two sides disagree while apart.
func (d *demoRun) showApart() error {
	ctx := d.ctx
	d.p("")
	d.p("   While apart, the sides disagree (version vector: origin:ops held):")
	sideWidth := max(len(d.alice.name), len(namesOf(d.right))) + 1
	for _, r := range []*demoReplica{d.alice, d.bob} {
		t, err := r.tasks.Get(ctx, demoNS, "task-1")
		if err != nil {
			return err
		}
		h, err := r.db.Admin().StateHash(ctx, demoNS)
		if err != nil {
			return err
		}
		vv, err := r.db.Admin().Vector(ctx, demoNS)
		if err != nil {
			return err
		}
		side := r.name
		if r == d.bob {
			side = namesOf(d.right)
		}
		d.p("   %-*s task-1 %-32q state %s  %s", sideWidth, side+":", t.Title, h[:12], fmtVector(vv, d.name, d.names))
	}
	st, err := d.alice.rep.Status(ctx, demoNS)
	if err != nil {
		return err
	}
	d.p("   %s's replicator reports %d pending ops: her writes wait in her log, the offline queue.", d.alice.name, st.Pending)
	d.p("")
	return nil
}

// heal is step 3: the network heals and every replica reports what it
// received.
func (d *demoRun) heal() error {
	if err := d.snapshotBefore(); err != nil {
		return err
	}
	d.clock.set(demoStart.Add(3 * time.Minute))
	d.started = time.Now()
	if err := d.network.heal(); err != nil {
		return err
	}
	d.p("3. %s", d.network.healStory(d.alice.name))
	if err := waitSame(d.ctx, d.all); err != nil {
		return fmt.Errorf("after the heal: %w", err)
	}
	if err := waitPending(d.ctx, d.alice.rep, 0); err != nil {
		return fmt.Errorf("%s's queue: %w", d.alice.name, err)
	}
	elapsed := time.Since(d.started)
	for i, db := range d.all {
		if err := d.showReceived(i, db); err != nil {
			return err
		}
	}
	d.p("   %s's queue drained: her replicator reports 0 pending ops.", d.alice.name)
	if d.cfg.verbose {
		d.p("   (healed and converged in %v)", elapsed.Round(time.Millisecond))
	}
	d.p("")
	return nil
}

// snapshotBefore records each replica's vector, conflict count and feed
// head before the heal.
func (d *demoRun) snapshotBefore() error {
	d.before = make([]map[string]uint64, len(d.all))
	d.conflictsBefore = make([]uint64, len(d.all))
	d.feedBefore = make([]uint64, len(d.all))
	var err error
	for i, db := range d.all {
		if d.before[i], err = db.Admin().Vector(d.ctx, demoNS); err != nil {
			return err
		}
		if d.conflictsBefore[i], err = db.ConflictCount(d.ctx, demoNS); err != nil {
			return err
		}
		if d.feedBefore[i], err = db.FeedHead(d.ctx, demoNS); err != nil {
			return err
		}
	}
	return nil
}

// showReceived prints what replica i received in the heal.
func (d *demoRun) showReceived(i int, db *converge.DB) error {
	after, err := db.Admin().Vector(d.ctx, demoNS)
	if err != nil {
		return err
	}
	var got []string
	total := uint64(0)
	for _, n := range d.names {
		for id, seq := range after {
			if d.name(id) == n && seq > d.before[i][id] {
				got = append(got, fmt.Sprintf("%s's %d", n, seq-d.before[i][id]))
				total += seq - d.before[i][id]
			}
		}
	}
	c, err := db.ConflictCount(d.ctx, demoNS)
	if err != nil {
		return err
	}
	d.p("   %-*s received %s (%s), detected %s", d.width, d.name(db.ReplicaID()), plural(int(total), "op"), strings.Join(got, ", "), plural(int(c-d.conflictsBefore[i]), "conflict"))
	return nil
}

// showConverged is step 4: the converged state.
func (d *demoRun) showConverged() error {
	ctx, alice, bob, carol := d.ctx, d.alice, d.bob, d.carol
	d.p("4. The converged tasks, read from %s (every replica shows the same):", carol.name)
	for t, err := range carol.tasks.All(ctx, demoNS) {
		if err != nil {
			return err
		}
		d.p("   %-7s %-32q status=%-5s assignee=%s tags=%v votes=%d", t.ID, t.Title, t.Status, orDash(t.Assignee), t.Tags, t.Votes)
	}
	if _, err := carol.tasks.Get(ctx, demoNS, "task-2"); errors.Is(err, converge.ErrNotFound) {
		d.p("   task-2  deleted: %s's delete wins over %s's concurrent update (a delete beats the updates it did not see).", bob.name, alice.name)
	}
	d.p("   task-3 keeps q4: %s's add is concurrent with %s's remove, and an add wins over a remove it did not see.", carol.name, alice.name)
	if d.cfg.ops > 0 {
		d.p("   task-3's votes add up: %d cast while apart, %d counted (a counter merges increments, it does not overwrite).", d.cfg.ops*len(d.reps), d.cfg.ops*len(d.reps))
	}
	d.p("")
	return nil
}

// showConflicts is step 5: the conflicts and why each write won.
func (d *demoRun) showConflicts() error {
	d.p("5. Conflicts: concurrent writes to one field. The merge keeps the write that is")
	d.p("   last by (causal length, HLC, replica id), identically on every replica:")
	conflicts, err := d.carol.db.Conflicts(d.ctx, demoNS)
	if err != nil {
		return err
	}
	if len(conflicts) == 0 {
		d.p("   none")
	}
	sortConflicts(conflicts)
	for _, c := range conflicts {
		w, l := c.Winner.Version, c.Loser.Version
		d.p("   %s/%s.%s", c.Collection, c.Key, c.Field)
		d.p("      won:  %-*s %-32s CL %d, HLC %s, replica %v", d.width+2, d.name(w.Replica.String())+"'s", showValue(c.Winner.Value), w.CL, showHLC(w.HLC), w.Replica)
		d.p("      lost: %-*s %-32s CL %d, HLC %s, replica %v", d.width+2, d.name(l.Replica.String())+"'s", showValue(c.Loser.Value), l.CL, showHLC(l.HLC), l.Replica)
		d.p("      why:  %s", why(c, d.name))
	}
	d.p("   The conflict feed: each replica logs a conflict when the second of its writes")
	d.p("   arrives (DB.Conflicts); a report for review or a resolution policy, not part of the state:")
	for _, db := range d.all {
		cs, err := db.Conflicts(d.ctx, demoNS)
		if err != nil {
			return err
		}
		sortConflicts(cs)
		var fields []string
		for _, c := range cs {
			fields = append(fields, fmt.Sprintf("%s.%s (%s over %s)", c.Key, c.Field, d.name(c.Winner.Version.Replica.String()), d.name(c.Loser.Version.Replica.String())))
		}
		if len(fields) == 0 {
			fields = []string{"none"}
		}
		d.p("   %-*s %s", d.width+1, d.name(db.ReplicaID())+":", strings.Join(fields, ", "))
	}
	d.p("")
	return nil
}

// showVerbose shows, with -v, each replica's change feed during the heal
// and the transport counters.
func (d *demoRun) showVerbose() error {
	if !d.cfg.verbose {
		return nil
	}
	d.p("   The change feed of each replica during the heal (DB.Feed, position: change):")
	for i, db := range d.all {
		d.p("   %s:", d.name(db.ReplicaID()))
		if err := printFeed(d.ctx, db, d.feedBefore[i], d.name, d.p); err != nil {
			return err
		}
	}
	d.p("   Transport counters:")
	for i, r := range d.reps {
		d.p("   %-*s %s", d.width+1, r.name+":", d.network.stats(i))
	}
	d.p("")
	return nil
}

// checkVectors is step 6: version vectors, and the check that every
// replica holds the same state, verified against its log.
func (d *demoRun) checkVectors() error {
	ctx := d.ctx
	d.p("6. Version vectors (origin:ops held), equal on every replica%s:", map[bool]string{true: " and the hub", false: ""}[d.hub != nil])
	vv, err := d.carol.db.Admin().Vector(ctx, demoNS)
	if err != nil {
		return err
	}
	d.p("   %s", fmtVector(vv, d.name, d.names))
	for _, r := range d.reps {
		h, err := r.db.Admin().StateHash(ctx, demoNS)
		if err != nil {
			return err
		}
		v, err := r.db.Admin().Verify(ctx, demoNS)
		if err != nil {
			return err
		}
		if !v.OK() {
			return fmt.Errorf("%s: stored state differs from the state rebuilt from its log", r.name)
		}
		if d.hash != "" && h != d.hash {
			return fmt.Errorf("replicas did not converge: %s has state %s, another %s", r.name, h, d.hash)
		}
		d.hash = h
		d.records = countTasks(ctx, r)
	}
	d.p("")
	return nil
}

// compactAndJoin is step 7: compaction and a late joiner, then the last
// line, which counts the replicas that hold the converged state now:
// every one checked, the late joiner and the hub included.
func (d *demoRun) compactAndJoin() error {
	joiner, err := demoCompaction(d.ctx, d.dir, d.dbOpts, d.network, d.reps, d.all, d.hash, d.name, d.width, d.p, &d.closeDBs, &d.closePeers)
	if err != nil {
		return err
	}
	d.p("")
	checked := append(slices.Clone(d.all), joiner)
	for _, db := range checked {
		h, err := db.Admin().StateHash(d.ctx, demoNS)
		if err != nil {
			return err
		}
		if h != d.hash {
			return fmt.Errorf("%s has state %s, want %s", d.name(db.ReplicaID()), h, d.hash)
		}
	}
	counted := fmt.Sprintf("%d replicas", len(d.reps)+1)
	if d.hub != nil {
		counted += " and the hub"
	}
	d.p("converged: %s, %d records, state %s", counted, d.records, d.hash)
	return nil
}

// waitSame waits until every DB holds the same ops and state in the demo's
// namespace (proptest.WaitConverged, which re-checks on every change any
// of them makes).
func waitSame(ctx context.Context, dbs []*converge.DB) error {
	ctx, cancel := context.WithTimeout(ctx, demoBound)
	defer cancel()
	if err := proptest.WaitConverged(ctx, demoNS, dbs...); err != nil {
		return fmt.Errorf("replicas did not converge: %w", err)
	}
	return nil
}

// waitStable waits until every DB knows that every replica it knows
// holds every op it holds (its stable vector is its vector). A sync with
// one peer tells a replica what that peer holds; over NATS, a replica
// learns what the others hold from their vector announcements too. It
// re-checks whenever what a DB knows changes (Admin.OnChange).
func waitStable(ctx context.Context, dbs []*converge.DB) error {
	ctx, cancel := context.WithTimeout(ctx, demoBound)
	defer cancel()
	wake := make(chan struct{}, 1)
	for _, db := range dbs {
		stop := db.Admin().OnChange(func(string) {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		defer stop()
	}
	for {
		behind := ""
		for _, db := range dbs {
			vv, err := db.Admin().Vector(ctx, demoNS)
			if err != nil {
				return err
			}
			sv, err := db.Admin().StableVector(ctx, demoNS)
			if err != nil {
				return err
			}
			if fmt.Sprint(vv) != fmt.Sprint(sv) { // fmt prints maps sorted by key
				behind = fmt.Sprintf("%s holds %v, of which every replica it knows holds %v", db.ReplicaID(), vv, sv)
				break
			}
		}
		if behind == "" {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("replicas never learned what the others hold: %s: %w", behind, ctx.Err())
		}
	}
}

// waitPending waits on r's status stream until the demo namespace's
// pending count is n.
func waitPending(ctx context.Context, r *converge.Replicator, n uint64) error {
	ctx, cancel := context.WithTimeout(ctx, demoBound)
	defer cancel()
	for st := range r.Statuses(ctx) {
		if st.Namespace == demoNS && st.Pending == n {
			return nil
		}
	}
	return fmt.Errorf("pending ops never reached %d: %w", n, context.Cause(ctx))
}

// printFeed prints the changes of db's feed after position after, up to
// its head now.
func printFeed(ctx context.Context, db *converge.DB, after uint64, name func(string) string, p func(string, ...any)) error {
	head, err := db.FeedHead(ctx, demoNS)
	if err != nil || head <= after {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for c, err := range db.Feed(ctx, demoNS, "", after) {
		if err != nil {
			return err
		}
		p("      #%-3d %s/%s %s %v by %s at %s", c.Seq, c.Collection, c.ID, c.Kind, c.Fields, name(c.Origin), showHLC(c.HLC))
		if c.Seq >= head {
			break
		}
	}
	return nil
}

// sortConflicts orders conflicts by field, for output that does not depend
// on the order in which ops arrived.
func sortConflicts(cs []converge.Conflict) {
	slices.SortFunc(cs, func(a, b converge.Conflict) int {
		return strings.Compare(a.Collection+"\x00"+a.Key+"\x00"+a.Field, b.Collection+"\x00"+b.Key+"\x00"+b.Field)
	})
}

// fmtVector formats a version vector with replica names, in the order of
// names.
func fmtVector(vv map[string]uint64, name func(string) string, names []string) string {
	var parts []string
	for _, n := range names {
		for id, seq := range vv {
			if name(id) == n {
				parts = append(parts, fmt.Sprintf("%s:%d", n, seq))
			}
		}
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func countTasks(ctx context.Context, r *demoReplica) int {
	n := 0
	for _, err := range r.tasks.All(ctx, demoNS) {
		if err == nil {
			n++
		}
	}
	return n
}

// namesOf lists the replicas' names, the first few of a long list.
func namesOf(reps []*demoReplica) string {
	var s []string
	for _, r := range reps {
		s = append(s, r.name)
	}
	if len(s) > 4 {
		return fmt.Sprintf("%s and %d others", strings.Join(s[:3], ", "), len(s)-3)
	}
	return strings.Join(s, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func showValue(v []byte) string {
	if len(v) == 0 {
		return "(unset)"
	}
	var x any
	if err := msgpack.Unmarshal(v, &x); err != nil {
		return fmt.Sprintf("%x", v)
	}
	return fmt.Sprintf("%q", fmt.Sprint(x))
}

// showHLC formats an HLC as the wall time of day in ms, with the logical
// counter when it is not zero.
func showHLC(t hlc.Timestamp) string {
	s := t.Time().Format("15:04:05.000")
	if t.Logical() > 0 {
		s += fmt.Sprintf("+%d", t.Logical())
	}
	return s
}

// why explains a conflict's winner by the LWW order (CL, HLC, replica).
func why(c converge.Conflict, name func(string) string) string {
	w, l := c.Winner.Version, c.Loser.Version
	wn, ln := name(w.Replica.String()), name(l.Replica.String())
	switch {
	case w.CL != l.CL:
		return fmt.Sprintf("%s's write has the higher causal length (%d > %d): it was made after the record was re-created", wn, w.CL, l.CL)
	case w.HLC != l.HLC:
		return fmt.Sprintf("same causal length; %s's HLC is later (%s > %s)", wn, showHLC(w.HLC), showHLC(l.HLC))
	}
	return fmt.Sprintf("same causal length and HLC (%s: the same millisecond);\n"+
		"            the higher replica id breaks the tie: %s's %v > %s's %v", showHLC(w.HLC), wn, w.Replica, ln, l.Replica)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// demoCompaction compacts every replica's log and has a new replica join:
// it bootstraps from a snapshot of a peer's states, then syncs the ops
// after it. It returns the new replica.
func demoCompaction(ctx context.Context, dir string, dbOpts converge.Options, network demoNet, reps []*demoReplica, all []*converge.DB, hash string,
	name func(string) string, width int, p func(string, ...any), closeDBs, closePeers *[]func() error) (*converge.DB, error) {
	p("7. Compaction: each replica folds the ops that every replica it knows holds into one")
	p("   base state per record and drops them from its log (Admin.Compact; it also runs in the")
	p("   background). Syncs first tell each replica what the others hold:")
	for range 2 {
		for _, r := range reps {
			if _, err := r.rep.SyncNow(ctx, demoNS); err != nil {
				return nil, fmt.Errorf("%s: sync: %w", r.name, err)
			}
		}
	}
	if err := waitStable(ctx, all); err != nil {
		return nil, err
	}
	for _, db := range all {
		st, err := db.Admin().Compact(ctx, demoNS)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name(db.ReplicaID()), err)
		}
		ls, err := db.Admin().Log().Stats(ctx, demoNS)
		if err != nil {
			return nil, err
		}
		keeps := "its log is empty: every replica it knows holds every op"
		if ls.LogOps > 0 {
			keeps = fmt.Sprintf("its log keeps %s, not yet held by every replica it knows", plural(ls.LogOps, "op"))
		}
		p("   %-*s folded %s into base states and dropped them; %s", width+1, name(db.ReplicaID())+":", plural(st.Ops, "op"), keeps)
	}
	joinName := demoNames[len(reps)]
	db, err := converge.Open(filepath.Join(dir, joinName), dbOpts)
	if err != nil {
		return nil, err
	}
	*closeDBs = append(*closeDBs, db.Close)
	peer, closePeer, err := network.joiner(joinName, db)
	if err != nil {
		return nil, err
	}
	*closePeers = append(*closePeers, closePeer)
	res, err := db.SyncWith(ctx, peer, demoNS)
	if err != nil {
		return nil, fmt.Errorf("%s joins: %w", joinName, err)
	}
	h, err := db.Admin().StateHash(ctx, demoNS)
	if err != nil {
		return nil, err
	}
	if h != hash {
		return nil, fmt.Errorf("%s joined with state %s, want %s", joinName, h, hash)
	}
	if v, err := db.Admin().Verify(ctx, demoNS); err != nil || !v.OK() {
		return nil, fmt.Errorf("%s: verify after joining: %+v, %v", joinName, v, err)
	}
	how := fmt.Sprintf("received %s (nothing was compacted where it asked)", plural(res.Received, "op"))
	if res.Snapshots > 0 {
		how = fmt.Sprintf("bootstrapped from a snapshot of %s (%s), then received %s", plural(res.SnapshotRecords, "record state"), humanBytes(int64(res.SnapshotBytes)), plural(res.Received, "op"))
	}
	p("   %s joins late. The ops it lacks are compacted away, so it %s.", joinName, how)
	p("   Its state hash equals the others'.")
	return db, nil
}
