package transport

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
)

// TestSessionTranscripts runs the transcripts under testdata/session: a
// [Session] driven step by step between model stores (session_model_test.go),
// the peer's side answered by [Serve] and [ServeSnapshot] through a
// [MemPeer], so every message crosses the wire encoding. Run with -update
// to rewrite the expected output.
//
// Commands (replicas are named by one letter):
//
//	write b [n=1] [tx]        b writes n ops of its own (one transaction if tx)
//	deliver from=b to=a [max-ops=N]
//	                          a live delivery: a applies a page of what b has and a lacks
//	compact b                 b folds its whole log into its records
//	refuse a origin=c         a refuses c's ops (as stamped beyond its clock bound)
//	snapshots b off           b can neither serve nor install snapshots
//	churn b                   b writes an op and compacts after serving a snapshot's last page
//	show a                    a's vector, log, horizon, records and known peers
//	sync a b [peer-vector=b:3,a:2] [max-ops=N] [max-rounds=N] [peer-max-ops=N] [serve-max-ops=N]
//	                          a new session: a syncs with b (peer-vector: what a believes
//	                          b holds, from an earlier sync; empty: nothing; absent: unknown)
//	step [n=1]                carry out the session's next n actions, printing each
//	run                       carry out actions until the session is done
func TestSessionTranscripts(t *testing.T) {
	runTranscripts(t, "testdata/session", func(t *testing.T) func(command) string {
		w := &world{t: t, stores: map[string]*modelStore{}}
		return w.do
	})
}

// world is the replicas of one transcript and the session in progress.
type world struct {
	t      *testing.T
	stores map[string]*modelStore
	sync   *syncRun
}

// syncRun is a session and what it is driven against.
type syncRun struct {
	s      *Session
	store  *modelStore
	peer   Peer
	name   string // the peer's
	rounds int
}

// boundedPeer is a MemPeer whose transport bounds pages (a NATS server's
// max payload, say).
type boundedPeer struct {
	*MemPeer
	limits Limits
}

func (p boundedPeer) PageLimits() Limits { return p.limits }

func (w *world) store(name string) *modelStore {
	if len(name) != 1 || name[0] < 'a' || name[0] > 'z' {
		w.t.Fatalf("replica %q: replicas are named by one letter", name)
	}
	m := w.stores[name]
	if m == nil {
		m = newModelStore(name)
		w.stores[name] = m
	}
	return m
}

func (w *world) do(c command) string {
	t := w.t
	switch c.name {
	case "write":
		m := w.store(c.word(t, 0))
		ops := m.write(c.int(t, "n", 1), c.has("tx"))
		return fmt.Sprintf("%s wrote %s", m.name, formatOps(encodeAll(ops)))
	case "deliver":
		return w.deliver(c)
	case "compact":
		m := w.store(c.word(t, 0))
		m.compact()
		return fmt.Sprintf("%s compacted its log: horizon %s, %d records", m.name, w.vec(m.horizon), len(m.records))
	case "refuse":
		m, o := w.store(c.word(t, 0)), w.store(c.str("origin"))
		m.refuse[o.id] = true
		return fmt.Sprintf("%s refuses the ops of %s", m.name, o.name)
	case "snapshots":
		m := w.store(c.word(t, 0))
		m.noSnapshots = c.word(t, 1) == "off"
		return fmt.Sprintf("%s can serve and install snapshots: %v", m.name, !m.noSnapshots)
	case "churn":
		m := w.store(c.word(t, 0))
		m.churn = true
		return fmt.Sprintf("%s writes and compacts after serving a snapshot", m.name)
	case "show":
		return w.show(w.store(c.word(t, 0)))
	case "sync":
		return w.startSync(c)
	case "step":
		return w.step(c.int(t, "n", 1))
	case "run":
		return w.step(-1)
	}
	t.Fatalf("%s: unknown command %q", c.pos, c.name)
	return ""
}

// str returns the value of key, or "".
func (c command) str(key string) string {
	a, _ := c.lookup(key)
	return a.Val
}

func (w *world) deliver(c command) string {
	from, to := w.store(c.str("from")), w.store(c.str("to"))
	ops, _, err := from.Missing(context.Background(), "ns", to.vv, Limits{MaxOps: c.int(w.t, "max-ops", 0)})
	if err != nil {
		return "error: " + w.names(err.Error())
	}
	a, _ := to.Apply(context.Background(), "ns", ops)
	return fmt.Sprintf("%s delivered %s to %s: %s; %s holds %s", from.name, formatOps(ops), to.name, w.applied(a), to.name, w.vec(to.vv))
}

func (w *world) show(m *modelStore) string {
	var log [][]byte
	for _, op := range m.log {
		log = append(log, op.encode())
	}
	var recs [][]byte
	for _, k := range slices.Sorted(maps.Keys(m.records)) {
		recs = append(recs, m.records[k])
	}
	lines := []string{
		fmt.Sprintf("%s: vector %s", m.name, w.vec(m.vv)),
		fmt.Sprintf("   log %s, horizon %s", formatOps(log), w.vec(m.horizon)),
		fmt.Sprintf("   records %s", formatOps(recs)),
	}
	for _, p := range slices.SortedFunc(maps.Keys(m.peers), crdt.ReplicaID.Compare) {
		lines = append(lines, fmt.Sprintf("   knows that %s holds %s", modelName(p), w.vec(m.peers[p])))
	}
	return strings.Join(lines, "\n")
}

func (w *world) startSync(c command) string {
	t := w.t
	store, peerStore := w.store(c.word(t, 0)), w.store(c.word(t, 1))
	opts := Options{
		Limits:    Limits{MaxOps: c.int(t, "max-ops", 0)},
		MaxRounds: c.int(t, "max-rounds", 0),
		DotOf: func(b []byte) (crdt.Dot, error) {
			op, ok := decodeModelOp(b)
			if !ok {
				return crdt.Dot{}, errors.New("not a model op")
			}
			return op.dot, nil
		},
	}
	known := "unknown"
	if a, ok := c.lookup("peer-vector"); ok {
		opts.PeerVector = w.parseVec(a.Val)
		known = w.vec(opts.PeerVector)
	}
	var peer Peer = NewMemPeer(peerStore, Limits{MaxOps: c.int(t, "serve-max-ops", 0)})
	if n := c.int(t, "peer-max-ops", 0); n > 0 {
		peer = boundedPeer{peer.(*MemPeer), Limits{MaxOps: n}}
	}
	w.sync = &syncRun{s: NewSession("ns", store.id, peer.PageLimits(), opts), store: store, peer: peer, name: peerStore.name}
	lim := w.sync.s.lim
	return fmt.Sprintf("%s syncs with %s: pages of at most %d ops, %d bytes; %s's vector: %s",
		store.name, peerStore.name, lim.MaxOps, lim.MaxBytes, peerStore.name, known)
}

// parseVec parses "a:2,b:3" ("" is the empty vector).
func (w *world) parseVec(s string) crdt.VersionVector {
	v := crdt.VersionVector{}
	for e := range strings.SplitSeq(s, ",") {
		if e == "" {
			continue
		}
		name, seq, ok := strings.Cut(e, ":")
		var n uint64
		if _, err := fmt.Sscanf(seq, "%d", &n); !ok || err != nil {
			w.t.Fatalf("vector entry %q: want name:seq", e)
		}
		v[w.store(name).id] = n
	}
	return v
}

// step carries out n actions of the session (all, if n < 0), and returns
// what each was and what came of it.
func (w *world) step(n int) string {
	r := w.sync
	if r == nil {
		w.t.Fatal("step: no sync started")
	}
	var out []string
	for i := 0; n < 0 || i < n; i++ {
		a := r.s.Next()
		if a.Kind == SessionDone {
			out = append(out, w.done(a)...)
			w.sync = nil
			break
		}
		o := a.Do(context.Background(), r.store, r.peer)
		out = append(out, w.describe(a, o)...)
		r.s.Step(o)
	}
	return strings.Join(out, "\n")
}

// describe tells what action a asked for and what came of it.
func (w *world) describe(a Action, o Outcome) []string {
	r := w.sync
	var what, got string
	switch a.Kind {
	case ReadVector:
		what, got = "read our vector", w.vec(o.Vector)
	case ReadMissing:
		what, got = fmt.Sprintf("read what %s lacks beyond %s", r.name, w.vec(a.Have)), formatOps(o.Ops)
	case SendRequest:
		r.rounds++
		what = fmt.Sprintf("round %d: send vector %s, ops %s", r.rounds, w.vec(a.Request.Vector), formatOps(a.Request.Ops))
		if o.Err == nil {
			return []string{what, "  answer: " + w.response(o.Response)}
		}
	case Acknowledge:
		what = fmt.Sprintf("record that %s holds %s", modelName(a.Peer), w.vec(a.Vector))
	case ApplyOps:
		what, got = "apply "+formatOps(a.Ops), w.applied(o.Applied)
		if a.Prefetch != nil {
			// Sent while the ops were applied: the next page, asked for
			// from the vector the apply reaches.
			r.rounds++
			out := []string{what + ": " + got, fmt.Sprintf("  meanwhile round %d: send vector %s, anonymously", r.rounds, w.vec(a.Prefetch.Vector))}
			if o.Prefetched != nil {
				return append(out, "    answer: "+w.response(o.Prefetched))
			}
			return append(out, "    no answer")
		}
	case FetchSnapshotPage:
		what = fmt.Sprintf("fetch a snapshot page from %s, at most %d records, ", r.name, a.SnapshotRequest.Limits.MaxOps)
		if after := a.SnapshotRequest.After; after == nil {
			what += "from the first"
		} else {
			what += "after " + string(keyOp(after.Key))
		}
		if o.Err == nil {
			p := o.Page
			got = fmt.Sprintf("records %s, vector %s", formatRecords(p.Records), w.vec(p.Vector))
			if p.More {
				got += ", more"
			}
		}
	case InstallSnapshotPage:
		what = "install " + formatRecords(a.Records)
	case FinishSnapshot:
		what = "finish the snapshot: raise our vector to cover " + w.vec(a.Vector)
	}
	if o.Err != nil {
		got = "error: " + w.names(o.Err.Error())
	}
	if got == "" {
		return []string{what}
	}
	return []string{what + ": " + got}
}

func (w *world) response(resp *Response) string {
	s := "vector " + w.vec(resp.Vector)
	if resp.SnapshotNeeded {
		s += ", snapshot needed"
	} else {
		s += ", ops " + formatOps(resp.Ops)
	}
	if resp.More {
		s += ", more"
	}
	if a := resp.Applied; a != (Applied{}) {
		s += "; " + w.sync.name + " " + w.applied(a)
	}
	return s
}

func (w *world) applied(a Applied) string {
	parts := []string{fmt.Sprintf("applied %d", a.Applied)}
	if a.Duplicates > 0 {
		parts = append(parts, fmt.Sprintf("duplicates %d", a.Duplicates))
	}
	if a.Refused > 0 {
		parts = append(parts, fmt.Sprintf("refused %d (%s)", a.Refused, w.names(a.Reason)))
	}
	return strings.Join(parts, ", ")
}

// sentinels are the errors a done session's error is checked against.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrNoProgress", ErrNoProgress},
	{"ErrSnapshotNeeded", ErrSnapshotNeeded},
	{"ErrBadMessage", ErrBadMessage},
	{"hlc.ErrClockDrift", hlc.ErrClockDrift},
	{"errors.ErrUnsupported", errors.ErrUnsupported},
}

// done tells the session's result.
func (w *world) done(a Action) []string {
	res := a.Result
	s := fmt.Sprintf("done: %s; sent %d, received %d", plural(res.Rounds, "round"), res.Sent, res.Received)
	if res.Refused > 0 {
		s += fmt.Sprintf("; refused %d (%s)", res.Refused, w.names(res.Reason))
	}
	if res.Snapshots > 0 {
		s += fmt.Sprintf("; %s of %s, %d bytes", plural(res.Snapshots, "snapshot"), plural(res.SnapshotRecords, "record"), res.SnapshotBytes)
	}
	out := []string{s}
	if res.PeerVector != nil {
		out = append(out, fmt.Sprintf("  %s acknowledged %s", modelName(res.Peer), w.vec(res.PeerVector)))
	}
	if a.Err == nil {
		return out
	}
	out = append(out, "  error: "+w.names(a.Err.Error()))
	var is []string
	for _, e := range sentinels {
		if errors.Is(a.Err, e.err) {
			is = append(is, e.name)
		}
	}
	if len(is) > 0 {
		out = append(out, "  errors.Is: "+strings.Join(is, ", "))
	}
	return out
}

// plural is n things, or 1 thing.
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// vec formats a vector with the replicas' names.
func (w *world) vec(v crdt.VersionVector) string { return w.names(v.String()) }

// names replaces the replica ids in s with the replicas' names.
func (w *world) names(s string) string {
	for name, m := range w.stores {
		s = strings.ReplaceAll(s, m.id.String(), name)
	}
	return s
}

func encodeAll(ops []modelOp) [][]byte {
	out := make([][]byte, len(ops))
	for i, op := range ops {
		out[i] = op.encode()
	}
	return out
}

// formatOps lists encoded model ops: "[a1 a2 (b1 b2 b3) c1..c5]", a
// transaction of several ops in parentheses, a run of three or more
// consecutive ops of one origin as first..last.
func formatOps(raw [][]byte) string {
	var groups [][]modelOp
	var bad []string
	for i := 0; i < len(raw); {
		op, ok := decodeModelOp(raw[i])
		if !ok {
			bad = append(bad, fmt.Sprintf("%q", raw[i]))
			i++
			continue
		}
		g := []modelOp{op}
		for i++; !g[len(g)-1].txEnd && i < len(raw); i++ {
			next, ok := decodeModelOp(raw[i])
			if !ok {
				break
			}
			g = append(g, next)
		}
		groups = append(groups, g)
	}
	var parts []string
	for i := 0; i < len(groups); {
		g := groups[i]
		if len(g) > 1 || !g[0].txEnd {
			parts = append(parts, "("+runs(g)+")")
			i++
			continue
		}
		// A run of single-op transactions.
		j := i + 1
		for j < len(groups) && len(groups[j]) == 1 && groups[j][0].txEnd {
			j++
		}
		var singles []modelOp
		for _, s := range groups[i:j] {
			singles = append(singles, s[0])
		}
		parts = append(parts, runs(singles))
		i = j
	}
	return "[" + strings.Join(append(parts, bad...), " ") + "]"
}

// runs lists ops, a run of three or more consecutive ones as first..last.
func runs(ops []modelOp) string {
	var parts []string
	for i := 0; i < len(ops); {
		j := i + 1
		for j < len(ops) && ops[j].dot.Origin == ops[i].dot.Origin && ops[j].dot.Seq == ops[j-1].dot.Seq+1 {
			j++
		}
		if j-i >= 3 {
			parts = append(parts, fmt.Sprintf("%v..%v", ops[i], ops[j-1]))
		} else {
			for _, op := range ops[i:j] {
				parts = append(parts, op.String())
			}
		}
		i = j
	}
	return strings.Join(parts, " ")
}

// formatRecords lists snapshot records by the ops that wrote them.
func formatRecords(recs []SnapshotRecord) string {
	raw := make([][]byte, len(recs))
	for i, r := range recs {
		raw[i] = r.State
	}
	return formatOps(raw)
}

// keyOp is the name of the op that wrote the record of key ("b004": b4).
func keyOp(key string) []byte {
	var seq int
	if len(key) < 2 {
		return []byte(key)
	}
	if _, err := fmt.Sscanf(key[1:], "%d", &seq); err != nil {
		return []byte(key)
	}
	return fmt.Appendf(nil, "%s%d", key[:1], seq)
}
