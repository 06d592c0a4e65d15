package seq

import (
	"cmp"
	"fmt"
	"slices"
)

// ApplyInsert joins a remote insert into s. Elements s already holds are
// skipped (applying an insert twice changes nothing); elements whose
// origins s does not hold yet wait, in s, until they arrive. s may keep
// ins.Content, which it never modifies. It returns an error, and changes
// nothing, for an insert by the zero replica or with clocks beyond
// MaxClock.
func (s *Seq[E]) ApplyInsert(ins Insert[E]) error {
	if err := checkInsert(ins.ID, len(ins.Content)); err != nil {
		return err
	}
	if len(ins.Content) == 0 {
		return nil
	}
	it := item[E]{
		run: run{
			a: s.agent(ins.ID.Replica), c: uint32(ins.ID.Clock), n: len(ins.Content),
			left: s.fromID(ins.Left), right: s.fromID(ins.Right),
		},
		content: ins.Content[:len(ins.Content):len(ins.Content)],
	}
	s.mergeRuns([]item[E]{it}, nil)
	return nil
}

func checkInsert(id ID, n int) error {
	if id.IsZero() {
		return ErrZeroReplica
	}
	if id.Clock >= MaxClock || uint64(n) > MaxClock-id.Clock {
		return fmt.Errorf("%w: %d elements from clock %d", ErrClockExhausted, n, id.Clock)
	}
	return nil
}

// ApplyDelete joins a remote delete into s: the elements in spans are
// deleted, now or when they arrive. It returns an error, and changes
// nothing, for a span of the zero replica, of no elements, or beyond
// MaxClock.
func (s *Seq[E]) ApplyDelete(spans []Span) error {
	dels := make([]span, 0, len(spans))
	for _, sp := range spans {
		if sp.N == 0 {
			return fmt.Errorf("%w: empty span", ErrRange)
		}
		if err := checkInsert(sp.ID, int(min(sp.N, MaxClock+1))); err != nil {
			return err
		}
	}
	for _, sp := range spans {
		dels = append(dels, span{s.agent(sp.ID.Replica), uint32(sp.ID.Clock), uint32(sp.N)})
	}
	s.mergeRuns(nil, dels)
	return nil
}

// Merge joins o into s: afterwards s holds every element and every delete
// either held. Merge is commutative, associative and idempotent: the
// result's encoding does not depend on the order of merges. s may share
// element content with o afterwards; neither ever modifies it.
func (s *Seq[E]) Merge(o *Seq[E]) {
	if o == nil || o.agentOf == nil {
		return
	}
	if s.isEmpty() {
		*s = *o.Clone()
		return
	}
	s.mergeFrom(o)
}

// mergeFrom joins o into s by integrating o's runs and deletes one by one.
func (s *Seq[E]) mergeFrom(o *Seq[E]) {
	s.init()
	m := make([]uint32, len(o.agents))
	for a := 1; a < len(o.agents); a++ {
		m[a] = s.agent(o.agents[a])
	}
	conv := func(r run, content []E) item[E] {
		r.a = m[r.a]
		r.left.a, r.right.a = m[r.left.a], m[r.right.a]
		return item[E]{run: r, content: content}
	}
	cands := make([]item[E], 0, 16)
	for l := o.t.first; l != nil; l = l.next {
		for i := range l.runs {
			r := &l.runs[i]
			var content []E
			if !r.deleted {
				content = o.content(r)
			}
			cands = append(cands, conv(*r, content))
		}
	}
	for _, p := range o.pending {
		cands = append(cands, conv(p.run, p.content))
	}
	dels := make([]span, len(o.pendDel))
	for i, d := range o.pendDel {
		dels[i] = span{m[d.a], d.c, d.n}
	}
	s.mergeRuns(cands, dels)
}

// isEmpty reports whether s holds nothing at all.
func (s *Seq[E]) isEmpty() bool {
	return (s.t.root == nil || s.t.root.tot == 0) && len(s.pending) == 0 && len(s.pendDel) == 0
}

// mergeRuns joins the candidate runs and deleted spans into s: the parts
// of the runs s lacks are integrated as soon as their origins are, or kept
// pending, and the deletes are applied to what s holds or kept pending.
func (s *Seq[E]) mergeRuns(cands []item[E], dels []span) {
	s.ensureIndex()
	if len(s.pending) == 0 && (len(cands) == 0 || len(cands) == 1 && s.integrateNew(&cands[0])) {
		// The usual remote op: a delete, or an insert of elements s
		// lacks, after origins it holds.
		if len(cands) == 1 && cands[0].deleted {
			dels = append(dels, span{cands[0].a, cands[0].c, uint32(cands[0].n)})
		}
		if len(dels) > 0 || len(s.pendDel) > 0 {
			s.applyDeletes(dels)
		}
		return
	}
	cands = append(cands, s.pending...)
	s.pending = nil
	var miss []item[E]
	for i := range cands {
		x := &cands[i]
		if x.deleted {
			dels = append(dels, span{x.a, x.c, uint32(x.n)})
		}
		miss = s.missing(x, miss)
	}
	miss = dedupe(miss)
	for i := range miss {
		if r := &miss[i]; r.end() > s.high[r.a] {
			s.high[r.a] = r.end()
		}
	}
	s.resolve(miss)
	if len(dels) > 0 || len(s.pendDel) > 0 {
		s.applyDeletes(dels)
	}
}

// integrateNew integrates x if s holds none of its elements and both its
// origins, and reports whether it did.
func (s *Seq[E]) integrateNew(x *item[E]) bool {
	if _, held := s.t.find(eid{x.a, x.c}); held || s.t.nextStart(x.a, x.c) < uint64(x.end()) || s.missingOrigin(&x.run) != none {
		return false
	}
	if x.end() > s.high[x.a] {
		s.high[x.a] = x.end()
	}
	s.integrate(*x)
	return true
}

// missing appends to out the parts of x that s has not integrated.
func (s *Seq[E]) missing(x *item[E], out []item[E]) []item[E] {
	for c := x.c; c < x.end(); {
		if cur, ok := s.t.find(eid{x.a, c}); ok {
			c = min(x.end(), cur.run().end())
			continue
		}
		g := uint32(min(uint64(x.end()), s.t.nextStart(x.a, c)))
		off, end := int(c-x.c), int(g-x.c)
		p := item[E]{run: run{a: x.a, c: c, n: end - off, deleted: x.deleted, left: x.leftOf(off), right: x.right}}
		if !x.deleted {
			p.content = x.content[off:end:end]
		}
		out = append(out, p)
		c = g
	}
	return out
}

// dedupe sorts items by id and drops the parts of each that an earlier
// one holds.
func dedupe[E any](items []item[E]) []item[E] {
	if len(items) < 2 {
		return items
	}
	slices.SortFunc(items, func(x, y item[E]) int {
		if c := cmp.Compare(x.a, y.a); c != 0 {
			return c
		}
		return cmp.Compare(x.c, y.c)
	})
	out := items[:1]
	for _, it := range items[1:] {
		p := &out[len(out)-1]
		if it.a == p.a && it.c < p.end() {
			if it.end() <= p.end() {
				continue
			}
			it = it.split(int(p.end() - it.c))
		}
		out = append(out, it)
	}
	return out
}

// resolve integrates the runs whose origins s holds, then those whose
// origins that made available, and so on; what is left waits in
// s.pending.
func (s *Seq[E]) resolve(items []item[E]) {
	var waiting map[eid][]item[E]
	stack := slices.Clone(items)
	slices.Reverse(stack)
	for len(stack) > 0 {
		r := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if dep := s.missingOrigin(&r.run); dep != none {
			if waiting == nil {
				waiting = map[eid][]item[E]{}
			}
			waiting[dep] = append(waiting[dep], r)
			continue
		}
		s.integrate(r)
		if len(waiting) == 0 {
			continue
		}
		for c := r.c; c < r.end(); c++ {
			if ws, ok := waiting[eid{r.a, c}]; ok {
				delete(waiting, eid{r.a, c})
				stack = append(stack, ws...)
			}
		}
	}
	for _, ws := range waiting {
		s.pending = append(s.pending, ws...)
	}
	s.pending = dedupe(s.pending)
}

// missingOrigin returns an origin of r that s has not integrated, or none.
func (s *Seq[E]) missingOrigin(r *run) eid {
	for _, o := range [2]eid{r.left, r.right} {
		if o.a == 0 {
			continue
		}
		if _, ok := s.t.find(o); !ok {
			return o
		}
	}
	return none
}

// integrate places run nr, whose origins s holds and whose elements it
// does not, by the rule of Yjs as modified by Gentle ("YjsMod", the rule
// of Diamond types and Eg-walker), which orders concurrent inserts as
// FugueMax does (Weidner and Kleppmann). It scans the elements between
// nr's origins, which are exactly those inserted concurrently with nr:
// positions are counted over all elements, tombstones included.
func (s *Seq[E]) integrate(nr item[E]) {
	if s.integrateAdjacent(nr) {
		return
	}
	tot := s.t.root.tot
	leftPos := -1
	cur := s.t.begin()
	if nr.left.a != 0 {
		lc, _ := s.t.find(nr.left)
		leftPos = s.t.position(lc, false)
		cur = lc.step(1)
	}
	rightPos := s.posRight(nr.right)
	dest, scanning := cur, false
	for pos := leftPos + 1; ; {
		if !scanning {
			dest = cur
		}
		if pos >= tot || pos == rightPos || cur.atEnd() {
			break
		}
		o := cur.run()
		oleft := pos - 1
		if cur.off == 0 {
			oleft = s.posLeft(o.left)
		}
		if oleft < leftPos {
			break
		}
		if oleft > leftPos {
			// Neither this element nor the rest of its run (whose left
			// origins are the elements before them) is a sibling of nr.
			k := cur.restOfRun()
			if rightPos > pos && rightPos-pos < k {
				k = rightPos - pos
			}
			cur, pos = cur.step(k), pos+k
			continue
		}
		oright := s.posRight(o.right)
		if oright == rightPos && s.precedes(nr.id(0), o.id(cur.off)) {
			break
		}
		scanning = oright < rightPos
		cur, pos = cur.step(1), pos+1
	}
	s.insertAt(dest, nr)
}

// integrateAdjacent is integrate's fast path: when nr's origins are
// still adjacent, nothing was inserted concurrently between them, and nr
// goes right between them.
func (s *Seq[E]) integrateAdjacent(nr item[E]) bool {
	if nr.left.a == 0 {
		first := s.t.begin()
		if first.atEnd() && nr.right.a == 0 || !first.atEnd() && first.elem() == nr.right {
			s.insertAt(first, nr)
			return true
		}
		return false
	}
	lc, _ := s.t.find(nr.left)
	next := lc.step(1)
	if !(next.atEnd() && nr.right.a == 0 || !next.atEnd() && next.elem() == nr.right) {
		return false
	}
	if lc.off == lc.run().n-1 {
		// After the last element of its run: in the same leaf, where nr
		// may extend that run.
		s.insertAt(cursor{leaf: lc.leaf, i: lc.i + 1}, nr)
	} else {
		s.insertAt(next, nr)
	}
	return true
}

// precedes orders two concurrent elements with the same origins: by
// replica, then (for hostile input only) by clock.
func (s *Seq[E]) precedes(x, y eid) bool {
	if c := s.agents[x.a].Compare(s.agents[y.a]); c != 0 {
		return c < 0
	}
	return x.c < y.c
}

// applyDeletes deletes the elements in dels and in s.pendDel that s holds,
// integrated or pending, and keeps the rest in s.pendDel.
func (s *Seq[E]) applyDeletes(dels []span) {
	dels = append(dels, s.pendDel...)
	s.pendDel = nil
	var keep []span
	for _, d := range dels {
		for c, end := d.c, d.c+d.n; c < end; {
			if cur, ok := s.t.find(eid{d.a, c}); ok {
				k := min(int(end-c), cur.restOfRun())
				s.deleteAt(cur, k)
				c += uint32(k)
				continue
			}
			if k := s.deletePending(d.a, c, end); k > 0 {
				c += k
				continue
			}
			g := uint32(min(uint64(end), s.t.nextStart(d.a, c), s.nextPending(d.a, c)))
			keep = append(keep, span{d.a, c, g - c})
			c = g
		}
	}
	s.pendDel = normalizeSpans(keep)
}

// deletePending deletes the elements of agent a from clock c on (below
// end) held by the pending run containing c, and returns how many
// elements that run held from c on (0 if no pending run holds c).
func (s *Seq[E]) deletePending(a, c, end uint32) uint32 {
	i := slices.IndexFunc(s.pending, func(r item[E]) bool { return r.has(eid{a, c}) })
	if i < 0 {
		return 0
	}
	r := s.pending[i]
	k := min(end, r.end()) - c
	if r.deleted {
		return k
	}
	var parts []item[E]
	if off := int(c - r.c); off > 0 {
		head := r
		r = head.split(off)
		parts = append(parts, head)
	}
	var tail *item[E]
	if int(k) < r.n {
		t := r.split(int(k))
		tail = &t
	}
	r.deleted, r.content = true, nil
	parts = append(parts, r)
	if tail != nil {
		parts = append(parts, *tail)
	}
	s.pending = slices.Replace(s.pending, i, i+1, parts...)
	return k
}

// nextPending returns the first clock above c at which agent a has a
// pending run, or MaxClock.
func (s *Seq[E]) nextPending(a, c uint32) uint64 {
	next := uint64(MaxClock)
	for i := range s.pending {
		if r := &s.pending[i]; r.a == a && r.c > c {
			next = min(next, uint64(r.c))
		}
	}
	return next
}

// normalizeSpans sorts spans and merges those that overlap or touch.
func normalizeSpans(spans []span) []span {
	if len(spans) == 0 {
		return nil
	}
	slices.SortFunc(spans, func(x, y span) int {
		if c := cmp.Compare(x.a, y.a); c != 0 {
			return c
		}
		return cmp.Compare(x.c, y.c)
	})
	out := spans[:1]
	for _, sp := range spans[1:] {
		p := &out[len(out)-1]
		if sp.a == p.a && sp.c <= p.c+p.n {
			p.n = max(p.c+p.n, sp.c+sp.n) - p.c
			continue
		}
		out = append(out, sp)
	}
	return out
}
