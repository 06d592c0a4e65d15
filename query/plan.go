package query

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/convergedb/converge/crdt"
)

// Index describes a secondary index to the planner. Its entries are, per
// record, the concatenation of [crdt.AppendValueKey] of each field's value
// (a missing field: the missing key; a set field: one entry per element,
// an empty set counting as missing), followed by the record id encoded so
// that entries with equal values sort by id bytes (escaped and terminated,
// as oplog encodes strings). Entries are sorted and distinct. A record that
// does not exist has no entries.
type Index struct {
	Name   string
	Fields []string
	// Sets lists the fields of Fields that hold sets. The planner uses a
	// set field for Contains (as Eq on the element) and never for order,
	// and an index with a set field may hold a record several times
	// (Plan.Unique is false). A field not listed is taken to hold scalar
	// values in every record; if it holds a set in some, plans stay
	// complete (every matching record is among the candidates) but an
	// Ordered plan may yield those records out of order and more than
	// once.
	Sets []string
}

// Range is an interval of index entries: Lo inclusive, Hi exclusive, nil
// Lo from the first entry, nil Hi to the last. Bounds are value-key
// prefixes, so they can be compared with whole entries (values and id).
type Range struct{ Lo, Hi []byte }

// Plan is how to execute a query: a scan of every record, or the entries
// of one index within Ranges. An executor visits the candidates, removes
// repeated records when Unique is false, and must re-check each candidate
// with [Match]: ranges may hold records the query does not match, but
// never miss one it does. Then, unless Ordered, it sorts by
// [Query.Compare]; then it applies the cursor, Offset and Limit as
// [Query.Run] does.
type Plan struct {
	// Index is the index to read; "" means a full scan (the other fields
	// are then ignored: Run sorts).
	Index string
	// Ranges are sorted and do not overlap. None means no record can
	// match.
	Ranges []Range
	// Reverse says to read the index backward: the ranges last to first,
	// each from its end.
	Reverse bool
	// Ordered says the entries, read in that direction, come in the
	// query's order: no sort is needed, and the executor may stop once
	// it has Offset+Limit matching records (one more to know whether to
	// return a next cursor).
	Ordered bool
	// Merge says that Ordered is false only because there are several
	// ranges: each range alone, read in that direction, comes in the
	// query's order (as for an Eq on a number, whose float and integer
	// forms have different keys, or an In), so the executor may merge
	// the ranges' streams by [Query.Compare] instead of sorting.
	Merge bool
	// Unique says each record has at most one entry in the ranges; when
	// false the executor removes repeats by id.
	Unique bool

	cons  string // the constraints, for String
	order string // the query's order, for String
}

// String explains the plan: the index and the conditions that bound its
// ranges, then how the result gets ordered. For example:
//
//	index by_status [status = "open"], ordered
//	index by_prio [all], reverse, ordered
//	index by_tags [tags contains "go"], dedupe, sort by id
//	index by_n [n = 1], merge 2 ranges
//	index by_n [n > 5, n < 3], empty
//	scan, sort by priority desc
func (p Plan) String() string {
	order := p.order
	if order == "" {
		order = IDField
	}
	if p.Index == "" {
		if p.cons != "" {
			return "scan (" + p.cons + "), sort by " + order
		}
		return "scan, sort by " + order
	}
	cons := p.cons
	if cons == "" {
		cons = "?"
	}
	parts := []string{fmt.Sprintf("index %s [%s]", p.Index, cons)}
	if len(p.Ranges) == 0 {
		return parts[0] + ", empty"
	}
	if p.Reverse {
		parts = append(parts, "reverse")
	}
	if !p.Unique {
		parts = append(parts, "dedupe")
	}
	switch {
	case p.Ordered:
		parts = append(parts, "ordered")
	case p.Merge:
		parts = append(parts, fmt.Sprintf("merge %d ranges", len(p.Ranges)))
	default:
		parts = append(parts, "sort by "+order)
	}
	return strings.Join(parts, ", ")
}

// Explain returns the plan the query gets over indexes, as text.
func (q *Query) Explain(indexes []Index) string { return q.Plan(indexes).String() }

// maxRanges bounds the ranges of a plan: an Eq prefix of In lists is a
// cross product, and beyond this the planner constrains fewer fields.
const maxRanges = 256

// Plan chooses how to execute the query over indexes (see the package
// doc, # Planning). For a query Validate refuses, it returns a scan.
func (q *Query) Plan(indexes []Index) Plan {
	scan := Plan{Unique: true, order: orderString(q.Order)}
	if q.Validate(nil) != nil {
		scan.cons = "invalid query"
		return scan
	}
	conj := conjuncts(q.Where, nil)
	var best *candidate
	for _, idx := range indexes {
		if c := q.planIndex(idx, conj); c != nil && (best == nil || c.better(best)) {
			best = c
		}
	}
	if best == nil {
		return scan
	}
	return Plan{
		Index:   best.index,
		Ranges:  best.ranges,
		Reverse: best.reverse,
		Ordered: best.ordered,
		Merge:   best.merge,
		Unique:  !slices.Contains(best.sets, true),
		cons:    best.desc,
		order:   scan.order,
	}
}

// conjuncts appends the top-level conjuncts of p (And flattened) to out.
func conjuncts(p Pred, out []Pred) []Pred {
	switch p := p.(type) {
	case nil:
	case *And:
		for _, q := range p.Preds {
			out = conjuncts(q, out)
		}
	default:
		out = append(out, p)
	}
	return out
}

// candidate is a plan over one index.
type candidate struct {
	index  string
	ranges []Range
	eq     int    // leading fields constrained to points (least over Or branches)
	rng    bool   // a range on the next field (in every Or branch)
	fixed  []bool // per index field: one key in all ranges
	sets   []bool // per index field: holds sets (Index.Sets)
	union  bool   // ranges of several Or branches
	desc   string

	ordered, merge, reverse bool
}

// better reports whether c is a better plan than d: more Eq fields, then a
// range, then ordered, then mergeable, then fewer ranges.
func (c *candidate) better(d *candidate) bool {
	switch {
	case c.eq != d.eq:
		return c.eq > d.eq
	case c.rng != d.rng:
		return c.rng
	case c.ordered != d.ordered:
		return c.ordered
	case c.merge != d.merge:
		return c.merge
	}
	return len(c.ranges) < len(d.ranges)
}

// constrains reports whether the predicates bound the candidate's ranges.
func (c *candidate) constrains() bool { return c.eq > 0 || c.rng }

// indexInfo is an Index prepared for planning.
type indexInfo struct {
	Index
	set []bool // per field: declared a set
}

func (q *Query) planIndex(idx Index, conj []Pred) *candidate {
	if len(idx.Fields) == 0 {
		return nil
	}
	ix := indexInfo{Index: idx, set: make([]bool, len(idx.Fields))}
	for i, f := range idx.Fields {
		ix.set[i] = slices.Contains(idx.Sets, f)
	}
	c := ix.planConj(conj, 0)
	if c == nil {
		// No usable predicate: the index can still serve the order.
		c = &candidate{
			ranges: []Range{{}},
			fixed:  make([]bool, len(idx.Fields)),
			sets:   slices.Clone(ix.set),
			desc:   "all",
		}
	}
	c.index = idx.Name
	fixed := c.fixed
	if c.union {
		fixed = make([]bool, len(idx.Fields))
	}
	c.ordered, c.reverse = q.orderedBy(idx.Fields, fixed, c.sets)
	if !c.ordered && !c.union && len(c.ranges) > 1 {
		each := make([]bool, len(idx.Fields))
		for i := range c.eq {
			each[i] = true
		}
		c.merge, c.reverse = q.orderedBy(idx.Fields, each, c.sets)
	}
	if !c.constrains() && !c.ordered {
		return nil // no better than a scan
	}
	return c
}

// planConj plans a conjunction on the index: the conditions among conj,
// or the union of one Or among them, whichever constrains more.
func (ix *indexInfo) planConj(conj []Pred, depth int) *candidate {
	var conds []*Cond
	for _, p := range conj {
		if c, ok := p.(*Cond); ok {
			conds = append(conds, c)
		}
	}
	best := ix.planConds(conds)
	for _, p := range conj {
		if o, ok := p.(*Or); ok {
			if u := ix.planUnion(o, conds, depth); u != nil && (best == nil || u.better(best)) {
				best = u
			}
		}
	}
	return best
}

// planUnion plans an Or whose every branch can use the index: the union of
// the branches' ranges. The conditions beside the Or (siblings) hold in
// every branch, so each branch is planned with them: a and (b or c) as
// (a and b) or (a and c).
func (ix *indexInfo) planUnion(o *Or, siblings []*Cond, depth int) *candidate {
	if depth >= maxDepth || len(o.Preds) == 0 {
		return nil
	}
	u := &candidate{union: true, sets: slices.Clone(ix.set), eq: len(ix.Fields), rng: true}
	descs := make([]string, 0, len(o.Preds))
	for _, b := range o.Preds {
		conj := make([]Pred, 0, len(siblings)+1)
		for _, c := range siblings {
			conj = append(conj, c)
		}
		c := ix.planConj(conjuncts(b, conj), depth+1)
		if c == nil {
			return nil
		}
		if c.eq < u.eq || c.eq == u.eq && !c.rng {
			u.eq, u.rng = c.eq, c.rng
		}
		u.ranges = append(u.ranges, c.ranges...)
		descs = append(descs, c.desc)
	}
	u.ranges = mergeRanges(u.ranges)
	if len(u.ranges) > maxRanges {
		return nil
	}
	u.desc = "(" + strings.Join(descs, " | ") + ")"
	return u
}

// planConds plans a conjunction of conditions: points for a prefix of the
// index fields (Eq, In, and Contains on a set), then an interval on the
// next field (Gt, Gte, Lt, Lte, Between, StartsWith).
func (ix *indexInfo) planConds(conds []*Cond) *candidate {
	c := &candidate{fixed: make([]bool, len(ix.Fields)), sets: slices.Clone(ix.set)}
	prefixes := [][]byte{nil}
	var descs []string
	k := 0
	for ; k < len(ix.Fields); k++ {
		f := ix.Fields[k]
		if f == IDField {
			break // a stored field named "id", which queries cannot name
		}
		var use *Cond
		var points [][]byte
		for _, cd := range conds {
			if cd.Field != f {
				continue
			}
			if ps := pointsOf(cd, ix.set[k]); ps != nil && (use == nil || len(ps) < len(points)) {
				use, points = cd, ps
			}
		}
		if use == nil || len(prefixes)*len(points) > maxRanges {
			break
		}
		next := make([][]byte, 0, len(prefixes)*len(points))
		for _, p := range prefixes {
			for _, pt := range points {
				next = append(next, append(slices.Clip(p), pt...))
			}
		}
		prefixes = next
		c.fixed[k] = len(points) == 1
		descs = append(descs, use.String())
	}
	c.eq = k
	var iv interval
	if k < len(ix.Fields) && ix.Fields[k] != IDField {
		for _, cd := range conds {
			if cd.Field == ix.Fields[k] && cd.Op.isRange() {
				iv = iv.intersect(intervalOf(cd))
				c.rng = true
				descs = append(descs, cd.String())
			}
		}
	}
	if !c.constrains() {
		return nil
	}
	for _, p := range prefixes {
		r := Range{Lo: append(slices.Clip(p), iv.lo...), Hi: prefixEnd(p)}
		if iv.hi != nil {
			r.Hi = append(slices.Clip(p), iv.hi...)
		}
		if len(r.Lo) == 0 {
			r.Lo = nil
		}
		if r.Hi == nil || bytes.Compare(r.Lo, r.Hi) < 0 {
			c.ranges = append(c.ranges, r)
		}
	}
	c.ranges = mergeRanges(c.ranges)
	c.desc = strings.Join(descs, ", ")
	return c
}

// pointsOf returns the value keys an index field must equal for cond c to
// hold, or nil when c does not pin the field to points: Eq and In on
// values other than arrays and maps (which a set field would index per
// element), and Contains on a declared set field (on another field it may
// look into a string or an array, indexed whole).
func pointsOf(c *Cond, set bool) [][]byte {
	switch c.Op {
	case Eq, In:
		var keys [][]byte
		for _, v := range c.Values {
			v = normMissing(v)
			if classOf(v) == classOther {
				return nil
			}
			keys = append(keys, eqKeys(v)...)
		}
		slices.SortFunc(keys, bytes.Compare)
		return slices.CompactFunc(keys, bytes.Equal)
	case Contains:
		if set {
			return eqKeys(c.Values[0])
		}
	}
	return nil
}

// interval is a set of value keys of one field: lo inclusive (nil: from
// the first), hi exclusive (nil: to the last).
type interval struct{ lo, hi []byte }

func (a interval) intersect(b interval) interval {
	if bytes.Compare(b.lo, a.lo) > 0 {
		a.lo = b.lo
	}
	if b.hi != nil && (a.hi == nil || bytes.Compare(b.hi, a.hi) < 0) {
		a.hi = b.hi
	}
	return a
}

// classKeys are the value-key tags of the orderable classes, and the tag
// that follows each class: the keys of a class lie in [start, end).
var classKeys = map[int][2]byte{
	classBool:   {0x03, 0x05},
	classNumber: {0x05, 0x06},
	classString: {0x06, 0x07},
	classBinary: {0x07, 0x08},
	classTime:   {0x08, 0x09},
}

// intervalOf returns the keys of the values that range condition c
// accepts: within the class of its bound, from the least key of a value
// equal to the low bound to the greatest of one equal to the high bound.
func intervalOf(c *Cond) interval {
	if c.Op == StartsWith {
		s, _ := strBytes(c.Values[0])
		p := crdt.ValueKeyPrefix(string(s))
		return interval{lo: p, hi: prefixEnd(p)}
	}
	ck := classKeys[classOf(c.Values[0])]
	iv := interval{lo: []byte{ck[0]}, hi: []byte{ck[1]}}
	least := func(v []byte) []byte { return eqKeys(v)[0] }
	above := func(v []byte) []byte { ks := eqKeys(v); return prefixEnd(ks[len(ks)-1]) }
	switch c.Op {
	case Gt:
		iv.lo = above(c.Values[0])
	case Gte:
		iv.lo = least(c.Values[0])
	case Lt:
		iv.hi = least(c.Values[0])
	case Lte:
		iv.hi = above(c.Values[0])
	case Between:
		iv.lo, iv.hi = least(c.Values[0]), above(c.Values[1])
	}
	return iv
}

// prefixEnd returns the least key above every key that starts with p, nil
// when there is none (p empty or all 0xff).
func prefixEnd(p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xff {
			end := slices.Clone(p[:i+1])
			end[i]++
			return end
		}
	}
	return nil
}

// mergeRanges sorts rs and joins overlapping ranges.
func mergeRanges(rs []Range) []Range {
	slices.SortFunc(rs, func(a, b Range) int { return bytes.Compare(a.Lo, b.Lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (out[n-1].Hi == nil || bytes.Compare(r.Lo, out[n-1].Hi) < 0) {
			if out[n-1].Hi != nil && (r.Hi == nil || bytes.Compare(r.Hi, out[n-1].Hi) > 0) {
				out[n-1].Hi = r.Hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// sortKey is one entry of an order: a field, or the record id.
type sortKey struct {
	field string
	id    bool
}

// orderedBy reports whether entries of an index over fields, read within
// ranges where the fields marked fixed have a single key, come in the
// query's order, and if so whether read backward. The index orders by its
// non-fixed fields, then id, all ascending; the query by its Order
// entries, minus those on fixed fields (constant there), up to the first
// on the id, then by the id in the direction of its last entry. The two
// must be the same list, in one direction. A non-fixed set field, with
// an entry per element, orders nothing.
func (q *Query) orderedBy(fields []string, fixed, sets []bool) (ok, reverse bool) {
	var idx []sortKey
	for i, f := range fields {
		if fixed[i] {
			continue
		}
		if sets[i] {
			return false, false
		}
		idx = append(idx, sortKey{field: f})
	}
	idx = append(idx, sortKey{id: true})

	constant := func(f string) bool {
		for i, g := range fields {
			if g == f && fixed[i] && !sets[i] {
				return true
			}
		}
		return false
	}
	var want []sortKey
	var dirs []bool
	for i, o := range q.Order {
		if o.Field == IDField {
			want, dirs = append(want, sortKey{id: true}), append(dirs, o.Desc)
			break
		}
		if constant(o.Field) || slices.ContainsFunc(q.Order[:i], func(p Order) bool { return p.Field == o.Field }) {
			continue
		}
		want, dirs = append(want, sortKey{field: o.Field}), append(dirs, o.Desc)
	}
	if len(want) == 0 || !want[len(want)-1].id {
		want, dirs = append(want, sortKey{id: true}), append(dirs, q.tieDesc())
	}
	if !slices.Equal(idx, want) {
		return false, false
	}
	for _, d := range dirs {
		if d != dirs[0] {
			return false, false
		}
	}
	return true, dirs[0]
}
