package converge_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// Property tests of the query engine (Find, Count, Page, indexes, Watch)
// against a brute-force evaluation written here from the documented
// semantics (query/doc.go), independent of package query.

// qpRec is the record type of the property tests: a string, an int, a
// float, a bool and a set.
type qpRec struct {
	ID   string   `msgpack:"-" converge:"id"`
	S    string   `msgpack:"s"`
	I    int      `msgpack:"i"`
	F    float64  `msgpack:"f"`
	B    bool     `msgpack:"b"`
	Tags []string `msgpack:"tags" converge:"set"`
	Meta converge.Meta
}

// qpView reads the same collection with pointers, so that a missing field
// (never written, or unset) reads as nil and differs from a zero value.
type qpView struct {
	ID   string    `msgpack:"-" converge:"id"`
	S    *string   `msgpack:"s"`
	I    *int64    `msgpack:"i"`
	F    *float64  `msgpack:"f"`
	B    *bool     `msgpack:"b"`
	Tags *[]string `msgpack:"tags"`
	Meta converge.Meta
}

// Value pools: small, so that equalities and prefixes hit, with edge cases
// (empty string, non-ASCII, integers beyond 2^53, -0, ±Inf, NaN).
var (
	qpStrs     = []string{"", "a", "ab", "abc", "b", "ba", "c", "é", "A"}
	qpStrQuery = append(slices.Clone(qpStrs), "aa", "zz", "\xc3", "b\x00", "abcd")
	qpInts     = []int{-3, -1, 0, 1, 2, 3, 5, 1 << 53, 1<<53 + 1, math.MaxInt64, math.MinInt64}
	qpFloats   = []float64{-1.5, math.Copysign(0, -1), 0, 0.5, 1, 1.5, 2, 2.5, 3, 1 << 53,
		math.Inf(1), math.Inf(-1), math.NaN()}
	qpNumQuery = []any{0, 1, 2, 3, -1, -3, 5, 7, 1.0, 2.0, 3.0, 0.5, 2.5, -1.5, 1.25,
		math.Copysign(0, -1), 1 << 53, 1<<53 + 1, float64(1 << 53), int64(math.MaxInt64),
		int64(math.MinInt64), uint64(math.MaxUint64), math.Inf(1), math.Inf(-1), math.NaN(),
		int8(2), uint16(3), float32(2.5), float32(0.1), -1e300, 1e300}
	qpElems      = []string{"", "a", "b", "c", "ab"}
	qpIDQuery    = []string{"", "r", "r1", "r10", "r2", "r39", "r4", "r5", "s", "q"}
	qpFields     = []string{"s", "i", "f", "b", "tags", converge.IDField}
	qpIndexDefs  = [][]string{{"s"}, {"i"}, {"f"}, {"b"}, {"tags"}, {"s", "i"}, {"i", "s"}, {"b", "f"}, {"tags", "s"}, {"s", "tags"}, {"f", "i"}, {"i", "f", "b"}}
	qpMaxRecords = 40
)

// ---- the model: values, predicates, ordering ----

type qpClass int

// Value classes in the documented order: missing, bool, number, string,
// anything else (arrays).
const (
	qpMissing qpClass = iota
	qpBool
	qpNumber
	qpString
	qpOther
)

// qpVal is a field value or a query value in the model.
type qpVal struct {
	class   qpClass
	b       bool
	num     *big.Float // exact value of a number; nil for NaN
	isFloat bool       // a float (sorts before an equal integer)
	s       string
	enc     []byte   // msgpack encoding of an array (compared by bytes)
	elems   []string // the elements of a set
}

func qpNum(v any) qpVal {
	x := qpVal{class: qpNumber}
	switch n := v.(type) {
	case int:
		x.num = new(big.Float).SetInt64(int64(n))
	case int8:
		x.num = new(big.Float).SetInt64(int64(n))
	case int64:
		x.num = new(big.Float).SetInt64(n)
	case uint16:
		x.num = new(big.Float).SetUint64(uint64(n))
	case uint64:
		x.num = new(big.Float).SetUint64(n)
	case float32:
		x.isFloat = true
		if !math.IsNaN(float64(n)) {
			x.num = new(big.Float).SetFloat64(float64(n))
		}
	case float64:
		x.isFloat = true
		if !math.IsNaN(n) {
			x.num = new(big.Float).SetFloat64(n)
		}
	default:
		panic(fmt.Sprintf("qpNum(%T)", v))
	}
	return x
}

func qpArray(elems []string) qpVal {
	enc, err := msgpack.Marshal(elems)
	if err != nil {
		panic(err)
	}
	return qpVal{class: qpOther, enc: enc, elems: elems}
}

// qpQueryVal is a query value in the model.
func qpQueryVal(v any) qpVal {
	switch x := v.(type) {
	case string:
		return qpVal{class: qpString, s: x}
	case bool:
		return qpVal{class: qpBool, b: x}
	case []string:
		if x == nil {
			return qpVal{class: qpMissing} // msgpack nil: "missing"
		}
		return qpArray(x)
	}
	return qpNum(v)
}

// qpCompare is the documented value order (crdt.CompareValues): by class,
// then false < true, numbers exactly by value with NaN first, strings by
// bytes, arrays by encoding.
func qpCompare(a, b qpVal) int {
	if a.class != b.class {
		return cmp.Compare(a.class, b.class)
	}
	switch a.class {
	case qpBool:
		return cmp.Compare(boolInt(a.b), boolInt(b.b))
	case qpNumber:
		switch {
		case a.num == nil && b.num == nil:
			return 0
		case a.num == nil:
			return -1
		case b.num == nil:
			return 1
		}
		return a.num.Cmp(b.num)
	case qpString:
		return strings.Compare(a.s, b.s)
	case qpOther:
		return bytes.Compare(a.enc, b.enc)
	}
	return 0
}

// qpSortCompare is the order of sort keys: qpCompare, equal numbers float
// first.
func qpSortCompare(a, b qpVal) int {
	if c := qpCompare(a, b); c != 0 {
		return c
	}
	if a.class == qpNumber && a.isFloat != b.isFloat {
		if a.isFloat {
			return -1
		}
		return 1
	}
	return 0
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// qpItem is a record as the model sees it.
type qpItem struct {
	id     string
	fields map[string]qpVal // absent: missing
}

func qpItemOf(v qpView) qpItem {
	it := qpItem{id: v.ID, fields: map[string]qpVal{}}
	if v.S != nil {
		it.fields["s"] = qpVal{class: qpString, s: *v.S}
	}
	if v.I != nil {
		it.fields["i"] = qpNum(*v.I)
	}
	if v.F != nil {
		it.fields["f"] = qpNum(*v.F)
	}
	if v.B != nil {
		it.fields["b"] = qpVal{class: qpBool, b: *v.B}
	}
	if v.Tags != nil {
		// A set's value is the array of its elements in value order
		// (strings: by bytes).
		elems := slices.Clone(*v.Tags)
		if elems == nil {
			elems = []string{}
		}
		slices.Sort(elems)
		it.fields["tags"] = qpArray(elems)
	}
	return it
}

func (it qpItem) get(field string) qpVal {
	if field == converge.IDField {
		return qpVal{class: qpString, s: it.id}
	}
	return it.fields[field] // zero: missing
}

// qpPred is a predicate of the model, convertible to a converge.Filter.
type qpPred struct {
	op    string // eq ne gt gte lt lte between in contains startsWith and or
	field string
	vals  []any
	kids  []*qpPred
}

func (p *qpPred) filter() converge.Filter {
	switch p.op {
	case "and", "or":
		fs := make([]converge.Filter, len(p.kids))
		for i, k := range p.kids {
			fs[i] = k.filter()
		}
		if p.op == "and" {
			return converge.And(fs...)
		}
		return converge.Or(fs...)
	case "eq":
		return converge.Eq(p.field, p.vals[0])
	case "ne":
		return converge.Ne(p.field, p.vals[0])
	case "gt":
		return converge.Gt(p.field, p.vals[0])
	case "gte":
		return converge.Gte(p.field, p.vals[0])
	case "lt":
		return converge.Lt(p.field, p.vals[0])
	case "lte":
		return converge.Lte(p.field, p.vals[0])
	case "between":
		return converge.Between(p.field, p.vals[0], p.vals[1])
	case "in":
		return converge.In(p.field, p.vals...)
	case "contains":
		return converge.Contains(p.field, p.vals[0])
	case "startsWith":
		return converge.StartsWith(p.field, p.vals[0].(string))
	}
	panic(p.op)
}

func (p *qpPred) String() string {
	switch p.op {
	case "and", "or":
		parts := make([]string, len(p.kids))
		for i, k := range p.kids {
			parts[i] = k.String()
		}
		return p.op + "(" + strings.Join(parts, ", ") + ")"
	}
	vals := make([]string, len(p.vals))
	for i, v := range p.vals {
		vals[i] = fmt.Sprintf("%T(%#v)", v, v)
	}
	return fmt.Sprintf("%s(%s, %s)", p.op, p.field, strings.Join(vals, ", "))
}

// match is the documented semantics of the predicates.
func (p *qpPred) match(it qpItem) bool {
	switch p.op {
	case "and":
		for _, k := range p.kids {
			if !k.match(it) {
				return false
			}
		}
		return true
	case "or":
		for _, k := range p.kids {
			if k.match(it) {
				return true
			}
		}
		return false
	}
	v := it.get(p.field)
	eq := func(x any) bool { return qpCompare(v, qpQueryVal(x)) == 0 }
	// A range compares within the class of its bound, never with a
	// missing field or another class.
	// NaN, equal only to itself, is in no range.
	inRange := func(x any, ok func(int) bool) bool {
		q := qpQueryVal(x)
		return v.class == q.class && q.class != qpMissing && q.class != qpOther && !v.isNaN() && ok(qpCompare(v, q))
	}
	switch p.op {
	case "eq":
		return eq(p.vals[0])
	case "ne":
		return !eq(p.vals[0])
	case "in":
		return slices.ContainsFunc(p.vals, eq)
	case "gt":
		return inRange(p.vals[0], func(c int) bool { return c > 0 })
	case "gte":
		return inRange(p.vals[0], func(c int) bool { return c >= 0 })
	case "lt":
		return inRange(p.vals[0], func(c int) bool { return c < 0 })
	case "lte":
		return inRange(p.vals[0], func(c int) bool { return c <= 0 })
	case "between":
		return inRange(p.vals[0], func(c int) bool { return c >= 0 }) &&
			inRange(p.vals[1], func(c int) bool { return c <= 0 })
	case "contains":
		x := p.vals[0].(string)
		switch {
		case p.field == "tags":
			return v.class == qpOther && slices.Contains(v.elems, x)
		case v.class == qpString:
			return strings.Contains(v.s, x)
		}
		return false
	case "startsWith":
		return v.class == qpString && strings.HasPrefix(v.s, p.vals[0].(string))
	}
	panic(p.op)
}

// valid reports whether the query is one the engine must accept: every
// Between has low <= high, and no range is bounded by NaN.
func (p *qpPred) valid() bool {
	switch p.op {
	case "and", "or":
		for _, k := range p.kids {
			if !k.valid() {
				return false
			}
		}
	case "gt", "gte", "lt", "lte":
		return !qpQueryVal(p.vals[0]).isNaN()
	case "between":
		lo, hi := qpQueryVal(p.vals[0]), qpQueryVal(p.vals[1])
		return !lo.isNaN() && !hi.isNaN() && qpCompare(lo, hi) <= 0
	}
	return true
}

// isNaN reports whether v is the number NaN.
func (v qpVal) isNaN() bool { return v.class == qpNumber && v.num == nil }

type qpOrder struct {
	field string
	desc  bool
}

// qpQuery is a query of the model.
type qpQuery struct {
	where         []*qpPred
	order         []qpOrder
	limit, offset int
}

func (q qpQuery) query() converge.Query {
	var out converge.Query
	if len(q.where) > 0 {
		fs := make([]converge.Filter, len(q.where))
		for i, p := range q.where {
			fs[i] = p.filter()
		}
		out = converge.Where(fs...)
	}
	for _, o := range q.order {
		if o.desc {
			out = out.OrderByDesc(o.field)
		} else {
			out = out.OrderBy(o.field)
		}
	}
	return out.Limit(q.limit).Offset(q.offset)
}

func (q qpQuery) String() string {
	var b strings.Builder
	for i, p := range q.where {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString(p.String())
	}
	for _, o := range q.order {
		fmt.Fprintf(&b, " ORDER BY %s", o.field)
		if o.desc {
			b.WriteString(" DESC")
		}
	}
	fmt.Fprintf(&b, " LIMIT %d OFFSET %d", q.limit, q.offset)
	return b.String()
}

// valid reports whether the engine must accept q: its predicates are
// valid and it orders by no set.
func (q qpQuery) valid() bool {
	for _, p := range q.where {
		if !p.valid() {
			return false
		}
	}
	return !slices.ContainsFunc(q.order, func(o qpOrder) bool { return o.field == "tags" })
}

// compare is the documented result order: the Order entries in turn (an
// entry on the id decides), then the id in the direction of the last
// entry.
func (q qpQuery) compare(a, b qpItem) int {
	dir := func(c int, desc bool) int {
		if desc {
			return -c
		}
		return c
	}
	for _, o := range q.order {
		if o.field == converge.IDField {
			return dir(strings.Compare(a.id, b.id), o.desc)
		}
		if c := qpSortCompare(a.get(o.field), b.get(o.field)); c != 0 {
			return dir(c, o.desc)
		}
	}
	return dir(strings.Compare(a.id, b.id), len(q.order) > 0 && q.order[len(q.order)-1].desc)
}

// expect evaluates q over items by brute force: the ids of the result with
// and without q's limit (both after the offset), and the number matching.
func (q qpQuery) expect(items []qpItem) (page, all []string, count int) {
	var hit []qpItem
	for _, it := range items {
		ok := true
		for _, p := range q.where {
			if !p.match(it) {
				ok = false
				break
			}
		}
		if ok {
			hit = append(hit, it)
		}
	}
	slices.SortStableFunc(hit, q.compare)
	count = len(hit)
	hit = hit[min(q.offset, len(hit)):]
	for _, it := range hit {
		all = append(all, it.id)
	}
	page = all
	if q.limit > 0 && len(page) > q.limit {
		page = page[:q.limit]
	}
	return page, all, count
}

// ---- generators ----

// drawQueryVal draws a value for field (and op), of the field's class:
// mostly values that occur in the data, some that do not.
func drawQueryVal(t *rapid.T, field, op, label string) any {
	switch field {
	case "s":
		if op == "startsWith" {
			return rapid.SampledFrom([]string{"", "a", "ab", "b", "c", "é", "\xc3", "x"}).Draw(t, label)
		}
		return rapid.SampledFrom(qpStrQuery).Draw(t, label)
	case converge.IDField:
		return rapid.SampledFrom(qpIDQuery).Draw(t, label)
	case "i", "f":
		return rapid.SampledFrom(qpNumQuery).Draw(t, label)
	case "b":
		return rapid.Bool().Draw(t, label)
	case "tags":
		if op == "contains" {
			return rapid.SampledFrom(append(slices.Clone(qpElems), "z")).Draw(t, label)
		}
		// Eq/Ne on a set compare with an array: a sorted subset mostly,
		// sometimes unsorted, empty, or nil (missing).
		switch rapid.IntRange(0, 9).Draw(t, label+"-kind") {
		case 0:
			return []string(nil)
		case 1:
			return []string{}
		case 2:
			return rapid.SliceOfNDistinct(rapid.SampledFrom(qpElems), 2, 3, rapid.ID).Draw(t, label)
		}
		elems := rapid.SliceOfNDistinct(rapid.SampledFrom(qpElems), 1, 3, rapid.ID).Draw(t, label)
		slices.Sort(elems)
		return elems
	}
	panic(field)
}

var qpOps = map[string][]string{
	"s":              {"eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "contains", "startsWith"},
	converge.IDField: {"eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "contains", "startsWith"},
	"i":              {"eq", "ne", "gt", "gte", "lt", "lte", "between", "in"},
	"f":              {"eq", "ne", "gt", "gte", "lt", "lte", "between", "in"},
	"b":              {"eq", "ne", "gt", "gte", "lt", "lte", "between", "in"},
	"tags":           {"eq", "ne", "contains"},
}

// drawPred draws a predicate; invalidOK allows a Between with low > high
// (which the engine must refuse).
func drawPred(t *rapid.T, depth int, invalidOK bool) *qpPred {
	kind := rapid.IntRange(0, 9).Draw(t, "pred-kind")
	if depth < 3 && kind < 3 {
		p := &qpPred{op: "and"}
		lo := 0
		if kind == 0 {
			p.op, lo = "or", 1
		}
		for range rapid.IntRange(lo, 3).Draw(t, "group-size") {
			p.kids = append(p.kids, drawPred(t, depth+1, invalidOK))
		}
		return p
	}
	field := rapid.SampledFrom(qpFields).Draw(t, "field")
	op := rapid.SampledFrom(qpOps[field]).Draw(t, "op")
	p := &qpPred{op: op, field: field}
	// A range bounded by NaN is invalid: only invalidOK keeps some.
	bound := func(label string) any {
		v := drawQueryVal(t, field, op, label)
		if qpQueryVal(v).isNaN() && (!invalidOK || rapid.IntRange(0, 3).Draw(t, "keep-nan") > 0) {
			return 0.5
		}
		return v
	}
	switch op {
	case "gt", "gte", "lt", "lte":
		p.vals = []any{bound("value")}
	case "between":
		lo, hi := bound("lo"), bound("hi")
		if qpCompare(qpQueryVal(lo), qpQueryVal(hi)) > 0 && (!invalidOK || rapid.IntRange(0, 3).Draw(t, "keep-reversed") > 0) {
			lo, hi = hi, lo
		}
		p.vals = []any{lo, hi}
	case "in":
		for range rapid.IntRange(1, 3).Draw(t, "in-size") {
			p.vals = append(p.vals, drawQueryVal(t, field, op, "in"))
		}
	default:
		p.vals = []any{drawQueryVal(t, field, op, "value")}
	}
	return p
}

func drawQuery(t *rapid.T, invalidOK bool) qpQuery {
	var q qpQuery
	for range rapid.IntRange(0, 3).Draw(t, "where-size") {
		q.where = append(q.where, drawPred(t, 0, invalidOK))
	}
	// A set has no order: only invalidOK orders by one, sometimes.
	orderFields := qpFields
	if !invalidOK || rapid.IntRange(0, 7).Draw(t, "order-by-set") > 0 {
		orderFields = slices.DeleteFunc(slices.Clone(qpFields), func(f string) bool { return f == "tags" })
	}
	for range rapid.IntRange(0, 2).Draw(t, "order-size") {
		q.order = append(q.order, qpOrder{
			field: rapid.SampledFrom(orderFields).Draw(t, "order-field"),
			desc:  rapid.Bool().Draw(t, "desc"),
		})
	}
	if rapid.Bool().Draw(t, "has-limit") {
		q.limit = rapid.IntRange(1, 8).Draw(t, "limit")
	}
	if rapid.IntRange(0, 3).Draw(t, "has-offset") == 0 {
		q.offset = rapid.IntRange(1, 6).Draw(t, "offset")
	}
	return q
}

func drawRec(t *rapid.T, id string) qpRec {
	r := qpRec{
		ID: id,
		S:  rapid.SampledFrom(qpStrs).Draw(t, "s"),
		I:  rapid.SampledFrom(qpInts).Draw(t, "i"),
		F:  rapid.SampledFrom(qpFloats).Draw(t, "f"),
		B:  rapid.Bool().Draw(t, "b"),
	}
	if rapid.IntRange(0, 3).Draw(t, "has-tags") > 0 {
		r.Tags = rapid.SliceOfNDistinct(rapid.SampledFrom(qpElems), 0, 3, rapid.ID).Draw(t, "tags")
	}
	return r
}

func drawUpdate(t *rapid.T) converge.FieldUpdate {
	switch rapid.IntRange(0, 11).Draw(t, "update") {
	case 0:
		return converge.Set("s", rapid.SampledFrom(qpStrs).Draw(t, "s"))
	case 1:
		return converge.Set("i", rapid.SampledFrom(qpInts).Draw(t, "i"))
	case 2:
		return converge.Set("f", rapid.SampledFrom(qpFloats).Draw(t, "f"))
	case 3:
		return converge.Set("f", rapid.IntRange(-2, 3).Draw(t, "f-int")) // converted to float64
	case 4:
		return converge.Set("b", rapid.Bool().Draw(t, "b"))
	case 5:
		return converge.Unset(rapid.SampledFrom([]string{"s", "i", "f", "b"}).Draw(t, "unset"))
	case 6, 7:
		return converge.AddToSet("tags", anys(rapid.SliceOfN(rapid.SampledFrom(qpElems), 1, 2).Draw(t, "add"))...)
	case 8, 9:
		return converge.RemoveFromSet("tags", anys(rapid.SliceOfN(rapid.SampledFrom(qpElems), 1, 2).Draw(t, "remove"))...)
	case 10:
		return converge.Set("tags", rapid.SliceOfNDistinct(rapid.SampledFrom(qpElems), 0, 3, rapid.ID).Draw(t, "set-tags"))
	}
	return converge.Unset("s")
}

func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// ---- the fixture: two replicas, a fresh collection per check ----

type qpFixture struct {
	t    *testing.T
	a, b *converge.DB // a holds the indexes, b none
	n    int
}

func newQPFixture(t *testing.T) *qpFixture {
	quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
	return &qpFixture{t: t, a: open(t, quiet), b: open(t, quiet)}
}

// qpCase is one check's namespace and collections.
type qpCase struct {
	ctx    context.Context
	ns     string
	ca, cb *converge.Collection[qpRec]
	va     *converge.Collection[qpView]
	a, b   *converge.DB
}

func (f *qpFixture) next(t *rapid.T) *qpCase {
	f.n++
	name := fmt.Sprintf("c%d", f.n)
	// One namespace for all checks, a fresh collection per check: an index
	// build visits every namespace of the replica, so a namespace per check
	// would make the test quadratic.
	c := &qpCase{ctx: f.t.Context(), ns: "qp", a: f.a, b: f.b}
	var err error
	if c.ca, err = converge.NewCollection[qpRec](f.a, name); err != nil {
		t.Fatal(err)
	}
	if c.cb, err = converge.NewCollection[qpRec](f.b, name); err != nil {
		t.Fatal(err)
	}
	if c.va, err = converge.NewCollection[qpView](f.a, name); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *qpCase) sync(t *rapid.T) {
	if _, err := c.a.SyncWith(c.ctx, transport.NewMemPeer(c.b.SyncStore(), transport.Limits{}), c.ns); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// drawIDs draws the record ids of a check: between lo and hi of them,
// spread over the range (rapid's bias to small sizes would leave most
// checks with a handful of records).
func drawIDs(t *rapid.T, lo, hi int) []string {
	n := lo
	switch rapid.IntRange(0, 3).Draw(t, "size-class") {
	case 0:
		n = rapid.IntRange(lo, lo+3).Draw(t, "records")
	case 1:
		n = rapid.IntRange(lo, hi/2).Draw(t, "records")
	default:
		n = rapid.IntRange(hi/2, hi).Draw(t, "records")
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%d", i)
	}
	return ids
}

// put writes a new random record id on replica a or b.
func (c *qpCase) put(t *rapid.T, id string) {
	coll := c.ca
	if rapid.IntRange(0, 2).Draw(t, "on-b") == 0 {
		coll = c.cb
	}
	r := drawRec(t, id)
	if _, err := coll.Put(c.ctx, c.ns, &r); err != nil {
		t.Fatalf("put: %v", err)
	}
}

// write draws and performs one write on replica a or b.
func (c *qpCase) write(t *rapid.T, ids []string) {
	if len(ids) == 0 {
		return
	}
	db, coll := c.a, c.ca
	if rapid.IntRange(0, 2).Draw(t, "on-b") == 0 {
		db, coll = c.b, c.cb
	}
	id := rapid.SampledFrom(ids).Draw(t, "id")
	var err error
	switch k := rapid.IntRange(0, 19).Draw(t, "write"); {
	case k < 9:
		r := drawRec(t, id)
		_, err = coll.Put(c.ctx, c.ns, &r)
	case k < 15:
		err = coll.Update(c.ctx, c.ns, id, rapid.SliceOfN(rapid.Custom(drawUpdate), 1, 3).Draw(t, "updates")...)
	case k < 17:
		err = coll.Delete(c.ctx, c.ns, id)
	case k < 19: // a transaction of several puts
		recs := make([]qpRec, rapid.IntRange(2, 4).Draw(t, "tx-size"))
		for i := range recs {
			recs[i] = drawRec(t, rapid.SampledFrom(ids).Draw(t, "id"))
		}
		err = db.Update(c.ctx, c.ns, func(tx *converge.Tx) error {
			for i := range recs {
				if _, err := coll.Tx(tx).Put(&recs[i]); err != nil {
					return err
				}
			}
			return nil
		})
	default:
		c.sync(t)
	}
	if err != nil && !errors.Is(err, converge.ErrNotFound) {
		t.Fatalf("write: %v", err)
	}
}

// items reads every record of the namespace, as the model sees them.
func (c *qpCase) items(t *rapid.T) []qpItem {
	var out []qpItem
	for v, err := range c.va.All(c.ctx, c.ns) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, qpItemOf(v))
	}
	return out
}

func recIDs(rs []qpRec) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// sameRecs compares records by their encoding (so NaN equals NaN).
func sameRecs(a, b []qpRec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		ea, _ := msgpack.Marshal(a[i])
		eb, _ := msgpack.Marshal(b[i])
		if a[i].ID != b[i].ID || !bytes.Equal(ea, eb) {
			return false
		}
	}
	return true
}

// checkQuery runs q on collection coll and checks Find, Count and paging
// against the brute-force result.
func checkQuery(t *rapid.T, c *qpCase, coll *converge.Collection[qpRec], who string, q qpQuery, items []qpItem, byID map[string]qpRec) {
	cq := q.query()
	plan, _ := coll.Explain(cq)
	ctx := c.ctx
	if !q.valid() {
		if _, err := coll.Find(ctx, c.ns, cq); !errors.Is(err, converge.ErrQuery) {
			t.Fatalf("%s: Find(%v) = %v, want ErrQuery (Between with low > high, a NaN bound or an order by a set)", who, q, err)
		}
		return
	}
	wantPage, wantAll, wantCount := q.expect(items)
	got, err := coll.Find(ctx, c.ns, cq)
	if err != nil {
		t.Fatalf("%s: Find(%v): %v", who, q, err)
	}
	if !slices.Equal(recIDs(got), wantPage) {
		t.Fatalf("%s: Find(%v)\nplan: %s\n got %q\nwant %q", who, q, plan, recIDs(got), wantPage)
	}
	for _, r := range got {
		if !sameRecs([]qpRec{r}, []qpRec{byID[r.ID]}) {
			t.Fatalf("%s: Find(%v) returned %+v, All reads %+v", who, q, r, byID[r.ID])
		}
	}
	if n, err := coll.Count(ctx, c.ns, cq); err != nil || n != wantCount {
		t.Fatalf("%s: Count(%v) = %d, %v; want %d\nplan: %s", who, q, n, err, wantCount, plan)
	}
	// Page with the query's own limit: Find's result, and a cursor iff
	// more follow.
	p, err := coll.Page(ctx, c.ns, cq, "")
	if err != nil {
		t.Fatalf("%s: Page(%v): %v", who, q, err)
	}
	if !slices.Equal(recIDs(p.Items), wantPage) || (p.Next != "") != (len(wantAll) > len(wantPage)) {
		t.Fatalf("%s: Page(%v) = %q next %q; want %q, more: %v\nplan: %s", who, q, recIDs(p.Items), p.Next, wantPage, len(wantAll) > len(wantPage), plan)
	}
	// Paging through everything with limit k yields the whole result.
	k := rapid.IntRange(1, 5).Draw(t, "page-size")
	pq := q
	pq.limit = k
	cpq := pq.query()
	var seen []string
	var pages []string
	cursor := ""
	for range len(wantAll)/k + 2 {
		p, err := coll.Page(ctx, c.ns, cpq, cursor)
		if err != nil {
			t.Fatalf("%s: Page(%v, page %d): %v", who, pq, len(pages), err)
		}
		if len(p.Items) > k {
			t.Fatalf("%s: Page(%v) gave %d items, limit %d", who, pq, len(p.Items), k)
		}
		seen = append(seen, recIDs(p.Items)...)
		pages = append(pages, strings.Join(recIDs(p.Items), ","))
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	wantPages := max(1, (len(wantAll)+k-1)/k)
	if !slices.Equal(seen, wantAll) || cursor != "" || len(pages) != wantPages {
		plan, _ := coll.Explain(cpq)
		t.Fatalf("%s: paging %v by %d:\npages %q (cursor left %q)\n want %q in %d pages\nplan: %s", who, pq, k, pages, cursor, wantAll, wantPages, plan)
	}
}

// ---- the properties ----

// TestQueryMatchesBruteForce: on random data written on two replicas (and
// synced), with random indexes ensured before, during or after the writes,
// random queries give on the replica with indexes and on the one without
// exactly the brute-force result (Find), count (Count) and pages (Page).
func TestQueryMatchesBruteForce(t *testing.T) {
	f := newQPFixture(t)
	rapid.Check(t, func(t *rapid.T) {
		c := f.next(t)
		ids := drawIDs(t, 0, qpMaxRecords)
		// Every id is first put (a write among the others, on either
		// replica), then random writes follow.
		nWrites := len(ids)
		if len(ids) > 0 {
			nWrites += rapid.IntRange(0, 30).Draw(t, "writes")
		}
		// Indexes on a, each ensured before the writes, after write k, or
		// after all of them.
		ensureAt := map[int][][]string{}
		for _, def := range qpIndexDefs {
			if rapid.Bool().Draw(t, "index-"+strings.Join(def, ",")) {
				at := rapid.IntRange(-1, nWrites).Draw(t, "ensure-at")
				ensureAt[at] = append(ensureAt[at], def)
			}
		}
		ensure := func(at int) {
			for _, def := range ensureAt[at] {
				if err := c.ca.EnsureIndex(c.ctx, def...); err != nil {
					t.Fatalf("EnsureIndex(%v): %v", def, err)
				}
			}
		}
		ensure(-1)
		for i := range nWrites {
			if i < len(ids) {
				c.put(t, ids[i])
			} else {
				c.write(t, ids)
			}
			ensure(i)
		}
		ensure(nWrites)
		c.sync(t)
		if rapid.IntRange(0, 4).Draw(t, "rebuild") == 0 {
			for _, defs := range ensureAt {
				for _, def := range defs {
					if err := c.ca.RebuildIndex(c.ctx, def...); err != nil {
						t.Fatalf("RebuildIndex(%v): %v", def, err)
					}
				}
			}
		}
		ha, _ := c.a.Admin().StateHash(c.ctx, c.ns)
		hb, _ := c.b.Admin().StateHash(c.ctx, c.ns)
		if ha != hb {
			t.Fatalf("replicas differ after sync")
		}
		items := c.items(t)
		byID := map[string]qpRec{}
		for r, err := range c.ca.All(c.ctx, c.ns) {
			if err != nil {
				t.Fatal(err)
			}
			byID[r.ID] = r
		}
		for range rapid.IntRange(1, 4).Draw(t, "queries") {
			q := drawQuery(t, true)
			checkQuery(t, c, c.ca, "indexed", q, items, byID)
			checkQuery(t, c, c.cb, "plain", q, items, byID)
		}
	})
}

// TestWatchFinalState: a watch on a random query, through a random burst of
// writes (local, and remote through sync), ends on the result a fresh Find
// gives.
func TestWatchFinalState(t *testing.T) {
	f := newQPFixture(t)
	rapid.Check(t, func(t *rapid.T) {
		c := f.next(t)
		ids := drawIDs(t, 1, 20)
		for _, def := range qpIndexDefs {
			if rapid.IntRange(0, 3).Draw(t, "index-"+strings.Join(def, ",")) == 0 {
				if err := c.ca.EnsureIndex(c.ctx, def...); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, id := range ids {
			c.put(t, id)
		}
		for range rapid.IntRange(0, 10).Draw(t, "before") {
			c.write(t, ids)
		}
		q := drawQuery(t, false)
		cq := q.query()
		var opts []converge.WatchOption
		if rapid.IntRange(0, 3).Draw(t, "coalesce") == 0 {
			opts = append(opts, converge.Coalesce(time.Millisecond))
		}
		paged := rapid.IntRange(0, 2).Draw(t, "watch-page") == 0

		// The watch runs in a goroutine and hands each result over. The
		// deadline only bounds a failure; nothing waits on time. It is
		// generous: on a loaded 2-core machine a watch's re-read after a
		// burst and a sync has been seen to take more than 5 s.
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		type result struct {
			recs []qpRec
			next string
			err  error
		}
		results := make(chan result)
		done := make(chan struct{})
		defer func() { cancel(); <-done }()
		go func() {
			defer close(done)
			send := func(r result) bool {
				select {
				case results <- r:
					return r.err == nil
				case <-ctx.Done():
					return false
				}
			}
			if paged {
				for p, err := range c.ca.WatchPage(ctx, c.ns, cq, "", opts...) {
					if !send(result{p.Value.Items, p.Value.Next, err}) {
						return
					}
				}
				return
			}
			for v, err := range c.ca.Watch(ctx, c.ns, cq, opts...) {
				if !send(result{recs: v.Value, err: err}) {
					return
				}
			}
		}()
		fresh := func() result {
			p, err := c.ca.Page(c.ctx, c.ns, cq, "")
			if err != nil {
				t.Fatalf("Page(%v): %v", q, err)
			}
			if !paged {
				p.Next = ""
			}
			return result{recs: p.Items, next: p.Next}
		}
		same := func(a, b result) bool { return sameRecs(a.recs, b.recs) && a.next == b.next }
		var last result
		emitted := false
		// wait returns once the latest result the watch emitted equals
		// want.
		wait := func(want result, what string) {
			for !emitted || !same(last, want) {
				select {
				case r := <-results:
					if r.err != nil {
						t.Fatalf("watch(%v): %v", q, r.err)
					}
					last, emitted = r, true
				case <-ctx.Done():
					t.Fatalf("watch(%v): %s: no result equal to Find %q (next %q) within the deadline; last emitted %q (next %q)",
						q, what, recIDs(want.recs), want.next, recIDs(last.recs), last.next)
				}
			}
		}
		// No write runs yet: the first result is the current one.
		wait(fresh(), "first result")
		for range rapid.IntRange(1, 30).Draw(t, "burst") {
			c.write(t, ids)
		}
		if rapid.Bool().Draw(t, "final-sync") {
			c.sync(t)
		}
		want := fresh()
		wait(want, "after the burst")
		// The brute force agrees with the final state.
		wantPage, _, _ := q.expect(c.items(t))
		if !slices.Equal(recIDs(want.recs), wantPage) {
			t.Fatalf("Find(%v) = %q, brute force %q", q, recIDs(want.recs), wantPage)
		}
	})
}

// ---- every orderable type orders as Go orders it ----

// otName is a named string type.
type otName string

// otRec holds a field of every Go type a query orders.
type otRec struct {
	ID   string        `msgpack:"-" converge:"id"`
	Meta converge.Meta `msgpack:"-"`
	I    int           `msgpack:"i"`
	I8   int8          `msgpack:"i8"`
	I16  int16         `msgpack:"i16"`
	I32  int32         `msgpack:"i32"`
	I64  int64         `msgpack:"i64"`
	U    uint          `msgpack:"u"`
	U8   uint8         `msgpack:"u8"`
	U16  uint16        `msgpack:"u16"`
	U32  uint32        `msgpack:"u32"`
	U64  uint64        `msgpack:"u64"`
	F32  float32       `msgpack:"f32"`
	F64  float64       `msgpack:"f64"`
	S    string        `msgpack:"s"`
	N    otName        `msgpack:"n"`
	B    bool          `msgpack:"b"`
	Bin  []byte        `msgpack:"bin"`
	Arr  [3]byte       `msgpack:"arr"`
	T    time.Time     `msgpack:"t"`
	D    time.Duration `msgpack:"d"`
	PT   *time.Time    `msgpack:"pt"`
	PI   *int16        `msgpack:"pi"`
}

// otField is a field of otRec: its Go name, its query name, and a
// generator of its values (and of range bounds: for a pointer field, of
// what it points to).
type otField struct {
	goName, name string
	value, bound *rapid.Generator[any]
}

func otAny[T any](g *rapid.Generator[T]) *rapid.Generator[any] {
	return rapid.Map(g, func(v T) any { return v })
}

// otEdge draws mostly from a small pool of edge values (so that values
// tie), sometimes from the whole type.
func otEdge[T any](all *rapid.Generator[T], edges ...T) *rapid.Generator[any] {
	return otAny(rapid.OneOf(rapid.SampledFrom(edges), rapid.SampledFrom(edges), all))
}

func otPtr[T any](g *rapid.Generator[T]) *rapid.Generator[any] {
	return rapid.Custom(func(t *rapid.T) any {
		if rapid.IntRange(0, 4).Draw(t, "nil") == 0 {
			return (*T)(nil) // missing
		}
		v := g.Draw(t, "v")
		return &v
	})
}

var (
	otTimes = rapid.Custom(func(t *rapid.T) time.Time {
		zone := rapid.SampledFrom([]*time.Location{time.UTC, time.FixedZone("E", 3600), time.FixedZone("W", -5*3600)}).Draw(t, "zone")
		switch rapid.IntRange(0, 3).Draw(t, "time-kind") {
		case 0: // a few instants, in every msgpack form, and the zero time
			return rapid.SampledFrom([]time.Time{{}, time.Unix(0, 0), time.Unix(-1, 999999999), time.Unix(5, 0),
				time.Unix(5, 1), time.Unix(1<<32-1, 0), time.Unix(1<<32, 0), time.Unix(1<<34, 0), time.Unix(1<<34-1, 999999999),
			}).Draw(t, "time").In(zone)
		case 1: // near one instant, by nanoseconds and seconds
			return time.Unix(1714564800+rapid.Int64Range(-2, 2).Draw(t, "s"), rapid.Int64Range(0, 3).Draw(t, "ns")).In(zone)
		}
		return time.Unix(rapid.Int64Range(-1<<40, 1<<40).Draw(t, "sec"), rapid.Int64Range(0, 999999999).Draw(t, "nsec")).In(zone)
	})
	otFloats64 = []float64{math.NaN(), math.Inf(-1), -math.MaxFloat64, -1.5, -1, math.Copysign(0, -1), 0,
		math.SmallestNonzeroFloat64, 0.5, 1, 1 << 53, math.MaxFloat64, math.Inf(1)}
	otFloats32 = []float32{float32(math.NaN()), float32(math.Inf(-1)), -math.MaxFloat32, -2.5, float32(math.Copysign(0, -1)),
		0, math.SmallestNonzeroFloat32, 0.1, 1, math.MaxFloat32, float32(math.Inf(1))}
	otBytes = rapid.Custom(func(t *rapid.T) []byte {
		if rapid.IntRange(0, 5).Draw(t, "nil-bytes") == 0 {
			return nil // missing
		}
		return rapid.SliceOfN(rapid.SampledFrom([]byte{0, 1, 0x7f, 0x80, 0xff}), 0, 3).Draw(t, "bytes")
	})
	otStrings = rapid.OneOf(rapid.SampledFrom([]string{"", "a", "ab", "b", "a\x00", "é", "\xff", "Z"}), rapid.String())
)

var otFields = []otField{
	{goName: "I", name: "i", value: otEdge(rapid.Int(), math.MinInt, -1, 0, 1, math.MaxInt)},
	{goName: "I8", name: "i8", value: otEdge(rapid.Int8(), math.MinInt8, -1, 0, 1, math.MaxInt8)},
	{goName: "I16", name: "i16", value: otEdge(rapid.Int16(), math.MinInt16, -129, -1, 0, 255, math.MaxInt16)},
	{goName: "I32", name: "i32", value: otEdge(rapid.Int32(), math.MinInt32, -1, 0, 65536, math.MaxInt32)},
	{goName: "I64", name: "i64", value: otEdge(rapid.Int64(), math.MinInt64, -1<<53-1, -1, 0, 1<<53+1, math.MaxInt64)},
	{goName: "U", name: "u", value: otEdge(rapid.Uint(), 0, 1, math.MaxInt64, math.MaxInt64+1, math.MaxUint)},
	{goName: "U8", name: "u8", value: otEdge(rapid.Uint8(), 0, 1, 127, 128, math.MaxUint8)},
	{goName: "U16", name: "u16", value: otEdge(rapid.Uint16(), 0, 255, 256, math.MaxUint16)},
	{goName: "U32", name: "u32", value: otEdge(rapid.Uint32(), 0, 1, 1<<31, math.MaxUint32)},
	{goName: "U64", name: "u64", value: otEdge(rapid.Uint64(), 0, 1, math.MaxInt64, 1<<63, math.MaxUint64)},
	{goName: "F32", name: "f32", value: otEdge(rapid.Float32(), otFloats32...)},
	{goName: "F64", name: "f64", value: otEdge(rapid.Float64(), otFloats64...)},
	{goName: "S", name: "s", value: otAny(otStrings)},
	{goName: "N", name: "n", value: otAny(rapid.Map(otStrings, func(s string) otName { return otName(s) }))},
	{goName: "B", name: "b", value: otAny(rapid.Bool())},
	{goName: "Bin", name: "bin", value: otAny(otBytes)},
	{goName: "Arr", name: "arr", value: otEdge(rapid.Custom(func(t *rapid.T) [3]byte {
		return [3]byte(rapid.SliceOfN(rapid.Byte(), 3, 3).Draw(t, "arr"))
	}), [3]byte{}, [3]byte{0, 0, 1}, [3]byte{0xff, 0, 0}, [3]byte{1, 2, 3})},
	{goName: "T", name: "t", value: otAny(otTimes)},
	{goName: "D", name: "d", value: otEdge(rapid.Map(rapid.Int64(), func(i int64) time.Duration { return time.Duration(i) }),
		-time.Hour, -1, 0, time.Nanosecond, time.Second)},
	{goName: "PT", name: "pt", value: otPtr(otTimes), bound: otAny(otTimes)},
	{goName: "PI", name: "pi", value: otPtr(rapid.Int16()), bound: otAny(rapid.Int16())},
}

// otMissing reports whether v is stored as a missing field: a nil pointer
// or slice.
func otMissing(v any) bool {
	rv := reflect.ValueOf(v)
	return (rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Slice) && rv.IsNil()
}

func otIsNaN(v any) bool {
	switch x := v.(type) {
	case float32:
		return x != x
	case float64:
		return x != x
	}
	return false
}

// otCompare is Go's own order of two values of one field: cmp.Compare for
// numbers (NaN first, -0 equal to 0), bytewise for strings and bytes,
// false before true, time.Time.Compare; a pointer by what it points to.
// A missing value (a nil pointer or slice, which the store keeps as
// missing) sorts first.
func otCompare(a, b any) int {
	if am, bm := otMissing(a), otMissing(b); am || bm {
		return cmp.Compare(boolInt(!am), boolInt(!bm))
	}
	switch x := a.(type) {
	case int:
		return cmp.Compare(x, b.(int))
	case int8:
		return cmp.Compare(x, b.(int8))
	case int16:
		return cmp.Compare(x, b.(int16))
	case int32:
		return cmp.Compare(x, b.(int32))
	case int64:
		return cmp.Compare(x, b.(int64))
	case uint:
		return cmp.Compare(x, b.(uint))
	case uint8:
		return cmp.Compare(x, b.(uint8))
	case uint16:
		return cmp.Compare(x, b.(uint16))
	case uint32:
		return cmp.Compare(x, b.(uint32))
	case uint64:
		return cmp.Compare(x, b.(uint64))
	case float32:
		return cmp.Compare(x, b.(float32))
	case float64:
		return cmp.Compare(x, b.(float64))
	case string:
		return cmp.Compare(x, b.(string))
	case otName:
		return cmp.Compare(x, b.(otName))
	case bool:
		return cmp.Compare(boolInt(x), boolInt(b.(bool)))
	case []byte:
		return bytes.Compare(x, b.([]byte))
	case [3]byte:
		y := b.([3]byte)
		return bytes.Compare(x[:], y[:])
	case time.Time:
		return x.Compare(b.(time.Time))
	case time.Duration:
		return cmp.Compare(x, b.(time.Duration))
	case *time.Time:
		return x.Compare(*b.(*time.Time))
	case *int16:
		return cmp.Compare(*x, *b.(*int16))
	}
	panic(fmt.Sprintf("otCompare(%T)", a))
}

// otDeref is v, or what it points to.
func otDeref(v any) any {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return rv.Elem().Interface()
	}
	return v
}

// otRange is a range filter on one field: op and bounds (of the field's
// type, or of what a pointer field points to).
type otRange struct {
	op     string // gt gte lt lte between
	bounds []any
}

func (r *otRange) filter(field string) converge.Filter {
	switch r.op {
	case "gt":
		return converge.Gt(field, r.bounds[0])
	case "gte":
		return converge.Gte(field, r.bounds[0])
	case "lt":
		return converge.Lt(field, r.bounds[0])
	case "lte":
		return converge.Lte(field, r.bounds[0])
	}
	return converge.Between(field, r.bounds[0], r.bounds[1])
}

// valid reports whether the engine must accept the range: no NaN bound,
// and low <= high.
func (r *otRange) valid() bool {
	if slices.ContainsFunc(r.bounds, otIsNaN) {
		return false
	}
	return r.op != "between" || otCompare(r.bounds[0], r.bounds[1]) <= 0
}

// match is Go's own comparison operators: a missing value and NaN are in
// no range.
func (r *otRange) match(v any) bool {
	if otMissing(v) {
		return false
	}
	v = otDeref(v)
	if otIsNaN(v) {
		return false
	}
	c := otCompare(v, r.bounds[0])
	switch r.op {
	case "gt":
		return c > 0
	case "gte":
		return c >= 0
	case "lt":
		return c < 0
	case "lte":
		return c <= 0
	}
	return c >= 0 && otCompare(v, r.bounds[1]) <= 0
}

func (f otField) get(r *otRec) any {
	return reflect.ValueOf(r).Elem().FieldByName(f.goName).Interface()
}

func (f otField) set(r *otRec, v any) {
	reflect.ValueOf(r).Elem().FieldByName(f.goName).Set(reflect.ValueOf(v))
}

func drawOTRec(t *rapid.T, id string) otRec {
	r := otRec{ID: id}
	for _, f := range otFields {
		f.set(&r, f.value.Draw(t, f.name))
	}
	return r
}

// expectOrdered is the model: the ids of recs whose field f is in rg
// (all when nil), sorted by Go's order of f, ties by id, all in the
// direction of desc.
func expectOrdered(recs map[string]otRec, f otField, rg *otRange, desc bool) []string {
	var ids []string
	for id, r := range recs {
		if rg == nil || rg.match(f.get(&r)) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		ra, rb := recs[a], recs[b]
		c := otCompare(f.get(&ra), f.get(&rb))
		if c == 0 {
			c = strings.Compare(a, b)
		}
		if desc {
			return -c
		}
		return c
	})
	return ids
}

// findAllPages reads every page of q (limit k, 0: Find), and the plan.
func findAllPages(t *rapid.T, c *converge.Collection[otRec], ns string, q converge.Query, k int) ([]string, error) {
	if k == 0 {
		rs, err := c.Find(t.Context(), ns, q)
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		return ids, err
	}
	var ids []string
	cursor := ""
	for range 100 {
		p, err := c.Page(t.Context(), ns, q.Limit(k), cursor)
		if err != nil {
			return nil, err
		}
		for _, r := range p.Items {
			ids = append(ids, r.ID)
		}
		if cursor = p.Next; cursor == "" {
			return ids, nil
		}
	}
	t.Fatalf("more than 100 pages")
	return nil, nil
}

// TestQueryOrdersEveryTypeAsGo: for every Go type a query orders (integers
// of every width, floats with NaN, -0 and infinities, strings, named
// strings, bools, byte slices and arrays, time.Time in every msgpack
// form, durations, pointers), OrderBy and OrderByDesc, alone or with a
// random range filter, and paged through cursors, give the records in
// the order Go's own comparison sorts their values (ties by id), with an
// index on the field and without one.
func TestQueryOrdersEveryTypeAsGo(t *testing.T) {
	quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
	db := open(t, quiet)
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		n++
		plain, err := converge.NewCollection[otRec](db, fmt.Sprintf("plain%d", n))
		if err != nil {
			t.Fatal(err)
		}
		indexed, err := converge.NewCollection[otRec](db, fmt.Sprintf("indexed%d", n))
		if err != nil {
			t.Fatal(err)
		}
		ctx, ns := t.Context(), "ot"
		ensure := func() {
			for _, f := range otFields {
				if err := indexed.EnsureIndex(ctx, f.name); err != nil {
					t.Fatalf("EnsureIndex(%s): %v", f.name, err)
				}
			}
		}
		early := rapid.Bool().Draw(t, "index-first")
		if early {
			ensure()
		}
		recs := map[string]otRec{}
		nRecs := rapid.IntRange(0, 16).Draw(t, "records")
		for i := range nRecs + rapid.IntRange(0, 6).Draw(t, "rewrites") {
			id := fmt.Sprintf("r%02d", i%max(nRecs, 1))
			if nRecs == 0 {
				break
			}
			r := drawOTRec(t, id)
			for _, c := range []*converge.Collection[otRec]{plain, indexed} {
				rc := r
				if _, err := c.Put(ctx, ns, &rc); err != nil {
					t.Fatalf("Put: %v", err)
				}
			}
			recs[id] = r
		}
		if !early {
			ensure()
		}
		for range rapid.IntRange(1, 6).Draw(t, "queries") {
			f := rapid.SampledFrom(otFields).Draw(t, "field")
			desc := rapid.Bool().Draw(t, "desc")
			q := converge.Query{}.OrderBy(f.name)
			if desc {
				q = converge.Query{}.OrderByDesc(f.name)
			}
			var rg *otRange
			if rapid.IntRange(0, 2).Draw(t, "ranged") > 0 {
				bound := f.value
				if f.bound != nil {
					bound = f.bound
				}
				bound = bound.Filter(func(v any) bool { return !otMissing(v) })
				rg = &otRange{op: rapid.SampledFrom([]string{"gt", "gte", "lt", "lte", "between"}).Draw(t, "op")}
				rg.bounds = []any{bound.Draw(t, "bound")}
				if rg.op == "between" {
					rg.bounds = append(rg.bounds, bound.Draw(t, "high"))
					if otCompare(rg.bounds[0], rg.bounds[1]) > 0 && rapid.IntRange(0, 3).Draw(t, "keep-reversed") > 0 {
						rg.bounds[0], rg.bounds[1] = rg.bounds[1], rg.bounds[0]
					}
				}
				q = q.Where(rg.filter(f.name))
			}
			k := rapid.IntRange(0, 4).Draw(t, "page-size")
			want := expectOrdered(recs, f, rg, desc)
			for _, c := range []struct {
				name string
				coll *converge.Collection[otRec]
			}{{"scan", plain}, {"index", indexed}} {
				got, err := findAllPages(t, c.coll, ns, q, k)
				plan, _ := c.coll.Explain(q)
				if rg != nil && !rg.valid() {
					if !errors.Is(err, converge.ErrQuery) {
						t.Fatalf("%s: %s %v (%v): %v, want ErrQuery", c.name, f.name, rg.op, rg.bounds, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: order by %s (range %+v): %v", c.name, f.name, rg, err)
				}
				if c.name == "index" && !strings.HasPrefix(plan, "index "+f.name+" ") {
					t.Fatalf("plan %q does not use the index on %s", plan, f.name)
				}
				if !slices.Equal(got, want) {
					vals := map[string]string{}
					for _, id := range want {
						r := recs[id]
						vals[id] = fmt.Sprintf("%#v", otDeref(f.get(&r)))
					}
					t.Fatalf("%s: order by %s desc=%v range %+v page %d\nplan %s\n got %v\nwant %v\nvalues %v",
						c.name, f.name, desc, rg, k, plan, got, want, vals)
				}
			}
		}
	})
}
