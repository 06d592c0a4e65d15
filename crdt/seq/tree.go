package seq

import "slices"

// The elements of a sequence, tombstones included, are held in document
// order as runs (see run) in the leaves of a B-tree. Every node counts the
// visible and the total elements below it, so the element at a visible
// index is found in O(log n) steps, and so is the position of an element
// reached through the id index.

const (
	maxLeafRuns = 32 // runs in one leaf
	maxChildren = 16 // children of one inner node
)

// eid is an element id inside one Seq: the agent (an index into Seq.agents,
// from 1; 0 is no element) and the clock.
type eid struct {
	a uint32
	c uint32
}

var none eid

// run is a maximal-ish range of elements one agent inserted one after the
// other: ids (a, c) … (a, c+n-1). Its first element's left origin is left;
// each other element's left origin is the element before it; every
// element's right origin is right. Content holds the n elements, or is nil
// once the run is deleted: a deleted element's content is never needed
// again.
type run[E any] struct {
	a       uint32
	c       uint32
	n       int
	deleted bool
	left    eid
	right   eid
	content []E
}

func (r *run[E]) id(off int) eid { return eid{r.a, r.c + uint32(off)} }
func (r *run[E]) last() eid      { return eid{r.a, r.c + uint32(r.n) - 1} }
func (r *run[E]) end() uint32    { return r.c + uint32(r.n) }
func (r *run[E]) vis() int {
	if r.deleted {
		return 0
	}
	return r.n
}

// has reports whether the run holds element id.
func (r *run[E]) has(id eid) bool { return id.a == r.a && id.c >= r.c && id.c-r.c < uint32(r.n) }

// leftOf returns the left origin of the run's element at off.
func (r *run[E]) leftOf(off int) eid {
	if off == 0 {
		return r.left
	}
	return r.id(off - 1)
}

// canAppend reports whether o continues r: o's first element follows r's
// last one in id, has it as its left origin, and both share a right origin
// and a deleted state. Such runs are one run in the canonical form.
func (r *run[E]) canAppend(o *run[E]) bool {
	return o.a == r.a && o.c == r.end() && o.left == r.last() && o.right == r.right && o.deleted == r.deleted
}

// split cuts r before off (0 < off < n) and returns the tail.
func (r *run[E]) split(off int) run[E] {
	t := run[E]{a: r.a, c: r.c + uint32(off), n: r.n - off, deleted: r.deleted, left: r.id(off - 1), right: r.right}
	if !r.deleted {
		t.content = r.content[off:]
		// Cap the head so that appending to it never writes into the tail.
		r.content = r.content[:off:off]
	}
	r.n = off
	return t
}

type node[E any] struct {
	parent     *node[E]
	children   []*node[E] // inner nodes only
	runs       []run[E]   // leaves only
	next, prev *node[E]   // leaves only, in document order
	vis, tot   int
}

func (n *node[E]) leaf() bool { return n.children == nil }

// add adds dv visible and dt total elements to n and its ancestors.
func (n *node[E]) add(dv, dt int) {
	for ; n != nil; n = n.parent {
		n.vis += dv
		n.tot += dt
	}
}

func (n *node[E]) childIndex(c *node[E]) int {
	for i, x := range n.children {
		if x == c {
			return i
		}
	}
	panic("seq: child not found in its parent")
}

// cursor is a place in the document: the element at offset off of run i
// of leaf. At the end of the document, leaf is the last leaf and i is
// len(leaf.runs).
type cursor[E any] struct {
	leaf *node[E]
	i    int
	off  int
}

func (c cursor[E]) atEnd() bool    { return c.i >= len(c.leaf.runs) }
func (c cursor[E]) run() *run[E]   { return &c.leaf.runs[c.i] }
func (c cursor[E]) elem() eid      { return c.run().id(c.off) }
func (c cursor[E]) isStart() bool  { return c.off == 0 }
func (c cursor[E]) restOfRun() int { return c.run().n - c.off }

// step moves c forward by k elements, k at most the rest of its run.
func (c cursor[E]) step(k int) cursor[E] {
	c.off += k
	if c.off >= c.run().n {
		c.off = 0
		c.i++
		if c.i == len(c.leaf.runs) && c.leaf.next != nil {
			c.leaf, c.i = c.leaf.next, 0
		}
	}
	return c
}

// tree holds the B-tree and its bookkeeping.
type tree[E any] struct {
	root        *node[E]
	first, last *node[E]
	// idx, when not nil, maps each agent's runs to their leaves.
	idx [][]ientry[E]
}

// ientry says that the run starting at clock c lives in leaf.
type ientry[E any] struct {
	c    uint32
	leaf *node[E]
}

func (t *tree[E]) init() {
	if t.root == nil {
		l := &node[E]{runs: make([]run[E], 0, 4)}
		t.root, t.first, t.last = l, l, l
	}
}

func (t *tree[E]) begin() cursor[E] { return cursor[E]{leaf: t.first} }
func (t *tree[E]) end() cursor[E]   { return cursor[E]{leaf: t.last, i: len(t.last.runs)} }

// visibleAt returns the cursor at the visible element with index pos,
// 0 ≤ pos < root.vis.
func (t *tree[E]) visibleAt(pos int) cursor[E] {
	n := t.root
	for !n.leaf() {
		next := n.children[len(n.children)-1]
		for _, c := range n.children {
			if pos < c.vis {
				next = c
				break
			}
			pos -= c.vis
		}
		n = next
	}
	for i := range n.runs {
		r := &n.runs[i]
		if r.deleted {
			continue
		}
		if pos < r.n {
			return cursor[E]{leaf: n, i: i, off: pos}
		}
		pos -= r.n
	}
	panic("seq: visible index beyond its leaf")
}

// position returns the number of elements before c, tombstones included
// (vis false), or visible elements only (vis true).
func (t *tree[E]) position(c cursor[E], vis bool) int {
	p := 0
	if !vis || !c.atEnd() && !c.run().deleted {
		p = c.off
	}
	for j := 0; j < c.i && j < len(c.leaf.runs); j++ {
		if vis {
			p += c.leaf.runs[j].vis()
		} else {
			p += int(c.leaf.runs[j].n)
		}
	}
	for n := c.leaf; n.parent != nil; n = n.parent {
		for _, s := range n.parent.children {
			if s == n {
				break
			}
			if vis {
				p += s.vis
			} else {
				p += s.tot
			}
		}
	}
	return p
}

// next returns the cursor at the element after c (the end if none).
func (t *tree[E]) next(c cursor[E]) cursor[E] { return c.step(1) }

// insertRun inserts r at index i of leaf. counted says that leaf and its
// ancestors already count r's elements (r is the tail of a split). It
// returns where r is afterwards: a full leaf splits.
func (t *tree[E]) insertRun(leaf *node[E], i int, r run[E], counted bool) (*node[E], int) {
	leaf.runs = slices.Insert(leaf.runs, i, r)
	if !counted {
		leaf.add(r.vis(), r.n)
	}
	if t.idx != nil {
		t.indexAdd(r.a, r.c, leaf)
	}
	if len(leaf.runs) <= maxLeafRuns {
		return leaf, i
	}
	nl := t.splitLeaf(leaf)
	if i >= len(leaf.runs) {
		return nl, i - len(leaf.runs)
	}
	return leaf, i
}

// removeRun removes run i of leaf, whose elements the caller has moved
// elsewhere in the same leaf (a merge of two runs): counts are unchanged.
func (t *tree[E]) removeRun(leaf *node[E], i int) {
	if t.idx != nil {
		r := &leaf.runs[i]
		t.indexRemove(r.a, r.c)
	}
	leaf.runs = slices.Delete(leaf.runs, i, i+1)
}

// splitRun splits the run at c before c.off (c.off > 0) and returns the
// cursor at the first element of the tail.
func (t *tree[E]) splitRun(c cursor[E]) cursor[E] {
	tail := c.run().split(c.off)
	leaf, i := t.insertRun(c.leaf, c.i+1, tail, true)
	return cursor[E]{leaf: leaf, i: i}
}

// prevRun returns the cursor at the first element of the run before the
// one at c, which must not be the first run.
func (t *tree[E]) prevRun(c cursor[E]) cursor[E] {
	if c.i > 0 {
		return cursor[E]{leaf: c.leaf, i: c.i - 1}
	}
	p := c.leaf.prev
	return cursor[E]{leaf: p, i: len(p.runs) - 1}
}

func (t *tree[E]) splitLeaf(leaf *node[E]) *node[E] {
	half := len(leaf.runs) / 2
	nl := &node[E]{parent: leaf.parent, runs: make([]run[E], 0, maxLeafRuns+1)}
	nl.runs = append(nl.runs, leaf.runs[half:]...)
	clear(leaf.runs[half:])
	leaf.runs = leaf.runs[:half]
	for i := range nl.runs {
		r := &nl.runs[i]
		nl.vis += r.vis()
		nl.tot += r.n
		if t.idx != nil {
			t.indexMove(r.a, r.c, nl)
		}
	}
	leaf.vis -= nl.vis
	leaf.tot -= nl.tot
	nl.next, nl.prev = leaf.next, leaf
	if nl.next != nil {
		nl.next.prev = nl
	}
	leaf.next = nl
	if t.last == leaf {
		t.last = nl
	}
	t.insertChild(leaf, nl)
	return nl
}

// insertChild inserts nn after n in n's parent (a new root if n is the
// root); nn's counts are already included in the ancestors, except for a
// new root.
func (t *tree[E]) insertChild(n, nn *node[E]) {
	p := n.parent
	if p == nil {
		root := &node[E]{children: []*node[E]{n, nn}, vis: n.vis + nn.vis, tot: n.tot + nn.tot}
		n.parent, nn.parent = root, root
		t.root = root
		return
	}
	nn.parent = p
	p.children = slices.Insert(p.children, p.childIndex(n)+1, nn)
	if len(p.children) <= maxChildren {
		return
	}
	half := len(p.children) / 2
	np := &node[E]{children: slices.Clone(p.children[half:])}
	clear(p.children[half:])
	p.children = p.children[:half]
	for _, c := range np.children {
		c.parent = np
		np.vis += c.vis
		np.tot += c.tot
	}
	p.vis -= np.vis
	p.tot -= np.tot
	np.parent = p.parent
	t.insertChild(p, np)
}

// The id index: per agent, its runs' first clocks, sorted, with their
// leaves. It is built on first use (local edits by position never need it)
// and kept up to date from then on.

func (t *tree[E]) buildIndex(agents int) {
	t.idx = make([][]ientry[E], agents)
	for l := t.first; l != nil; l = l.next {
		for i := range l.runs {
			r := &l.runs[i]
			t.idx[r.a] = append(t.idx[r.a], ientry[E]{r.c, l})
		}
	}
	for _, es := range t.idx {
		slices.SortFunc(es, func(x, y ientry[E]) int { return int64cmp(x.c, y.c) })
	}
}

func int64cmp(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (t *tree[E]) growIndex(agents int) {
	for len(t.idx) < agents {
		t.idx = append(t.idx, nil)
	}
}

// search returns the index of the first entry of a with a clock above c.
func (t *tree[E]) search(a uint32, c uint32) int {
	es := t.idx[a]
	lo, hi := 0, len(es)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if es[m].c <= c {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (t *tree[E]) indexAdd(a uint32, c uint32, leaf *node[E]) {
	t.growIndex(int(a) + 1)
	es := t.idx[a]
	if n := len(es); n == 0 || es[n-1].c < c {
		t.idx[a] = append(es, ientry[E]{c, leaf})
		return
	}
	j := t.search(a, c)
	t.idx[a] = slices.Insert(es, j, ientry[E]{c, leaf})
}

func (t *tree[E]) indexMove(a uint32, c uint32, leaf *node[E]) {
	j := t.search(a, c) - 1
	t.idx[a][j].leaf = leaf
}

func (t *tree[E]) indexRemove(a uint32, c uint32) {
	j := t.search(a, c) - 1
	t.idx[a] = slices.Delete(t.idx[a], j, j+1)
}

// find returns the cursor at element id, if the tree holds it.
func (t *tree[E]) find(id eid) (cursor[E], bool) {
	if int(id.a) >= len(t.idx) {
		return cursor[E]{}, false
	}
	j := t.search(id.a, id.c) - 1
	if j < 0 {
		return cursor[E]{}, false
	}
	leaf := t.idx[id.a][j].leaf
	for i := range leaf.runs {
		if r := &leaf.runs[i]; r.has(id) {
			return cursor[E]{leaf: leaf, i: i, off: int(id.c - r.c)}, true
		}
	}
	return cursor[E]{}, false
}

// nextStart returns the first clock above c at which agent a has a run in
// the tree, or MaxClock.
func (t *tree[E]) nextStart(a uint32, c uint32) uint64 {
	if int(a) >= len(t.idx) {
		return MaxClock
	}
	j := t.search(a, c)
	if j == len(t.idx[a]) {
		return MaxClock
	}
	return uint64(t.idx[a][j].c)
}

// clone returns a deep copy of the tree (without its index). Content
// slices are shared, capped so that appending to either copy's runs
// reallocates.
func (t *tree[E]) clone() tree[E] {
	var out tree[E]
	if t.root == nil {
		return out
	}
	var prev *node[E]
	var walk func(n, parent *node[E]) *node[E]
	walk = func(n, parent *node[E]) *node[E] {
		c := &node[E]{parent: parent, vis: n.vis, tot: n.tot}
		if n.leaf() {
			c.runs = make([]run[E], len(n.runs), max(len(n.runs), 4))
			copy(c.runs, n.runs)
			for i := range c.runs {
				if r := &c.runs[i]; r.content != nil {
					r.content = r.content[:r.n:r.n]
				}
			}
			c.prev = prev
			if prev != nil {
				prev.next = c
			} else {
				out.first = c
			}
			prev = c
			return c
		}
		c.children = make([]*node[E], len(n.children))
		for i, ch := range n.children {
			c.children[i] = walk(ch, c)
		}
		return c
	}
	out.root = walk(t.root, nil)
	out.last = prev
	return out
}

// build fills an empty tree with runs, in order.
func (t *tree[E]) build(runs []run[E]) {
	t.root, t.first, t.last, t.idx = nil, nil, nil, nil
	if len(runs) == 0 {
		t.init()
		return
	}
	const perLeaf, perNode = maxLeafRuns * 3 / 4, maxChildren * 3 / 4
	var level []*node[E]
	var prev *node[E]
	for i := 0; i < len(runs); i += perLeaf {
		l := &node[E]{runs: make([]run[E], 0, maxLeafRuns+1), prev: prev}
		l.runs = append(l.runs, runs[i:min(i+perLeaf, len(runs))]...)
		for j := range l.runs {
			l.vis += l.runs[j].vis()
			l.tot += l.runs[j].n
		}
		if prev != nil {
			prev.next = l
		} else {
			t.first = l
		}
		prev = l
		level = append(level, l)
	}
	t.last = prev
	for len(level) > 1 {
		var up []*node[E]
		for i := 0; i < len(level); i += perNode {
			p := &node[E]{children: slices.Clone(level[i:min(i+perNode, len(level))])}
			for _, c := range p.children {
				c.parent = p
				p.vis += c.vis
				p.tot += c.tot
			}
			up = append(up, p)
		}
		level = up
	}
	t.root = level[0]
}
