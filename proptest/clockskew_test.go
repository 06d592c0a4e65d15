package proptest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/proptest"
	"github.com/convergedb/converge/transport"
	"pgregory.net/rapid"
)

// Clock skew of minutes: the replicas' physical clocks stay within
// ±skewMinutes of the common time, so any two differ by at most
// 2*skewMinutes, inside the drift bound they are configured with.
const (
	skewMinutes = 4 * time.Minute
	skewDrift   = 10 * time.Minute
)

var (
	skewMs = skewMinutes.Milliseconds()
	// Clock offsets: the extremes often, so that the bound is reached.
	genMinuteSkew = rapid.OneOf(rapid.SampledFrom([]int64{-skewMs, 0, skewMs}), rapid.Int64Range(-skewMs, skewMs))
	// Time moves by nothing (equal HLCs), by a little, or by minutes.
	genMinuteAdvance = rapid.OneOf(rapid.SampledFrom([]int64{0, 1}), rapid.Int64Range(0, 3000), rapid.Int64Range(0, 3*time.Minute.Milliseconds()))
)

// skewMachine is the state of one TestClockSkewConverges run.
type skewMachine struct {
	ctx   context.Context
	net   *proptest.Network
	colls []*converge.Collection[Item]
	keys  []string

	now      int64   // common physical time, ms
	skew     []int64 // replica i's clock reads now+skew[i]
	maxClock int64   // the latest time any clock has shown
	stats    *skewStats
}

// skewStats sum what the runs exercised, logged at the end (-v).
type skewStats struct {
	runs, steps, writes, concurrent, syncs, deliveries, reopens, ops, conflicts int

	maxSpread int64 // the largest difference between two clocks, ms
	maxAhead  int64 // the furthest an HLC ran ahead of its replica's physical clock, ms
}

func (s *skewStats) String() string {
	return fmt.Sprintf("%d runs, %d steps: %d writes (%d concurrent on several replicas), %d syncs, %d lossy deliveries, %d reopens; "+
		"%d ops, %d conflicts detected at the end; clocks up to %v apart; an HLC ran up to %v ahead of its replica's clock",
		s.runs, s.steps, s.writes, s.concurrent, s.syncs, s.deliveries, s.reopens, s.ops, s.conflicts,
		time.Duration(s.maxSpread)*time.Millisecond, time.Duration(s.maxAhead)*time.Millisecond)
}

func (m *skewMachine) setClocks() {
	lo, hi := m.skew[0], m.skew[0]
	for i, s := range m.skew {
		m.net.Clock(i).Set(m.now + s)
		m.maxClock = max(m.maxClock, m.now+s)
		lo, hi = min(lo, s), max(hi, s)
	}
	m.stats.maxSpread = max(m.stats.maxSpread, hi-lo)
}

func (m *skewMachine) collection(i int) *converge.Collection[Item] {
	if m.colls[i] == nil {
		c, err := converge.NewCollection[Item](m.net.Replica(i), "items")
		if err != nil {
			panic(err)
		}
		m.colls[i] = c
	}
	return m.colls[i]
}

func (m *skewMachine) replica(t *rapid.T, label string) int {
	return rapid.IntRange(0, m.net.N()-1).Draw(t, label)
}

// local runs write on replica i and checks the HLCs of the ops it wrote:
// after every op the replica held before (its HLC never goes backwards,
// even when its own clock is behind the ops it received), not behind its
// physical clock, and not ahead of the latest time any clock has shown
// (no replica's clock dragged it forward beyond that).
func (m *skewMachine) local(t *rapid.T, i int, write func() error) {
	db := m.net.Replica(i)
	held, latest := heldOps(t, db)
	if err := write(); err != nil && !errors.Is(err, converge.ErrNotFound) {
		t.Fatalf("write on %d: %v", i, err)
	}
	m.stats.writes++
	pt := m.net.Clock(i).Now()
	prev := latest
	for e, err := range db.Admin().Log().Missing(m.ctx, ns, held) {
		if err != nil {
			t.Fatal(err)
		}
		op := e.Op
		switch {
		case op.Dot.Origin.String() != db.ReplicaID():
			t.Fatalf("replica %d: a local write added op %v of another origin", i, op.Dot)
		case op.HLC <= prev:
			t.Fatalf("replica %d (clock %+dms): local op %v has HLC %v, not after %v, the latest HLC it held or wrote before", i, m.skew[i], op.Dot, op.HLC, prev)
		case op.HLC.Wall() < pt:
			t.Fatalf("replica %d: local op %v has HLC %v, behind its physical clock %d", i, op.Dot, op.HLC, pt)
		case op.HLC.Wall() > m.maxClock:
			t.Fatalf("replica %d: local op %v has HLC %v, ahead of every clock (latest %d)", i, op.Dot, op.HLC, m.maxClock)
		}
		m.stats.maxAhead = max(m.stats.maxAhead, op.HLC.Wall()-pt)
		prev = op.HLC
	}
}

func (m *skewMachine) put(t *rapid.T) {
	i := m.replica(t, "replica")
	v := drawItem(t, rapid.SampledFrom(m.keys).Draw(t, "key"))
	m.local(t, i, func() error { _, err := m.collection(i).Put(m.ctx, ns, v); return err })
}

func (m *skewMachine) update(t *rapid.T) {
	i := m.replica(t, "replica")
	key := rapid.SampledFrom(m.keys).Draw(t, "key")
	ups := drawUpdates(t)
	m.local(t, i, func() error { return m.collection(i).Update(m.ctx, ns, key, ups...) })
}

func (m *skewMachine) delete(t *rapid.T) {
	i := m.replica(t, "replica")
	key := rapid.SampledFrom(m.keys).Draw(t, "key")
	m.local(t, i, func() error { return m.collection(i).Delete(m.ctx, ns, key) })
}

// concurrent writes one record on several replicas with no sync between:
// concurrent, conflicting writes, stamped by clocks minutes apart.
func (m *skewMachine) concurrent(t *rapid.T) {
	key := rapid.SampledFrom(m.keys).Draw(t, "key")
	writers := rapid.SliceOfNDistinct(rapid.IntRange(0, m.net.N()-1), 2, m.net.N(), rapid.ID[int]).Draw(t, "writers")
	for _, i := range writers {
		v := drawItem(t, key)
		m.local(t, i, func() error { _, err := m.collection(i).Put(m.ctx, ns, v); return err })
	}
	m.stats.concurrent++
}

// sync runs anti-entropy between two replicas: with every clock inside
// the drift bound nothing is refused, so it ends with both holding the
// same ops.
func (m *skewMachine) sync(t *rapid.T) {
	from := m.replica(t, "from")
	to := (from + 1 + rapid.IntRange(0, m.net.N()-2).Draw(t, "to")) % m.net.N()
	if _, err := m.net.Sync(m.ctx, from, to, ns); err != nil {
		t.Fatalf("sync %d→%d with clocks %v ms off: %v", from, to, m.skew, err)
	}
	m.stats.syncs++
	checkSameVectors(m.ctx, t, m.net, from, to)
}

func (m *skewMachine) deliver(t *rapid.T) {
	from := m.replica(t, "from")
	to := (from + 1 + rapid.IntRange(0, m.net.N()-2).Draw(t, "to")) % m.net.N()
	if _, err := m.net.Deliver(m.ctx, from, to, ns, newRand(t), proptest.LossyDelivery); err != nil {
		t.Fatal(err)
	}
	m.stats.deliveries++
}

func (m *skewMachine) tick(t *rapid.T) {
	m.now += genMinuteAdvance.Draw(t, "advance")
	m.setClocks()
}

// step sets one replica's clock to another offset, backwards or forwards
// by up to minutes, as NTP or an operator might.
func (m *skewMachine) step(t *rapid.T) {
	m.skew[m.replica(t, "replica")] = genMinuteSkew.Draw(t, "skew")
	m.setClocks()
}

func (m *skewMachine) reopen(t *rapid.T) {
	i := m.replica(t, "replica")
	if err := m.net.Reopen(m.ctx, i); err != nil {
		t.Fatal(err)
	}
	m.colls[i] = nil
	m.stats.reopens++
}

// check runs after every action: nothing was refused for clock drift
// (the quarantine stays empty), and no replica holds an op stamped ahead
// of every clock.
func (m *skewMachine) check(t *rapid.T) {
	m.stats.steps++
	for i, db := range m.net.Replicas() {
		q, err := db.Admin().Quarantine(m.ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		if len(q) > 0 {
			t.Fatalf("replica %d refused ops with clocks %v ms off, inside the %v bound: %+v", i, m.skew, skewDrift, q)
		}
	}
}

// finish syncs everything and checks that the replicas converged on the
// state the model computes from the union of their ops.
func (m *skewMachine) finish(t *rapid.T) {
	if err := m.net.SyncAll(m.ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := m.net.CheckConverged(m.ctx, ns); err != nil {
		t.Fatal(err)
	}
	model := proptest.NewModel()
	for _, db := range m.net.Replicas() {
		if err := model.AddLog(m.ctx, db, ns); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkHLCOrder(model.Ops(ns)); err != nil {
		t.Fatal(err)
	}
	for i, db := range m.net.Replicas() {
		if err := model.Check(m.ctx, db, ns); err != nil {
			t.Fatalf("replica %d against the model: %v", i, err)
		}
		// The clock, read last, is after every op and ahead of no clock.
		var latest hlc.Timestamp
		for _, op := range model.Ops(ns) {
			latest = max(latest, op.HLC)
		}
		if now := db.Admin().Log().Now(); now <= latest || now.Wall() > max(m.maxClock, latest.Wall()) {
			t.Fatalf("replica %d: clock reads %v, the latest op is %v, the latest physical time %d", i, now, latest, m.maxClock)
		}
		c, err := db.ConflictCount(m.ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		m.stats.conflicts += int(c)
	}
	m.stats.runs++
	m.stats.ops += len(model.Ops(ns))
}

// TestClockSkewConverges: three replicas whose physical clocks are
// minutes apart (up to 8, inside a 10-minute drift bound), stepped
// backwards and forwards and advanced by up to minutes at a time, write
// concurrently and conflict, exchange ops by sync and lossy delivery, and
// restart. No op is refused, each replica's HLC only moves forward (every
// local op is stamped after everything the replica held, and not behind
// its physical clock, even when its clock is minutes behind the ops it
// received), no HLC runs ahead of the latest physical time any clock
// showed, and at the end the replicas converge on the model's state.
func TestClockSkewConverges(t *testing.T) {
	st := &skewStats{}
	defer func() { t.Log(st) }()
	rapid.Check(t, func(rt *rapid.T) {
		dir := t.TempDir()
		net, err := proptest.Open(dir, 3, converge.Options{MaxClockDrift: skewDrift})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() {
			if err := net.Close(); err != nil {
				rt.Error(err)
			}
			_ = os.RemoveAll(dir)
		}()
		m := &skewMachine{
			ctx:   t.Context(),
			net:   net,
			colls: make([]*converge.Collection[Item], 3),
			keys:  []string{"a", "b", "c"}[:rapid.IntRange(1, 3).Draw(rt, "keys")],
			now:   proptest.Epoch,
			skew:  make([]int64, 3),
			stats: st,
		}
		for i := range m.skew {
			m.skew[i] = genMinuteSkew.Draw(rt, "skew")
		}
		m.setClocks()
		rt.Repeat(map[string]func(*rapid.T){
			"put":        m.put,
			"update":     m.update,
			"delete":     m.delete,
			"concurrent": m.concurrent,
			"sync":       m.sync,
			"sync again": m.sync,
			"deliver":    m.deliver,
			"tick":       m.tick,
			"step":       m.step,
			"reopen":     m.reopen,
			"":           m.check,
		})
		m.finish(rt)
	})
}

// TestClockBeyondDriftBound: replica B's clock runs 20 minutes ahead;
// replicas A and C have sane clocks and a 5-minute drift bound. B's ops
// are refused by A (the sync says so, wrapping hlc.ErrClockDrift, and A's
// quarantine lists them as "clock-drift"), without dragging A's HLC
// forward and without being lost (B still holds them); A keeps accepting
// C's ops, directly and relayed by B. Once A's clock has advanced 16
// minutes the next sync applies B's ops, the quarantine empties, and the
// replicas converge.
func TestClockBeyondDriftBound(t *testing.T) {
	ctx := t.Context()
	const drift = 5 * time.Minute
	net, err := proptest.Open(t.TempDir(), 3, converge.Options{MaxClockDrift: drift})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	const a, b, c = 0, 1, 2
	idA, idB, idC := net.Replica(a).ReplicaID(), net.Replica(b).ReplicaID(), net.Replica(c).ReplicaID()
	ahead := (20 * time.Minute).Milliseconds()
	net.Clock(b).Set(proptest.Epoch + ahead)
	coll := func(i int) *converge.Collection[Item] {
		col, err := converge.NewCollection[Item](net.Replica(i), "items")
		if err != nil {
			t.Fatal(err)
		}
		return col
	}
	put := func(i int, id, title string) {
		t.Helper()
		if _, err := coll(i).Put(ctx, ns, &Item{ID: id, Title: title}); err != nil {
			t.Fatal(err)
		}
	}
	// ops returns replica i's own ops, in seq order.
	ops := func(i int) []crdt.Op {
		t.Helper()
		var out []crdt.Op
		for e, err := range net.Replica(i).Admin().Log().Missing(ctx, ns, nil) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Op.Dot.Origin.String() == net.Replica(i).ReplicaID() {
				out = append(out, e.Op)
			}
		}
		return out
	}
	vector := func(i int) map[string]uint64 {
		t.Helper()
		vv, err := net.Replica(i).Admin().Vector(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		return vv
	}
	// checkLocalHLC writes on A and checks that the op's HLC is A's
	// physical time: nothing of B's dragged A's clock forward.
	checkLocalHLC := func(id string) {
		t.Helper()
		put(a, id, "local")
		mine := ops(a)
		op := mine[len(mine)-1]
		if pt := net.Clock(a).Now(); op.HLC.Wall() != pt {
			t.Errorf("A's op %s after B's ops were refused has HLC %v (wall %v ahead of A's clock); want A's physical time %d",
				id, op.HLC, time.Duration(op.HLC.Wall()-pt)*time.Millisecond, pt)
		}
	}

	put(a, "a1", "from A")
	put(c, "c1", "from C")
	put(b, "b1", "from B")
	if err := net.Replica(b).Update(ctx, ns, func(tx *converge.Tx) error {
		if _, err := coll(b).Tx(tx).Put(&Item{ID: "b2", Title: "from B, in a transaction"}); err != nil {
			return err
		}
		_, err := coll(b).Tx(tx).Put(&Item{ID: "b3", Title: "from B, in a transaction"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	opsB := ops(b)
	if len(opsB) != 3 || opsB[0].HLC.Wall() != proptest.Epoch+ahead {
		t.Fatalf("B's ops = %+v, want 3 stamped at B's clock", opsB)
	}

	// B relays C's ops; C, whose clock is sane too, refuses B's.
	if _, err := net.Sync(ctx, b, c, ns); !errors.Is(err, transport.ErrNoProgress) {
		t.Fatalf("sync B→C = %v, want ErrNoProgress (C refuses B's ops)", err)
	}
	if vv := vector(b); vv[idC] != 1 {
		t.Fatalf("B's vector %v: B did not receive C's op", vv)
	}

	// A pulls from B: C's op (relayed) applies, B's are refused.
	res, err := net.Sync(ctx, a, b, ns)
	t.Logf("sync A→B: %+v: %v", res, err)
	if !errors.Is(err, transport.ErrNoProgress) || !errors.Is(err, hlc.ErrClockDrift) || !errors.Is(err, converge.ErrClockDrift) {
		t.Fatalf("sync A→B = %v, want an error wrapping transport.ErrNoProgress and hlc.ErrClockDrift", err)
	}
	var de *hlc.DriftError
	if !errors.As(err, &de) || de.Remote != opsB[0].HLC || de.MaxDrift != drift || de.Physical != proptest.Epoch {
		t.Errorf("sync A→B error carries %+v, want a DriftError for B's first op %v against A's clock %d and the %v bound", de, opsB[0].HLC, proptest.Epoch, drift)
	}
	if res.Received != 1 || res.Refused == 0 {
		t.Errorf("sync A→B result %+v: want C's op received and B's refused", res)
	}
	if vv := vector(a); vv[idB] != 0 || vv[idC] != 1 {
		t.Errorf("A's vector %v: want none of B's ops, C's relayed op", vv)
	}
	for _, id := range []string{"b1", "b2", "b3"} {
		if _, err := coll(a).Get(ctx, ns, id); !errors.Is(err, converge.ErrNotFound) {
			t.Errorf("A: Get %s = %v, want ErrNotFound (refused)", id, err)
		}
	}

	// A's quarantine reports the refusal: B's first op, whose HLC is
	// beyond the bound (the ops after it wait behind it).
	q, err := net.Replica(a).Admin().Quarantine(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("A's quarantine: %+v", q)
	if len(q) == 0 {
		t.Fatal("A's quarantine is empty: the refusal is not reported")
	}
	for _, e := range q {
		if e.Kind != "clock-drift" || e.Origin != idB {
			t.Errorf("quarantined %+v, want B's ops, kind clock-drift", e)
		}
		if !strings.Contains(e.Reason, "20m0s ahead") || !strings.Contains(e.Reason, "5m0s bound") {
			t.Errorf("quarantine reason %q does not say how far ahead and the bound", e.Reason)
		}
	}
	if q[0].Seq != 1 || q[0].Key != "b1" || q[0].Collection != "items" {
		t.Errorf("first quarantined op %+v, want B's seq 1, items/b1", q[0])
	}
	checkLocalHLC("a2")

	// B pulls from A and pushes: A refuses again; B reports A's reason.
	res, err = net.Sync(ctx, b, a, ns)
	t.Logf("sync B→A: %+v: %v", res, err)
	if !errors.Is(err, transport.ErrNoProgress) || !strings.Contains(err.Error(), "ahead of local physical time") {
		t.Errorf("sync B→A = %v, want ErrNoProgress with A's reason (clock drift)", err)
	}
	if vv := vector(b); vv[idA] != 2 {
		t.Errorf("B's vector %v: B did not receive A's 2 ops", vv)
	}

	// C keeps writing; A keeps accepting C's ops, directly.
	put(c, "c2", "from C")
	if _, err := net.Sync(ctx, a, c, ns); err != nil {
		t.Fatalf("sync A→C (sane clocks) = %v", err)
	}
	if vv := vector(a); vv[idC] != 2 || vv[idB] != 0 {
		t.Errorf("A's vector %v: want C's 2 ops, none of B's", vv)
	}

	// A restarts: its clock, restored from the store, was never dragged
	// forward either.
	if err := net.Reopen(ctx, a); err != nil {
		t.Fatal(err)
	}
	checkLocalHLC("a3")
	// B's ops are not lost: B holds all of them.
	if got := ops(b); len(got) != 3 || vector(b)[idB] != 3 {
		t.Fatalf("B's own ops after the refusals: %d, vector %v", len(got), vector(b))
	}

	// 16 minutes later B's ops are 4 minutes ahead of A's clock: inside
	// the bound. The next sync applies them and empties the quarantine.
	for i := range net.N() {
		net.Clock(i).Advance(16 * time.Minute)
	}
	if _, err := net.Sync(ctx, a, b, ns); err != nil {
		t.Fatalf("sync A→B once within the bound = %v", err)
	}
	if vv := vector(a); vv[idB] != 3 {
		t.Errorf("A's vector %v: want B's 3 ops", vv)
	}
	if q, err := net.Replica(a).Admin().Quarantine(ctx, ns); err != nil || len(q) != 0 {
		t.Errorf("A's quarantine once B's ops applied = %+v, %v; want empty", q, err)
	}
	for _, id := range []string{"b1", "b2", "b3"} {
		if _, err := coll(a).Get(ctx, ns, id); err != nil {
			t.Errorf("A: Get %s = %v", id, err)
		}
	}
	// A observed B's ops, within the bound now: its next op is after them.
	put(a, "a4", "local")
	mine := ops(a)
	if last := mine[len(mine)-1]; last.HLC <= opsB[2].HLC {
		t.Errorf("A's op after applying B's has HLC %v, not after B's %v", last.HLC, opsB[2].HLC)
	}

	if err := net.SyncAll(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := net.CheckConverged(ctx, ns); err != nil {
		t.Fatal(err)
	}
	for i, db := range net.Replicas() {
		if q, err := db.Admin().Quarantine(ctx, ns); err != nil || len(q) != 0 {
			t.Errorf("replica %d's quarantine at the end = %+v, %v; want empty", i, q, err)
		}
	}
	model := proptest.NewModel()
	if err := model.AddLog(ctx, net.Replica(a), ns); err != nil {
		t.Fatal(err)
	}
	for i, db := range net.Replicas() {
		if err := model.Check(ctx, db, ns); err != nil {
			t.Errorf("replica %d against the model: %v", i, err)
		}
	}
	if n := len(model.Ops(ns)); n != 9 {
		t.Errorf("converged on %d ops, want 9 (A 4, B 3, C 2)", n)
	}
}
