package proptest_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/proptest"
	"github.com/convergedb/converge/transport"
	"pgregory.net/rapid"
)

// compactMachine is the state of one TestConvergenceWithCompaction run: the
// network of TestConvergence, where replicas also compact their logs,
// forget peers and join the fleet late, so that replicas behind a peer's
// compaction horizon must bootstrap from its snapshot.
//
// Compaction drops ops from the logs, so the reference model cannot be
// computed from the union of the logs at the end: it is fed every op when
// it is written (each replica's own ops, read after every step, before
// any compaction can drop them).
type compactMachine struct {
	world
	ids []crdt.ReplicaID

	fleet   []int // replicas in the fleet, in the order they joined
	waiting []int // replicas not yet joined: empty stores, never synced

	model   *proptest.Model           // every op written, by any replica
	written map[crdt.ReplicaID]uint64 // the ops of each origin in model

	// partial[i] is set when a bootstrap of replica i failed half-way
	// (a page refused for clock drift), or it bootstrapped from a replica
	// in that case: its state may then hold ops beyond its vector, up to
	// partial[i], until its vector covers that.
	partial map[int]crdt.VersionVector
	// forgot[i][j]: replica i forgot replica j, and they have not synced
	// since.
	forgot    map[[2]int]bool
	peerVV    map[[2]int]crdt.VersionVector // what each requester last learnt of each peer
	finishing bool
	st        *compactStats
}

// compactStats sum what the runs exercised, logged at the end (-v) and
// checked: compaction must have dropped ops and replicas must have
// bootstrapped from snapshots, or the property tested nothing new.
type compactStats struct {
	runs, steps, ops, records, deleted, recreated int
	syncs, deliveries, reopens, joins, forgets    int

	compactions, compactedOps         int // runs of Compact, ops they dropped
	emptyCompactions                  int // Compact with no known peer
	bootstraps, snapshotRecords       int // snapshot bootstraps (in syncs), records installed
	newBootstraps, forgottenBootstrap int // of a replica with nothing yet, of one a peer forgot
	pushBlocked                       int // syncs whose peer was behind the requester's horizon
	remembered                        int // syncs starting from the peer's vector of an earlier one
	deliverBlocked                    int // deliveries to a replica behind the sender's horizon
	drift                             int // syncs stalled by clock drift
	finalBootstraps                   int // bootstraps in the final syncs
}

func (s *compactStats) String() string {
	return fmt.Sprintf("%d runs, %d steps, %d ops (%d per run), %d records (%d deleted, %d re-created) at the end; "+
		"%d syncs (%d from a remembered peer vector), %d deliveries, %d reopens, %d late joins, %d peers forgotten; "+
		"%d compactions dropped %d ops (%d with no known peer); "+
		"%d snapshot bootstraps (%d of new replicas, %d of forgotten ones, %d in the final syncs) installed %d records; "+
		"%d syncs and %d deliveries found the peer behind the horizon; %d syncs stalled by clock drift",
		s.runs, s.steps, s.ops, s.ops/max(s.runs, 1), s.records, s.deleted, s.recreated,
		s.syncs, s.remembered, s.deliveries, s.reopens, s.joins, s.forgets,
		s.compactions, s.compactedOps, s.emptyCompactions,
		s.bootstraps, s.newBootstraps, s.forgottenBootstrap, s.finalBootstraps, s.snapshotRecords,
		s.pushBlocked, s.deliverBlocked, s.drift)
}

func (m *compactMachine) db(i int) *converge.DB { return m.net.Replica(i) }

// replica draws a member of the fleet.
func (m *compactMachine) replica(t *rapid.T, label string) int {
	return rapid.SampledFrom(m.fleet).Draw(t, label)
}

// pair draws two distinct replicas of the fleet.
func (m *compactMachine) pair(t *rapid.T) (int, int) {
	k := rapid.IntRange(0, len(m.fleet)-1).Draw(t, "from")
	l := rapid.IntRange(0, len(m.fleet)-2).Draw(t, "to")
	if l >= k {
		l++
	}
	return m.fleet[k], m.fleet[l]
}

func (m *compactMachine) vector(t *rapid.T, i int) crdt.VersionVector {
	vv, err := m.db(i).Admin().Log().Vector(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	return vv
}

func (m *compactMachine) horizon(t *rapid.T, i int) crdt.VersionVector {
	h, err := m.db(i).Admin().Log().Horizon(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// behindHorizon reports whether replica to lacks ops that replica from
// compacted away: ops from holds, below its horizon, that to does not.
func (m *compactMachine) behindHorizon(t *rapid.T, from, to int) bool {
	h, mine, have := m.horizon(t, from), m.vector(t, from), m.vector(t, to)
	for o, top := range h {
		if have[o] < top && mine[o] > have[o] {
			return true
		}
	}
	return false
}

func (m *compactMachine) put(t *rapid.T)    { m.putOn(t, m.replica(t, "replica")) }
func (m *compactMachine) update(t *rapid.T) { m.updateOn(t, m.replica(t, "replica")) }
func (m *compactMachine) delete(t *rapid.T) { m.deleteOn(t, m.replica(t, "replica")) }

// tx writes several records in one transaction.
func (m *compactMachine) tx(t *rapid.T) { m.txOn(t, m.replica(t, "replica")) }

// deliver carries ops lossily; a receiver behind the sender's compaction
// horizon cannot be given ops, only a snapshot (which Sync carries).
func (m *compactMachine) deliver(t *rapid.T) {
	from, to := m.pair(t)
	p := proptest.DeliverPolicy{
		Drop:      rapid.SampledFrom([]float64{0, 0.3, 0.7}).Draw(t, "drop"),
		Duplicate: rapid.SampledFrom([]float64{0, 0.3}).Draw(t, "duplicate"),
		Resend:    rapid.SampledFrom([]float64{0, 0.2}).Draw(t, "resend"),
		MaxBatch:  rapid.SampledFrom([]int{0, 1, 3}).Draw(t, "max batch"),
	}
	_, err := m.net.Deliver(m.ctx, from, to, ns, newRand(t), p)
	m.dirty[to] = true
	m.st.deliveries++
	switch {
	case !m.net.Reachable(from, to):
		if !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("deliver %d→%d across a partition: %v, want ErrUnreachable", from, to, err)
		}
	case errors.Is(err, converge.ErrCompacted):
		if !m.behindHorizon(t, from, to) {
			t.Fatalf("deliver %d→%d: %v, but %d is not behind %d's horizon %v (it holds %v)", from, to, err, to, from, m.horizon(t, from), m.vector(t, to))
		}
		m.st.deliverBlocked++
	case err != nil:
		t.Fatal(err)
	}
}

// syncPair runs Sync(from→to) and checks its outcome; it fails the test on
// an error the situation does not explain.
func (m *compactMachine) syncPair(t *rapid.T, from, to int) {
	m.syncWith(t, from, to, nil)
}

// syncWith runs Sync(from→to), starting from peerVV, what from learnt of
// to's vector in an earlier sync (nil: nothing), as a replicator does.
func (m *compactMachine) syncWith(t *rapid.T, from, to int, peerVV crdt.VersionVector) {
	m.st.syncs++
	before := m.vector(t, from)
	var res transport.Result
	var err error
	if peerVV == nil {
		res, err = m.net.Sync(m.ctx, from, to, ns)
	} else {
		m.st.remembered++
		peer := transport.NewMemPeer(m.db(to).SyncStore(), m.net.Limits)
		peer.SetDown(!m.net.Reachable(from, to))
		res, err = transport.Sync(m.ctx, m.db(from).SyncStore(), peer, ns, transport.Options{Limits: m.net.Limits, PeerVector: peerVV})
	}
	if res.PeerVector != nil {
		m.peerVV[[2]int{from, to}] = res.PeerVector.Clone()
	}
	m.dirty[from], m.dirty[to] = true, true
	if m.net.Reachable(from, to) {
		// Both sides learnt of each other (a request and a response name
		// their senders).
		delete(m.forgot, [2]int{from, to})
		delete(m.forgot, [2]int{to, from})
	}
	if res.Snapshots > 0 {
		if p := m.partial[to]; p != nil {
			m.notePartial(from, p) // the peer's states were ahead of its vector
		}
		m.st.bootstraps += res.Snapshots
		m.st.snapshotRecords += res.SnapshotRecords
		if len(before) == 0 {
			m.st.newBootstraps++
		}
		if m.finishing {
			m.st.finalBootstraps++
		}
	}
	switch {
	case !m.net.Reachable(from, to):
		if !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("sync %d→%d across a partition: %v, want ErrUnreachable", from, to, err)
		}
		return
	case err == nil:
		// Nothing else writes during a sync: both now hold the same ops.
		checkSameVectors(m.ctx, t, m.net, from, to)
		return
	case !m.finishing && m.drifting() && (errors.Is(err, transport.ErrNoProgress) || errors.Is(err, hlc.ErrClockDrift)):
		// Ops or snapshot states refused for clock drift: they wait. A
		// snapshot may have been installed in part.
		m.st.drift++
		if p := m.vector(t, to); !m.vector(t, from).Covers(p) {
			m.notePartial(from, p)
			if pp := m.partial[to]; pp != nil {
				m.notePartial(from, pp)
			}
		}
		return
	case errors.Is(err, transport.ErrSnapshotNeeded) && m.behindHorizon(t, from, to):
		// The peer is behind our horizon: we pushed nothing, pulled
		// everything; the peer must bootstrap by syncing from its side.
		if !m.vector(t, from).Covers(m.vector(t, to)) {
			if !m.finishing && m.drifting() {
				m.st.drift++ // what it pulled was refused for clock drift
				return
			}
			t.Fatalf("sync %d→%d: the peer was behind the horizon (%v), and the requester did not pull all it has: %v, peer %v",
				from, to, err, m.vector(t, from), m.vector(t, to))
		}
		m.st.pushBlocked++
		return
	}
	t.Fatalf("sync %d→%d: %v (requester vector %v horizon %v; peer vector %v horizon %v)", from, to, err,
		m.vector(t, from), m.horizon(t, from), m.vector(t, to), m.horizon(t, to))
}

// notePartial records that replica i's state may hold ops up to vv,
// beyond its vector.
func (m *compactMachine) notePartial(i int, vv crdt.VersionVector) {
	if m.partial[i] == nil {
		m.partial[i] = crdt.VersionVector{}
	}
	m.partial[i].Merge(vv)
}

func (m *compactMachine) sync(t *rapid.T) {
	from, to := m.pair(t)
	m.syncPair(t, from, to)
}

// syncRemembered syncs a pair starting from what the requester learnt of
// the peer in their last sync: a stale vector, maybe from before the peer
// fell behind the requester's horizon or before the requester compacted.
func (m *compactMachine) syncRemembered(t *rapid.T) {
	from, to := m.pair(t)
	vv := m.peerVV[[2]int{from, to}]
	if vv == nil {
		t.Skip("no earlier sync of this pair")
	}
	m.syncWith(t, from, to, vv)
}

// compact compacts one replica to its stable vector, and checks that it
// dropped only ops every replica it knows holds.
func (m *compactMachine) compact(t *rapid.T) {
	m.compactReplica(t, m.replica(t, "replica"))
}

func (m *compactMachine) compactReplica(t *rapid.T, i int) {
	db := m.db(i)
	peers, err := db.Admin().Peers(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	stable := m.stable(t, i)
	vv, was := m.vector(t, i), m.horizon(t, i)
	st, err := db.Admin().Compact(m.ctx, ns)
	if err != nil {
		t.Fatalf("compact %d: %v", i, err)
	}
	m.dirty[i] = true
	m.st.compactions++
	m.st.compactedOps += st.Ops
	h := m.horizon(t, i)
	// The horizon rises to the stable vector (at most the vector), and
	// not at all with no known peer.
	want := was.Clone()
	if len(peers) > 0 {
		for o, seq := range stable {
			want[o] = max(want[o], min(seq, vv[o]))
		}
	} else {
		m.st.emptyCompactions++
	}
	if !h.Equal(want) {
		t.Fatalf("compact %d: horizon %v → %v, want %v (stable vector %v, vector %v, %d peers)", i, was, h, want, stable, vv, len(peers))
	}
	dropped := uint64(0)
	for o, seq := range h {
		dropped += seq - was[o]
	}
	if uint64(st.Ops) != dropped {
		t.Fatalf("compact %d: reported %d ops dropped, the horizon rose by %d", i, st.Ops, dropped)
	}
	// What it dropped, every replica it knows holds.
	for _, p := range peers {
		j := m.index(t, p.Replica)
		pv := m.vector(t, j)
		for o, seq := range h {
			if seq > was[o] && pv[o] < seq {
				t.Fatalf("compact %d: horizon of %v rose to %d, but known peer %d holds only %d", i, o, seq, j, pv[o])
			}
		}
	}
}

// stable reads replica i's stable vector as a crdt.VersionVector.
func (m *compactMachine) stable(t *rapid.T, i int) crdt.VersionVector {
	sv, err := m.db(i).Admin().StableVector(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	out := make(crdt.VersionVector, len(sv))
	for o, seq := range sv {
		id, err := crdt.ParseReplicaID(o)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = seq
	}
	return out
}

// index returns the number of the replica with id s.
func (m *compactMachine) index(t *rapid.T, s string) int {
	for j, id := range m.ids {
		if id.String() == s {
			return j
		}
	}
	t.Fatalf("unknown replica %s", s)
	return -1
}

// forget makes a replica forget one of its peers: its horizon may then
// pass ops the forgotten one lacks.
func (m *compactMachine) forget(t *rapid.T) {
	i := m.replica(t, "replica")
	peers, err := m.db(i).Admin().Peers(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) == 0 {
		t.Skip("no peer to forget")
	}
	p := rapid.SampledFrom(peers).Draw(t, "peer").Replica
	if err := m.db(i).Admin().ForgetPeer(m.ctx, ns, p); err != nil {
		t.Fatalf("replica %d forgets %s: %v", i, p, err)
	}
	after, err := m.db(i).Admin().Peers(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(after, func(s converge.PeerState) bool { return s.Replica == p }) || len(after) != len(peers)-1 {
		t.Fatalf("replica %d forgot %s: peers %v became %v", i, p, peers, after)
	}
	m.forgot[[2]int{i, m.index(t, p)}] = true
	m.st.forgets++
	if rapid.Bool().Draw(t, "compact now") {
		m.compactReplica(t, i) // past what the forgotten one holds, maybe
	}
}

// join adds a new, empty replica to the fleet; it syncs with a member
// right away (bootstrapping from a snapshot if that one compacted).
func (m *compactMachine) join(t *rapid.T) {
	if len(m.waiting) == 0 {
		t.Skip("no replica left to join")
	}
	i := m.waiting[0]
	m.waiting = m.waiting[1:]
	peer := m.replica(t, "peer")
	m.fleet = append(m.fleet, i)
	m.st.joins++
	m.syncPair(t, i, peer)
}

// forgottenSync syncs a replica from a peer that forgot it, if any: the
// peer's horizon may have passed it.
func (m *compactMachine) forgottenSync(t *rapid.T) {
	var pairs [][2]int
	for p := range m.forgot {
		pairs = append(pairs, p)
	}
	if len(pairs) == 0 {
		t.Skip("no forgotten peer")
	}
	slices.SortFunc(pairs, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	p := rapid.SampledFrom(pairs).Draw(t, "forgotten")
	boots := m.st.bootstraps
	m.syncPair(t, p[1], p[0])
	if m.st.bootstraps > boots {
		m.st.forgottenBootstrap++
	}
}

func (m *compactMachine) partition(t *rapid.T) {
	var groups [2][]int
	for i := range m.net.N() {
		g := rapid.IntRange(0, 1).Draw(t, "group")
		groups[g] = append(groups[g], i)
	}
	m.net.Partition(groups[0], groups[1])
}

func (m *compactMachine) heal(*rapid.T) { m.net.Heal() }

func (m *compactMachine) reopen(t *rapid.T) {
	i := m.replica(t, "replica")
	h := m.horizon(t, i)
	peers, err := m.db(i).Admin().Peers(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	m.dirty[i] = true
	if err := m.net.Reopen(m.ctx, i); err != nil {
		t.Fatal(err)
	}
	m.colls[i] = nil
	m.st.reopens++
	if got := m.horizon(t, i); !got.Equal(h) {
		t.Fatalf("reopen %d: horizon %v became %v", i, h, got)
	}
	after, err := m.db(i).Admin().Peers(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(peers) {
		t.Fatalf("reopen %d: peers %v became %v", i, peers, after)
	}
}

func (m *compactMachine) tick(t *rapid.T) {
	m.now += genAdvance.Draw(t, "advance")
	if rapid.Bool().Draw(t, "step a clock") {
		m.skew[rapid.IntRange(0, m.net.N()-1).Draw(t, "replica")] = genSkew.Draw(t, "skew")
	}
	m.setClocks()
}

func (m *compactMachine) leapClock(t *rapid.T) {
	if rapid.IntRange(0, 3).Draw(t, "leap?") != 0 {
		t.Skip("rare")
	}
	m.leapTo(m.replica(t, "replica"))
}

// record adds the ops each member wrote since the last step to the model,
// before any compaction can drop them from its log.
func (m *compactMachine) record(t *rapid.T) {
	for _, i := range m.fleet {
		self := m.ids[i]
		vv := m.vector(t, i)
		if vv[self] == m.written[self] {
			continue
		}
		have := vv.Clone()
		have[self] = m.written[self]
		n := m.written[self]
		for e, err := range m.db(i).Admin().Log().Missing(m.ctx, ns, have) {
			if err != nil {
				t.Fatalf("replica %d: read its own ops after %d: %v", i, m.written[self], err)
			}
			if e.Op.Dot != (crdt.Dot{Origin: self, Seq: n + 1}) {
				t.Fatalf("replica %d: op %v where its own op %d belongs", i, e.Op.Dot, n+1)
			}
			if err := m.model.Add(e.Op); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != vv[self] {
			t.Fatalf("replica %d: read its own ops up to %d, its vector says %d", i, n, vv[self])
		}
		m.written[self] = n
	}
}

// check runs after every step, on the members it changed: each holds the
// state its base states and log rebuild (Verify), and that state is the
// model's for the ops its vector covers.
func (m *compactMachine) check(t *rapid.T) {
	m.st.steps++
	m.record(t)
	for _, i := range m.fleet {
		if !m.dirty[i] {
			continue
		}
		m.checkReplica(t, i)
	}
	clear(m.dirty)
}

func (m *compactMachine) checkReplica(t *rapid.T, i int) {
	db := m.db(i)
	v, err := db.Admin().Verify(m.ctx, ns)
	if err != nil {
		t.Fatalf("replica %d: verify: %v", i, err)
	}
	if !v.OK() {
		t.Fatalf("replica %d: stored state is not its base states ⊔ log: %+v (vector %v, horizon %v)", i, v, m.vector(t, i), m.horizon(t, i))
	}
	vv := m.vector(t, i)
	for o, seq := range vv {
		if seq > m.written[o] {
			t.Fatalf("replica %d holds %d ops of %v, only %d were written", i, seq, o, m.written[o])
		}
	}
	if p := m.partial[i]; p != nil {
		if !vv.Covers(p) {
			return // a half-installed snapshot: the state may be ahead
		}
		delete(m.partial, i)
	}
	if err := m.model.Within(ns, vv).Check(m.ctx, db, ns); err != nil {
		t.Fatalf("replica %d (vector %v, horizon %v) against the model of the ops it holds: %v", i, vv, m.horizon(t, i), err)
	}
}

func (m *compactMachine) allEqual(t *rapid.T) bool {
	first := m.vector(t, m.fleet[0])
	for _, i := range m.fleet[1:] {
		if !m.vector(t, i).Equal(first) {
			return false
		}
	}
	return true
}

// quiesce syncs every ordered pair of members until they hold the same
// ops; a requester whose peer is behind its horizon fails to push (the
// peer bootstraps when it syncs from its side, later in the round).
func (m *compactMachine) quiesce(t *rapid.T) {
	for round := 0; !m.allEqual(t); round++ {
		if round > len(m.fleet)+1 {
			var b []string
			for _, i := range m.fleet {
				b = append(b, fmt.Sprintf("replica %d: vector %v horizon %v", i, m.vector(t, i), m.horizon(t, i)))
			}
			t.Fatalf("members still differ after %d rounds of syncs:\n%v", round, b)
		}
		for _, i := range m.fleet {
			for _, j := range m.fleet {
				if i != j {
					m.syncPair(t, i, j)
				}
			}
		}
	}
}

// finish heals the network, lets the clocks catch up, syncs every member
// with every other until they hold the same ops, and checks convergence
// and the model; then compacts every member and checks again, and lets a
// last replica join, if one is left.
func (m *compactMachine) finish(t *rapid.T) {
	m.record(t)
	m.finishing = true
	m.net.Heal()
	if m.drifting() {
		m.now = m.maxClock - maxDrift + skewBound + 1
	}
	for i := range m.skew {
		m.skew[i] = min(m.skew[i], skewBound)
	}
	m.setClocks()
	m.quiesce(t)
	m.checkFinal(t)

	// Compaction changes no state: every member compacts to what all
	// the replicas it knows hold, and the states stay equal.
	hashes := make(map[int]string)
	for _, i := range m.fleet {
		h, err := m.db(i).Admin().StateHash(m.ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		hashes[i] = h
		st, err := m.db(i).Admin().Compact(m.ctx, ns)
		if err != nil {
			t.Fatalf("final compaction of %d: %v", i, err)
		}
		m.st.compactions++
		m.st.compactedOps += st.Ops
	}
	for _, i := range m.fleet {
		h, err := m.db(i).Admin().StateHash(m.ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		if h != hashes[i] {
			t.Fatalf("replica %d: state hash %s became %s by compaction", i, hashes[i], h)
		}
	}
	if len(m.waiting) > 0 {
		i := m.waiting[0]
		m.waiting = m.waiting[1:]
		m.fleet = append(m.fleet, i)
		m.st.joins++
		m.syncPair(t, i, m.fleet[0])
	}
	m.checkFinal(t)
	m.st.runs++
	ops := m.model.Ops(ns)
	m.st.ops += len(ops)
	for _, r := range m.model.Records(ns) {
		m.st.records++
		if !r.Exists() {
			m.st.deleted++
		}
		if r.Exists() && r.CL > 1 {
			m.st.recreated++
		}
	}
}

// checkFinal checks that every member holds every op written, the same
// state, the state its base states and log rebuild, and the model's.
func (m *compactMachine) checkFinal(t *rapid.T) {
	m.record(t)
	dbs := make([]*converge.DB, len(m.fleet))
	for k, i := range m.fleet {
		dbs[k] = m.db(i)
	}
	if err := proptest.CheckConverged(m.ctx, ns, dbs...); err != nil {
		t.Fatal(err)
	}
	vv := m.vector(t, m.fleet[0])
	ops := m.model.Ops(ns)
	if got := uint64(len(ops)); got != vv.Sum() {
		t.Fatalf("%d ops were written, the converged vector %v holds %d", got, vv, vv.Sum())
	}
	if err := checkHLCOrder(ops); err != nil {
		t.Fatal(err)
	}
	for _, i := range m.fleet {
		delete(m.partial, i)
		m.checkReplica(t, i)
	}
}

// TestConvergenceWithCompaction is TestConvergence with compaction and
// snapshots: besides writing, delivering, syncing, partitioning,
// restarting and stepping clocks, replicas compact their logs to their
// stable vectors at random moments, forget peers (whose ops their horizon
// may then pass), and new, empty replicas join mid-run. A replica behind
// a peer's horizon can only catch up by bootstrapping from its snapshot.
// After every step, each replica the step changed holds the state its base
// states and log rebuild, and that state is the reference model's for the
// ops its vector covers (the model holds every op ever written). At the
// end, once the network heals and every replica synced with every other
// (a push to a peer behind the pusher's horizon fails with
// ErrSnapshotNeeded; the peer then bootstraps by pulling), every replica
// holds every op written and the same state, the model's; it stays so
// when every replica compacts again and when a last replica joins.
func TestConvergenceWithCompaction(t *testing.T) {
	st := &compactStats{}
	defer func() { t.Log(st) }()
	rapid.Check(t, func(rt *rapid.T) {
		ctx := t.Context()
		n := rapid.IntRange(2, 4).Draw(rt, "replicas")
		late := rapid.IntRange(0, 2).Draw(rt, "late replicas")
		dir := t.TempDir()
		opts := converge.Options{Compaction: converge.CompactionOptions{
			Disabled:      true, // time-driven: Compact is called by the test
			FeedRetention: rapid.SampledFrom([]int{0, 1, 5}).Draw(rt, "feed retention"),
		}}
		net, err := proptest.Open(dir, n+late, opts)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() {
			if err := net.Close(); err != nil {
				rt.Error(err)
			}
			_ = os.RemoveAll(dir)
		}()
		net.Limits = transport.Limits{
			MaxOps:   rapid.SampledFrom([]int{1, 3, 1000}).Draw(rt, "page size"),
			MaxBytes: rapid.SampledFrom([]int{0, 0, 200}).Draw(rt, "page bytes"),
		}
		m := &compactMachine{
			world: world{
				ctx:   ctx,
				net:   net,
				colls: make([]*converge.Collection[Item], n+late),
				keys:  []string{"a", "b", "c"}[:rapid.IntRange(2, 3).Draw(rt, "keys")],
				now:   proptest.Epoch,
				skew:  make([]int64, n+late),
				dirty: make(map[int]bool),
			},
			model:   proptest.NewModel(),
			written: make(map[crdt.ReplicaID]uint64),
			partial: make(map[int]crdt.VersionVector),
			forgot:  make(map[[2]int]bool),
			peerVV:  make(map[[2]int]crdt.VersionVector),
			st:      st,
		}
		for i := range n + late {
			m.ids = append(m.ids, net.Replica(i).Admin().Log().ReplicaID())
		}
		// Which replicas start in the fleet and which join late, drawn
		// apart from the numbering (the replica id order).
		order := rapid.Permutation(func() []int {
			s := make([]int, n+late)
			for i := range s {
				s[i] = i
			}
			return s
		}()).Draw(rt, "order")
		m.fleet, m.waiting = slices.Clone(order[:n]), slices.Clone(order[n:])
		for i := range m.skew {
			m.skew[i] = genSkew.Draw(rt, "skew")
		}
		m.setClocks()
		rt.Repeat(map[string]func(*rapid.T){
			"put":             m.put,
			"put again":       m.put,
			"update":          m.update,
			"update again":    m.update,
			"delete":          m.delete,
			"tx":              m.tx,
			"deliver":         m.deliver,
			"sync":            m.sync,
			"sync again":      m.sync,
			"sync remembered": m.syncRemembered,
			"compact":         m.compact,
			"compact again":   m.compact,
			"forget":          m.forget,
			"forgotten sync":  m.forgottenSync,
			"join":            m.join,
			"partition":       m.partition,
			"heal":            m.heal,
			"reopen":          m.reopen,
			"tick":            m.tick,
			"leap":            m.leapClock,
			"":                m.check,
		})
		m.finish(rt)
	})
	if !t.Failed() && st.runs >= 50 {
		// Over many runs, the cases this property is about must occur.
		if st.compactedOps == 0 {
			t.Errorf("no compaction dropped any op in %d runs", st.runs)
		}
		if st.bootstraps == 0 || st.newBootstraps == 0 || st.forgottenBootstrap == 0 {
			t.Errorf("in %d runs: %d snapshot bootstraps, %d of new replicas, %d of forgotten ones; want some of each", st.runs, st.bootstraps, st.newBootstraps, st.forgottenBootstrap)
		}
		if st.pushBlocked == 0 {
			t.Errorf("in %d runs no sync found its peer behind the horizon", st.runs)
		}
	}
}
