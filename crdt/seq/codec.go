package seq

import (
	"bytes"
	"cmp"
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
// A sequence's state is what it holds: a set of inserted runs and a set
// of deleted ids. It is one msgpack array of six elements:
//
//	[ replicas bin, runs bin, pending bin, deleted bin, content, pending-content ]
//
// replicas holds the 16-byte ids of every replica the state names, sorted,
// none zero; a replica is named by its rank in this list, from 1 (0 is no
// element). runs lists the integrated runs in document order, deleted ones
// included, and pending the runs waiting for an origin, sorted by id.
// Runs are maximal: no run continues the one before it (same replica,
// next clock, its left origin the last element of the one before, same
// right origin). deleted lists every deleted id, of elements held or not,
// sorted by id, with touching ranges merged.
//
// The three tables are packed unsigned varints (encoding/binary), in the
// smallest form. A run is
//
//	flags, replica, clock, n, [left-replica, left-clock], [right-replica, right-clock]
//
// with flags bit 0: the left origin is the last element of the run before
// (runs table only); bit 1: the right origin is the first element of the
// run after (runs table only); bit 2: the left origin is the start; bit 3:
// the right origin is the end. An origin is written out only when no flag
// gives it, and a flag is used whenever it applies. clock is zigzag-coded
// as the difference from the end of the last entry of the same replica
// before it in the table (0 for the first), and an origin's clock as the
// difference from the run's clock. A deleted range is
//
//	replica, clock, n
//
// with its clock coded the same way. content is the live (not deleted)
// elements of the runs, in document order: text as one str (UTF-8, the
// visible text itself), a list as one array of msgpack values.
// pending-content is the same for the pending runs, in their order.

const (
	flagLeftPrev  = 1 << 0
	flagRightNext = 1 << 1
	flagLeftNone  = 1 << 2
	flagRightNone = 1 << 3
	flagsAll      = 1<<4 - 1
)

// contentCodec writes and reads the elements of live runs as one msgpack
// value.
type contentCodec[E any] struct {
	append func(b []byte, parts [][]E, n int) []byte
	read   func(r *mp.Reader, n int) ([]E, error)
}

// continues reports whether o continues r structurally: o's first element
// follows r's last one in id, has it as its left origin, and both share a
// right origin. The encoding merges such runs, deleted or not.
func (r *run) continues(o *run) bool {
	return o.a == r.a && o.c == r.end() && o.left == r.last() && o.right == r.right
}

// canonical returns what s's encoding lists: its integrated runs in
// document order and its pending runs sorted by id, each merged to maximal
// runs, the content of the live pending elements in that order, and every
// deleted id, sorted and merged.
func (s *Seq[E]) canonical() (runs, pend []run, pendContent [][]E, dels []span) {
	if s.t.root != nil {
		n, d := 0, 0
		for l := s.t.first; l != nil; l = l.next {
			n += len(l.runs)
			for i := range l.runs {
				if l.runs[i].deleted {
					d++
				}
			}
		}
		runs = make([]run, 0, n)
		dels = make([]span, 0, d+len(s.pendDel))
		for l := s.t.first; l != nil; l = l.next {
			for i := range l.runs {
				r := l.runs[i]
				if r.deleted {
					dels = append(dels, span{r.a, r.c, uint32(r.n)})
				}
				if n := len(runs); n > 0 && runs[n-1].continues(&r) {
					runs[n-1].n += r.n
					continue
				}
				runs = append(runs, r)
			}
		}
	}
	sorted := slices.SortedFunc(slices.Values(s.pending), func(x, y item[E]) int {
		return s.toID(x.id(0)).Compare(s.toID(y.id(0)))
	})
	for _, it := range sorted {
		if it.deleted {
			dels = append(dels, span{it.a, it.c, uint32(it.n)})
		} else {
			pendContent = append(pendContent, it.content)
		}
		if n := len(pend); n > 0 && pend[n-1].continues(&it.run) {
			pend[n-1].n += it.n
			continue
		}
		pend = append(pend, it.run)
	}
	dels = append(dels, s.pendDel...)
	slices.SortFunc(dels, func(x, y span) int {
		return s.toID(eid{x.a, x.c}).Compare(s.toID(eid{y.a, y.c}))
	})
	merged := dels[:0]
	for _, d := range dels {
		if n := len(merged); n > 0 && merged[n-1].a == d.a && merged[n-1].c+merged[n-1].n >= d.c {
			merged[n-1].n = max(merged[n-1].c+merged[n-1].n, d.c+d.n) - merged[n-1].c
			continue
		}
		merged = append(merged, d)
	}
	return runs, pend, pendContent, merged
}

// ranks returns, per agent, its rank among the replicas runs, pend and
// dels name (0 if none), and those replicas, sorted.
func (s *Seq[E]) ranks(runs, pend []run, dels []span) ([]uint32, []Replica) {
	used := make([]bool, len(s.agents))
	for _, rs := range [2][]run{runs, pend} {
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
	runs, pend, pendContent, dels := s.canonical()
	rank, reps := s.ranks(runs, pend, dels)
	b = mp.AppendArrayHeader(b, 6)
	b = mp.AppendBytesHeader(b, 16*len(reps))
	for _, r := range reps {
		b = append(b, r[:]...)
	}
	w := tableWriter{b: make([]byte, 0, 8*len(runs)+16), rank: rank, lastEnd: make([]uint32, len(reps)+1)}
	for i := range runs {
		var prev, next *run
		if i > 0 {
			prev = &runs[i-1]
		}
		if i+1 < len(runs) {
			next = &runs[i+1]
		}
		w.run(entryOf(&runs[i], prev, next))
	}
	b = w.flush(b)
	pendLive := 0
	for i := range pend {
		w.run(entryOf(&pend[i], nil, nil))
	}
	for _, c := range pendContent {
		pendLive += len(c)
	}
	b = w.flush(b)
	for _, d := range dels {
		w.span(d)
	}
	b = w.flush(b)
	parts := make([][]E, 0, len(runs)+len(dels))
	if s.t.root != nil {
		for l := s.t.first; l != nil; l = l.next {
			for i := range l.runs {
				if r := &l.runs[i]; !r.deleted {
					parts = append(parts, s.content(r))
				}
			}
		}
	}
	b = cc.append(b, parts, s.Len())
	return cc.append(b, pendContent, pendLive)
}

type tableWriter struct {
	b       []byte
	rank    []uint32
	lastEnd []uint32 // by rank
}

// flush appends the table written so far to b as a bin and starts a new
// table.
func (w *tableWriter) flush(b []byte) []byte {
	b = mp.AppendBytes(b, w.b)
	w.b = w.b[:0]
	clear(w.lastEnd)
	return b
}

func (w *tableWriter) clock(rank uint32, c, n uint32) {
	d := int64(c) - int64(w.lastEnd[rank])
	w.b = binary.AppendUvarint(w.b, uint64(d<<1)^uint64(d>>63))
	w.lastEnd[rank] = c + n
}

// origin writes an origin of a run at clock c: its replica and its clock,
// zigzag-coded as the difference from c.
func (w *tableWriter) origin(id eid, c uint32) {
	w.b = binary.AppendUvarint(w.b, uint64(w.rank[id.a]))
	d := int64(id.c) - int64(c)
	w.b = binary.AppendUvarint(w.b, uint64(d<<1)^uint64(d>>63))
}

// entry is a run as the tables write it.
type entry struct {
	a, c        uint32
	n           int
	left, right eid
	// prev is the last element of the run before (none if not written
	// relative to it), next the first element of the run after.
	prev, next eid
}

func entryOf(r, prev, next *run) entry {
	e := entry{a: r.a, c: r.c, n: r.n, left: r.left, right: r.right}
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
		w.origin(e.left, e.c)
	}
	if flags&(flagRightNone|flagRightNext) == 0 {
		w.origin(e.right, e.c)
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
// origins integrated, every pending run waiting for an origin. The
// result's content may alias b.
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
	if err := s.readReplicas(r); err != nil {
		return nil, err
	}
	reps := len(s.agents) - 1
	runs, err := readRuns(r, reps, true)
	if err != nil {
		return nil, fmt.Errorf("runs: %w", err)
	}
	pend, err := readRuns(r, reps, false)
	if err != nil {
		return nil, fmt.Errorf("pending runs: %w", err)
	}
	dels, err := readSpans(r, reps)
	if err != nil {
		return nil, fmt.Errorf("deleted: %w", err)
	}
	byAgent := make([][]span, reps+1)
	for _, d := range dels {
		byAgent[d.a] = append(byAgent[d.a], d)
	}
	for _, ds := range byAgent {
		slices.SortFunc(ds, cmpSpan)
	}
	runs, pend = splitDeleted(runs, byAgent), splitDeleted(pend, byAgent)
	if s.arena, err = readContent(r, runs, cc); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	pendContent, err := readContent(r, pend, cc)
	if err != nil {
		return nil, fmt.Errorf("pending content: %w", err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d trailing bytes", r.Len())
	}
	s.t.build(runs)
	for _, p := range pend {
		it := item[E]{run: p}
		if !p.deleted {
			it.content = pendContent[int(p.off) : int(p.off)+p.n : int(p.off)+p.n]
		}
		s.pending = append(s.pending, it)
	}
	return s, s.check(dels)
}

func (s *Seq[E]) readReplicas(r *mp.Reader) error {
	reps, err := r.Bytes()
	if err != nil {
		return err
	}
	if len(reps)%16 != 0 || len(reps)/16 > maxReplicas {
		return fmt.Errorf("replica list of %d bytes", len(reps))
	}
	for i := 0; i < len(reps); i += 16 {
		rep := Replica(reps[i : i+16])
		if rep.IsZero() || i > 0 && Replica(reps[i-16:i]).Compare(rep) >= 0 {
			return fmt.Errorf("replica %d zero or out of order", i/16)
		}
		s.agent(rep)
	}
	return nil
}

// readRuns reads a table of runs. adjacent says that it is the runs table,
// whose flags may refer to the runs beside.
func readRuns(r *mp.Reader, reps int, adjacent bool) ([]run, error) {
	p, err := r.Bytes()
	if err != nil {
		return nil, err
	}
	tr := tableReader{b: p, reps: uint64(reps), lastEnd: make([]uint32, reps+1)}
	// A run takes at least four bytes.
	runs := make([]run, 0, len(p)/4)
	flags := make([]uint64, 0, len(p)/4)
	for tr.more() {
		var x run
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

// splitDeleted cuts runs where their elements' deleted state changes, by
// the deleted ranges of each agent (sorted by clock), and marks the
// deleted parts.
func splitDeleted(runs []run, dels [][]span) []run {
	out := make([]run, 0, len(runs))
	for _, r := range runs {
		ds := dels[r.a]
		j, _ := slices.BinarySearchFunc(ds, span{r.a, r.c, 0}, cmpSpan)
		if j > 0 && ds[j-1].c+ds[j-1].n > r.c {
			j--
		}
		for r.n > 0 {
			part := r
			if j < len(ds) && ds[j].c <= r.c {
				// Deleted from r.c to the range's end.
				part.deleted = true
				part.n = min(r.n, int(ds[j].c+ds[j].n-r.c))
				j++
			} else if j < len(ds) && ds[j].c < r.end() {
				part.n = int(ds[j].c - r.c)
			}
			if part.n < r.n {
				r = r.split(part.n)
			} else {
				r.n = 0
			}
			out = append(out, part)
		}
	}
	return out
}

// readContent reads the content of the live runs among runs, and sets
// their offsets into it.
func readContent[E any](r *mp.Reader, runs []run, cc contentCodec[E]) ([]E, error) {
	n := 0
	for i := range runs {
		if x := &runs[i]; !x.deleted {
			x.off = uint32(n)
			n += x.n
		}
	}
	all, err := cc.read(r, n)
	if err != nil {
		return nil, err
	}
	if len(all) != n {
		return nil, fmt.Errorf("%d elements for %d live elements", len(all), n)
	}
	return all, nil
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

// origin reads an origin of a run at clock rc.
func (t *tableReader) origin(rc uint32) (eid, error) {
	a, err := t.replica()
	if err != nil {
		return none, err
	}
	z, err := t.uvarint()
	if err != nil {
		return none, err
	}
	c := int64(rc) + (int64(z>>1) ^ -int64(z&1))
	if z>>1 > MaxClock || c < 0 || c >= MaxClock {
		return none, fmt.Errorf("origin clock %d out of range", c)
	}
	return eid{a, uint32(c)}, nil
}

// readRun reads one run into x and returns its flags.
func readRun(t *tableReader, x *run) (uint64, error) {
	f, err := t.uvarint()
	if err != nil {
		return 0, err
	}
	if f&^flagsAll != 0 || f&(flagLeftPrev|flagLeftNone) == flagLeftPrev|flagLeftNone || f&(flagRightNext|flagRightNone) == flagRightNext|flagRightNone {
		return 0, fmt.Errorf("bad flags %#x", f)
	}
	if x.a, err = t.replica(); err != nil {
		return 0, err
	}
	if x.c, x.n, err = t.clock(x.a); err != nil {
		return 0, err
	}
	if f&(flagLeftNone|flagLeftPrev) == 0 {
		if x.left, err = t.origin(x.c); err != nil {
			return 0, err
		}
	}
	if f&(flagRightNone|flagRightNext) == 0 {
		if x.right, err = t.origin(x.c); err != nil {
			return 0, err
		}
	}
	return f, nil
}

// check verifies what the tables alone cannot: every id is held once,
// integrated runs' origins are integrated, and pending runs wait for an
// origin. It sets s.high, and s.pendDel to the deleted ids not held.
func (s *Seq[E]) check(dels []span) error {
	var held []span
	for l := s.t.first; l != nil; l = l.next {
		for i := range l.runs {
			held = append(held, span{l.runs[i].a, l.runs[i].c, uint32(l.runs[i].n)})
		}
	}
	for _, it := range s.pending {
		held = append(held, span{it.a, it.c, uint32(it.n)})
	}
	slices.SortFunc(held, cmpSpan)
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
		if s.missingOrigin(&s.pending[i].run) == none {
			return fmt.Errorf("pending run %d:%d has its origins", s.pending[i].a, s.pending[i].c)
		}
	}
	s.pendDel = subtractSpans(dels, held)
	return nil
}

// subtractSpans returns the parts of dels (any order) outside held (sorted,
// disjoint), sorted.
func subtractSpans(dels, held []span) []span {
	var out []span
	for _, d := range dels {
		j, _ := slices.BinarySearchFunc(held, d, cmpSpan)
		if j > 0 && held[j-1].a == d.a && held[j-1].c+held[j-1].n > d.c {
			j--
		}
		c, end := d.c, d.c+d.n
		for ; c < end && j < len(held) && held[j].a == d.a && held[j].c < end; j++ {
			h := held[j]
			if h.c > c {
				out = append(out, span{d.a, c, h.c - c})
			}
			c = max(c, h.c+h.n)
		}
		if c < end {
			out = append(out, span{d.a, c, end - c})
		}
	}
	return normalizeSpans(out)
}

func cmpSpan(x, y span) int {
	if c := cmp.Compare(x.a, y.a); c != 0 {
		return c
	}
	return cmp.Compare(x.c, y.c)
}
