package seq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/convergedb/converge/internal/mp"
)

// ErrInvalid is wrapped by the errors of the decoders.
var ErrInvalid = errors.New("seq: invalid state")

// # Encoding
//
// A sequence's state is one msgpack array of six elements:
//
//	[ replicas bin, runs bin, content, pending bin, pending-content, deletes bin ]
//
// replicas holds the 16-byte ids of every replica the state names, sorted,
// none zero; a replica is named by its rank in this list, from 1 (0 is no
// element). runs lists the integrated runs in document order, pending the
// runs waiting for an origin, sorted by id, and deletes the deleted ids
// whose elements have not arrived, sorted and merged. Runs are maximal:
// no run continues the one before it (same replica, next clock, left
// origin its last element, same right origin, same deleted state).
//
// The three tables are packed unsigned varints (encoding/binary), in the
// smallest form. A run is
//
//	flags, replica, clock, n, [left-replica, left-clock], [right-replica, right-clock]
//
// with flags bit 0 deleted, bit 1 left origin is the last element of the
// run before (runs table only), bit 2 right origin is the first element of
// the run after (runs table only), bit 3 left origin is the start, bit 4
// right origin is the end; an origin is written out only when no flag
// gives it, and a flag is used whenever it applies. clock is zigzag-coded
// as the difference from the end of the last run of the same replica
// before it in the table (0 for the first). A delete is
//
//	replica, clock, n
//
// with the clock coded the same way. content is the live (not deleted)
// runs' elements, in order: text as one str (UTF-8, the visible text
// itself), a list as one array of msgpack values. pending-content is the
// same for the live pending runs.

const (
	flagDeleted   = 1 << 0
	flagLeftPrev  = 1 << 1
	flagRightNext = 1 << 2
	flagLeftNone  = 1 << 3
	flagRightNone = 1 << 4
	flagsAll      = 1<<5 - 1
)

// contentCodec writes and reads the elements of live runs as one msgpack
// value.
type contentCodec[E any] struct {
	append func(b []byte, parts [][]E, n int) []byte
	read   func(r *mp.Reader, n int) ([]E, error)
}

// canonical returns s's integrated runs in document order and its pending
// runs sorted by id, each merged to maximal runs, and its pending deletes.
func (s *Seq[E]) canonical() (runs, pend []run[E], dels []span) {
	if s.t.root != nil {
		for l := s.t.first; l != nil; l = l.next {
			for i := range l.runs {
				r := l.runs[i]
				r.content = nil
				if n := len(runs); n > 0 && runs[n-1].canAppend(&r) {
					runs[n-1].n += r.n
					continue
				}
				runs = append(runs, r)
			}
		}
	}
	byID := func(x, y run[E]) int { return s.toID(x.id(0)).Compare(s.toID(y.id(0))) }
	sorted := slices.SortedFunc(slices.Values(s.pending), byID)
	for _, r := range sorted {
		r.content = nil
		if n := len(pend); n > 0 && pend[n-1].canAppend(&r) {
			pend[n-1].n += r.n
			continue
		}
		pend = append(pend, r)
	}
	dels = slices.SortedFunc(slices.Values(s.pendDel), func(x, y span) int {
		return s.toID(eid{x.a, x.c}).Compare(s.toID(eid{y.a, y.c}))
	})
	return runs, pend, dels
}

// ranks returns, per agent, its rank among the replicas runs, pend and
// dels name (0 if none), and those replicas, sorted.
func (s *Seq[E]) ranks(runs, pend []run[E], dels []span) ([]uint32, []Replica) {
	used := make([]bool, len(s.agents))
	for _, rs := range [2][]run[E]{runs, pend} {
		for i := range rs {
			used[rs[i].a], used[rs[i].left.a], used[rs[i].right.a] = true, true, true
		}
	}
	for _, d := range dels {
		used[d.a] = true
	}
	var reps []Replica
	for a := 1; a < len(used); a++ {
		if used[a] {
			reps = append(reps, s.agents[a])
		}
	}
	slices.SortFunc(reps, Replica.Compare)
	rank := make([]uint32, len(s.agents))
	for a := 1; a < len(used); a++ {
		if used[a] {
			i, _ := slices.BinarySearchFunc(reps, s.agents[a], Replica.Compare)
			rank[a] = uint32(i + 1)
		}
	}
	return rank, reps
}

// appendState appends s's canonical encoding to b.
func appendState[E any](b []byte, s *Seq[E], cc contentCodec[E]) []byte {
	runs, pend, dels := s.canonical()
	rank, reps := s.ranks(runs, pend, dels)
	b = mp.AppendArrayHeader(b, 6)
	b = mp.AppendBytesHeader(b, 16*len(reps))
	for _, r := range reps {
		b = append(b, r[:]...)
	}
	w := tableWriter{rank: rank, lastEnd: make([]uint32, len(reps)+1)}
	for i := range runs {
		var prev, next *run[E]
		if i > 0 {
			prev = &runs[i-1]
		}
		if i+1 < len(runs) {
			next = &runs[i+1]
		}
		w.run(entryOf(&runs[i], prev, next))
	}
	b = mp.AppendBytes(b, w.b)
	var parts [][]E
	n := 0
	if s.t.root != nil {
		for l := s.t.first; l != nil; l = l.next {
			for i := range l.runs {
				if r := &l.runs[i]; !r.deleted {
					parts = append(parts, r.content)
					n += r.n
				}
			}
		}
	}
	b = cc.append(b, parts, n)
	w = tableWriter{rank: rank, lastEnd: make([]uint32, len(reps)+1)}
	for i := range pend {
		w.run(entryOf[E](&pend[i], nil, nil))
	}
	b = mp.AppendBytes(b, w.b)
	parts, n = parts[:0], 0
	for _, r := range slices.SortedFunc(slices.Values(s.pending), func(x, y run[E]) int {
		return s.toID(x.id(0)).Compare(s.toID(y.id(0)))
	}) {
		if !r.deleted {
			parts = append(parts, r.content)
			n += r.n
		}
	}
	b = cc.append(b, parts, n)
	w = tableWriter{rank: rank, lastEnd: make([]uint32, len(reps)+1)}
	for _, d := range dels {
		w.span(d)
	}
	return mp.AppendBytes(b, w.b)
}

type tableWriter struct {
	b       []byte
	rank    []uint32
	lastEnd []uint32 // by rank
}

func (w *tableWriter) clock(rank uint32, c, n uint32) {
	d := int64(c) - int64(w.lastEnd[rank])
	w.b = binary.AppendUvarint(w.b, uint64(d<<1)^uint64(d>>63))
	w.lastEnd[rank] = c + n
}

func (w *tableWriter) origin(id eid) {
	w.b = binary.AppendUvarint(w.b, uint64(w.rank[id.a]))
	w.b = binary.AppendUvarint(w.b, uint64(id.c))
}

// entry is a run as the tables write it.
type entry struct {
	a, c        uint32
	n           int
	deleted     bool
	left, right eid
	// prev is the last element of the run before (none if not written
	// relative to it), next the first element of the run after.
	prev, next eid
}

func entryOf[E any](r, prev, next *run[E]) entry {
	e := entry{a: r.a, c: r.c, n: r.n, deleted: r.deleted, left: r.left, right: r.right}
	if prev != nil {
		e.prev = prev.last()
	}
	if next != nil {
		e.next = next.id(0)
	}
	return e
}

func (w *tableWriter) run(e entry) {
	var flags uint64
	if e.deleted {
		flags |= flagDeleted
	}
	switch {
	case e.left == none:
		flags |= flagLeftNone
	case e.left == e.prev:
		flags |= flagLeftPrev
	}
	switch {
	case e.right == none:
		flags |= flagRightNone
	case e.right == e.next:
		flags |= flagRightNext
	}
	w.b = binary.AppendUvarint(w.b, flags)
	w.b = binary.AppendUvarint(w.b, uint64(w.rank[e.a]))
	w.clock(w.rank[e.a], e.c, uint32(e.n))
	w.b = binary.AppendUvarint(w.b, uint64(e.n))
	if flags&(flagLeftNone|flagLeftPrev) == 0 {
		w.origin(e.left)
	}
	if flags&(flagRightNone|flagRightNext) == 0 {
		w.origin(e.right)
	}
}

func (w *tableWriter) span(d span) {
	w.b = binary.AppendUvarint(w.b, uint64(w.rank[d.a]))
	w.clock(w.rank[d.a], d.c, d.n)
	w.b = binary.AppendUvarint(w.b, uint64(d.n))
}

// maxReplicas bounds the replicas one state names.
const maxReplicas = 1 << 20

// decodeState decodes a state written by appendState, checking that it is
// canonical and consistent: every id held once, every integrated run's
// origins integrated, every pending run waiting for an origin, deletes
// only of ids not held. The result's content may alias b.
func decodeState[E any](b []byte, cc contentCodec[E]) (*Seq[E], error) {
	s, err := readState(b, cc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !bytes.Equal(appendState(make([]byte, 0, len(b)), s, cc), b) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrInvalid)
	}
	return s, nil
}

func readState[E any](b []byte, cc contentCodec[E]) (*Seq[E], error) {
	r := mp.NewReader(b)
	if n, err := r.ArrayHeader(); err != nil || n != 6 {
		return nil, fmt.Errorf("state is not an array of 6 (%d, %v)", n, err)
	}
	s := &Seq[E]{}
	s.init()
	reps, err := r.Bytes()
	if err != nil {
		return nil, err
	}
	if len(reps)%16 != 0 || len(reps)/16 > maxReplicas {
		return nil, fmt.Errorf("replica list of %d bytes", len(reps))
	}
	for i := 0; i < len(reps); i += 16 {
		rep := Replica(reps[i : i+16])
		if rep.IsZero() || i > 0 && Replica(reps[i-16:i]).Compare(rep) >= 0 {
			return nil, fmt.Errorf("replica %d zero or out of order", i/16)
		}
		s.agent(rep)
	}
	runs, err := readRuns[E](r, len(s.agents)-1, true)
	if err != nil {
		return nil, fmt.Errorf("runs: %w", err)
	}
	if err := fillContent(r, runs, cc); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	pend, err := readRuns[E](r, len(s.agents)-1, false)
	if err != nil {
		return nil, fmt.Errorf("pending runs: %w", err)
	}
	if err := fillContent(r, pend, cc); err != nil {
		return nil, fmt.Errorf("pending content: %w", err)
	}
	dels, err := readSpans(r, len(s.agents)-1)
	if err != nil {
		return nil, fmt.Errorf("deletes: %w", err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d trailing bytes", r.Len())
	}
	s.t.build(runs)
	s.pending, s.pendDel = pend, dels
	return s, s.check()
}

// readRuns reads a table of runs. adjacent says that it is the runs table,
// whose flags may refer to the runs beside.
func readRuns[E any](r *mp.Reader, reps int, adjacent bool) ([]run[E], error) {
	p, err := r.Bytes()
	if err != nil {
		return nil, err
	}
	tr := tableReader{b: p, reps: uint64(reps), lastEnd: make([]uint32, reps+1)}
	var runs []run[E]
	var flags []uint64
	for tr.more() {
		var x run[E]
		f, err := readRun(&tr, &x)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", len(runs), err)
		}
		if !adjacent && f&(flagLeftPrev|flagRightNext) != 0 {
			return nil, fmt.Errorf("run %d: adjacency flags outside the runs table", len(runs))
		}
		runs = append(runs, x)
		flags = append(flags, f)
	}
	for i, f := range flags {
		if f&flagLeftPrev != 0 {
			if i == 0 {
				return nil, errors.New("first run's left origin is the run before")
			}
			runs[i].left = runs[i-1].last()
		}
		if f&flagRightNext != 0 {
			if i+1 == len(runs) {
				return nil, errors.New("last run's right origin is the run after")
			}
			runs[i].right = runs[i+1].id(0)
		}
	}
	return runs, nil
}

func readSpans(r *mp.Reader, reps int) ([]span, error) {
	p, err := r.Bytes()
	if err != nil {
		return nil, err
	}
	tr := tableReader{b: p, reps: uint64(reps), lastEnd: make([]uint32, reps+1)}
	var out []span
	for tr.more() {
		a, err := tr.replica()
		if err != nil {
			return nil, err
		}
		c, n, err := tr.clock(a)
		if err != nil {
			return nil, err
		}
		out = append(out, span{a, c, uint32(n)})
	}
	return out, nil
}

// fillContent reads the content of the live runs among runs.
func fillContent[E any](r *mp.Reader, runs []run[E], cc contentCodec[E]) error {
	n := 0
	for i := range runs {
		if !runs[i].deleted {
			n += runs[i].n
		}
	}
	all, err := cc.read(r, n)
	if err != nil {
		return err
	}
	if len(all) != n {
		return fmt.Errorf("%d elements for %d live elements", len(all), n)
	}
	p := 0
	for i := range runs {
		if x := &runs[i]; !x.deleted {
			x.content = all[p : p+x.n : p+x.n]
			p += x.n
		}
	}
	return nil
}

type tableReader struct {
	b       []byte
	reps    uint64
	lastEnd []uint32
}

func (t *tableReader) more() bool { return len(t.b) > 0 }

func (t *tableReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(t.b)
	if n <= 0 {
		return 0, errors.New("bad varint")
	}
	t.b = t.b[n:]
	return v, nil
}

func (t *tableReader) replica() (uint32, error) {
	v, err := t.uvarint()
	if err != nil {
		return 0, err
	}
	if v == 0 || v > t.reps {
		return 0, fmt.Errorf("replica %d of %d", v, t.reps)
	}
	return uint32(v), nil
}

// clock reads a zigzag-coded clock and a length for replica a, checking
// that they fit below MaxClock.
func (t *tableReader) clock(a uint32) (uint32, int, error) {
	z, err := t.uvarint()
	if err != nil {
		return 0, 0, err
	}
	n, err := t.uvarint()
	if err != nil {
		return 0, 0, err
	}
	c := int64(t.lastEnd[a]) + (int64(z>>1) ^ -int64(z&1))
	if z>>1 > MaxClock || c < 0 || n == 0 || n > MaxClock || uint64(c)+n > MaxClock {
		return 0, 0, fmt.Errorf("clock %d and length %d out of range", c, n)
	}
	t.lastEnd[a] = uint32(uint64(c) + n)
	return uint32(c), int(n), nil
}

func (t *tableReader) origin() (eid, error) {
	a, err := t.replica()
	if err != nil {
		return none, err
	}
	c, err := t.uvarint()
	if err != nil {
		return none, err
	}
	if c >= MaxClock {
		return none, fmt.Errorf("origin clock %d out of range", c)
	}
	return eid{a, uint32(c)}, nil
}

// readRun reads one run into x and returns its flags.
func readRun[E any](t *tableReader, x *run[E]) (uint64, error) {
	f, err := t.uvarint()
	if err != nil {
		return 0, err
	}
	if f&^flagsAll != 0 || f&(flagLeftPrev|flagLeftNone) == flagLeftPrev|flagLeftNone || f&(flagRightNext|flagRightNone) == flagRightNext|flagRightNone {
		return 0, fmt.Errorf("bad flags %#x", f)
	}
	x.deleted = f&flagDeleted != 0
	if x.a, err = t.replica(); err != nil {
		return 0, err
	}
	if x.c, x.n, err = t.clock(x.a); err != nil {
		return 0, err
	}
	if f&(flagLeftNone|flagLeftPrev) == 0 {
		if x.left, err = t.origin(); err != nil {
			return 0, err
		}
	}
	if f&(flagRightNone|flagRightNext) == 0 {
		if x.right, err = t.origin(); err != nil {
			return 0, err
		}
	}
	return f, nil
}

// check verifies what the tables alone cannot: every id is held once,
// integrated runs' origins are integrated, pending runs wait for an
// origin, and deletes name no id held. It also sets s.high.
func (s *Seq[E]) check() error {
	var held []span
	add := func(rs []run[E]) {
		for i := range rs {
			held = append(held, span{rs[i].a, rs[i].c, uint32(rs[i].n)})
		}
	}
	for l := s.t.first; l != nil; l = l.next {
		add(l.runs)
	}
	add(s.pending)
	slices.SortFunc(held, func(x, y span) int { return cmpSpan(x, y) })
	for i, h := range held {
		if i > 0 && held[i-1].a == h.a && held[i-1].c+held[i-1].n > h.c {
			return fmt.Errorf("element %d:%d held twice", h.a, h.c)
		}
		s.high[h.a] = max(s.high[h.a], h.c+h.n)
	}
	s.ensureIndex()
	for l := s.t.first; l != nil; l = l.next {
		for i := range l.runs {
			if dep := s.missingOrigin(&l.runs[i]); dep != none {
				return fmt.Errorf("run %d:%d has origin %d:%d missing", l.runs[i].a, l.runs[i].c, dep.a, dep.c)
			}
		}
	}
	for i := range s.pending {
		if s.missingOrigin(&s.pending[i]) == none {
			return fmt.Errorf("pending run %d:%d has its origins", s.pending[i].a, s.pending[i].c)
		}
	}
	for _, d := range s.pendDel {
		j, _ := slices.BinarySearchFunc(held, d, cmpSpan)
		for _, h := range held[max(j-1, 0):min(j+1, len(held))] {
			if h.a == d.a && h.c < d.c+d.n && d.c < h.c+h.n {
				return fmt.Errorf("delete of %d:%d, which is held", d.a, d.c)
			}
		}
	}
	return nil
}

func cmpSpan(x, y span) int {
	if x.a != y.a {
		return int64cmp(x.a, y.a)
	}
	return int64cmp(x.c, y.c)
}
