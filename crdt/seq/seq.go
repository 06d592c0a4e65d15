package seq

import (
	"fmt"
	"slices"
)

// Seq is a sequence CRDT of elements of type E: text ([Text], of code
// points) or a list ([List], of msgpack values). The zero Seq is empty and
// ready to use. A Seq is not safe for concurrent use.
//
// Local edits ([Seq.Insert], [Seq.Delete]) change the sequence and return
// what to send to other replicas; remote edits ([Seq.ApplyInsert],
// [Seq.ApplyDelete]) and whole states ([Seq.Merge]) are joined in. Any
// replicas that hold the same inserts and deletes hold the same sequence,
// with the same encoding, whatever order they came in.
type Seq[E any] struct {
	t tree[E]
	// agents are the replicas the elements' ids name, in order of first
	// appearance; agents[0] is the zero Replica (no element).
	agents  []Replica
	agentOf map[Replica]uint32
	// high[a] is one past the highest clock of agent a's elements held.
	high []uint32
	// pending are inserts (or parts of them) whose origins are missing,
	// held until they arrive.
	pending []run[E]
	// pendDel are deleted ids whose elements have not arrived.
	pendDel []span
}

// span is a range of one agent's clocks: c … c+n-1.
type span struct {
	a    uint32
	c, n uint32
}

func (s *Seq[E]) init() {
	if s.agentOf == nil {
		s.agents = []Replica{{}}
		s.agentOf = map[Replica]uint32{{}: 0}
		s.high = []uint32{0}
	}
	s.t.init()
}

// agent returns the index of replica r, adding it if new.
func (s *Seq[E]) agent(r Replica) uint32 {
	s.init()
	if a, ok := s.agentOf[r]; ok {
		return a
	}
	a := uint32(len(s.agents))
	s.agents = append(s.agents, r)
	s.agentOf[r] = a
	s.high = append(s.high, 0)
	if s.t.idx != nil {
		s.t.growIndex(len(s.agents))
	}
	return a
}

func (s *Seq[E]) toID(e eid) ID {
	if e.a == 0 {
		return ID{}
	}
	return ID{Replica: s.agents[e.a], Clock: uint64(e.c)}
}

// fromID converts id, adding its replica if new.
func (s *Seq[E]) fromID(id ID) eid {
	if id.IsZero() {
		return none
	}
	return eid{s.agent(id.Replica), uint32(id.Clock)}
}

// Len returns the number of visible elements.
func (s *Seq[E]) Len() int {
	if s.t.root == nil {
		return 0
	}
	return s.t.root.vis
}

// Elements appends the visible elements to dst, in order, and returns it.
func (s *Seq[E]) Elements(dst []E) []E {
	if s.t.root == nil {
		return dst
	}
	dst = slices.Grow(dst, s.Len())
	for l := s.t.first; l != nil; l = l.next {
		for i := range l.runs {
			dst = append(dst, l.runs[i].content...)
		}
	}
	return dst
}

// Next returns the clock replica r's next inserted element gets.
func (s *Seq[E]) Next(r Replica) uint64 {
	if a, ok := s.agentOf[r]; ok {
		return uint64(s.high[a])
	}
	return 0
}

// Insert inserts content at visible index pos (0 ≤ pos ≤ Len) as replica
// self, and returns the insert to send to other replicas. The new elements
// get self's next clocks. Insert keeps its own copy of content; the
// returned Insert's Content is content itself.
func (s *Seq[E]) Insert(self Replica, pos int, content []E) (Insert[E], error) {
	if self.IsZero() {
		return Insert[E]{}, ErrZeroReplica
	}
	if pos < 0 || pos > s.Len() {
		return Insert[E]{}, fmt.Errorf("%w: insert at %d in %d elements", ErrRange, pos, s.Len())
	}
	a := s.agent(self)
	if uint64(s.high[a])+uint64(len(content)) > MaxClock-1 {
		return Insert[E]{}, ErrClockExhausted
	}
	if len(content) == 0 {
		return Insert[E]{}, nil
	}
	r := run[E]{a: a, c: s.high[a], n: len(content)}
	// The new run goes right after the visible element before pos (or at
	// the very start), before any tombstones that follow it: its origins
	// are that element and the one after it, tombstone or not.
	var at cursor[E]
	if pos == 0 {
		at = s.t.begin()
	} else {
		prev := s.t.visibleAt(pos - 1)
		r.left = prev.elem()
		if prev.off+1 == prev.run().n && s.extend(prev, &r, content) {
			s.high[a] = r.end()
			return Insert[E]{ID: s.toID(r.id(0)), Left: s.toID(r.left), Right: s.toID(r.right), Content: content}, nil
		}
		at = prev.step(1)
	}
	if !at.atEnd() {
		r.right = at.elem()
	}
	r.content = append(make([]E, 0, max(len(content), 8)), content...)
	s.insertAt(at, r)
	s.high[a] = r.end()
	return Insert[E]{ID: s.toID(r.id(0)), Left: s.toID(r.left), Right: s.toID(r.right), Content: content}, nil
}

// extend appends r to the run at prev (which ends at r's left origin) if
// r continues it: the fast path of typing. It fills in r.right either way.
func (s *Seq[E]) extend(prev cursor[E], r *run[E], content []E) bool {
	after := prev.step(1)
	if !after.atEnd() {
		r.right = after.elem()
	}
	p := prev.run()
	if !p.canAppend(r) {
		return false
	}
	p.content = append(p.content, content...)
	p.n += r.n
	prev.leaf.add(r.n, r.n)
	return true
}

// insertAt inserts run r at cursor c: before the element at c, or at the
// end. It appends r to the run before c instead when r continues it.
func (s *Seq[E]) insertAt(c cursor[E], r run[E]) {
	if c.off > 0 {
		c = s.t.splitRun(c)
	}
	if c.i > 0 {
		if p := &c.leaf.runs[c.i-1]; p.canAppend(&r) {
			p.content = append(p.content, r.content...)
			p.n += r.n
			c.leaf.add(r.vis(), r.n)
			return
		}
	}
	s.t.insertRun(c.leaf, c.i, r, false)
}

// Delete deletes n visible elements from index pos on and returns the
// deleted ids, to send to other replicas.
func (s *Seq[E]) Delete(pos, n int) ([]Span, error) {
	if pos < 0 || n < 0 || pos+n > s.Len() || pos+n < pos {
		return nil, fmt.Errorf("%w: delete %d at %d in %d elements", ErrRange, n, pos, s.Len())
	}
	var out []span
	for n > 0 {
		c := s.t.visibleAt(pos)
		k := min(n, c.restOfRun())
		r := c.run()
		out = appendSpan(out, span{r.a, r.c + uint32(c.off), uint32(k)})
		s.deleteAt(c, k)
		n -= k
	}
	spans := make([]Span, len(out))
	for i, sp := range out {
		spans[i] = Span{ID: s.toID(eid{sp.a, sp.c}), N: uint64(sp.n)}
	}
	return spans, nil
}

// appendSpan appends sp to spans, extending the last span if sp continues it.
func appendSpan(spans []span, sp span) []span {
	if n := len(spans); n > 0 && spans[n-1].a == sp.a && spans[n-1].c+spans[n-1].n == sp.c {
		spans[n-1].n += sp.n
		return spans
	}
	return append(spans, sp)
}

// deleteAt marks the k elements from c on (within c's run) deleted.
func (s *Seq[E]) deleteAt(c cursor[E], k int) {
	if c.run().deleted {
		return
	}
	if c.off > 0 {
		c = s.t.splitRun(c)
	}
	if k < c.run().n {
		c = s.t.prevRun(s.t.splitRun(cursor[E]{leaf: c.leaf, i: c.i, off: k}))
	}
	r := c.run()
	r.deleted, r.content = true, nil
	c.leaf.add(-r.n, 0)
	s.mergeAround(c.leaf, c.i)
}

// mergeAround merges run i of leaf with its neighbours in the leaf where
// they continue each other, which keeps deleted stretches one run.
func (s *Seq[E]) mergeAround(leaf *node[E], i int) {
	if i+1 < len(leaf.runs) && leaf.runs[i].canAppend(&leaf.runs[i+1]) {
		s.absorb(leaf, i)
	}
	if i > 0 && leaf.runs[i-1].canAppend(&leaf.runs[i]) {
		s.absorb(leaf, i-1)
	}
}

// absorb appends run i+1 of leaf to run i.
func (s *Seq[E]) absorb(leaf *node[E], i int) {
	p, q := &leaf.runs[i], &leaf.runs[i+1]
	if !p.deleted {
		p.content = append(p.content[:p.n:p.n], q.content...)
	}
	p.n += q.n
	s.t.removeRun(leaf, i+1)
}

// Clone returns a deep copy of s. The copy shares element content with s,
// which neither ever modifies.
func (s *Seq[E]) Clone() *Seq[E] {
	c := &Seq[E]{t: s.t.clone()}
	if s.agentOf == nil {
		return c
	}
	c.agents = slices.Clone(s.agents)
	c.agentOf = make(map[Replica]uint32, len(s.agentOf))
	for r, a := range s.agentOf {
		c.agentOf[r] = a
	}
	c.high = slices.Clone(s.high)
	c.pending = slices.Clone(s.pending)
	for i := range c.pending {
		if p := &c.pending[i]; p.content != nil {
			p.content = p.content[:p.n:p.n]
		}
	}
	c.pendDel = slices.Clone(s.pendDel)
	return c
}

// ensureIndex builds the id index if it is not built.
func (s *Seq[E]) ensureIndex() {
	s.init()
	if s.t.idx == nil {
		s.t.buildIndex(len(s.agents))
	}
}

// lookup returns the cursor at element id, if integrated.
func (s *Seq[E]) lookup(id eid) (cursor[E], bool) {
	s.ensureIndex()
	return s.t.find(id)
}

// posLeft returns the position (tombstones included) of left origin id:
// -1 for the start.
func (s *Seq[E]) posLeft(id eid) int {
	if id.a == 0 {
		return -1
	}
	c, ok := s.lookup(id)
	if !ok {
		panic("seq: integrated element's origin is missing")
	}
	return s.t.position(c, false)
}

// posRight returns the position of right origin id: the total for the end.
func (s *Seq[E]) posRight(id eid) int {
	if id.a == 0 {
		return s.t.root.tot
	}
	c, ok := s.lookup(id)
	if !ok {
		panic("seq: integrated element's origin is missing")
	}
	return s.t.position(c, false)
}
