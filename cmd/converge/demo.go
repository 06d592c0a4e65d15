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
	logger := slog.New(slog.DiscardHandler)
	if cfg.verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p := func(format string, args ...any) { fmt.Fprintf(stdout, format+"\n", args...) }
	clock := &scriptClock{}
	clock.set(demoStart)
	names := demoNames[:cfg.replicas]
	dbOpts := converge.Options{Clock: clock.read, Logger: logger}

	// Everything opened is closed: every replicator, then every transport,
	// then every store, then the servers.
	var closeReps, closePeers, closeDBs, closeNet []func() error
	defer func() {
		for _, closers := range [][]func() error{closeReps, closePeers, closeDBs, closeNet} {
			for _, c := range slices.Backward(closers) {
				err = errors.Join(err, c())
			}
		}
	}()
	var network demoNet
	if cfg.transport == "nats" {
		network, err = startNATSNet(names, logger)
	} else {
		network, err = startHTTPNet(filepath.Join(dir, "hub"), dbOpts, logger)
	}
	if err != nil {
		return err
	}
	closeNet = append(closeNet, network.close)

	reps := make([]*demoReplica, len(names))
	who := map[string]string{} // replica id -> name
	for i, name := range names {
		db, err := converge.Open(filepath.Join(dir, name), dbOpts)
		if err != nil {
			return err
		}
		closeDBs = append(closeDBs, db.Close)
		tasks, err := converge.NewCollection[Task](db, "tasks")
		if err != nil {
			return err
		}
		peer, closePeer, err := network.connect(i, name, db)
		if err != nil {
			return err
		}
		closePeers = append(closePeers, closePeer)
		rep, err := db.OpenReplicator(peer, converge.ReplicatorOptions{
			Namespaces: []string{demoNS},
			Interval:   2 * time.Second, // anti-entropy also heals what the live path missed
			MinBackoff: 20 * time.Millisecond,
			MaxBackoff: 250 * time.Millisecond,
			Logger:     logger.With("replica", name),
		})
		if err != nil {
			return err
		}
		closeReps = append(closeReps, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), demoBound)
			defer cancel()
			return rep.Close(ctx)
		})
		reps[i] = &demoReplica{name: name, db: db, tasks: tasks, rep: rep}
		who[db.ReplicaID()] = name
	}
	all := make([]*converge.DB, 0, len(reps)+1)
	for _, r := range reps {
		all = append(all, r.db)
	}
	hub := network.hub()
	if hub != nil {
		who[hub.ReplicaID()] = "hub"
		all = append(all, hub)
	}
	name := func(id string) string {
		if s, ok := who[id]; ok {
			return s
		}
		return id
	}
	width := 0 // of the longest name
	for _, n := range who {
		width = max(width, len(n))
	}

	p("Converge demo: %d replicas (%s), each with its own Pebble store under %s.", len(reps), strings.Join(names, ", "), dir)
	for _, line := range network.describe(names) {
		p("%s", line)
	}
	p("Every replica reads one scripted clock, so every run tells the same story.")
	p("")

	alice, bob, carol := reps[0], reps[1], reps[len(reps)-1]
	left, right := reps[:1], reps[1:]
	rightDBs := all[1:] // the hub, if any, is on the right side of the cut

	// 1. Everyone starts from the same three tasks.
	p("1. %s creates three tasks; they replicate live to everyone.", alice.name)
	for i, title := range []string{"write the README", "fix the flaky test", "plan the offsite"} {
		clock.set(demoStart.Add(time.Duration(i+1) * time.Second))
		id := fmt.Sprintf("task-%d", i+1)
		if _, err := alice.tasks.Put(ctx, demoNS, &Task{ID: id, Title: title, Status: "todo", Tags: []string{"q4"}}); err != nil {
			return err
		}
		p("   %s  %-*s creates %s %q", clock, width, alice.name, id, title)
	}
	if err := waitSame(ctx, all); err != nil {
		return fmt.Errorf("before the partition: %w", err)
	}
	// One sync each, so every replicator knows its peer holds its ops: the
	// pending counts below are then exactly the writes made while apart.
	for _, r := range reps {
		if _, err := r.rep.SyncNow(ctx, demoNS); err != nil {
			return fmt.Errorf("%s: sync: %w", r.name, err)
		}
	}
	h, err := alice.db.Admin().StateHash(ctx, demoNS)
	if err != nil {
		return err
	}
	p("   every replica holds %d tasks, state %s.", countTasks(ctx, bob), h[:12])
	p("")

	// 2. The partition.
	clock.set(demoStart.Add(time.Minute))
	network.cut()
	p("2. %s {%s} | {%s}. Both sides keep working.", network.cutStory(alice.name), namesOf(left), namesOf(right))
	steps := []struct {
		r    *demoReplica
		what string
		at   time.Duration // after demoStart
		do   func() error
	}{
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
	for _, s := range steps {
		clock.set(demoStart.Add(s.at))
		if err := s.do(); err != nil {
			return fmt.Errorf("%s %s: %w", s.r.name, s.what, err)
		}
		p("   %s  %-*s %s", clock, width, s.r.name, s.what)
		if s.r != alice {
			// The right side replicates live: wait until it agrees, so each
			// write there sees the ones before it.
			if err := waitSame(ctx, rightDBs); err != nil {
				return fmt.Errorf("right side of the partition: %w", err)
			}
		}
	}
	if cfg.ops > 0 {
		clock.set(demoStart.Add(2 * time.Minute))
		from := clock.String()
		n := 0
		for _, r := range reps {
			for range cfg.ops {
				clock.set(demoStart.Add(2*time.Minute + time.Duration(n)*time.Millisecond))
				n++
				if err := r.tasks.Update(ctx, demoNS, "task-3", converge.Increment("votes", 1)); err != nil {
					return fmt.Errorf("%s votes: %w", r.name, err)
				}
			}
		}
		p("   %s  each replica votes +1 on task-3, %s (-ops %d): %d votes cast, one op each",
			from, plural(cfg.ops, "time"), cfg.ops, n)
		if err := waitSame(ctx, rightDBs); err != nil {
			return fmt.Errorf("right side of the partition: %w", err)
		}
	}
	p("")
	p("   While apart, the sides disagree (version vector: origin:ops held):")
	sideWidth := max(len(alice.name), len(namesOf(right))) + 1
	for _, r := range []*demoReplica{alice, bob} {
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
		if r == bob {
			side = namesOf(right)
		}
		p("   %-*s task-1 %-32q state %s  %s", sideWidth, side+":", t.Title, h[:12], fmtVector(vv, name, names))
	}
	st, err := alice.rep.Status(ctx, demoNS)
	if err != nil {
		return err
	}
	p("   %s's replicator reports %d pending ops: her writes wait in her log, the offline queue.", alice.name, st.Pending)
	p("")

	// 3. The heal.
	before := make([]map[string]uint64, len(all))
	conflictsBefore := make([]uint64, len(all))
	feedBefore := make([]uint64, len(all))
	for i, db := range all {
		if before[i], err = db.Admin().Vector(ctx, demoNS); err != nil {
			return err
		}
		if conflictsBefore[i], err = db.ConflictCount(ctx, demoNS); err != nil {
			return err
		}
		if feedBefore[i], err = db.FeedHead(ctx, demoNS); err != nil {
			return err
		}
	}
	clock.set(demoStart.Add(3 * time.Minute))
	started := time.Now()
	if err := network.heal(); err != nil {
		return err
	}
	p("3. %s", network.healStory(alice.name))
	if err := waitSame(ctx, all); err != nil {
		return fmt.Errorf("after the heal: %w", err)
	}
	if err := waitPending(ctx, alice.rep, 0); err != nil {
		return fmt.Errorf("%s's queue: %w", alice.name, err)
	}
	elapsed := time.Since(started)
	for i, db := range all {
		after, err := db.Admin().Vector(ctx, demoNS)
		if err != nil {
			return err
		}
		var got []string
		total := uint64(0)
		for _, n := range names {
			for id, seq := range after {
				if name(id) == n && seq > before[i][id] {
					got = append(got, fmt.Sprintf("%s's %d", n, seq-before[i][id]))
					total += seq - before[i][id]
				}
			}
		}
		c, err := db.ConflictCount(ctx, demoNS)
		if err != nil {
			return err
		}
		p("   %-*s received %s (%s), detected %s", width, name(db.ReplicaID()), plural(int(total), "op"), strings.Join(got, ", "), plural(int(c-conflictsBefore[i]), "conflict"))
	}
	p("   %s's queue drained: her replicator reports 0 pending ops.", alice.name)
	if cfg.verbose {
		p("   (healed and converged in %v)", elapsed.Round(time.Millisecond))
	}
	p("")

	// 4. The converged state.
	p("4. The converged tasks, read from %s (every replica shows the same):", carol.name)
	for t, err := range carol.tasks.All(ctx, demoNS) {
		if err != nil {
			return err
		}
		p("   %-7s %-32q status=%-5s assignee=%s tags=%v votes=%d", t.ID, t.Title, t.Status, orDash(t.Assignee), t.Tags, t.Votes)
	}
	if _, err := carol.tasks.Get(ctx, demoNS, "task-2"); errors.Is(err, converge.ErrNotFound) {
		p("   task-2  deleted: %s's delete wins over %s's concurrent update (a delete beats the updates it did not see).", bob.name, alice.name)
	}
	p("   task-3 keeps q4: %s's add is concurrent with %s's remove, and an add wins over a remove it did not see.", carol.name, alice.name)
	if cfg.ops > 0 {
		p("   task-3's votes add up: %d cast while apart, %d counted (a counter merges increments, it does not overwrite).", cfg.ops*len(reps), cfg.ops*len(reps))
	}
	p("")

	// 5. The conflicts and why each write won.
	p("5. Conflicts: concurrent writes to one field. The merge keeps the write that is")
	p("   last by (causal length, HLC, replica id), identically on every replica:")
	conflicts, err := carol.db.Conflicts(ctx, demoNS)
	if err != nil {
		return err
	}
	if len(conflicts) == 0 {
		p("   none")
	}
	sortConflicts(conflicts)
	for _, c := range conflicts {
		w, l := c.Winner.Version, c.Loser.Version
		p("   %s/%s.%s", c.Collection, c.Key, c.Field)
		p("      won:  %-*s %-32s CL %d, HLC %s, replica %v", width+2, name(w.Replica.String())+"'s", showValue(c.Winner.Value), w.CL, showHLC(w.HLC), w.Replica)
		p("      lost: %-*s %-32s CL %d, HLC %s, replica %v", width+2, name(l.Replica.String())+"'s", showValue(c.Loser.Value), l.CL, showHLC(l.HLC), l.Replica)
		p("      why:  %s", why(c, name))
	}
	p("   The conflict feed: each replica logs a conflict when the second of its writes")
	p("   arrives (DB.Conflicts); a report for review or a resolution policy, not part of the state:")
	for _, db := range all {
		cs, err := db.Conflicts(ctx, demoNS)
		if err != nil {
			return err
		}
		sortConflicts(cs)
		var fields []string
		for _, c := range cs {
			fields = append(fields, fmt.Sprintf("%s.%s (%s over %s)", c.Key, c.Field, name(c.Winner.Version.Replica.String()), name(c.Loser.Version.Replica.String())))
		}
		if len(fields) == 0 {
			fields = []string{"none"}
		}
		p("   %-*s %s", width+1, name(db.ReplicaID())+":", strings.Join(fields, ", "))
	}
	p("")

	if cfg.verbose {
		p("   The change feed of each replica during the heal (DB.Feed, position: change):")
		for i, db := range all {
			p("   %s:", name(db.ReplicaID()))
			if err := printFeed(ctx, db, feedBefore[i], name, p); err != nil {
				return err
			}
		}
		p("   Transport counters:")
		for i, r := range reps {
			p("   %-*s %s", width+1, r.name+":", network.stats(i))
		}
		p("")
	}

	// 6. Version vectors, and the check.
	p("6. Version vectors (origin:ops held), equal on every replica%s:", map[bool]string{true: " and the hub", false: ""}[hub != nil])
	vv, err := carol.db.Admin().Vector(ctx, demoNS)
	if err != nil {
		return err
	}
	p("   %s", fmtVector(vv, name, names))

	hash, records := "", 0
	for _, r := range reps {
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
		if hash != "" && h != hash {
			return fmt.Errorf("replicas did not converge: %s has state %s, another %s", r.name, h, hash)
		}
		hash = h
		records = countTasks(ctx, r)
	}
	p("")

	// 7. Compaction, and a late joiner.
	joiner, err := demoCompaction(ctx, dir, dbOpts, network, reps, all, hash, name, width, p, &closeDBs, &closePeers)
	if err != nil {
		return err
	}
	p("")
	// The last line counts the replicas that hold the converged state now:
	// every one checked, the late joiner and the hub included.
	checked := append(slices.Clone(all), joiner)
	for _, db := range checked {
		h, err := db.Admin().StateHash(ctx, demoNS)
		if err != nil {
			return err
		}
		if h != hash {
			return fmt.Errorf("%s has state %s, want %s", name(db.ReplicaID()), h, hash)
		}
	}
	counted := fmt.Sprintf("%d replicas", len(reps)+1)
	if hub != nil {
		counted += " and the hub"
	}
	p("converged: %s, %d records, state %s", counted, records, hash)
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
