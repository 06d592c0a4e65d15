package proptest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/proptest"
	"github.com/convergedb/converge/transport"
	"pgregory.net/rapid"
)

// drawUpdates draws 1 to 3 field updates, on distinct fields (one op may
// write a register or a counter only once). "extra" is not a field of
// Item: it is written (converge.Undeclared) as a register, a set or a
// counter, whichever the update implies, so its kind changes over time (as in a schema change).
func drawUpdates(t *rapid.T) []converge.FieldUpdate {
	fields := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"title", "rank", "tags", "hits", "peak", "extra"}), 1, 3, rapid.ID[string]).Draw(t, "fields")
	var out []converge.FieldUpdate
	for _, f := range fields {
		switch f {
		case "title":
			if rapid.Bool().Draw(t, "unset title") {
				out = append(out, converge.Unset("title"))
			} else {
				out = append(out, converge.Set("title", genTitle.Draw(t, "title")))
			}
		case "rank":
			if rapid.Bool().Draw(t, "unset rank") {
				out = append(out, converge.Unset("rank"))
			} else {
				out = append(out, converge.Set("rank", genRank.Draw(t, "rank")))
			}
		case "tags":
			elems := func() []any {
				var v []any
				for _, s := range rapid.SliceOfNDistinct(genTag, 1, 2, rapid.ID[string]).Draw(t, "elems") {
					v = append(v, s)
				}
				return v
			}
			switch rapid.IntRange(0, 3).Draw(t, "tags op") {
			case 0:
				out = append(out, converge.AddToSet("tags", elems()...))
			case 1:
				out = append(out, converge.RemoveFromSet("tags", elems()...))
			case 2:
				out = append(out, converge.Set("tags", genTags.Draw(t, "tags")))
			default: // an add and a remove in one op
				out = append(out, converge.AddToSet("tags", elems()...), converge.RemoveFromSet("tags", elems()...))
			}
		case "hits":
			if rapid.Bool().Draw(t, "set hits") {
				out = append(out, converge.Set("hits", genHits.Draw(t, "hits")))
			} else {
				out = append(out, converge.Increment("hits", genHits.Draw(t, "delta")))
			}
		case "peak":
			out = append(out, converge.Set("peak", genPeak.Draw(t, "peak")))
		case "extra":
			switch rapid.IntRange(0, 3).Draw(t, "extra op") {
			case 0:
				out = append(out, converge.Undeclared(converge.Set("extra", genTitle.Draw(t, "extra"))))
			case 1:
				out = append(out, converge.Undeclared(converge.Unset("extra")))
			case 2:
				out = append(out, converge.Undeclared(converge.AddToSet("extra", genTag.Draw(t, "extra"))))
			default:
				out = append(out, converge.Undeclared(converge.Increment("extra", genHits.Draw(t, "extra"))))
			}
		}
	}
	return out
}

// machine is the state of one TestConvergence run.
type machine struct {
	world
	stats *stats
}

// stats sum what the runs of a property exercised, logged at its end (-v)
// to show that the generators reach the interesting cases.
type stats struct {
	runs, steps, ops, records, deleted, recreated, conflicts int
	delivered, refused, duplicates, driftRefusals, reopens   int
}

func (s *stats) String() string {
	return fmt.Sprintf("%d runs, %d steps, %d ops (%d per run), %d records (%d deleted, %d re-created) at the end, %d conflicts detected; "+
		"deliveries: %d ops applied, %d refused, %d duplicates; %d syncs stalled by clock drift; %d reopens",
		s.runs, s.steps, s.ops, s.ops/max(s.runs, 1), s.records, s.deleted, s.recreated, s.conflicts,
		s.delivered, s.refused, s.duplicates, s.driftRefusals, s.reopens)
}

// Clocks stay within ±skewBound of the common time, far inside the drift
// bound, except after a leap.
const (
	skewBound = 2000
	leap      = 90_000 // beyond the one-minute drift bound
	maxDrift  = 60_000
)

// Clock skews and advances come from small sets, so that replicas often
// stamp concurrent writes with equal HLCs and the replica id decides.
var (
	genSkew    = rapid.OneOf(rapid.SampledFrom([]int64{0, 0, 1, -1}), rapid.Int64Range(-skewBound, skewBound))
	genAdvance = rapid.OneOf(rapid.SampledFrom([]int64{0, 1}), rapid.Int64Range(0, 3000))
)

func (m *machine) replica(t *rapid.T, label string) int {
	return rapid.IntRange(0, m.net.N()-1).Draw(t, label)
}

func (m *machine) pair(t *rapid.T) (int, int) {
	from := m.replica(t, "from")
	to := rapid.IntRange(0, m.net.N()-2).Draw(t, "to")
	if to >= from {
		to++
	}
	return from, to
}

func (m *machine) put(t *rapid.T)    { m.putOn(t, m.replica(t, "replica")) }
func (m *machine) update(t *rapid.T) { m.updateOn(t, m.replica(t, "replica")) }
func (m *machine) delete(t *rapid.T) { m.deleteOn(t, m.replica(t, "replica")) }

// tx writes several records in one transaction.
func (m *machine) tx(t *rapid.T) { m.txOn(t, m.replica(t, "replica")) }

func (m *machine) deliver(t *rapid.T) {
	from, to := m.pair(t)
	p := proptest.DeliverPolicy{
		Drop:      rapid.SampledFrom([]float64{0, 0.3, 0.7}).Draw(t, "drop"),
		Duplicate: rapid.SampledFrom([]float64{0, 0.3}).Draw(t, "duplicate"),
		Resend:    rapid.SampledFrom([]float64{0, 0.2}).Draw(t, "resend"),
		MaxBatch:  rapid.SampledFrom([]int{0, 1, 3}).Draw(t, "max batch"),
	}
	d, err := m.net.Deliver(m.ctx, from, to, ns, newRand(t), p)
	m.dirty[to] = true
	m.stats.delivered += d.Applied
	m.stats.refused += d.Refused
	m.stats.duplicates += d.Duplicates
	if !m.net.Reachable(from, to) {
		if !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("deliver %d→%d across a partition: %v, want ErrUnreachable", from, to, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (m *machine) sync(t *rapid.T) {
	from, to := m.pair(t)
	_, err := m.net.Sync(m.ctx, from, to, ns)
	m.dirty[from], m.dirty[to] = true, true
	switch {
	case !m.net.Reachable(from, to):
		if !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("sync %d→%d across a partition: %v, want ErrUnreachable", from, to, err)
		}
		return
	case errors.Is(err, transport.ErrNoProgress) && m.drifting():
		m.stats.driftRefusals++
		return // ops refused for clock drift: they wait
	case err != nil:
		t.Fatal(err)
	}
	// Nothing else writes during a sync: both now hold the same ops.
	checkSameVectors(m.ctx, t, m.net, from, to)
}

func (m *machine) partition(t *rapid.T) {
	var groups [2][]int
	for i := range m.net.N() {
		g := rapid.IntRange(0, 1).Draw(t, "group")
		groups[g] = append(groups[g], i)
	}
	m.net.Partition(groups[0], groups[1])
}

func (m *machine) heal(*rapid.T) { m.net.Heal() }

func (m *machine) reopen(t *rapid.T) {
	i := m.replica(t, "replica")
	m.dirty[i] = true
	if err := m.net.Reopen(m.ctx, i); err != nil {
		t.Fatal(err)
	}
	m.colls[i] = nil
	m.stats.reopens++
}

// tick moves the common time on, and may step one replica's clock (even
// backwards), keeping it within skewBound.
func (m *machine) tick(t *rapid.T) {
	m.now += genAdvance.Draw(t, "advance")
	if rapid.Bool().Draw(t, "step a clock") {
		m.skew[m.replica(t, "replica")] = genSkew.Draw(t, "skew")
	}
	m.setClocks()
}

// leapClock sends one replica's clock beyond the drift bound: the others
// refuse its ops (without losing them) until their clocks catch up.
func (m *machine) leapClock(t *rapid.T) {
	if rapid.IntRange(0, 3).Draw(t, "leap?") != 0 {
		t.Skip("rare")
	}
	m.leapTo(m.replica(t, "replica"))
}

// check runs after every action, on the replicas it changed: each one's
// stored state is the state its log rebuilds (Verify), and the state the
// model computes from its log; and its log holds each origin's ops with
// increasing HLCs.
func (m *machine) check(t *rapid.T) {
	m.stats.steps++
	for i := range m.net.N() {
		if !m.dirty[i] {
			continue
		}
		db := m.net.Replica(i)
		v, err := db.Admin().Verify(m.ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		if !v.OK() {
			t.Fatalf("replica %d: stored state is not the state its log rebuilds: %+v", i, v)
		}
		own := proptest.NewModel()
		if err := own.AddLog(m.ctx, db, ns); err != nil {
			t.Fatal(err)
		}
		if err := own.Check(m.ctx, db, ns); err != nil {
			t.Fatalf("replica %d against the model of its own log: %v", i, err)
		}
		if err := checkHLCOrder(own.Ops(ns)); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	clear(m.dirty)
}

// checkHLCOrder checks that each origin's ops carry increasing HLCs.
func checkHLCOrder(ops []crdt.Op) error {
	for k := 1; k < len(ops); k++ {
		a, b := &ops[k-1], &ops[k]
		if a.Dot.Origin == b.Dot.Origin && b.HLC <= a.HLC {
			return fmt.Errorf("op %v has HLC %v, not after op %v's %v", b.Dot, b.HLC, a.Dot, a.HLC)
		}
	}
	return nil
}

// finish heals the network, lets the clocks catch up with any leap, syncs
// everything, and checks convergence and the model.
func (m *machine) finish(t *rapid.T) {
	m.net.Heal()
	if m.drifting() {
		m.now = m.maxClock - maxDrift + skewBound + 1
	}
	for i := range m.skew {
		m.skew[i] = min(m.skew[i], skewBound)
	}
	m.setClocks()
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
	vv, err := m.net.Replica(0).Admin().Log().Vector(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkHLCOrder(model.Ops(ns)); err != nil {
		t.Fatal(err)
	}
	if got := uint64(len(model.Ops(ns))); got != vv.Sum() {
		t.Fatalf("union of the logs holds %d ops, the converged vector %v says %d", got, vv, vv.Sum())
	}
	for i, db := range m.net.Replicas() {
		if err := model.Check(m.ctx, db, ns); err != nil {
			t.Fatalf("replica %d against the model: %v", i, err)
		}
	}
	m.stats.runs++
	m.stats.ops += len(model.Ops(ns))
	for _, r := range model.Records(ns) {
		m.stats.records++
		if !r.Exists() {
			m.stats.deleted++
		}
		if r.Exists() && r.CL > 1 {
			m.stats.recreated++
		}
	}
	for _, db := range m.net.Replicas() {
		c, err := db.ConflictCount(m.ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		m.stats.conflicts += int(c)
	}
}

// TestConvergence is the main property: 3 to 5 replicas write one
// collection concurrently (puts, field updates, deletes, multi-record
// transactions) while ops move between them by lossy, duplicating,
// reordering delivery and by anti-entropy, under partitions, restarts and
// skewed, stepped and leaping clocks. After every step, each replica the
// step changed holds the state its own log gives (rebuild and model). At
// the end, once the network heals and syncs, every replica holds the same
// ops and the same state, that state is the reference model's for the
// union of all ops, no dot names two different ops, and each origin's ops
// carry increasing HLCs.
func TestConvergence(t *testing.T) {
	st := &stats{}
	defer func() { t.Log(st) }()
	rapid.Check(t, func(rt *rapid.T) {
		ctx := t.Context()
		n := rapid.IntRange(3, 5).Draw(rt, "replicas")
		dir := t.TempDir() // one per check, removed when the check ends
		net, err := proptest.Open(dir, n, converge.Options{})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() {
			if err := net.Close(); err != nil {
				rt.Error(err)
			}
			_ = os.RemoveAll(dir)
		}()
		net.Limits = transport.Limits{MaxOps: rapid.SampledFrom([]int{1, 3, 1000}).Draw(rt, "page size")}
		m := &machine{world: world{
			ctx:   ctx,
			net:   net,
			colls: make([]*converge.Collection[Item], n),
			keys:  []string{"a", "b", "c"}[:rapid.IntRange(2, 3).Draw(rt, "keys")],
			now:   proptest.Epoch,
			skew:  make([]int64, n),
			dirty: make(map[int]bool),
		}, stats: st}
		for i := range m.skew {
			m.skew[i] = genSkew.Draw(rt, "skew")
		}
		m.setClocks()
		// rapid picks actions uniformly: writes and deliveries are
		// listed twice, to weigh them.
		rt.Repeat(map[string]func(*rapid.T){
			"put":           m.put,
			"put again":     m.put,
			"update":        m.update,
			"update again":  m.update,
			"delete":        m.delete,
			"tx":            m.tx,
			"tx again":      m.tx,
			"deliver":       m.deliver,
			"deliver again": m.deliver,
			"sync":          m.sync,
			"partition":     m.partition,
			"heal":          m.heal,
			"reopen":        m.reopen,
			"tick":          m.tick,
			"leap":          m.leapClock,
			"":              m.check,
		})
		m.finish(rt)
	})
}

// checkSameVectors fails unless replicas from and to hold the same ops of
// ns, as they must right after a sync with no writes during it.
func checkSameVectors(ctx context.Context, t *rapid.T, net *proptest.Network, from, to int) {
	a, err := net.Replica(from).Admin().Log().Vector(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.Replica(to).Admin().Log().Vector(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equal(b) {
		t.Fatalf("after sync %d→%d: vectors %v and %v", from, to, a, b)
	}
}
