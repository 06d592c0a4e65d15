package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/convergedb/converge/crdt"
)

// Session is one sync of one namespace with one peer, as a value: the
// decisions of [Sync] without its I/O. It reads no clock, starts no
// goroutine and does no I/O. It says what to do next ([Session.Next]: read
// the store's vector, send the peer a request, install a snapshot page,
// ...), and is told what came of it ([Session.Step]), as etcd's raft
// RawNode is. A driver carries out each [Action] against a [Store] and a
// [Peer] ([Action.Do]) and steps the session with the [Outcome], until the
// action is [SessionDone]; [Sync] is that driver. The transcripts under
// transport/testdata/session walk through the protocol step by step.
//
// A Session is not safe for concurrent use.
type Session struct {
	ns        string
	self      crdt.ReplicaID
	lim       Limits
	maxRounds int
	res       Result
	dotOf     func([]byte) (crdt.Dot, error)

	// What the session knows of the two sides.
	peerVV crdt.VersionVector // the peer's: from Options, then from its last answer
	fresh  bool               // peerVV came from an answer of this session
	// The sync is done when each side holds what the other held when it
	// began; later writes are the next sync's.
	targetMine, targetPeer crdt.VersionVector
	refusal                error // our store's first refusal
	peerBehind             error // the peer is below our compaction horizon
	retriedStale           bool
	bootstraps             int

	round  round          // the round in progress
	paging snapshotPaging // the bootstrap in progress

	next Action
	then func(Outcome) // takes the outcome of next; nil once done
}

// round is one round trip in progress.
type round struct {
	req           *Request
	pushedAgainst crdt.VersionVector // the peer's vector the push was read against
	resp          *Response
	got           Applied // what our store did with resp.Ops
	// prefetch is the next round's request, sent while resp.Ops were
	// applied (nil: none), and prefetched its answer (nil: none came).
	prefetch   *Request
	prefetched *Response
}

// snapshotPaging is a bootstrap from a snapshot in progress.
type snapshotPaging struct {
	page  int // pages fetched before the one asked for
	after *SnapshotCursor
	vv    crdt.VersionVector // pointwise minimum of the pages' vectors; nil before the first
	resp  *SnapshotResponse  // the page being installed
}

// ActionKind says what a [Session] asks its driver to do.
type ActionKind int

// The actions of a [Session], each named with the call that carries it
// out and the field of [Outcome] that reports it.
const (
	_                   ActionKind = iota
	ReadVector                     // Store.Vector → Outcome.Vector
	ReadMissing                    // Store.Missing(Action.Have, Action.Limits) → Outcome.Ops
	SendRequest                    // Peer.RoundTrip(Action.Request) → Outcome.Response
	Acknowledge                    // Store.Acknowledged(Action.Peer, Action.Vector)
	ApplyOps                       // Store.Apply(Action.Ops) → Outcome.Applied
	FetchSnapshotPage              // Peer.Snapshot(Action.SnapshotRequest) → Outcome.Page
	InstallSnapshotPage            // Store.InstallSnapshot(Action.Records)
	FinishSnapshot                 // Store.FinishSnapshot(Action.Vector)
	SessionDone                    // the sync is over: Action.Result, Action.Err
)

var actionNames = [...]string{
	ReadVector: "read vector", ReadMissing: "read missing", SendRequest: "send request",
	Acknowledge: "acknowledge", ApplyOps: "apply ops", FetchSnapshotPage: "fetch snapshot page",
	InstallSnapshotPage: "install snapshot page", FinishSnapshot: "finish snapshot", SessionDone: "done",
}

// String names the action kind, for logs.
func (k ActionKind) String() string {
	if k > 0 && int(k) < len(actionNames) {
		return actionNames[k]
	}
	return fmt.Sprintf("ActionKind(%d)", int(k))
}

// Action is what a [Session] asks its driver to do next: the call its
// Kind names, with the fields that kind uses as arguments. The session
// owns the slices and vectors in it; the driver must not change them.
type Action struct {
	Kind      ActionKind
	Namespace string
	// Have and Limits are ReadMissing's: the peer's vector, and the
	// page's bounds.
	Have   crdt.VersionVector
	Limits Limits
	// Request is what SendRequest sends.
	Request *Request
	// Peer and Vector are Acknowledge's: Peer holds Vector. Vector is also
	// FinishSnapshot's: what the installed snapshot stands for.
	Peer   crdt.ReplicaID
	Vector crdt.VersionVector
	// Ops are what ApplyOps applies.
	Ops [][]byte
	// Prefetch is, for ApplyOps, a request the driver may send the peer
	// while it applies Ops, its answer going in [Outcome.Prefetched]:
	// the next round's, asking for the page after Ops from the vector
	// applying them reaches. It pipelines a catch-up (page n+1 travels
	// while page n is applied). The session uses the answer only if the
	// apply did reach that vector; a driver may ignore Prefetch. The
	// request does not name its sender, so the peer records nothing of a
	// vector this replica may not reach.
	Prefetch *Request
	// SnapshotRequest is what FetchSnapshotPage asks the peer for.
	SnapshotRequest *SnapshotRequest
	// Records are what InstallSnapshotPage installs.
	Records []SnapshotRecord
	// Result and Err are SessionDone's: what the sync moved, and why it
	// failed (nil if it did not). Result.Duration is the driver's to set.
	Result Result
	Err    error
}

// Outcome is what came of an [Action]: the field its kind names, or Err.
// A driver may give an Outcome with only Err set for any action.
type Outcome struct {
	Vector   crdt.VersionVector // ReadVector
	Ops      [][]byte           // ReadMissing
	Response *Response          // SendRequest
	Applied  Applied            // ApplyOps
	Page     *SnapshotResponse  // FetchSnapshotPage
	Err      error
	// Prefetched is the answer to ApplyOps's Prefetch, if the driver sent
	// it and it came (nil otherwise: the session then asks again).
	Prefetched *Response
}

// Do carries out a against store and peer and returns what came of it;
// SessionDone does nothing.
func (a Action) Do(ctx context.Context, store Store, peer Peer) Outcome {
	var o Outcome
	switch a.Kind {
	case ReadVector:
		o.Vector, o.Err = store.Vector(ctx, a.Namespace)
	case ReadMissing:
		o.Ops, _, o.Err = store.Missing(ctx, a.Namespace, a.Have, a.Limits)
	case SendRequest:
		o.Response, o.Err = peer.RoundTrip(ctx, a.Request)
	case Acknowledge:
		o.Err = store.Acknowledged(ctx, a.Namespace, a.Peer, a.Vector)
	case ApplyOps:
		if a.Prefetch != nil {
			return a.applyPrefetching(ctx, store, peer)
		}
		o.Applied, o.Err = store.Apply(ctx, a.Namespace, a.Ops)
	case FetchSnapshotPage:
		o.Page, o.Err = peer.Snapshot(ctx, a.SnapshotRequest)
	case InstallSnapshotPage:
		o.Err = store.InstallSnapshot(ctx, a.Namespace, a.Records)
	case FinishSnapshot:
		o.Err = store.FinishSnapshot(ctx, a.Namespace, a.Vector)
	}
	return o
}

// applyPrefetching carries out ApplyOps with its Prefetch: it sends the
// request on its own goroutine while the store applies the ops, and
// returns once both are over. A failed apply cancels the round trip; a
// failed round trip only leaves Prefetched nil.
func (a Action) applyPrefetching(ctx context.Context, store Store, peer Peer) Outcome {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var o Outcome
	var wg sync.WaitGroup
	var prefetched *Response
	wg.Go(func() {
		resp, err := peer.RoundTrip(ctx, a.Prefetch)
		if err == nil {
			prefetched = resp
		}
	})
	o.Applied, o.Err = store.Apply(ctx, a.Namespace, a.Ops)
	if o.Err != nil {
		cancel()
	}
	wg.Wait()
	o.Prefetched = prefetched
	return o
}

// NewSession returns a session that syncs namespace ns for the replica
// self (its requests name it as their sender; zero for a relay), with a
// peer whose transport bounds pages at peerLimits ([Peer].PageLimits).
// opts are as for [Sync]; Now is the driver's.
func NewSession(ns string, self crdt.ReplicaID, peerLimits Limits, opts Options) *Session {
	s := &Session{
		ns:        ns,
		self:      self,
		lim:       withinPeer(opts.Limits.withDefaults(), peerLimits),
		maxRounds: opts.MaxRounds,
		res:       Result{Namespace: ns},
		peerVV:    opts.PeerVector,
		dotOf:     opts.DotOf,
	}
	if s.dotOf == nil {
		s.dotOf = crdt.OpDot
	}
	if s.maxRounds <= 0 {
		s.maxRounds = 10000
	}
	s.startRound(nil)
	return s
}

// Next returns what the driver should do now: the same action until the
// session is stepped. Once it is [SessionDone], the session is over.
func (s *Session) Next() Action { return s.next }

// Step feeds the session what came of the action [Session.Next] returned.
// It panics if the session is done.
func (s *Session) Step(o Outcome) {
	if s.then == nil {
		panic("transport: Session.Step after the session is done")
	}
	then := s.then
	s.then = nil
	then(o)
}

// ask makes a the next action, whose outcome goes to then.
func (s *Session) ask(a Action, then func(Outcome)) {
	a.Namespace = s.ns
	s.next, s.then = a, then
}

// finish ends the session with err (nil: the sync succeeded).
func (s *Session) finish(err error) {
	s.next = Action{Kind: SessionDone, Namespace: s.ns, Result: s.res, Err: err}
	s.then = nil
}

// fail ends the session with an error of the store or the transport.
func (s *Session) fail(err error) { s.finish(fmt.Errorf("transport: sync %q: %w", s.ns, err)) }

// startRound begins a round trip from our vector, reading it first unless
// mine is it (read at the end of the round before).
func (s *Session) startRound(mine crdt.VersionVector) {
	if s.res.Rounds >= s.maxRounds {
		s.finish(fmt.Errorf("transport: sync %q: %w after %d rounds", s.ns, ErrNoProgress, s.res.Rounds))
		return
	}
	if mine == nil {
		s.ask(Action{Kind: ReadVector}, s.vectorRead)
		return
	}
	s.vectorRead(Outcome{Vector: mine})
}

// vectorRead builds the round's request from our vector. When the peer's
// vector is known, the request pushes what it lacks.
func (s *Session) vectorRead(o Outcome) {
	if o.Err != nil {
		s.fail(o.Err)
		return
	}
	if s.targetMine == nil {
		s.targetMine = o.Vector.Clone()
	}
	s.round = round{
		req:           &Request{Namespace: s.ns, Vector: o.Vector, Limits: s.lim, From: s.self},
		pushedAgainst: s.peerVV,
	}
	if s.peerVV == nil {
		s.send()
		return
	}
	s.ask(Action{Kind: ReadMissing, Have: s.peerVV, Limits: s.lim}, s.missingRead)
}

// missingRead puts the ops the peer lacks in the request. If the peer is
// below our compaction horizon, the request pushes nothing; once the peer
// answered in this sync, that ends the sync when nothing else is left.
func (s *Session) missingRead(o Outcome) {
	switch {
	case errors.Is(o.Err, ErrSnapshotNeeded):
		// Against a vector of an earlier sync, learn the peer's actual one
		// first.
		if s.fresh {
			s.peerBehind = fmt.Errorf("transport: sync %q: the peer (vector %v) is behind this replica's compaction horizon and must bootstrap from a snapshot (it does when it syncs with this replica): %w", s.ns, s.peerVV, o.Err)
		}
	case o.Err != nil:
		s.fail(o.Err)
		return
	default:
		s.round.req.Ops, s.peerBehind = o.Ops, nil
	}
	s.send()
}

// send sends the round's request.
func (s *Session) send() {
	s.ask(Action{Kind: SendRequest, Request: s.round.req}, s.responded)
}

// responded takes the peer's answer: its vector is now the one we know,
// and what it says it holds is recorded.
func (s *Session) responded(o Outcome) {
	s.res.Rounds++
	if o.Err == nil && o.Response == nil {
		o.Err = fmt.Errorf("%w: no response", ErrBadMessage)
	}
	if o.Err != nil {
		s.finish(fmt.Errorf("transport: sync %q: round %d: %w", s.ns, s.res.Rounds, o.Err))
		return
	}
	resp := o.Response
	s.round.resp = resp
	s.peerVV, s.fresh = resp.Vector, true
	s.res.PeerVector = resp.Vector
	if !resp.From.IsZero() {
		s.res.Peer = resp.From
	}
	s.acknowledge(resp.From, resp.Vector, s.fail, s.tally)
}

// acknowledge records that peer holds vv, if the message named its
// sender, then goes on with then; a failure goes to fail.
func (s *Session) acknowledge(peer crdt.ReplicaID, vv crdt.VersionVector, fail func(error), then func()) {
	if peer.IsZero() || vv == nil {
		then()
		return
	}
	s.ask(Action{Kind: Acknowledge, Peer: peer, Vector: vv}, func(o Outcome) {
		if o.Err != nil {
			fail(fmt.Errorf("transport: record what %v holds: %w", peer, o.Err))
			return
		}
		then()
	})
}

// tally counts what the peer did with our push; then, if the peer says
// we are below its compaction horizon, we bootstrap from its snapshot,
// else we apply the page it sent.
func (s *Session) tally() {
	resp := s.round.resp
	if s.targetPeer == nil {
		s.targetPeer = resp.Vector.Clone()
	}
	s.res.Sent += resp.Applied.Applied
	s.res.Refused += resp.Applied.Refused
	if s.res.Reason == "" {
		s.res.Reason = resp.Applied.Reason
	}
	if resp.SnapshotNeeded {
		s.startBootstrap()
		return
	}
	if len(resp.Ops) == 0 {
		s.applied(Outcome{})
		return
	}
	s.round.prefetch = s.prefetchRequest(resp)
	s.ask(Action{Kind: ApplyOps, Ops: resp.Ops, Prefetch: s.round.prefetch}, s.applied)
}

// prefetchRequest returns the request for the page after resp's, from the
// vector our store reaches once it has applied resp.Ops, if the peer said
// more follow and the page's dots tell that vector (each origin's ops
// next in line); nil otherwise. It names no sender (see Action.Prefetch).
func (s *Session) prefetchRequest(resp *Response) *Request {
	if !resp.More {
		return nil
	}
	vv := s.round.req.Vector.Clone()
	if vv == nil {
		vv = crdt.VersionVector{}
	}
	for _, b := range resp.Ops {
		d, err := s.dotOf(b)
		if err != nil || d.Seq != vv[d.Origin]+1 {
			return nil // the apply will say what it is
		}
		vv[d.Origin] = d.Seq
	}
	return &Request{Namespace: s.ns, Vector: vv, Limits: s.lim}
}

// applied counts what our store did with the page, and reads our vector
// to judge the round.
func (s *Session) applied(o Outcome) {
	if o.Err != nil {
		s.fail(fmt.Errorf("apply: %w", o.Err))
		return
	}
	got := o.Applied
	s.round.got = got
	s.round.prefetched = o.Prefetched
	s.res.Received += got.Applied
	s.res.Refused += got.Refused
	s.res.Conflicts += got.Conflicts
	if s.res.Reason == "" {
		s.res.Reason = got.Reason
	}
	if s.refusal == nil {
		s.refusal = got.Err
	}
	s.ask(Action{Kind: ReadVector}, s.judge)
}

// judge ends the round with our vector after it. The sync is done when
// each side holds what the other held when it began. It goes on while
// rounds make progress (either side applied ops, or our vector moved on
// its own), and once more after a push against a stale idea of the
// peer's vector; a round that moves nothing ends it.
func (s *Session) judge(o Outcome) {
	if o.Err != nil {
		s.fail(o.Err)
		return
	}
	mine := o.Vector
	if mine.Covers(s.targetPeer) {
		if s.peerVV.Covers(s.targetMine) {
			s.finish(nil)
			return
		}
		if s.peerBehind != nil {
			s.finish(s.peerBehind)
			return
		}
	}
	r := &s.round
	// A concurrent sync or a live delivery may apply the page first: it
	// comes back as duplicates, and our vector moved.
	progress := r.resp.Applied.Applied > 0 || r.got.Applied > 0 || !r.req.Vector.Covers(mine)
	offered := len(r.req.Ops) > 0 || len(r.resp.Ops) > 0
	switch {
	case !progress && !s.retriedStale && len(r.req.Ops) > 0 && !r.pushedAgainst.Equal(r.resp.Vector):
		// We pushed against a stale idea of the peer's vector (another
		// replica answered, or it lost ops): the pushed ops were beyond
		// its gap. The next round pushes from its actual vector.
		s.retriedStale = true
		s.startRound(mine)
	case !progress && (offered || s.res.Rounds > 1):
		s.finish(s.stalled(mine))
	default:
		if !s.usePrefetched(mine) {
			s.startRound(mine)
		}
	}
}

// usePrefetched goes on with the answer to the round's prefetch as the
// next round's, if it came and was asked from mine (the apply reached the
// vector the prefetch assumed) and we have nothing to push (a round of
// our own would push it). It reports whether it did.
func (s *Session) usePrefetched(mine crdt.VersionVector) bool {
	r := s.round
	if r.prefetched == nil || !r.prefetch.Vector.Equal(mine) || !s.peerVV.Covers(mine) || s.res.Rounds >= s.maxRounds {
		return false
	}
	s.round = round{req: r.prefetch, pushedAgainst: s.peerVV}
	s.responded(Outcome{Response: r.prefetched})
	return true
}

// stalled is the error of a round that moved nothing: the peer is behind
// our horizon, or ops are being refused.
func (s *Session) stalled(mine crdt.VersionVector) error {
	switch {
	case s.peerBehind != nil && s.refusal != nil:
		return fmt.Errorf("%w; and pulling stopped: %w: %w", s.peerBehind, ErrNoProgress, s.refusal)
	case s.peerBehind != nil:
		return s.peerBehind
	case s.refusal != nil:
		return fmt.Errorf("transport: sync %q: %w: %w", s.ns, ErrNoProgress, s.refusal)
	}
	return fmt.Errorf("transport: sync %q: %w: ours %v, peer's %v: %s", s.ns, ErrNoProgress, mine, s.peerVV, s.res.Reason)
}

// startBootstrap begins a bootstrap from the peer's snapshot, unless this
// sync bootstrapped [maxBootstraps] times already.
func (s *Session) startBootstrap() {
	if s.bootstraps >= maxBootstraps {
		s.finish(fmt.Errorf("transport: sync %q: %w: still behind the peer's compaction horizon after %d bootstraps from a snapshot (vector %v, the peer's %v)", s.ns, ErrSnapshotNeeded, s.bootstraps, s.round.req.Vector, s.peerVV))
		return
	}
	s.bootstraps++
	s.paging = snapshotPaging{}
	s.fetchPage()
}

// fetchPage asks the peer for the next page of its snapshot.
func (s *Session) fetchPage() {
	p := &s.paging
	if p.page >= s.maxRounds {
		s.bootstrapFailed(fmt.Errorf("snapshot of more than %d pages", s.maxRounds))
		return
	}
	req := &SnapshotRequest{Namespace: s.ns, After: p.after, Limits: s.lim, From: s.self}
	s.ask(Action{Kind: FetchSnapshotPage, SnapshotRequest: req}, s.pageFetched)
}

// pageFetched checks that the page follows the cursor, and records what
// the peer says it holds.
func (s *Session) pageFetched(o Outcome) {
	p := &s.paging
	if o.Err == nil && o.Page == nil {
		o.Err = fmt.Errorf("%w: no snapshot page", ErrBadMessage)
	}
	if o.Err != nil {
		s.bootstrapFailed(fmt.Errorf("snapshot page %d: %w", p.page+1, o.Err))
		return
	}
	if err := checkPage(p.after, o.Page.Records, o.Page.More); err != nil {
		s.bootstrapFailed(fmt.Errorf("snapshot page %d: %w: %w", p.page+1, ErrBadMessage, err))
		return
	}
	p.resp = o.Page
	s.acknowledge(o.Page.From, o.Page.Vector, s.bootstrapFailed, s.installPage)
}

// installPage merges the page's records into our store.
func (s *Session) installPage() {
	if len(s.paging.resp.Records) == 0 {
		s.pageInstalled(Outcome{})
		return
	}
	s.ask(Action{Kind: InstallSnapshotPage, Records: s.paging.resp.Records}, s.pageInstalled)
}

// pageInstalled counts the page, and fetches the next one, or, after the
// last, raises our vector to the pointwise minimum of the pages' vectors:
// what the snapshot as a whole stands for, even if its pages came from
// different responders or the responder wrote between pages.
func (s *Session) pageInstalled(o Outcome) {
	p := &s.paging
	if o.Err != nil {
		s.bootstrapFailed(fmt.Errorf("install snapshot page %d: %w", p.page+1, o.Err))
		return
	}
	recs := p.resp.Records
	s.res.SnapshotRecords += len(recs)
	for i := range recs {
		s.res.SnapshotBytes += len(recs[i].State)
	}
	p.vv = minVector(p.vv, p.resp.Vector)
	if p.resp.More {
		last := recs[len(recs)-1]
		p.after = &SnapshotCursor{Collection: last.Collection, Key: last.Key}
		p.page++
		s.fetchPage()
		return
	}
	s.ask(Action{Kind: FinishSnapshot, Vector: p.vv}, s.snapshotFinished)
}

// snapshotFinished goes on with op rounds from the raised vector.
func (s *Session) snapshotFinished(o Outcome) {
	if o.Err != nil {
		s.bootstrapFailed(fmt.Errorf("finish snapshot at %v: %w", s.paging.vv, o.Err))
		return
	}
	s.res.Snapshots++
	s.startRound(nil)
}

// bootstrapFailed ends the session with a bootstrap's error: one wrapping
// ErrSnapshotNeeded when the store or the peer cannot carry a snapshot.
func (s *Session) bootstrapFailed(err error) {
	if errors.Is(err, errors.ErrUnsupported) {
		s.finish(fmt.Errorf("transport: sync %q: %w: this replica (vector %v) is behind the peer's compaction horizon, and the store or the peer cannot carry a snapshot: %w", s.ns, ErrSnapshotNeeded, s.round.req.Vector, err))
		return
	}
	s.finish(fmt.Errorf("transport: sync %q: bootstrap from a snapshot: %w", s.ns, err))
}
