package proptest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/materialize"
	"github.com/convergedb/converge/oplog"
	"github.com/convergedb/converge/proptest"
	"pgregory.net/rapid"
)

// snapMachine is the state of one TestSnapshotModel run: three stores
// (package oplog alone, on one in-memory file system) that write, compact
// to random horizons, restart, exchange ops page by page, and bootstrap
// from each other's snapshots, and fresh stores bootstrapped from them.
type snapMachine struct {
	ctx   context.Context
	fs    *vfs.MemFS
	opts  oplog.Options
	clock *proptest.ManualClock
	logs  []*oplog.Log
	dirs  []string
	ids   []crdt.ReplicaID
	fresh int // fresh stores opened so far, for their directories

	model   *proptest.Model           // every op written
	written map[crdt.ReplicaID]uint64 // the ops of each origin in model
	// partial[id]: the store installed snapshot states that may hold ops
	// up to this vector (pages of a snapshot read at different vectors,
	// pages of one never finished, or states of a donor that was itself
	// in that case): its state may hold ops beyond its vector until its
	// vector covers this one.
	partial map[crdt.ReplicaID]crdt.VersionVector
	dirty   map[crdt.ReplicaID]bool // stores changed since the last check
	feeds   map[crdt.ReplicaID]*feedView
	st      *snapStats
}

type snapStats struct {
	runs, steps, ops                     int
	compactions, compactedOps            int
	reopens, opSyncs, blocked            int // blocked: op syncs refused (ErrCompacted)
	crashes, lostCompactions             int // crashes; of stores whose horizon fell back (a compaction lost)
	feedTrimmed                          int // feed reads that found the changes trimmed
	bootstraps, freshBootstraps, pages   int
	multiPage, inconsistent, interleaved int // snapshots of several pages; whose pages' vectors differ; with writes or compactions between pages
	aborted, rebootstraps, withOwnWrites int
	records                              int
}

func (s *snapStats) String() string {
	return fmt.Sprintf("%d runs, %d steps, %d ops; %d compactions dropped %d ops; %d reopens; %d crashes (%d lost compactions); %d feed reads trimmed; %d op syncs (%d refused: below the horizon); "+
		"%d bootstraps (%d into fresh stores, %d into stores with writes of their own) of %d pages, %d records: %d of several pages, %d with events between pages, %d whose pages' vectors differ; "+
		"%d aborted half-way; %d needed again (the donor compacted past the snapshot meanwhile)",
		s.runs, s.steps, s.ops, s.compactions, s.compactedOps, s.reopens, s.crashes, s.lostCompactions, s.feedTrimmed, s.opSyncs, s.blocked,
		s.bootstraps, s.freshBootstraps, s.withOwnWrites, s.pages, s.records, s.multiPage, s.interleaved, s.inconsistent,
		s.aborted, s.rebootstraps)
}

// Small name spaces, with names that are prefixes of others and hold zero
// bytes, to exercise the snapshot cursor's key order.
var (
	snapColls = rapid.SampledFrom([]string{"c", "c\x00", "cd"})
	snapKeys  = rapid.SampledFrom([]string{"a", "a\x00", "ab", "b"})
)

func (m *snapMachine) vector(t *rapid.T, l *oplog.Log) crdt.VersionVector {
	vv, err := l.Vector(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	return vv
}

func (m *snapMachine) horizon(t *rapid.T, l *oplog.Log) crdt.VersionVector {
	h, err := l.Horizon(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (m *snapMachine) hash(t *rapid.T, l *oplog.Log) string {
	h, _, err := l.StateHash(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// behind reports whether to lacks ops that from compacted away.
func (m *snapMachine) behind(t *rapid.T, from, to *oplog.Log) bool {
	h, mine, have := m.horizon(t, from), m.vector(t, from), m.vector(t, to)
	for o, top := range h {
		if have[o] < top && mine[o] > have[o] {
			return true
		}
	}
	return false
}

func (m *snapMachine) open(t *rapid.T, dir string) *oplog.Log {
	l, err := oplog.Open(dir, m.opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The indexes every store keeps: on a register, and on a set (an entry
// per element), of collection "c". Snapshot installation maintains them.
var snapIndexes = []materialize.Index{{Name: "by-r", Fields: []string{"r"}}, {Name: "by-s-n", Fields: []string{"s", "n"}}}

func (m *snapMachine) ensureIndexes(t *rapid.T, l *oplog.Log) {
	for _, idx := range snapIndexes {
		if err := l.EnsureIndex(m.ctx, "c", idx); err != nil {
			t.Fatal(err)
		}
	}
}

// feedView is what a consumer of a store's change feed saw: the last
// change it read, and the visible records then.
type feedView struct {
	cursor  uint64
	visible map[string]string
}

// visibleRecords returns a fingerprint of every record's visible state.
func (m *snapMachine) visibleRecords(t *rapid.T, l *oplog.Log) map[string]string {
	out := make(map[string]string)
	for e, err := range l.Records(m.ctx, ns, "") {
		if err != nil {
			t.Fatal(err)
		}
		if e.State.Exists() {
			out[fmt.Sprintf("%q/%q", e.Collection, e.Key)] = fmt.Sprint(e.State.Visible())
		}
	}
	return out
}

// checkFeed reads l's change feed on from where its consumer left it: every
// record whose visible state changed since must have a change in it,
// unless compaction trimmed the changes (then the consumer starts again
// from the current state, as ErrFeedTrimmed asks).
func (m *snapMachine) checkFeed(t *rapid.T, l *oplog.Log) {
	v := m.feeds[l.ReplicaID()]
	if v == nil {
		v = &feedView{visible: map[string]string{}}
		m.feeds[l.ReplicaID()] = v
	}
	changed := make(map[string]bool)
	cursor := v.cursor
	for c, err := range l.Feed(m.ctx, ns, v.cursor) {
		if errors.Is(err, oplog.ErrFeedTrimmed) {
			m.st.feedTrimmed++
			head, err := l.FeedHead(m.ctx, ns)
			if err != nil {
				t.Fatal(err)
			}
			v.cursor, v.visible = head, m.visibleRecords(t, l)
			return
		}
		if err != nil {
			t.Fatalf("%v: feed after %d: %v", l.ReplicaID(), v.cursor, err)
		}
		if c.Seq != cursor+1 {
			t.Fatalf("%v: feed after %d yields change %d", l.ReplicaID(), cursor, c.Seq)
		}
		cursor = c.Seq
		changed[fmt.Sprintf("%q/%q", c.Collection, c.Key)] = true
	}
	now := m.visibleRecords(t, l)
	for _, k := range slices.Sorted(maps.Keys(now)) {
		if now[k] != v.visible[k] && !changed[k] {
			t.Fatalf("%v: record %s went from %s to %s, and the feed (changes %d to %d) has no change of it", l.ReplicaID(), k, v.visible[k], now[k], v.cursor+1, cursor)
		}
	}
	for k, was := range v.visible {
		if _, ok := now[k]; !ok && !changed[k] {
			t.Fatalf("%v: record %s (%s) was deleted, and the feed (changes %d to %d) has no change of it", l.ReplicaID(), k, was, v.cursor+1, cursor)
		}
	}
	v.cursor, v.visible = cursor, now
}

// checkIndexes checks that l's index entries are those of its states.
func (m *snapMachine) checkIndexes(t *rapid.T, l *oplog.Log) {
	if len(l.Indexes("c")) == 0 {
		return // a fresh store that registers them later
	}
	for _, idx := range snapIndexes {
		want := make(map[string]bool)
		for e, err := range l.Records(m.ctx, ns, "c") {
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range materialize.IndexKeys(idx, e.State) {
				want[fmt.Sprintf("%x/%q", k, e.Key)] = true
			}
		}
		got := make(map[string]bool)
		for e, err := range l.IndexScan(m.ctx, ns, "c", idx, nil, nil, false) {
			if err != nil {
				t.Fatal(err)
			}
			got[fmt.Sprintf("%x/%q", e.Values, e.Key)] = true
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%v: index %s holds %v, its states give %v (vector %v, horizon %v)", l.ReplicaID(), idx.Name, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)), m.vector(t, l), m.horizon(t, l))
		}
	}
}

// drawChanges draws the field changes of one put or update, on distinct
// fields; "x" changes kind over time.
func drawChanges(t *rapid.T) []crdt.Change {
	var out []crdt.Change
	for _, f := range rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"r", "s", "n", "m", "x"}), 1, 3, rapid.ID[string]).Draw(t, "fields") {
		switch f {
		case "r":
			if rapid.IntRange(0, 3).Draw(t, "unset r") == 0 {
				out = append(out, crdt.Change{Name: "r", Type: crdt.Unset})
			} else {
				out = append(out, crdt.Change{Name: "r", Type: crdt.Set, Value: crdt.EncodeString(rapid.SampledFrom([]string{"", "p", "q"}).Draw(t, "r"))})
			}
		case "s":
			typ := rapid.SampledFrom([]crdt.ChangeType{crdt.AddElem, crdt.AddElem, crdt.RemoveElem}).Draw(t, "s op")
			out = append(out, crdt.Change{Name: "s", Type: typ, Value: crdt.EncodeInt(rapid.Int64Range(0, 2).Draw(t, "elem"))})
		case "n":
			out = append(out, crdt.Change{Name: "n", Type: crdt.Increment, Delta: rapid.Int64Range(-2, 3).Draw(t, "delta")})
		case "m":
			out = append(out, crdt.Change{Name: "m", Type: crdt.OfferMax, Value: crdt.EncodeInt(rapid.Int64Range(-3, 3).Draw(t, "max"))})
		case "x":
			switch rapid.IntRange(0, 2).Draw(t, "x op") {
			case 0:
				out = append(out, crdt.Change{Name: "x", Type: crdt.Set, Value: crdt.EncodeString("v")})
			case 1:
				out = append(out, crdt.Change{Name: "x", Type: crdt.AddElem, Value: crdt.EncodeInt(1)})
			default:
				out = append(out, crdt.Change{Name: "x", Type: crdt.Increment, Delta: 1})
			}
		}
	}
	return out
}

// write commits a transaction of 1 to 3 mutations on l, and adds its ops
// to the model at once (a compaction may drop them from l next).
func (m *snapMachine) write(t *rapid.T, l *oplog.Log) {
	type mut struct {
		coll, key string
		intent    crdt.Intent
		changes   []crdt.Change
	}
	var muts []mut
	for range rapid.IntRange(1, 3).Draw(t, "mutations") {
		mu := mut{coll: snapColls.Draw(t, "coll"), key: snapKeys.Draw(t, "key"),
			intent: rapid.SampledFrom([]crdt.Intent{crdt.IntentPut, crdt.IntentUpdate, crdt.IntentUpdate, crdt.IntentDelete}).Draw(t, "intent")}
		if mu.intent != crdt.IntentDelete {
			mu.changes = drawChanges(t)
		}
		muts = append(muts, mu)
	}
	m.dirty[l.ReplicaID()] = true
	c, err := l.Write(m.ctx, ns, func(tx *oplog.Tx) error {
		for _, mu := range muts {
			r, err := tx.Get(mu.coll, mu.key)
			if err != nil {
				return err
			}
			intent := mu.intent
			if !r.Exists() && intent != crdt.IntentPut {
				if intent == crdt.IntentDelete {
					continue
				}
				intent = crdt.IntentPut
			}
			if _, err := tx.Mutate(mu.coll, mu.key, intent, mu.changes); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("write on %v: %v", l.ReplicaID(), err)
	}
	self := l.ReplicaID()
	if c == nil {
		c = &oplog.Commit{}
	}
	for _, op := range c.Ops {
		if op.Dot != (crdt.Dot{Origin: self, Seq: m.written[self] + 1}) {
			t.Fatalf("write on %v: op %v, want seq %d", self, op.Dot, m.written[self]+1)
		}
		if err := m.model.Add(op); err != nil {
			t.Fatal(err)
		}
		m.written[self]++
	}
	if vv := m.vector(t, l); vv[self] != m.written[self] {
		t.Fatalf("write on %v: vector %v, %d ops written", self, vv, m.written[self])
	}
}

// compact compacts l to a random horizon at most its vector.
func (m *snapMachine) compact(t *rapid.T, l *oplog.Log) {
	vv, was, hash := m.vector(t, l), m.horizon(t, l), m.hash(t, l)
	var want crdt.VersionVector
	if rapid.IntRange(0, 9).Draw(t, "stable horizon") > 0 {
		want = crdt.VersionVector{}
		for _, o := range vv.Origins() {
			// Often all, often none, else anywhere (below the horizon
			// too: a no-op).
			want[o] = rapid.OneOf(rapid.Just(vv[o]), rapid.Just(uint64(0)), rapid.Uint64Range(0, vv[o])).Draw(t, "up to")
		}
	}
	m.dirty[l.ReplicaID()] = true
	st, err := l.Compact(m.ctx, ns, oplog.CompactOptions{Horizon: want, BatchOps: rapid.SampledFrom([]int{0, 1, 2}).Draw(t, "batch")})
	if err != nil {
		t.Fatalf("compact %v to %v: %v", l.ReplicaID(), want, err)
	}
	m.st.compactions++
	m.st.compactedOps += st.Ops
	h := m.horizon(t, l)
	exp := was.Clone()
	for o, seq := range want { // nil want: no known peer, nothing
		exp[o] = max(exp[o], min(seq, vv[o]))
	}
	if !h.Equal(exp) || !st.After.Equal(exp) {
		t.Fatalf("compact %v (vector %v) to %v: horizon %v → %v (reported %v), want %v", l.ReplicaID(), vv, want, was, h, st.After, exp)
	}
	if got := m.hash(t, l); got != hash {
		t.Fatalf("compact %v: state hash %s became %s", l.ReplicaID(), hash, got)
	}
	m.verify(t, l)
}

func (m *snapMachine) verify(t *rapid.T, l *oplog.Log) {
	v, err := l.Verify(m.ctx, ns)
	if err != nil {
		t.Fatalf("verify %v: %v", l.ReplicaID(), err)
	}
	if !v.OK() {
		t.Fatalf("%v: stored state is not its base states ⊔ log: %+v (vector %v, horizon %v)", l.ReplicaID(), v, m.vector(t, l), m.horizon(t, l))
	}
}

// reopen closes store i and opens it again, and checks it kept its
// vector, horizon and state.
func (m *snapMachine) reopen(t *rapid.T, i int) {
	l := m.logs[i]
	m.dirty[l.ReplicaID()] = true
	vv, h, hash := m.vector(t, l), m.horizon(t, l), m.hash(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = m.open(t, m.dirs[i])
	m.logs[i] = l
	m.st.reopens++
	if l.ReplicaID() != m.ids[i] {
		t.Fatalf("reopen %d: replica id %v became %v", i, m.ids[i], l.ReplicaID())
	}
	if got := m.vector(t, l); !got.Equal(vv) {
		t.Fatalf("reopen %d: vector %v became %v", i, vv, got)
	}
	if got := m.horizon(t, l); !got.Equal(h) {
		t.Fatalf("reopen %d: horizon %v became %v", i, h, got)
	}
	if got := m.hash(t, l); got != hash {
		t.Fatalf("reopen %d: state hash %s became %s", i, hash, got)
	}
}

// crash crashes the machine: every store opens again on a crash clone of
// the file system, with only what was synced, some or all of what was not.
// Every commit of a write, an ingest or a snapshot page is synced
// (SyncEveryCommit), so every store keeps its vector and state; a
// compaction's batches are not, so its horizon may fall back (its ops are
// then still in the log).
func (m *snapMachine) crash(t *rapid.T) {
	if rapid.IntRange(0, 2).Draw(t, "crash?") != 0 {
		t.Skip("rare: reopening every store is slow")
	}
	type before struct {
		vv, h crdt.VersionVector
		hash  string
	}
	was := make([]before, len(m.logs))
	for i, l := range m.logs {
		was[i] = before{m.vector(t, l), m.horizon(t, l), m.hash(t, l)}
	}
	cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: rapid.SampledFrom([]int{0, 50, 100}).Draw(t, "unsynced kept")}
	if cfg.UnsyncedDataPercent > 0 {
		cfg.RNG = rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "crash seed"), 0))
	}
	clone := m.fs.CrashClone(cfg)
	for _, l := range m.logs {
		_ = l.Close() // on the file system the crash left behind
	}
	m.fs, m.opts.FS = clone, clone
	m.st.crashes++
	for i := range m.logs {
		l, err := oplog.Open(m.dirs[i], m.opts)
		if err != nil {
			t.Fatalf("open store %d after a crash (unsynced data kept: %d%%): %v", i, cfg.UnsyncedDataPercent, err)
		}
		m.logs[i] = l
		m.dirty[l.ReplicaID()] = true
		if l.ReplicaID() != m.ids[i] {
			t.Fatalf("crash: store %d: replica id %v became %v", i, m.ids[i], l.ReplicaID())
		}
		vv, h, hash := m.vector(t, l), m.horizon(t, l), m.hash(t, l)
		if !vv.Equal(was[i].vv) || hash != was[i].hash {
			t.Fatalf("crash: store %d: vector %v and state hash %s became %v and %s", i, was[i].vv, was[i].hash, vv, hash)
		}
		if !was[i].h.Covers(h) {
			t.Fatalf("crash: store %d: horizon %v became %v", i, was[i].h, h)
		}
		if !h.Equal(was[i].h) {
			m.st.lostCompactions++
		}
		m.verify(t, l)
	}
}

func drawLimits(t *rapid.T) oplog.PageLimits {
	return oplog.PageLimits{
		MaxOps:   rapid.SampledFrom([]int{1, 2, 3, 1000}).Draw(t, "page ops"),
		MaxBytes: rapid.SampledFrom([]int{0, 0, 40, 150}).Draw(t, "page bytes"),
	}
}

// syncOps moves up to pages pages of the ops to lacks from from (all of
// them if pages is 0). It returns oplog.ErrCompacted, after checking it is
// due, if to is behind from's horizon.
func (m *snapMachine) syncOps(t *rapid.T, from, to *oplog.Log, lim oplog.PageLimits, pages int) error {
	m.st.opSyncs++
	m.dirty[to.ReplicaID()] = true
	for n := 0; pages == 0 || n < pages; n++ {
		have := m.vector(t, to)
		p, err := from.Page(m.ctx, ns, have, lim)
		if errors.Is(err, oplog.ErrCompacted) {
			if !m.behind(t, from, to) {
				t.Fatalf("page %v→%v: %v, but the receiver (vector %v) is not behind the horizon %v", from.ReplicaID(), to.ReplicaID(), err, have, m.horizon(t, from))
			}
			m.st.blocked++
			return err
		}
		if err != nil {
			t.Fatalf("page %v→%v: %v", from.ReplicaID(), to.ReplicaID(), err)
		}
		if m.behind(t, from, to) {
			t.Fatalf("page %v→%v: served ops to a receiver (vector %v) behind the horizon %v", from.ReplicaID(), to.ReplicaID(), have, m.horizon(t, from))
		}
		ops := make([]crdt.Op, len(p.Entries))
		for k, e := range p.Entries {
			ops[k] = e.Op
		}
		res, err := to.Ingest(m.ctx, ns, ops)
		if err != nil {
			t.Fatalf("ingest %v→%v: %v", from.ReplicaID(), to.ReplicaID(), err)
		}
		if res.Applied != len(ops) || len(res.Refused) > 0 || len(res.Gaps) > 0 || res.Incomplete > 0 {
			t.Fatalf("ingest %v→%v of a page of %d ops from vector %v: %+v", from.ReplicaID(), to.ReplicaID(), len(ops), have, res)
		}
		if !p.More {
			if got := m.vector(t, to); !got.Covers(m.vector(t, from)) {
				t.Fatalf("sync %v→%v: the last page leaves the receiver at %v, the sender holds %v", from.ReplicaID(), to.ReplicaID(), got, m.vector(t, from))
			}
			return nil
		}
	}
	return nil
}

// bootstrap pages through from's snapshot into to; between pages (if
// events) the donor, another store or the receiver may write, the donor
// may compact, restart or take ops. Unless it aborts half-way (abort), it
// finishes the snapshot, checks the receiver, and catches up with ops (a
// bootstrap again if the donor compacted past the snapshot meanwhile).
// fromIdx numbers the donor in m.logs.
func (m *snapMachine) bootstrap(t *rapid.T, fromIdx int, to *oplog.Log, events, abort bool) {
	lim := drawLimits(t)
	m.dirty[to.ReplicaID()] = true
	from := func() *oplog.Log { return m.logs[fromIdx] } // a reopen replaces it
	ownWrites := m.vector(t, to)[to.ReplicaID()] > 0
	var cur *oplog.SnapshotCursor
	var floor, ceil crdt.VersionVector
	pages, interleaved := 0, false
	stopAt := -1
	if abort {
		stopAt = rapid.IntRange(1, 3).Draw(t, "abort after")
	}
	for {
		p, err := from().Snapshot(m.ctx, ns, cur, lim)
		if err != nil {
			t.Fatalf("snapshot of %v after %v: %v", from().ReplicaID(), cur, err)
		}
		pages++
		if floor == nil {
			floor, ceil = p.Vector.Clone(), p.Vector.Clone()
		}
		if !p.Vector.Equal(floor) {
			m.st.inconsistent++ // counted once per differing page
		}
		floor = floor.Meet(p.Vector)
		ceil.Merge(p.Vector)
		if dp := m.partial[from().ReplicaID()]; dp != nil {
			ceil.Merge(dp) // the donor's states may be ahead of its vector
		}
		if len(p.Records) == 0 && p.More {
			t.Fatalf("snapshot page of %v after %v: no record, more to come", from().ReplicaID(), cur)
		}
		for k, r := range p.Records {
			prev := cur
			if k > 0 {
				prev = &oplog.SnapshotCursor{Collection: p.Records[k-1].Collection, Key: p.Records[k-1].Key}
			}
			if prev != nil && (r.Collection < prev.Collection || r.Collection == prev.Collection && r.Key <= prev.Key) {
				t.Fatalf("snapshot page of %v: record %q/%q after %q/%q", from().ReplicaID(), r.Collection, r.Key, prev.Collection, prev.Key)
			}
		}
		before := m.vector(t, to)
		if _, err := to.InstallSnapshot(m.ctx, ns, p.Records); err != nil {
			t.Fatalf("install snapshot page of %v into %v: %v", from().ReplicaID(), to.ReplicaID(), err)
		}
		if got := m.vector(t, to); !got.Equal(before) {
			t.Fatalf("a snapshot page moved %v's vector from %v to %v", to.ReplicaID(), before, got)
		}
		m.st.records += len(p.Records)
		// Base states and log still rebuild the state, page by page.
		m.verify(t, to)
		if !p.More {
			break
		}
		last := p.Records[len(p.Records)-1]
		cur = &oplog.SnapshotCursor{Collection: last.Collection, Key: last.Key}
		if pages == stopAt {
			// A crash half-way: the pages installed stay, the vector
			// does not move.
			m.st.aborted++
			m.notePartial(to, ceil)
			return
		}
		if !events {
			continue
		}
		switch rapid.IntRange(0, 7).Draw(t, "between pages") {
		case 0:
			m.write(t, from())
			interleaved = true
		case 1:
			m.compact(t, from())
			interleaved = true
		case 2:
			m.reopen(t, fromIdx)
			interleaved = true
		case 3:
			m.write(t, to)
			interleaved = true
		case 4:
			other := m.logs[(fromIdx+1+rapid.IntRange(0, 1).Draw(t, "other"))%len(m.logs)]
			if other != to {
				m.write(t, other)
				if m.syncOps(t, other, from(), drawLimits(t), 0) == nil {
					interleaved = true
				}
			}
		}
	}
	m.st.bootstraps++
	m.st.pages += pages
	if pages > 1 {
		m.st.multiPage++
	}
	if interleaved {
		m.st.interleaved++
	}
	if ownWrites {
		m.st.withOwnWrites++
	}
	mine := m.vector(t, to)
	if err := to.FinishSnapshot(m.ctx, ns, floor); err != nil {
		t.Fatalf("finish snapshot of %v into %v at %v: %v", from().ReplicaID(), to.ReplicaID(), floor, err)
	}
	// The vector rises to the snapshot's where it was below it.
	want := mine.Clone()
	want.Merge(floor)
	if got := m.vector(t, to); !got.Equal(want) {
		t.Fatalf("finish snapshot at %v: vector %v became %v, want %v", floor, mine, got, want)
	}
	m.verify(t, to)
	if floor.Equal(ceil) {
		// One vector for all pages: the state is exactly that of the ops
		// the new vector covers.
		m.checkModel(t, to)
	} else {
		m.notePartial(to, ceil)
	}
	// Catch up with the ops after the snapshot. Only a donor that
	// compacted between pages can have left the receiver behind its
	// horizon: then bootstrap again, with nothing between pages.
	if err := m.syncOps(t, from(), to, lim, 0); err != nil {
		if !events {
			t.Fatalf("behind %v's horizon right after a snapshot of it, nothing between pages: %v", from().ReplicaID(), err)
		}
		m.st.rebootstraps++
		m.bootstrap(t, fromIdx, to, false, false)
		return
	}
	m.checkModel(t, to)
}

// notePartial records that l may hold ops up to vv in its state, beyond
// its vector.
func (m *snapMachine) notePartial(l *oplog.Log, vv crdt.VersionVector) {
	id := l.ReplicaID()
	if m.partial[id] == nil {
		m.partial[id] = crdt.VersionVector{}
	}
	m.partial[id].Merge(vv)
}

// checkModel checks that l's state is the model's for the ops its vector
// covers, unless a half-installed snapshot may put it ahead.
func (m *snapMachine) checkModel(t *rapid.T, l *oplog.Log) {
	vv := m.vector(t, l)
	if p := m.partial[l.ReplicaID()]; p != nil {
		if !vv.Covers(p) {
			return
		}
		delete(m.partial, l.ReplicaID())
	}
	for o, seq := range vv {
		if seq > m.written[o] {
			t.Fatalf("%v holds %d ops of %v, %d were written", l.ReplicaID(), seq, o, m.written[o])
		}
	}
	if err := m.model.Within(ns, vv).CheckLog(m.ctx, l, ns); err != nil {
		t.Fatalf("%v (vector %v, horizon %v) against the model of the ops it holds: %v", l.ReplicaID(), vv, m.horizon(t, l), err)
	}
}

// freshBootstrap opens a new, empty store and bootstraps it from store i,
// while the donor may keep writing; the new store may write too, and
// sends its writes back. Both must then hold the same ops and state.
func (m *snapMachine) freshBootstrap(t *rapid.T) {
	i := rapid.IntRange(0, len(m.logs)-1).Draw(t, "donor")
	m.fresh++
	dir := fmt.Sprintf("fresh-%d", m.fresh)
	dst := m.open(t, dir)
	indexFirst := rapid.Bool().Draw(t, "index first")
	if indexFirst {
		m.ensureIndexes(t, dst)
	}
	defer func() {
		if err := dst.Close(); err != nil {
			t.Error(err)
		}
	}()
	m.st.freshBootstraps++
	m.bootstrap(t, i, dst, rapid.Bool().Draw(t, "events"), false)
	if !indexFirst {
		m.ensureIndexes(t, dst) // built from the installed states
		m.checkIndexes(t, dst)
	}
	src := m.logs[i]
	// dst's own writes (between pages) go back to the donor.
	if err := m.syncOps(t, dst, src, drawLimits(t), 0); err != nil {
		t.Fatalf("send a fresh store's writes back: %v", err)
	}
	if a, b := m.vector(t, src), m.vector(t, dst); !a.Equal(b) {
		t.Fatalf("after bootstrap from %v: vectors %v (donor) and %v (fresh)", src.ReplicaID(), a, b)
	}
	if a, b := m.hash(t, src), m.hash(t, dst); a != b {
		t.Fatalf("after bootstrap from %v: state hashes %s (donor) and %s (fresh)", src.ReplicaID(), a, b)
	}
	m.verify(t, dst)
	m.checkIndexes(t, dst)
	m.checkModel(t, dst)
	m.checkModel(t, src)
	// The fresh store serves a snapshot of its own, from which another
	// fresh store gets the same state.
	if rapid.IntRange(0, 3).Draw(t, "relay") == 0 {
		m.fresh++
		third := m.open(t, fmt.Sprintf("fresh-%d", m.fresh))
		defer third.Close()
		m.logs = append(m.logs, dst) // as a donor, briefly
		m.bootstrap(t, len(m.logs)-1, third, false, false)
		m.logs = m.logs[:len(m.logs)-1]
		if a, b := m.hash(t, dst), m.hash(t, third); a != b {
			t.Fatalf("a store bootstrapped from a bootstrapped one: state hash %s, want %s", b, a)
		}
	}
}

// pair draws two distinct stores.
func (m *snapMachine) pair(t *rapid.T) (int, int) {
	from := rapid.IntRange(0, len(m.logs)-1).Draw(t, "from")
	to := rapid.IntRange(0, len(m.logs)-2).Draw(t, "to")
	if to >= from {
		to++
	}
	return from, to
}

// converge syncs every ordered pair of stores, bootstrapping where ops
// cannot go, until they hold the same ops.
func (m *snapMachine) converge(t *rapid.T) {
	equal := func() bool {
		vv := m.vector(t, m.logs[0])
		for _, l := range m.logs[1:] {
			if !m.vector(t, l).Equal(vv) {
				return false
			}
		}
		return true
	}
	for round := 0; !equal(); round++ {
		if round > len(m.logs)+1 {
			t.Fatalf("stores still differ after %d rounds", round)
		}
		for i := range m.logs {
			for j := range m.logs {
				if i == j {
					continue
				}
				if err := m.syncOps(t, m.logs[i], m.logs[j], oplog.PageLimits{}, 0); err != nil {
					m.bootstrap(t, i, m.logs[j], false, false)
				}
			}
		}
	}
}

// TestSnapshotModel checks compaction and snapshots in package oplog
// alone, against the reference model. Three stores write (transactions of
// puts, updates and deletes on registers, sets, counters, max registers
// and a field whose kind changes), compact to random horizons at most
// their vectors (their own unsent writes included), restart, send each
// other pages of ops (refused exactly when the receiver is behind the
// sender's horizon), and bootstrap from each other's snapshots, in pages
// of random small sizes, while the donor keeps writing, compacting,
// restarting and receiving ops between pages, and the receiver writes;
// some bootstraps stop half-way, as a crash would. Fresh stores bootstrap
// from them too, and a third from a bootstrapped one. After every step,
// every store's state is its base states ⊔ its log (Verify), and the
// model's for the ops its vector covers; a fresh store, once caught up,
// has its donor's vector and state hash. At the end, every store holds
// every op written and the same state, the model's.
func TestSnapshotModel(t *testing.T) {
	st := &snapStats{}
	defer func() { t.Log(st) }()
	rapid.Check(t, func(rt *rapid.T) {
		clock := proptest.NewManualClock(proptest.Epoch)
		m := &snapMachine{
			ctx:   t.Context(),
			fs:    vfs.NewCrashableMem(),
			clock: clock,
			dirs:  []string{"a", "b", "c"},
			model: proptest.NewModel(), written: make(map[crdt.ReplicaID]uint64),
			partial: make(map[crdt.ReplicaID]crdt.VersionVector),
			dirty:   make(map[crdt.ReplicaID]bool),
			feeds:   make(map[crdt.ReplicaID]*feedView),
			st:      st,
		}
		m.opts = oplog.Options{
			FS: m.fs, Durability: oplog.SyncEveryCommit, Clock: clock.Now, CacheSize: 1 << 20,
			Logger:        slog.New(slog.DiscardHandler),
			FeedRetention: rapid.SampledFrom([]int{0, 1, 4}).Draw(rt, "feed retention"),
		}
		for _, d := range m.dirs {
			l := m.open(rt, d)
			m.ensureIndexes(rt, l)
			m.logs = append(m.logs, l)
			m.ids = append(m.ids, l.ReplicaID())
		}
		defer func() {
			for _, l := range m.logs {
				_ = l.Close()
			}
		}()
		store := func(t *rapid.T) int { return rapid.IntRange(0, len(m.logs)-1).Draw(t, "store") }
		rt.Repeat(map[string]func(*rapid.T){
			"write":       func(t *rapid.T) { m.write(t, m.logs[store(t)]) },
			"write again": func(t *rapid.T) { m.write(t, m.logs[store(t)]) },
			"write a":     func(t *rapid.T) { m.write(t, m.logs[0]) },
			"compact":     func(t *rapid.T) { m.compact(t, m.logs[store(t)]) },
			"reopen":      func(t *rapid.T) { m.reopen(t, store(t)) },
			"crash":       m.crash,
			"sync ops": func(t *rapid.T) {
				from, to := m.pair(t)
				_ = m.syncOps(t, m.logs[from], m.logs[to], drawLimits(t), rapid.IntRange(0, 2).Draw(t, "pages"))
			},
			"bootstrap": func(t *rapid.T) {
				from, to := m.pair(t)
				m.bootstrap(t, from, m.logs[to], rapid.Bool().Draw(t, "events"), rapid.IntRange(0, 3).Draw(t, "abort?") == 0)
			},
			"fresh bootstrap": m.freshBootstrap,
			"tick":            func(t *rapid.T) { clock.Set(clock.Now() + rapid.Int64Range(0, 2000).Draw(t, "advance")) },
			"": func(t *rapid.T) {
				m.st.steps++
				for _, l := range m.logs {
					if m.dirty[l.ReplicaID()] {
						m.verify(t, l)
						m.checkIndexes(t, l)
						m.checkFeed(t, l)
						m.checkModel(t, l)
					}
				}
				clear(m.dirty)
			},
		})
		m.converge(rt)
		vv := m.vector(rt, m.logs[0])
		hash := m.hash(rt, m.logs[0])
		ops := m.model.Ops(ns)
		if uint64(len(ops)) != vv.Sum() {
			rt.Fatalf("%d ops written, the converged vector %v holds %d", len(ops), vv, vv.Sum())
		}
		for i, l := range m.logs {
			if got := m.hash(rt, l); got != hash {
				rt.Fatalf("store %d: state hash %s, store 0's %s (same vector %v)", i, got, hash, vv)
			}
			m.verify(rt, l)
			m.checkIndexes(rt, l)
			delete(m.partial, l.ReplicaID())
			m.checkModel(rt, l)
		}
		st.runs++
		st.ops += len(ops)
	})
	if !t.Failed() && st.runs >= 50 {
		if st.compactedOps == 0 || st.multiPage == 0 || st.interleaved == 0 || st.inconsistent == 0 || st.withOwnWrites == 0 || st.aborted == 0 {
			t.Errorf("in %d runs the cases this property is about did not all occur: %v", st.runs, st)
		}
	}
}
