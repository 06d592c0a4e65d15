package seq

import (
	"fmt"
	"math"
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
	t tree
	// arena holds the content of the live runs; deleted content stays in
	// it as garbage until the next compaction. Its elements are never
	// modified, only appended to, so copies may share it.
	arena []E
	// agents are the replicas the elements' ids name, in order of first
	// appearance; agents[0] is the zero Replica (no element).
	agents  []Replica
	agentOf map[Replica]uint32
	// high[a] is one past the highest clock of agent a's elements held.
	high []uint32
	// lastRep and lastA cache the last replica looked up.
	lastRep Replica
	lastA   uint32
	// pending are inserts (or parts of them) whose origins are missing,
	// held until they arrive.
	pending []item[E]
	// pendDel are deleted ids whose elements have not arrived.
	pendDel []span
}

// item is a run with its own content, outside the tree: an insert being
// merged, or one waiting for its origins.
type item[E any] struct {
	run
	content []E // nil when deleted
}

// split cuts it before off (0 < off < n) and returns the tail.
func (it *item[E]) split(off int) item[E] {
	t := item[E]{run: it.run.split(off)}
	if it.content != nil {
		t.content = it.content[off:]
		it.content = it.content[:off:off]
	}
	return t
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
	if r == s.lastRep && s.lastA != 0 {
		return s.lastA
	}
	s.init()
	a, ok := s.agentOf[r]
	if !ok {
		a = uint32(len(s.agents))
		s.agents = append(s.agents, r)
		s.agentOf[r] = a
		s.high = append(s.high, 0)
		if s.t.idx != nil {
			s.t.growIndex(len(s.agents))
		}
	}
	if a != 0 {
		s.lastRep, s.lastA = r, a
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

// content returns the elements of live run r.
func (s *Seq[E]) content(r *run) []E {
	off := int(r.off)
	return s.arena[off : off+r.n : off+r.n]
}

// arenaEnd returns the arena's length as a content offset. A sequence
// holding 2³² live elements (16 GiB of text) is beyond what it supports.
func (s *Seq[E]) arenaEnd() uint32 {
	if len(s.arena) > math.MaxUint32 {
		panic("seq: more than 2^32 elements of content")
	}
	return uint32(len(s.arena))
}

// Elements appends the visible elements to dst, in order, and returns it.
func (s *Seq[E]) Elements(dst []E) []E {
	if s.t.root == nil {
		return dst
	}
	dst = slices.Grow(dst, s.Len())
	for l := s.t.first; l != nil; l = l.next {
		for i := range l.runs {
			if r := &l.runs[i]; !r.deleted {
				dst = append(dst, s.content(r)...)
			}
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
// get self's next clocks. The elements go just after the visible element
// before pos (before any tombstones after it), or at the very start. s may
// keep content, which it never modifies; the returned Insert's Content is
// content itself.
func (s *Seq[E]) Insert(self Replica, pos int, content []E) (Insert[E], error) {
	var ins Insert[E]
	if s.typing(&ins, self, pos, content) {
		return ins, nil
	}
	if self.IsZero() {
		return Insert[E]{}, ErrZeroReplica
	}
	if pos < 0 || pos > s.Len() {
		return Insert[E]{}, fmt.Errorf("%w: insert at %d in %d elements", ErrRange, pos, s.Len())
	}
	a := s.agent(self)
	if uint64(s.high[a])+uint64(len(content)) > MaxClock {
		return Insert[E]{}, ErrClockExhausted
	}
	if len(content) == 0 {
		return Insert[E]{}, nil
	}
	r := run{a: a, c: s.high[a], n: len(content)}
	s.high[a] += uint32(len(content))
	// The new run goes right after the visible element before pos (or at
	// the very start), before any tombstones that follow it, where what
	// it replaces stood: its origins are that element and the one after
	// it, tombstone or not.
	at, prev, ok := s.t.begin(), cursor{}, pos > 0
	if ok {
		prev = s.t.visibleAt(pos - 1)
		r.left = prev.elem()
		at = prev.step(1)
	}
	if !at.atEnd() {
		r.right = at.elem()
	}
	ins = Insert[E]{ID: s.toID(r.id(0)), Left: s.toID(r.left), Right: s.toID(r.right), Content: content}
	var last cursor
	switch {
	case ok && prev.off == prev.run().n-1 && s.extend(prev.leaf, prev.i, &r, content):
		// Typing at the end of a run that r continues.
		last = cursor{leaf: prev.leaf, i: prev.i, off: prev.off + r.n}
	case ok && prev.off == prev.run().n-1:
		// At the end of a run: the new run goes after it, in its leaf.
		last = s.insertAt(cursor{leaf: prev.leaf, i: prev.i + 1}, item[E]{run: r, content: content})
	default:
		last = s.insertAt(at, item[E]{run: r, content: content})
	}
	s.t.setHot(last, pos+r.n-1)
	return ins, nil
}

// typing is Insert's fast path: content typed right after the last
// element self inserted, with nothing else changed since. That element
// ends self's latest run, which content extends.
func (s *Seq[E]) typing(ins *Insert[E], self Replica, pos int, content []E) bool {
	h := &s.t.hot
	if !h.ok || h.pos != pos-1 || self != s.lastRep || len(content) == 0 {
		return false
	}
	leaf, a := s.t.cache.leaf, s.lastA
	p := &leaf.runs[h.i]
	k := len(content)
	if p.a != a || h.off != p.n-1 || p.deleted || p.end() != s.high[a] || int(p.off)+p.n != len(s.arena) || uint64(s.high[a])+uint64(k) > MaxClock {
		return false
	}
	c := s.high[a]
	if k == 1 {
		s.arena = append(s.arena, content[0])
	} else {
		s.arena = append(s.arena, content...)
	}
	p.n += k
	s.high[a] += uint32(k)
	for n := leaf; n != nil; n = n.parent {
		n.vis += k
		n.tot += k
	}
	h.off += k
	h.pos += k
	ins.ID = ID{self, uint64(c)}
	ins.Left = ID{self, uint64(c - 1)}
	ins.Right = s.toID(p.right)
	ins.Content = content
	return true
}

// extend appends r, with its content, to run i of leaf if r continues it:
// the fast path of typing.
func (s *Seq[E]) extend(leaf *node, i int, r *run, content []E) bool {
	p := &leaf.runs[i]
	if !p.canAppend(r) {
		return false
	}
	if !p.deleted {
		s.appendContent(p, content)
	}
	p.n += r.n
	s.t.count(leaf, r.vis(), r.n)
	return true
}

// appendContent appends content to live run p's elements in the arena,
// moving them to the arena's end first if they are not there.
func (s *Seq[E]) appendContent(p *run, content []E) {
	if int(p.off)+p.n != len(s.arena) {
		s.compactIfSparse()
		if int(p.off)+p.n != len(s.arena) {
			off := s.arenaEnd()
			s.arena = append(s.arena, s.content(p)...)
			p.off = off
		}
	}
	s.arena = append(s.arena, content...)
}

// compactIfSparse rewrites the arena with only the live runs' content
// when most of it is garbage (deleted or moved content).
func (s *Seq[E]) compactIfSparse() {
	live := s.Len()
	if len(s.arena) < 4096 || len(s.arena) < 3*live {
		return
	}
	arena := make([]E, 0, 2*live+1024)
	for l := s.t.first; l != nil; l = l.next {
		for i := range l.runs {
			if r := &l.runs[i]; !r.deleted {
				off := uint32(len(arena))
				arena = append(arena, s.content(r)...)
				r.off = off
			}
		}
	}
	s.arena = arena
}

// insertAt inserts it at cursor c: before the element at c, or at the
// end. It appends it to the run before c instead when it continues it.
// It returns the cursor at it's last element.
func (s *Seq[E]) insertAt(c cursor, it item[E]) cursor {
	if c.off == 0 && c.i > 0 && s.extend(c.leaf, c.i-1, &it.run, it.content) {
		return cursor{leaf: c.leaf, i: c.i - 1, off: c.leaf.runs[c.i-1].n - 1}
	}
	if !it.deleted {
		s.compactIfSparse()
		it.off = s.arenaEnd()
		s.arena = append(s.arena, it.content...)
	}
	var leaf *node
	var i int
	if c.off > 0 {
		// Inside a run: its tail goes after it, in the same insert.
		tail := c.run().split(c.off)
		leaf, i = s.t.insertRuns(c.leaf, c.i+1, it.vis(), it.n, it.run, tail)
	} else {
		leaf, i = s.t.insertRuns(c.leaf, c.i, it.vis(), it.n, it.run)
	}
	return cursor{leaf: leaf, i: i, off: it.n - 1}
}

// Delete deletes n visible elements from index pos on and returns the
// deleted ids, to send to other replicas.
func (s *Seq[E]) Delete(pos, n int) ([]Span, error) {
	if pos < 0 || n < 0 || pos > s.Len()-n {
		return nil, fmt.Errorf("%w: delete %d at %d in %d elements", ErrRange, n, pos, s.Len())
	}
	var buf [4]span
	out := buf[:0]
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
func (s *Seq[E]) deleteAt(c cursor, k int) {
	r := c.run()
	if r.deleted {
		return
	}
	switch {
	case c.off == 0 && k == r.n:
		r.deleted = true
		s.t.count(c.leaf, -k, 0)
	case c.off == 0:
		tail := r.split(k)
		r.deleted = true
		leaf, i := s.t.insertRuns(c.leaf, c.i+1, -k, 0, tail)
		c = s.t.prevRun(cursor{leaf: leaf, i: i})
	default:
		// The deleted part, and the rest after it, go after the head in
		// one insert.
		mid := r.split(c.off)
		if k < mid.n {
			tail := mid.split(k)
			mid.deleted = true
			c.leaf, c.i = s.t.insertRuns(c.leaf, c.i+1, -k, 0, mid, tail)
		} else {
			mid.deleted = true
			c.leaf, c.i = s.t.insertRuns(c.leaf, c.i+1, -k, 0, mid)
		}
	}
	s.mergeAround(c.leaf, c.i)
}

// mergeAround merges deleted run i of leaf with its deleted neighbours in
// the leaf where they continue each other, which keeps deleted stretches
// one run.
func (s *Seq[E]) mergeAround(leaf *node, i int) {
	if i+1 < len(leaf.runs) && leaf.runs[i].canAppend(&leaf.runs[i+1]) {
		leaf.runs[i].n += leaf.runs[i+1].n
		s.t.removeRun(leaf, i+1)
	}
	if i > 0 && leaf.runs[i-1].canAppend(&leaf.runs[i]) {
		leaf.runs[i-1].n += leaf.runs[i].n
		s.t.removeRun(leaf, i)
	}
}

// Clone returns a deep copy of s. The copy shares element content with s,
// which neither ever modifies.
func (s *Seq[E]) Clone() *Seq[E] {
	c := &Seq[E]{t: s.t.clone(), arena: s.arena[:len(s.arena):len(s.arena)]}
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
func (s *Seq[E]) lookup(id eid) (cursor, bool) {
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
