package seq

// A reference model: FugueMax as the tree of Weidner and Kleppmann's paper
// ("The Art of the Fugue", Algorithm 1 with the FugueMax sibling order),
// one node per element, every operation O(n). It shares nothing with the
// implementation but the op format: an element's tree parent is derived
// from its list origins (left, right): it is a left child of right if
// right is a descendant of left (the author's left origin had right
// children), and a right child of left, remembering right, otherwise.

import (
	"cmp"
	"slices"
	"strings"
)

type modelNode struct {
	id            ID
	value         rune
	deleted       bool
	parent        *modelNode
	right         bool       // a right child of parent
	rightOrigin   *modelNode // for a right child: its right origin (nil: the end)
	lefts, rights []*modelNode
}

// model is the reference: a set of elements and deletes, integrated
// whenever their origins are present.
type model struct {
	root    *modelNode
	byID    map[ID]*modelNode
	waiting []modelElem
	deleted map[ID]bool
}

// modelElem is one element of an insert.
type modelElem struct {
	id, left, right ID
	value           rune
}

func newModel() *model {
	root := &modelNode{deleted: true}
	return &model{root: root, byID: map[ID]*modelNode{{}: root}, deleted: map[ID]bool{}}
}

// insert adds the elements of ins.
func (m *model) insert(ins Insert[rune]) {
	for i, v := range ins.Content {
		id := ID{ins.ID.Replica, ins.ID.Clock + uint64(i)}
		left := ins.Left
		if i > 0 {
			left = ID{ins.ID.Replica, id.Clock - 1}
		}
		m.waiting = append(m.waiting, modelElem{id, left, ins.Right, v})
	}
	m.settle()
}

func (m *model) delete(spans []Span) {
	for _, sp := range spans {
		for i := range sp.N {
			m.deleted[ID{sp.ID.Replica, sp.ID.Clock + i}] = true
		}
	}
	m.settle()
}

// settle integrates every waiting element whose origins are present.
func (m *model) settle() {
	for progress := true; progress; {
		progress = false
		for i := 0; i < len(m.waiting); i++ {
			e := m.waiting[i]
			if _, dup := m.byID[e.id]; dup {
				m.waiting = slices.Delete(m.waiting, i, i+1)
				i--
				continue
			}
			l, lok := m.byID[e.left]
			r, rok := m.byID[e.right]
			if !lok || !rok {
				continue
			}
			if e.right.IsZero() {
				r = nil
			}
			m.add(e, l, r)
			m.waiting = slices.Delete(m.waiting, i, i+1)
			i--
			progress = true
		}
	}
	for id := range m.deleted {
		if n, ok := m.byID[id]; ok && n != m.root {
			n.deleted = true
		}
	}
}

func (m *model) descends(n, anc *modelNode) bool {
	for ; n != nil; n = n.parent {
		if n == anc {
			return true
		}
	}
	return false
}

func (m *model) add(e modelElem, l, r *modelNode) {
	n := &modelNode{id: e.id, value: e.value}
	m.byID[e.id] = n
	if r != nil && m.descends(r, l) {
		n.parent = r
		// Left siblings: by replica.
		i, _ := slices.BinarySearchFunc(r.lefts, n, func(x, y *modelNode) int { return x.id.Compare(y.id) })
		r.lefts = slices.Insert(r.lefts, i, n)
		return
	}
	n.parent, n.right, n.rightOrigin = l, true, r
	// Right siblings: in reverse order of their right origins, ties by
	// replica.
	order := m.order()
	rank := func(x *modelNode) int {
		if x == nil {
			return len(order)
		}
		return slices.Index(order, x)
	}
	i := 0
	for ; i < len(l.rights); i++ {
		s := l.rights[i]
		c := cmp.Compare(rank(s.rightOrigin), rank(n.rightOrigin))
		if c < 0 || c == 0 && n.id.Compare(s.id) < 0 {
			break
		}
	}
	l.rights = slices.Insert(l.rights, i, n)
}

// order returns every node (tombstones included, root excluded) in
// traversal order.
func (m *model) order() []*modelNode {
	var out []*modelNode
	var walk func(n *modelNode)
	walk = func(n *modelNode) {
		for _, c := range n.lefts {
			walk(c)
		}
		if n != m.root {
			out = append(out, n)
		}
		for _, c := range n.rights {
			walk(c)
		}
	}
	walk(m.root)
	return out
}

func (m *model) text() string {
	var b strings.Builder
	for _, n := range m.order() {
		if !n.deleted {
			b.WriteRune(n.value)
		}
	}
	return b.String()
}

// visibleIndex returns the number of visible elements before id, and
// whether id is integrated and visible.
func (m *model) visibleIndex(id ID) (int, bool, bool) {
	i := 0
	for _, n := range m.order() {
		if n.id == id {
			return i, !n.deleted, true
		}
		if !n.deleted {
			i++
		}
	}
	return 0, false, false
}
