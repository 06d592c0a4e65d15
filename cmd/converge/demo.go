package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
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
}

const demoNS = "team-rocket"

type demoReplica struct {
	name  string
	db    *converge.DB
	tasks *converge.Collection[Task]
}

// demoClock is a physical clock for one replica: it starts at a fixed
// instant and ticks a millisecond per reading, so every run tells the same
// story. Replicas' clocks differ by a few milliseconds, as real ones do.
func demoClock(offset int64) func() int64 {
	now := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC).UnixMilli() + offset
	return func() int64 { now++; return now }
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	n := fs.Int("replicas", 3, "number of replicas (at least 2)")
	keep := fs.String("dir", "", "keep the stores in this directory (default: a temp dir, removed afterwards)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 2 || *n > 26 {
		return fmt.Errorf("demo: -replicas must be 2 to 26")
	}
	dir := *keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "converge-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	names := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "ursula", "victor", "walter", "xavier", "yvonne", "zoe", "amir", "bea", "cyd"}
	reps := make([]*demoReplica, *n)
	byID := map[string]string{}
	for i := range reps {
		db, err := converge.Open(filepath.Join(dir, names[i]), converge.Options{Clock: demoClock(int64(i)), Logger: logger})
		if err != nil {
			return err
		}
		defer db.Close()
		tasks, err := converge.NewCollection[Task](db, "tasks")
		if err != nil {
			return err
		}
		reps[i] = &demoReplica{name: names[i], db: db, tasks: tasks}
		byID[db.ReplicaID()] = names[i]
	}
	p := func(format string, args ...any) { fmt.Fprintf(stdout, format+"\n", args...) }
	who := func(id string) string {
		if s, ok := byID[id]; ok {
			return s
		}
		return id
	}
	p("Converge demo: %d replicas (%s), each with its own Pebble store under %s,", *n, strings.Join(names[:*n], ", "), dir)
	p("syncing through the in-process transport (every message encoded as on the wire).")
	p("")

	alice, bob, carol := reps[0], reps[1], reps[len(reps)-1]
	if len(reps) == 2 {
		carol = bob
	}
	p("1. %s creates three tasks; everyone syncs.", alice.name)
	ids := make([]string, 3)
	for i, title := range []string{"write the README", "fix the flaky test", "plan the offsite"} {
		id, err := alice.tasks.Put(ctx, demoNS, &Task{ID: fmt.Sprintf("task-%d", i+1), Title: title, Status: "todo", Tags: []string{"q4"}})
		if err != nil {
			return err
		}
		ids[i] = id
	}
	if err := syncAll(ctx, reps, nil); err != nil {
		return err
	}
	p("   every replica now holds %d tasks.", countTasks(ctx, bob))
	p("")

	left, right := reps[:1], reps[1:]
	p("2. The network splits: {%s} | {%s}. Both sides keep working offline.", namesOf(left), namesOf(right))
	steps := []struct {
		r    *demoReplica
		what string
		do   func() error
	}{
		{alice, `renames task-1 to "write the README and the docs"`, func() error {
			return alice.tasks.Update(ctx, demoNS, ids[0], converge.Set("title", "write the README and the docs"))
		}},
		{bob, `renames task-1 to "README: rewrite from scratch"`, func() error {
			return bob.tasks.Update(ctx, demoNS, ids[0], converge.Set("title", "README: rewrite from scratch"))
		}},
		{alice, "assigns task-2 to herself and tags it urgent", func() error {
			return alice.tasks.Update(ctx, demoNS, ids[1], converge.Set("assignee", "alice"), converge.AddToSet("tags", "urgent"))
		}},
		{bob, "deletes task-2 (it was fixed already)", func() error {
			return bob.tasks.Delete(ctx, demoNS, ids[1])
		}},
		{alice, "removes the q4 tag from task-3", func() error {
			return alice.tasks.Update(ctx, demoNS, ids[2], converge.RemoveFromSet("tags", "q4"))
		}},
		{carol, "tags task-3 offsite and q4 again (concurrent add)", func() error {
			return carol.tasks.Update(ctx, demoNS, ids[2], converge.AddToSet("tags", "offsite", "q4"))
		}},
		{alice, "votes +1 on task-3", func() error {
			return alice.tasks.Update(ctx, demoNS, ids[2], converge.Increment("votes", 1))
		}},
		{bob, "votes +2 on task-3", func() error {
			return bob.tasks.Update(ctx, demoNS, ids[2], converge.Increment("votes", 2))
		}},
		{carol, "creates task-4", func() error {
			_, err := carol.tasks.Put(ctx, demoNS, &Task{ID: "task-4", Title: "book the venue", Status: "todo", Assignee: carol.name})
			return err
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("%s %s: %w", s.r.name, s.what, err)
		}
		p("   %-6s %s", s.r.name+":", s.what)
		if s.r == bob && len(right) > 1 {
			// bob and carol are on the same side: they sync with each other.
			if err := syncAll(ctx, right, nil); err != nil {
				return err
			}
		}
	}
	p("")
	p("   while apart, the sides disagree:")
	for _, r := range []*demoReplica{alice, bob} {
		t, err := r.tasks.Get(ctx, demoNS, ids[0])
		if err != nil {
			return err
		}
		h, err := r.db.StateHash(ctx, demoNS)
		if err != nil {
			return err
		}
		p("   %-6s task-1 %q, state %s", r.name+":", t.Title, h[:12])
	}
	p("")

	p("3. The network heals; replicas run anti-entropy (version vectors in, missing ops out).")
	rounds := 0
	if err := syncAll(ctx, reps, func(from, to *demoReplica, res transport.Result) {
		if res.Sent+res.Received > 0 {
			rounds++
			p("   %s <-> %s: sent %d ops, received %d, %s detected", to.name, from.name, res.Sent, res.Received, plural(res.Conflicts, "conflict"))
		}
	}); err != nil {
		return err
	}
	p("")

	p("4. The converged tasks, read from %s (every replica shows the same):", carol.name)
	for t, err := range carol.tasks.All(ctx, demoNS) {
		if err != nil {
			return err
		}
		tags := slices.Clone(t.Tags)
		p("   %-7s %-32q status=%s assignee=%s tags=%v votes=%d", t.ID, t.Title, t.Status, orDash(t.Assignee), tags, t.Votes)
	}
	if _, err := carol.tasks.Get(ctx, demoNS, ids[1]); err != nil {
		p("   task-2  deleted: a delete wins over the updates concurrent with it")
	}
	p("   task-3's tags keep q4: an add concurrent with a remove survives; votes add up (1+2).")
	p("")

	p("5. Conflicts detected (%s's conflict log): concurrent writes to one field.", carol.name)
	conflicts, err := carol.db.Conflicts(ctx, demoNS)
	if err != nil {
		return err
	}
	if len(conflicts) == 0 {
		p("   none")
	}
	for _, c := range conflicts {
		p("   %s/%s.%s: %s's %s beat %s's %s: %s", c.Collection, c.Key, c.Field,
			who(c.Winner.Version.Replica.String()), showValue(c.Winner.Value),
			who(c.Loser.Version.Replica.String()), showValue(c.Loser.Value), why(c))
	}
	p("")

	p("6. Version vectors (origin: ops held), equal on every replica:")
	vv, err := carol.db.Vector(ctx, demoNS)
	if err != nil {
		return err
	}
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(vv)) {
		parts = append(parts, fmt.Sprintf("%s:%d", who(id), vv[id]))
	}
	p("   {%s}", strings.Join(parts, " "))

	hash, records := "", 0
	for _, r := range reps {
		h, err := r.db.StateHash(ctx, demoNS)
		if err != nil {
			return err
		}
		v, err := r.db.Verify(ctx, demoNS)
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
	p("converged: %d replicas, %d records, state %s", len(reps), records, hash)
	return nil
}

// syncAll runs anti-entropy between every pair until a full pass moves
// nothing.
func syncAll(ctx context.Context, reps []*demoReplica, report func(from, to *demoReplica, res transport.Result)) error {
	for pass := 0; pass < 10; pass++ {
		moved := 0
		for i, a := range reps {
			for _, b := range reps[i+1:] {
				res, err := a.db.SyncWith(ctx, transport.NewMemPeer(b.db.SyncStore(), transport.Limits{}), demoNS)
				if err != nil {
					return fmt.Errorf("sync %s with %s: %w", a.name, b.name, err)
				}
				if report != nil {
					report(b, a, res)
				}
				moved += res.Sent + res.Received
			}
		}
		if moved == 0 {
			return nil
		}
	}
	return fmt.Errorf("sync did not settle")
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

func namesOf(reps []*demoReplica) string {
	var s []string
	for _, r := range reps {
		s = append(s, r.name)
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

// why explains a conflict's winner by the LWW order (CL, HLC, replica).
func why(c converge.Conflict) string {
	w, l := c.Winner.Version, c.Loser.Version
	switch {
	case w.CL != l.CL:
		return "written after the record was re-created"
	case w.HLC != l.HLC:
		return fmt.Sprintf("later HLC (%v > %v)", w.HLC, l.HLC)
	}
	return "same HLC; the higher replica id breaks the tie"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
