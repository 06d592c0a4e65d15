package query

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt"
	"pgregory.net/rapid"
)

// key is the value key of v.
func key(vals ...[]byte) []byte {
	var k []byte
	for _, v := range vals {
		k = crdt.AppendValueKey(k, v)
	}
	return k
}

func TestPlan(t *testing.T) {
	indexes := []Index{
		{Name: "by_status", Fields: []string{"status"}},
		{Name: "by_prio", Fields: []string{"priority"}},
		{Name: "by_sp", Fields: []string{"status", "priority"}},
		{Name: "by_tags", Fields: []string{"tags"}, Sets: []string{"tags"}},
		{Name: "by_title", Fields: []string{"title"}},
	}
	open := cond("status", Eq, vs("open"))
	kOpen := key(vs("open"))
	tests := []struct {
		name    string
		q       Query
		explain string
		ranges  []Range // nil: not checked
	}{
		{"no where, no order", Query{}, "scan, sort by id", nil},
		{"eq: the one-field index, ordered by id", Query{Where: open},
			`index by_status [status = "open"], ordered`, []Range{{kOpen, prefixEnd(kOpen)}}},
		{"eq and order by the next field", Query{Where: open, Order: []Order{{Field: "priority"}}},
			`index by_sp [status = "open"], ordered`, []Range{{kOpen, prefixEnd(kOpen)}}},
		{"eq and order desc: reverse", Query{Where: open, Order: []Order{{Field: "priority", Desc: true}}},
			`index by_sp [status = "open"], reverse, ordered`, nil},
		{"eq and mixed directions: sort", Query{Where: open, Order: []Order{{Field: "priority", Desc: true}, {Field: IDField}}},
			`index by_status [status = "open"], sort by priority desc, id`, nil},
		{"two eqs beat one", Query{Where: and(open, cond("priority", Eq, vs("p1")))},
			`index by_sp [status = "open", priority = "p1"], ordered`, []Range{{key(vs("open"), vs("p1")), prefixEnd(key(vs("open"), vs("p1")))}}},
		{"eq and range", Query{Where: and(cond("priority", Gt, vs("m")), open)},
			`index by_sp [status = "open", priority > "m"], sort by id`,
			[]Range{{append(slices.Clip(kOpen), prefixEnd(key(vs("m")))...), append(slices.Clip(kOpen), 0x07)}}},
		{"eq and range, ordered by the range field", Query{Where: and(cond("priority", Gt, vs("m")), open), Order: []Order{{Field: "priority"}}},
			`index by_sp [status = "open", priority > "m"], ordered`, nil},
		{"eq and range, order by pinned field then range field", Query{Where: and(cond("priority", Gt, vs("m")), open), Order: []Order{{Field: "status", Desc: true}, {Field: "priority"}}},
			`index by_sp [status = "open", priority > "m"], ordered`, nil},
		{"in: merge", Query{Where: cond("status", In, vs("b"), vs("a")), Order: []Order{{Field: "priority"}}},
			`index by_sp [status in ("b", "a")], merge 2 ranges`,
			[]Range{{key(vs("a")), prefixEnd(key(vs("a")))}, {key(vs("b")), prefixEnd(key(vs("b")))}}},
		{"in ordered by the same field", Query{Where: cond("status", In, vs("b"), vs("a")), Order: []Order{{Field: "status"}}},
			`index by_status [status in ("b", "a")], ordered`, nil},
		{"eq on a number: two keys", Query{Where: cond("priority", Eq, vi(1))},
			`index by_prio [priority = 1], merge 2 ranges`,
			[]Range{{key(vf(1)), prefixEnd(key(vf(1)))}, {key(vi(1)), prefixEnd(key(vi(1)))}}},
		{"eq on a float with no integer form", Query{Where: cond("priority", Eq, vf(1.5))},
			`index by_prio [priority = 1.5], ordered`, nil},
		{"eq on an integer with no float form", Query{Where: cond("priority", Eq, vi(1<<53+1))},
			`index by_prio [priority = 9007199254740993], ordered`, nil},
		{"range: class bracketed", Query{Where: cond("priority", Gte, vi(3))},
			`index by_prio [priority >= 3], sort by id`,
			[]Range{{key(vf(3)), []byte{0x06}}}},
		{"range below", Query{Where: cond("priority", Lt, vf(2.5))},
			`index by_prio [priority < 2.5], sort by id`,
			[]Range{{[]byte{0x05}, key(vf(2.5))}}},
		{"range lte covers both forms", Query{Where: cond("priority", Lte, vf(2))},
			`index by_prio [priority <= 2.0], sort by id`,
			[]Range{{[]byte{0x05}, prefixEnd(key(vi(2)))}}},
		{"ranges intersect", Query{Where: and(cond("priority", Gt, vi(1)), cond("priority", Lte, vi(9))), Order: []Order{{Field: "priority", Desc: true}}},
			`index by_prio [priority > 1, priority <= 9], reverse, ordered`,
			[]Range{{prefixEnd(key(vi(1))), prefixEnd(key(vi(9)))}}},
		{"between", Query{Where: cond("priority", Between, vi(1), vi(3))},
			`index by_prio [priority between 1 and 3], sort by id`,
			[]Range{{key(vf(1)), prefixEnd(key(vi(3)))}}},
		{"contradiction: no ranges", Query{Where: and(cond("priority", Gt, vi(5)), cond("priority", Lt, vi(3)))},
			`index by_prio [priority > 5, priority < 3], empty`, []Range{}},
		{"types contradict: no ranges", Query{Where: and(cond("priority", Gt, vi(5)), cond("priority", Lt, vs("z")))},
			`index by_prio [priority > 5, priority < "z"], empty`, []Range{}},
		{"startsWith", Query{Where: cond("title", StartsWith, vs("re"))},
			`index by_title [title startsWith "re"], sort by id`,
			[]Range{{crdt.ValueKeyPrefix("re"), prefixEnd(crdt.ValueKeyPrefix("re"))}}},
		{"contains on a set", Query{Where: cond("tags", Contains, vs("go"))},
			`index by_tags [tags contains "go"], dedupe, ordered`, nil},
		{"contains on a string: no index", Query{Where: cond("title", Contains, vs("go"))},
			`scan, sort by id`, nil},
		{"contains a number on an undeclared field", Query{Where: cond("title", Contains, vi(5))},
			`scan, sort by id`, nil},
		{"contains a number on a set", Query{Where: cond("tags", Contains, vi(5))},
			`index by_tags [tags contains 5], dedupe, merge 2 ranges`, nil},
		{"eq missing", Query{Where: cond("status", Eq, vNil)},
			`index by_status [status = nil], ordered`, []Range{{[]byte{0x01}, []byte{0x02}}}},
		{"eq array: no index", Query{Where: cond("tags", Eq, varr(vs("a")))}, `scan, sort by id`, nil},
		{"ne: no index", Query{Where: cond("status", Ne, vs("open"))}, `scan, sort by id`, nil},
		{"id: no index", Query{Where: cond(IDField, Eq, vs("x"))}, `scan, sort by id`, nil},
		{"order only", Query{Order: []Order{{Field: "priority", Desc: true}}},
			`index by_prio [all], reverse, ordered`, []Range{{}}},
		{"order only, not a prefix", Query{Order: []Order{{Field: "tags"}}}, `scan, sort by tags`, nil},
		{"order only with unusable where", Query{Where: cond("title", Contains, vs("x")), Order: []Order{{Field: "status"}, {Field: "priority"}}},
			`index by_sp [all], ordered`, nil},
		{"order by id", Query{Order: []Order{{Field: IDField, Desc: true}}}, `scan, sort by id desc`, nil},
		{"or on one index", Query{Where: or(cond("status", Eq, vs("b")), cond("status", Eq, vs("a")))},
			`index by_status [(status = "b" | status = "a")], sort by id`,
			[]Range{{key(vs("a")), prefixEnd(key(vs("a")))}, {key(vs("b")), prefixEnd(key(vs("b")))}}},
		{"or of overlapping ranges merges them", Query{Where: or(cond("priority", Gt, vi(1)), cond("priority", Gt, vi(5)), cond("priority", Eq, vi(3)))},
			`index by_prio [(priority > 1 | priority > 5 | priority = 3)], sort by id`,
			[]Range{{prefixEnd(key(vi(1))), []byte{0x06}}}},
		{"or ordered by the index field", Query{Where: or(cond("priority", Lt, vi(1)), cond("priority", Gt, vi(5))), Order: []Order{{Field: "priority"}}},
			`index by_prio [(priority < 1 | priority > 5)], ordered`, nil},
		{"or over two fields: scan", Query{Where: or(cond("status", Eq, vs("a")), cond("priority", Eq, vi(1)))},
			`scan, sort by id`, nil},
		{"or nested in and", Query{Where: and(cond("title", Contains, vs("x")), or(and(open, cond("priority", Eq, vs("a"))), cond("status", Eq, vs("b"))))},
			`index by_status [(status = "open" | status = "b")], sort by id`, nil},
		{"or beside a better eq", Query{Where: and(open, or(cond("priority", Eq, vs("a")), cond("priority", Eq, vs("b"))))},
			`index by_sp [(status = "open", priority = "a" | status = "open", priority = "b")], sort by id`,
			[]Range{{key(vs("open"), vs("a")), prefixEnd(key(vs("open"), vs("a")))}, {key(vs("open"), vs("b")), prefixEnd(key(vs("open"), vs("b")))}}},
		{"invalid query: scan", Query{Where: cond("priority", Gt, vNil)}, `scan (invalid query), sort by id`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.q.Plan(indexes)
			if got := p.String(); got != tt.explain {
				t.Errorf("Plan(%v) = %s, want %s", &tt.q, got, tt.explain)
			}
			if got := tt.q.Explain(indexes); got != tt.explain {
				t.Errorf("Explain = %s, want %s", got, tt.explain)
			}
			if tt.ranges != nil && !rangesEqual(p.Ranges, tt.ranges) {
				t.Errorf("Ranges = %s, want %s", fmtRanges(p.Ranges), fmtRanges(tt.ranges))
			}
		})
	}
}

// TestPlanPrefersEarlierIndex: among equal plans the first index wins, and
// the choice does not depend on anything but the input order.
func TestPlanPrefersEarlierIndex(t *testing.T) {
	a := Index{Name: "a", Fields: []string{"x"}}
	b := Index{Name: "b", Fields: []string{"x"}}
	q := Query{Where: cond("x", Eq, vs("v"))}
	if p := q.Plan([]Index{a, b}); p.Index != "a" {
		t.Errorf("Plan = %v, want index a", p)
	}
	if p := q.Plan([]Index{b, a}); p.Index != "b" {
		t.Errorf("Plan = %v, want index b", p)
	}
	if p := q.Plan(nil); p.Index != "" || !p.Unique {
		t.Errorf("Plan(no indexes) = %+v, want a scan", p)
	}
	if p := q.Plan([]Index{{Name: "empty"}}); p.Index != "" {
		t.Errorf("Plan(index without fields) = %v, want a scan", p)
	}
}

// TestPlanRangeCap: In lists on several fields make a cross product; the
// planner stops pinning fields before it exceeds maxRanges.
func TestPlanRangeCap(t *testing.T) {
	var vals [][]byte
	for i := range 20 {
		vals = append(vals, vs(fmt.Sprint("v", i)))
	}
	q := Query{Where: and(cond("a", In, vals...), cond("b", In, vals...), cond("c", Eq, vs("z")))}
	p := q.Plan([]Index{{Name: "abc", Fields: []string{"a", "b", "c"}}})
	if len(p.Ranges) != 20 {
		t.Errorf("Plan = %v with %d ranges, want 20 (a pinned only)", p, len(p.Ranges))
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tt := range []struct{ in, want []byte }{
		{nil, nil},
		{[]byte{0xff, 0xff}, nil},
		{[]byte{1, 2}, []byte{1, 3}},
		{[]byte{1, 0xff}, []byte{2}},
	} {
		if got := prefixEnd(tt.in); !bytes.Equal(got, tt.want) {
			t.Errorf("prefixEnd(%x) = %x, want %x", tt.in, got, tt.want)
		}
	}
}

func rangesEqual(a, b []Range) bool {
	return slices.EqualFunc(a, b, func(x, y Range) bool {
		return bytes.Equal(x.Lo, y.Lo) && bytes.Equal(x.Hi, y.Hi) && (x.Hi == nil) == (y.Hi == nil)
	})
}

func fmtRanges(rs []Range) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("[%x, %x)", r.Lo, r.Hi))
	}
	return "{" + strings.Join(s, " ") + "}"
}

// indexEntries returns the entries of it in idx, by the rule the planner
// assumes (materialize.IndexKeys): per field, the value key of the field's
// value (missing: the missing key) or, for a set, one per element (an
// empty set as missing); the cross product, sorted and distinct; each
// followed by the id, escaped and terminated.
func indexEntries(idx Index, it Item) [][]byte {
	keys := [][]byte{nil}
	for _, f := range idx.Fields {
		var vals [][]byte
		if v, ok := it.Rec.Get(f); ok && v.Kind == crdt.KindSet {
			vals = it.Rec.SetElems(f)
			if len(vals) == 0 {
				vals = [][]byte{nil}
			}
		} else {
			vals = [][]byte{v.Value}
		}
		var next [][]byte
		for _, k := range keys {
			for _, v := range vals {
				next = append(next, crdt.AppendValueKey(slices.Clip(k), v))
			}
		}
		keys = next
	}
	slices.SortFunc(keys, bytes.Compare)
	keys = slices.CompactFunc(keys, bytes.Equal)
	for i, k := range keys {
		for _, c := range []byte(it.ID) {
			if c == 0 {
				k = append(k, 0, 0xff)
			} else {
				k = append(k, c)
			}
		}
		keys[i] = append(k, 0, 1)
	}
	return keys
}

type entry struct {
	key []byte
	it  Item
}

// execute runs plan p of q over items the way an index executor does, in
// memory, and checks the plan's claims: ranges sorted and disjoint, every
// matching record among the candidates, Unique and Ordered and Merge true
// to their word (unless drift, when only completeness is promised).
func execute(t *rapid.T, q *Query, p Plan, indexes []Index, items []Item, drift bool) []Item {
	if p.Index == "" {
		page, _, err := q.Run(items)
		if err != nil {
			t.Fatal(err)
		}
		return page
	}
	i := slices.IndexFunc(indexes, func(x Index) bool { return x.Name == p.Index })
	if i < 0 {
		t.Fatalf("plan names unknown index %q", p.Index)
	}
	idx := indexes[i]
	for j := 1; j < len(p.Ranges); j++ {
		if prev := p.Ranges[j-1]; prev.Hi == nil || bytes.Compare(prev.Hi, p.Ranges[j].Lo) > 0 {
			t.Fatalf("ranges %s not sorted and disjoint", fmtRanges(p.Ranges))
		}
	}
	var all []entry
	for _, it := range items {
		for _, k := range indexEntries(idx, it) {
			all = append(all, entry{k, it})
		}
	}
	slices.SortFunc(all, func(a, b entry) int { return bytes.Compare(a.key, b.key) })

	// Read the ranges in plan order.
	var perRange [][]entry
	for _, r := range p.Ranges {
		var in []entry
		for _, e := range all {
			if bytes.Compare(e.key, r.Lo) >= 0 && (r.Hi == nil || bytes.Compare(e.key, r.Hi) < 0) {
				in = append(in, e)
			}
		}
		if p.Reverse {
			slices.Reverse(in)
		}
		perRange = append(perRange, in)
	}
	if p.Reverse {
		slices.Reverse(perRange)
	}
	seen := map[string]bool{}
	var cands []Item
	for ri, in := range perRange {
		var matched []Item
		for _, e := range in {
			if seen[e.it.ID] {
				if p.Unique && !drift {
					t.Fatalf("plan %v: record %q twice but Unique", p, e.it.ID)
				}
				continue
			}
			seen[e.it.ID] = true
			if Match(q.Where, e.it) {
				matched = append(matched, e.it)
			}
		}
		if p.Merge && !drift {
			for j := 1; j < len(matched); j++ {
				if q.Compare(matched[j-1], matched[j]) >= 0 {
					t.Fatalf("plan %v: range %d yields %q before %q", p, ri, matched[j-1].ID, matched[j].ID)
				}
			}
		}
		cands = append(cands, matched...)
	}
	for _, it := range items {
		if Match(q.Where, it) && !seen[it.ID] {
			t.Fatalf("plan %v misses matching record %q (entries %x)", p, it.ID, indexEntries(idx, it))
		}
	}
	if p.Ordered && !drift {
		for j := 1; j < len(cands); j++ {
			if q.Compare(cands[j-1], cands[j]) >= 0 {
				t.Fatalf("plan %v: Ordered, but %q comes before %q", p, cands[j-1].ID, cands[j].ID)
			}
		}
	}
	if !p.Ordered || drift {
		slices.SortFunc(cands, q.Compare)
	}
	var page []Item
	for _, it := range cands {
		ok, err := q.AfterCursor(it)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			page = append(page, it)
		}
	}
	if q.After == "" {
		page = page[min(q.Offset, len(page)):]
	}
	if q.Limit > 0 && len(page) > q.Limit {
		page = page[:q.Limit]
	}
	return page
}

var indexPool = []Index{
	{Name: "a", Fields: []string{"a"}},
	{Name: "b", Fields: []string{"b"}},
	{Name: "c", Fields: []string{"c"}},
	{Name: "tags", Fields: []string{"tags"}, Sets: []string{"tags"}},
	{Name: "ab", Fields: []string{"a", "b"}},
	{Name: "ba", Fields: []string{"b", "a"}},
	{Name: "tags_a", Fields: []string{"tags", "a"}, Sets: []string{"tags"}},
	{Name: "a_tags", Fields: []string{"a", "tags"}, Sets: []string{"tags"}},
	{Name: "bca", Fields: []string{"b", "c", "a"}},
	{Name: "stored_id", Fields: []string{IDField, "a"}},
	{Name: "c_undeclared_tags", Fields: []string{"c", "tags"}},
}

// checkPlanAgainstRun: executing any plan of a random query over random
// records gives exactly what Run gives.
func checkPlanAgainstRun(t *rapid.T, drift bool) {
	items := genItems(t, drift, 5, 40)
	q := Query{
		Where: rapid.OneOf(genWhere(), genPlannableWhere(), genPlannableWhere()).Draw(t, "where"),
		Order: genOrder().Draw(t, "order"),
		Limit: rapid.IntRange(0, 4).Draw(t, "limit"),
	}
	if rapid.Bool().Draw(t, "paged") {
		q.After = q.CursorFor(genItem("cursor", false).Draw(t, "at"))
	} else {
		q.Offset = rapid.IntRange(0, 2).Draw(t, "offset")
	}
	if err := q.Validate(nil); err != nil {
		t.Fatalf("generated an invalid query %v: %v", &q, err)
	}
	pool := indexPool
	if !drift {
		// Honest declarations only: this index holds sets in an undeclared field.
		pool = slices.DeleteFunc(slices.Clone(pool), func(i Index) bool { return i.Name == "c_undeclared_tags" })
	}
	indexes := rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 1, 4, func(i Index) string { return i.Name }).Draw(t, "indexes")
	p := q.Plan(indexes)
	t.Logf("query %v\nplan %v", &q, p)
	want, _, err := q.Run(items)
	if err != nil {
		t.Fatal(err)
	}
	got := execute(t, &q, p, indexes, items, drift)
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("plan %v gives %q, Run gives %q", p, ids(got), ids(want))
	}
}

func TestPlanAgainstRun(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) { checkPlanAgainstRun(t, false) })
}

// TestPlanAgainstRunWithDrift: when an undeclared field holds sets in some
// records, plans still find every matching record.
func TestPlanAgainstRunWithDrift(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) { checkPlanAgainstRun(t, true) })
}

// TestClassKeysMatchValueKeys: the key ranges the planner assumes per
// class hold exactly the keys crdt gives values of that class.
func TestClassKeysMatchValueKeys(t *testing.T) {
	vals := slices.Concat(numPool, strPool, boolPool, binPool, timePool, nanPool, otherPool,
		[][]byte{vMissing, vf(math.Inf(-1)), vt96(math.MinInt64, 0), vt96(math.MaxInt64, 999999999)})
	for _, v := range vals {
		k := crdt.AppendValueKey(nil, v)
		for cl, r := range classKeys {
			if in := k[0] >= r[0] && k[0] < r[1]; in != (classOf(v) == cl) {
				t.Errorf("key %x of %s (class %s): in the range of class %s = %v", k, formatValue(v), classNames[classOf(v)], classNames[cl], in)
			}
		}
	}
}
