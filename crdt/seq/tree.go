package seq

import (
	"cmp"
	"slices"
)

// The elements of a sequence, tombstones included, are held in document
// order as runs (see run) in the leaves of a B-tree. Every node counts the
// visible and the total elements below it, so the element at a visible
// index is found in O(log n) steps, and so is the position of an element
// reached through the id index. Runs hold no pointers (their content lives
// in the sequence's arena), so moving them is a plain memory copy.

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

// run is a range of elements one agent inserted one after the other: ids
// (a, c) … (a, c+n-1). Its first element's left origin is left; each other
// element's left origin is the element before it; every element's right
// origin is right. A live run's elements are arena[off:off+n] of its
// sequence; a deleted run's content is gone, since a deleted element's
// content is never needed again.
type run struct {
	a, c        uint32
	n           int
	off         uint32
	deleted     bool
	left, right eid
}

func (r *run) id(off int) eid { return eid{r.a, r.c + uint32(off)} }
func (r *run) last() eid      { return eid{r.a, r.c + uint32(r.n) - 1} }
func (r *run) end() uint32    { return r.c + uint32(r.n) }
func (r *run) vis() int {
	if r.deleted {
		return 0
	}
	return r.n
}

// has reports whether the run holds element id.
func (r *run) has(id eid) bool { return id.a == r.a && id.c >= r.c && id.c-r.c < uint32(r.n) }

// leftOf returns the left origin of the run's element at off.
func (r *run) leftOf(off int) eid {
	if off == 0 {
		return r.left
	}
	return r.id(off - 1)
}

// canAppend reports whether o continues r: o's first element follows r's
// last one in id, has it as its left origin, and both share a right origin
// and a deleted state. Such runs are one run in the canonical form.
func (r *run) canAppend(o *run) bool {
	return o.a == r.a && o.c == r.end() && o.left == r.last() && o.right == r.right && o.deleted == r.deleted
}

// split cuts r before off (0 < off < n) and returns the tail.
func (r *run) split(off int) run {
	t := run{a: r.a, c: r.c + uint32(off), n: r.n - off, off: r.off + uint32(off), deleted: r.deleted, left: r.id(off - 1), right: r.right}
	r.n = off
	return t
}

type node struct {
	parent     *node
	children   []*node // inner nodes only
	runs       []run   // leaves only
	next, prev *node   // leaves only, in document order
	vis, tot   int
}

func (n *node) leaf() bool { return n.children == nil }

func (n *node) childIndex(c *node) int {
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
type cursor struct {
	leaf *node
	i    int
	off  int
}

func (c cursor) atEnd() bool    { return c.i >= len(c.leaf.runs) }
func (c cursor) run() *run      { return &c.leaf.runs[c.i] }
func (c cursor) elem() eid      { return c.run().id(c.off) }
func (c cursor) restOfRun() int { return c.run().n - c.off }

// step moves c forward by k elements, k at most the rest of its run.
func (c cursor) step(k int) cursor {
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
type tree struct {
	root        *node
	first, last *node
	// idx, when not nil, maps each agent's runs to their leaves.
	idx [][]ientry
	// slab holds leaves allocated ahead.
	slab []leafNode
	// cache is the leaf of the last visible-index lookup and the visible
	// index of its first element; local edits, which touch only that
	// leaf, keep it valid.
	cache struct {
		leaf  *node
		start int
	}
	// hot is the cursor at the visible element with index hot.pos, set by
	// a local insert to its last element so that typing on does not
	// search; any other change to the tree clears it.
	// The cursor's leaf is cache.leaf: storing ints only keeps the
	// typing path free of pointer writes.
	hot struct {
		i, off, pos int
		ok          bool
	}
}

// ientry says that the run starting at clock c lives in leaf.
type ientry struct {
	c    uint32
	leaf *node
}

func (t *tree) init() {
	if t.root == nil {
		// A small sequence (an op's delta) stays small.
		l := &node{runs: make([]run, 0, 4)}
		t.root, t.first, t.last = l, l, l
	}
}

func (t *tree) begin() cursor { return cursor{leaf: t.first} }

// count adds dv visible and dt total elements to leaf and its ancestors.
func (t *tree) count(leaf *node, dv, dt int) {
	t.hot.ok = false
	if leaf != t.cache.leaf && t.cache.leaf != nil {
		t.cache.leaf = nil
	}
	for n := leaf; n != nil; n = n.parent {
		n.vis += dv
		n.tot += dt
	}
}

// visibleAt returns the cursor at the visible element with index pos,
// 0 ≤ pos < root.vis.
// setHot records c as the cursor at visible index pos, if c is in the
// cached leaf.
func (t *tree) setHot(c cursor, pos int) {
	if c.leaf == t.cache.leaf && c.leaf != nil {
		t.hot.i, t.hot.off, t.hot.pos, t.hot.ok = c.i, c.off, pos, true
	}
}

func (t *tree) visibleAt(pos int) cursor {
	if t.hot.ok && t.hot.pos == pos {
		return cursor{leaf: t.cache.leaf, i: t.hot.i, off: t.hot.off}
	}
	if l := t.cache.leaf; l != nil && pos >= t.cache.start && pos < t.cache.start+l.vis {
		return inLeaf(l, pos-t.cache.start)
	}
	n, start := t.root, 0
	for !n.leaf() {
		next := n.children[len(n.children)-1]
		for _, c := range n.children {
			if pos < c.vis {
				next = c
				break
			}
			pos -= c.vis
			start += c.vis
		}
		n = next
	}
	t.cache.leaf, t.cache.start = n, start
	t.hot.ok = false
	return inLeaf(n, pos)
}

func inLeaf(n *node, pos int) cursor {
	for i := range n.runs {
		r := &n.runs[i]
		if r.deleted {
			continue
		}
		if pos < r.n {
			return cursor{leaf: n, i: i, off: pos}
		}
		pos -= r.n
	}
	panic("seq: visible index beyond its leaf")
}

// position returns the number of elements before c, tombstones included
// (vis false), or visible elements only (vis true).
func (t *tree) position(c cursor, vis bool) int {
	p := 0
	if !vis || !c.atEnd() && !c.run().deleted {
		p = c.off
	}
	for j := 0; j < c.i && j < len(c.leaf.runs); j++ {
		if vis {
			p += c.leaf.runs[j].vis()
		} else {
			p += c.leaf.runs[j].n
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

// insertRuns inserts rs at index i of leaf, adds dv visible and dt total
// elements to the counts, and returns where rs[0] is afterwards.
func (t *tree) insertRuns(leaf *node, i int, dv, dt int, rs ...run) (*node, int) {
	t.hot.ok = false
	leaf.runs = slices.Insert(leaf.runs, i, rs...)
	if dv != 0 || dt != 0 {
		t.count(leaf, dv, dt)
	}
	if t.idx != nil {
		for _, r := range rs {
			t.indexAdd(r.a, r.c, leaf)
		}
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
func (t *tree) removeRun(leaf *node, i int) {
	t.hot.ok = false
	if t.idx != nil {
		r := &leaf.runs[i]
		t.indexRemove(r.a, r.c)
	}
	leaf.runs = slices.Delete(leaf.runs, i, i+1)
}

// prevRun returns the cursor at the first element of the run before the
// one at c, which must not be the first run.
func (t *tree) prevRun(c cursor) cursor {
	if c.i > 0 {
		return cursor{leaf: c.leaf, i: c.i - 1}
	}
	p := c.leaf.prev
	return cursor{leaf: p, i: len(p.runs) - 1}
}

// leafNode is a leaf allocated with room for its runs.
type leafNode struct {
	node
	buf [maxLeafRuns + 1]run
}

// newLeaf returns an empty leaf, from the tree's slab of leaves: a leaf
// split allocates one leaf in eight.
func (t *tree) newLeaf() *node {
	if len(t.slab) == 0 {
		t.slab = make([]leafNode, 8)
	}
	l := &t.slab[0]
	t.slab = t.slab[1:]
	l.runs = l.buf[:0]
	return &l.node
}

func (t *tree) splitLeaf(leaf *node) *node {
	half := len(leaf.runs) / 2
	nl := t.newLeaf()
	nl.parent = leaf.parent
	nl.runs = append(nl.runs, leaf.runs[half:]...)
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
func (t *tree) insertChild(n, nn *node) {
	p := n.parent
	if p == nil {
		root := &node{children: []*node{n, nn}, vis: n.vis + nn.vis, tot: n.tot + nn.tot}
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
	np := &node{children: slices.Clone(p.children[half:])}
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

// build fills an empty tree with runs, in order.
func (t *tree) build(runs []run) {
	*t = tree{}
	if len(runs) == 0 {
		t.init()
		return
	}
	const perLeaf, perNode = maxLeafRuns * 3 / 4, maxChildren * 3 / 4
	var level []*node
	var prev *node
	// The leaves share one array of runs, each capped, as in clone.
	all := slices.Clone(runs)
	leaves := make([]node, (len(runs)+perLeaf-1)/perLeaf)
	for i := 0; i < len(runs); i += perLeaf {
		l := &leaves[i/perLeaf]
		l.prev = prev
		l.runs = all[i:min(i+perLeaf, len(runs)):min(i+perLeaf, len(runs))]
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
		var up []*node
		for i := 0; i < len(level); i += perNode {
			p := &node{children: slices.Clone(level[i:min(i+perNode, len(level))])}
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

// clone returns a deep copy of the tree and its index, without its
// caches.
func (t *tree) clone() tree {
	var out tree
	if t.root == nil {
		return out
	}
	// One allocation for all runs and one for all nodes: a clone is
	// taken per merge, so it must be cheap. Each leaf's runs are capped,
	// so the first insert into a leaf gives it its own array.
	nodes, runs := 0, 0
	for l := t.first; l != nil; l = l.next {
		runs += len(l.runs)
	}
	var count func(n *node)
	count = func(n *node) {
		nodes++
		for _, c := range n.children {
			count(c)
		}
	}
	count(t.root)
	allNodes := make([]node, 0, nodes)
	allRuns := make([]run, 0, runs)
	var prev *node
	var walk func(n, parent *node) *node
	walk = func(n, parent *node) *node {
		allNodes = append(allNodes, node{parent: parent, vis: n.vis, tot: n.tot})
		c := &allNodes[len(allNodes)-1]
		if n.leaf() {
			from := len(allRuns)
			allRuns = append(allRuns, n.runs...)
			c.runs = allRuns[from:len(allRuns):len(allRuns)]
			c.prev = prev
			if prev != nil {
				prev.next = c
			} else {
				out.first = c
			}
			prev = c
			return c
		}
		c.children = make([]*node, len(n.children), maxChildren+1)
		for i, ch := range n.children {
			c.children[i] = walk(ch, c)
		}
		return c
	}
	out.root = walk(t.root, nil)
	out.last = prev
	if t.idx != nil {
		// The index, with the copy's leaves: walk both leaf lists.
		leafOf := make(map[*node]*node)
		for a, b := t.first, out.first; a != nil; a, b = a.next, b.next {
			leafOf[a] = b
		}
		out.idx = make([][]ientry, len(t.idx))
		for a, es := range t.idx {
			out.idx[a] = make([]ientry, len(es))
			for i, e := range es {
				out.idx[a][i] = ientry{e.c, leafOf[e.leaf]}
			}
		}
	}
	return out
}

// The id index: per agent, its runs' first clocks, sorted, with their
// leaves. It is built on first use (local edits by position never need it)
// and kept up to date from then on.

func (t *tree) buildIndex(agents int) {
	// Sort (clock, leaf number) pairs, which hold no pointers, then look
	// the leaves up.
	type pair struct{ c, leaf uint32 }
	pairs := make([][]pair, agents)
	var leaves []*node
	for l := t.first; l != nil; l = l.next {
		for i := range l.runs {
			r := &l.runs[i]
			pairs[r.a] = append(pairs[r.a], pair{r.c, uint32(len(leaves))})
		}
		leaves = append(leaves, l)
	}
	t.idx = make([][]ientry, agents)
	for a, ps := range pairs {
		slices.SortFunc(ps, func(x, y pair) int { return cmp.Compare(x.c, y.c) })
		es := make([]ientry, len(ps))
		for i, p := range ps {
			es[i] = ientry{p.c, leaves[p.leaf]}
		}
		t.idx[a] = es
	}
}

func (t *tree) growIndex(agents int) {
	for len(t.idx) < agents {
		t.idx = append(t.idx, nil)
	}
}

// search returns the index of the first entry of a with a clock above c.
func (t *tree) search(a uint32, c uint32) int {
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

func (t *tree) indexAdd(a uint32, c uint32, leaf *node) {
	t.growIndex(int(a) + 1)
	es := t.idx[a]
	if n := len(es); n == 0 || es[n-1].c < c {
		t.idx[a] = append(es, ientry{c, leaf})
		return
	}
	j := t.search(a, c)
	t.idx[a] = slices.Insert(es, j, ientry{c, leaf})
}

func (t *tree) indexMove(a uint32, c uint32, leaf *node) {
	j := t.search(a, c) - 1
	t.idx[a][j].leaf = leaf
}

func (t *tree) indexRemove(a uint32, c uint32) {
	j := t.search(a, c) - 1
	t.idx[a] = slices.Delete(t.idx[a], j, j+1)
}

// find returns the cursor at element id, if the tree holds it.
func (t *tree) find(id eid) (cursor, bool) {
	if int(id.a) >= len(t.idx) {
		return cursor{}, false
	}
	j := t.search(id.a, id.c) - 1
	if j < 0 {
		return cursor{}, false
	}
	leaf := t.idx[id.a][j].leaf
	for i := range leaf.runs {
		if r := &leaf.runs[i]; r.has(id) {
			return cursor{leaf: leaf, i: i, off: int(id.c - r.c)}, true
		}
	}
	return cursor{}, false
}

// nextStart returns the first clock above c at which agent a has a run in
// the tree, or MaxClock.
func (t *tree) nextStart(a uint32, c uint32) uint64 {
	if int(a) >= len(t.idx) {
		return MaxClock
	}
	j := t.search(a, c)
	if j == len(t.idx[a]) {
		return MaxClock
	}
	return uint64(t.idx[a][j].c)
}
