package query

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"github.com/convergedb/converge/crdt"
	"pgregory.net/rapid"
)

func TestMatch(t *testing.T) {
	big := int64(1<<53 + 1) // no float64 equals it
	rec := item("rec-42",
		append(set("tags", vs("go"), vi(1), vs("db")),
			assign("n", vi(1)),
			assign("f", vf(2.5)),
			assign("s", vs("hello world")),
			assign("b", vTrue),
			assign("bin", vbin(1, 2, 3)),
			assign("big", vi(big)),
			assign("arr", varr(vi(1), vs("x"))),
			assign("map", []byte{0x81, 0xa1, 'k', 0x01}),
			assign("at", vt64(100, 5)), // 100 s and 5 ns
			assign("nan", vf(math.NaN())),
			crdt.FieldOp{Name: "cnt", Type: crdt.Count, P: 5, N: 2},
			crdt.FieldOp{Name: "hi", Type: crdt.WriteMax, Value: vi(9)},
		)...)
	tests := []struct {
		name string
		p    Pred
		want bool
	}{
		{"nil pred", nil, true},
		// Eq and Ne, mixed numbers.
		{"eq int", cond("n", Eq, vi(1)), true},
		{"eq int as float", cond("n", Eq, vf(1.0)), true},
		{"eq int as float32", cond("n", Eq, vf32(1.0)), true},
		{"eq int as uint64 form", cond("n", Eq, []byte{0xcf, 0, 0, 0, 0, 0, 0, 0, 1}), true},
		{"eq int other", cond("n", Eq, vi(2)), false},
		{"eq float", cond("f", Eq, vf(2.5)), true},
		{"eq float as int", cond("f", Eq, vi(2)), false},
		{"eq big int", cond("big", Eq, vi(big)), true},
		{"eq big int vs nearest float", cond("big", Eq, vf(float64(big))), false},
		{"eq string", cond("s", Eq, vs("hello world")), true},
		{"eq string other encoding", cond("s", Eq, vstr8("hello world")), true},
		{"eq string vs number", cond("n", Eq, vs("1")), false},
		{"eq bool", cond("b", Eq, vTrue), true},
		{"eq bool false", cond("b", Eq, vFalse), false},
		{"eq binary", cond("bin", Eq, vbin(1, 2, 3)), true},
		{"eq array", cond("arr", Eq, varr(vi(1), vs("x"))), true},
		{"eq counter total", cond("cnt", Eq, vi(3)), true},
		{"eq max register", cond("hi", Eq, vi(9)), true},
		{"eq set as array in element order", cond("tags", Eq, varr(vi(1), vs("db"), vs("go"))), true},
		{"eq set other order", cond("tags", Eq, varr(vs("go"), vi(1), vs("db"))), false},
		{"eq missing on missing", cond("nope", Eq, vMissing), true},
		{"eq nil means missing", cond("nope", Eq, vNil), true},
		{"eq missing on present", cond("n", Eq, vMissing), false},
		{"eq value on missing", cond("nope", Eq, vi(1)), false},
		{"ne", cond("n", Ne, vi(2)), true},
		{"ne equal across types", cond("n", Ne, vf(1)), false},
		{"ne on missing", cond("nope", Ne, vi(1)), true},
		{"ne missing on present", cond("n", Ne, vMissing), true},
		{"ne nil on missing", cond("nope", Ne, vNil), false},
		// In.
		{"in", cond("n", In, vi(5), vf(1.0)), true},
		{"in none", cond("n", In, vi(5), vi(6)), false},
		{"in missing", cond("nope", In, vi(5), vMissing), true},
		{"in strings", cond("s", In, vs("a"), vs("hello world")), true},
		// Ranges, type-bracketed.
		{"gt", cond("n", Gt, vi(0)), true},
		{"gt equal", cond("n", Gt, vi(1)), false},
		{"gt float bound", cond("n", Gt, vf(0.5)), true},
		{"gte equal across types", cond("n", Gte, vf(1.0)), true},
		{"lt", cond("f", Lt, vi(3)), true},
		{"lt equal", cond("f", Lt, vf(2.5)), false},
		{"lte", cond("f", Lte, vf(2.5)), true},
		{"gt big int vs float", cond("big", Gt, vf(1<<53)), true},
		{"lt missing never", cond("nope", Lt, vi(100)), false},
		{"gt missing never", cond("nope", Gt, vi(-100)), false},
		{"lt string vs number bound", cond("s", Lt, vi(100)), false},
		{"gt string vs number bound", cond("s", Gt, vi(100)), false},
		{"gt number vs string bound", cond("n", Gt, vs("")), false},
		{"gt string", cond("s", Gt, vs("hello")), true},
		{"lt string bytes", cond("s", Lt, vs("hellp")), true},
		{"gt bool", cond("b", Gt, vFalse), true},
		{"gt binary", cond("bin", Gt, vbin(1, 2)), true},
		{"range never matches a set", cond("tags", Gt, vi(0)), false},
		{"between", cond("n", Between, vi(0), vi(1)), true},
		{"between float bounds", cond("n", Between, vf(0.5), vf(1.5)), true},
		{"between inclusive low", cond("f", Between, vf(2.5), vi(3)), true},
		{"between outside", cond("f", Between, vi(3), vi(4)), false},
		{"between strings", cond("s", Between, vs("h"), vs("i")), true},
		{"between missing", cond("nope", Between, vi(0), vi(9)), false},
		// Timestamps by instant, whatever their forms.
		{"eq time", cond("at", Eq, vt96(100, 5)), true},
		{"eq time other instant", cond("at", Eq, vt32(100)), false},
		{"gt time, bound in a form with lower bytes", cond("at", Gt, vt32(100)), true},
		{"lt time, bound in a form with higher bytes", cond("at", Lt, vt64(101, 0)), true},
		{"lt time, bound before", cond("at", Lt, vt64(100, 4)), false},
		{"gte time, bound before 1970", cond("at", Gte, vt96(-1, 0)), true},
		{"between times", cond("at", Between, vt32(100), vt64(100, 5)), true},
		{"between times, above", cond("at", Between, vt64(100, 6), vt96(1<<40, 0)), false},
		{"time range vs number bound", cond("at", Gt, vi(0)), false},
		{"number range vs time bound", cond("n", Gt, vt32(0)), false},
		// NaN: equal to itself, in no range.
		{"eq NaN", cond("nan", Eq, vf(math.NaN())), true},
		{"ne NaN", cond("nan", Ne, vf(math.NaN())), false},
		{"NaN not below a number", cond("nan", Lt, vi(0)), false},
		{"NaN not at most +Inf", cond("nan", Lte, vf(math.Inf(1))), false},
		{"NaN not above -Inf", cond("nan", Gt, vf(math.Inf(-1))), false},
		{"NaN not between", cond("nan", Between, vf(math.Inf(-1)), vf(math.Inf(1))), false},
		// Contains.
		{"contains set string", cond("tags", Contains, vs("go")), true},
		{"contains set absent", cond("tags", Contains, vs("rust")), false},
		{"contains set number across types", cond("tags", Contains, vf(1.0)), true},
		{"contains set substring is not element", cond("tags", Contains, vs("g")), false},
		{"contains string substring", cond("s", Contains, vs("lo wo")), true},
		{"contains string empty", cond("s", Contains, vs("")), true},
		{"contains string absent", cond("s", Contains, vs("xyz")), false},
		{"contains string non-string value", cond("s", Contains, vi(1)), false},
		{"contains on number", cond("n", Contains, vi(1)), false},
		{"contains on array register", cond("arr", Contains, vf(1)), true},
		{"contains on array register string", cond("arr", Contains, vs("x")), true},
		{"contains on array register absent", cond("arr", Contains, vs("y")), false},
		{"contains on map register", cond("map", Contains, vs("k")), false},
		{"contains on missing", cond("nope", Contains, vs("a")), false},
		// StartsWith.
		{"startsWith", cond("s", StartsWith, vs("hell")), true},
		{"startsWith whole", cond("s", StartsWith, vs("hello world")), true},
		{"startsWith empty", cond("s", StartsWith, vs("")), true},
		{"startsWith no", cond("s", StartsWith, vs("world")), false},
		{"startsWith on number", cond("n", StartsWith, vs("1")), false},
		{"startsWith on missing", cond("nope", StartsWith, vs("")), false},
		// The id.
		{"id eq", cond(IDField, Eq, vs("rec-42")), true},
		{"id startsWith", cond(IDField, StartsWith, vs("rec-")), true},
		{"id contains", cond(IDField, Contains, vs("c-4")), true},
		{"id gt", cond(IDField, Gt, vs("rec-4")), true},
		{"id in", cond(IDField, In, vs("a"), vs("b")), false},
		// Groups.
		{"and", and(cond("n", Eq, vi(1)), cond("s", StartsWith, vs("h"))), true},
		{"and one false", and(cond("n", Eq, vi(1)), cond("s", StartsWith, vs("x"))), false},
		{"empty and", and(), true},
		{"or", or(cond("n", Eq, vi(7)), cond("s", StartsWith, vs("h"))), true},
		{"or none", or(cond("n", Eq, vi(7)), cond("s", StartsWith, vs("x"))), false},
		{"empty or", or(), false},
		{"nested", and(or(cond("n", Eq, vi(7)), and(cond("b", Eq, vTrue), or(cond("tags", Contains, vs("db"))))), cond("f", Gt, vi(2))), true},
		{"nested false", and(or(cond("n", Eq, vi(7)), and(cond("b", Eq, vTrue), or(cond("tags", Contains, vs("xx"))))), cond("f", Gt, vi(2))), false},
		// Invalid predicates match nothing, without panicking.
		{"bad op", cond("n", Op(0), vi(1)), false},
		{"no values", cond("n", Eq), false},
		{"between one value", cond("n", Between, vi(0)), false},
		{"nil cond", (*Cond)(nil), false},
		{"nil and", (*And)(nil), false},
		{"nil in and", and(nil), false},
		{"gt nil bound", cond("n", Gt, vNil), false},
		{"gt array bound", cond("arr", Gte, varr()), false},
		{"gt NaN bound", cond("n", Gt, vf(math.NaN())), false},
		{"between NaN bound", cond("n", Between, vf(math.NaN()), vi(5)), false},
		{"contains missing", cond("s", Contains, vMissing), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Match(tt.p, rec); got != tt.want {
				t.Errorf("Match(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

// TestMatchNoRecord: an item without a record has only its id.
func TestMatchNoRecord(t *testing.T) {
	it := Item{ID: "x"}
	for _, c := range []struct {
		p    Pred
		want bool
	}{
		{cond("a", Eq, vMissing), true},
		{cond("a", Lt, vi(1)), false},
		{cond("a", Contains, vi(1)), false},
		{cond(IDField, Eq, vs("x")), true},
	} {
		if got := Match(c.p, it); got != c.want {
			t.Errorf("Match(%v) = %v, want %v", c.p, got, c.want)
		}
	}
}

// TestMatchCyclic: a predicate that contains itself is refused by
// Validate and matches nothing, without exhausting the stack.
func TestMatchCyclic(t *testing.T) {
	a := &And{}
	a.Preds = []Pred{a}
	o := &Or{}
	o.Preds = []Pred{cond("x", Eq, vi(1)), o}
	for _, p := range []Pred{a, o} {
		if Match(p, item("i")) {
			t.Errorf("Match(cyclic %T) = true", p)
		}
		q := Query{Where: p}
		if err := q.Validate(nil); err == nil {
			t.Errorf("Validate(cyclic %T) = nil", p)
		}
		if pl := q.Plan([]Index{{Name: "x", Fields: []string{"x"}}}); pl.Index != "" {
			t.Errorf("Plan(cyclic %T) = %v, want a scan", p, pl)
		}
		_ = q.String()
	}
}

func TestPredString(t *testing.T) {
	tests := []struct {
		p    Pred
		want string
	}{
		{cond("status", Eq, vs("open")), `status = "open"`},
		{cond("n", Ne, vf(1)), `n != 1.0`},
		{cond("n", Gte, vi(-3)), `n >= -3`},
		{cond("n", Between, vi(1), vf(2.5)), `n between 1 and 2.5`},
		{cond("tag", In, vs("a"), vMissing, vNil), `tag in ("a", missing, nil)`},
		{cond("tags", Contains, vbin(0xab)), `tags contains 0xab`},
		{cond("title", StartsWith, vs("re")), `title startsWith "re"`},
		{cond("x", Eq, varr(vi(1), vTrue)), `x = [1, true]`},
		{cond("x", Eq, []byte{0x81, 0xa1, 'k', 0x01}), `x = {"k": 1}`},
		{cond("x", Eq, []byte{0xcb}), `x = <malformed 0xcb>`},
		{cond("x", Eq, vu(1<<63)), `x = 9223372036854775808`},
		{cond("at", Gt, vt64(1714564800, 500000000)), `at > time(2024-05-01T12:00:00.5Z)`},
		{cond("at", Lt, vt96(-1, 0)), `at < time(1969-12-31T23:59:59Z)`},
		{cond("x", Eq, []byte{0xd6, 0x0d, 0, 0, 0, 1}), `x = ext(0xd60d00000001)`},
		{cond("my field", Eq, vf(1e300)), `"my field" = 1e+300`},
		{and(cond("a", Eq, vi(1)), or(cond("b", Lt, vi(2)), cond("c", Gt, vi(3)))), `(a = 1 and (b < 2 or c > 3))`},
		{and(), "true"},
		{or(), "false"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %s, want %s", got, tt.want)
		}
	}
	q := Query{Where: cond("a", Eq, vi(1)), Order: []Order{{Field: "b", Desc: true}, {Field: "c"}}, Limit: 5, Offset: 2}
	if got, want := q.String(), `where a = 1 order by b desc, c limit 5 offset 2`; got != want {
		t.Errorf("Query.String() = %s, want %s", got, want)
	}
	if got := (&Query{}).String(); got != "all" {
		t.Errorf("Query{}.String() = %s, want all", got)
	}
}

// TestCmpValueIsKeyOrder: the sort order is the byte order of value keys,
// which is what makes an index scan agree with a sort.
func TestCmpValueIsKeyOrder(t *testing.T) {
	vals := [][]byte{
		vMissing, vNil, vFalse, vTrue,
		vf(-1e300), vi(-1 << 63), vf(-(1 << 63)), vi(-5), vf(-5), vf(-4.5), vi(0), vf(0), vf(math.Copysign(0, -1)), vf32(0.5), vf(0.5),
		vi(1), vf(1), vu(1 << 63), vf(1 << 63), vu(1<<64 - 1), vf(1 << 64),
		vi(1 << 53), vf(1 << 53), vi(1<<53 + 1), vi(1<<53 + 2), vf(1<<53 + 2), vi(1<<62 + 1),
		vs(""), vs("a"), vstr8("a"), vs("a\x00"), vs("a\x00b"), vs("ab"), vs("b"),
		vbin(), vbin(0), vbin(0, 1), vt96(-1, 0), vt32(0), vt64(0, 0), vt64(0, 1), vt32(5), vt96(5, 0), vt64(1<<33, 0), vt96(1<<40, 0),
		varr(), varr(vi(1)), {0x80}, {0xcb, 1}, {0xd6, 0x0d, 0, 0, 0, 1}, vf(math.NaN()), vf(math.Inf(-1)),
	}
	for _, a := range vals {
		for _, b := range vals {
			ka, kb := crdt.AppendValueKey(nil, a), crdt.AppendValueKey(nil, b)
			want := bytes.Compare(ka, kb)
			if got := cmpValue(a, b); got != want {
				t.Errorf("cmpValue(%s %x, %s %x) = %d, key order %d", formatValue(a), a, formatValue(b), b, got, want)
			}
		}
	}
	// Equal values have their keys among eqKeys.
	for _, a := range vals {
		for _, b := range vals {
			if crdt.CompareValues(a, b) != 0 || classOf(a) == classOther {
				continue
			}
			kb := crdt.AppendValueKey(nil, b)
			if !slices.ContainsFunc(eqKeys(a), func(k []byte) bool { return string(k) == string(kb) }) {
				t.Errorf("eqKeys(%s %x) lacks the key of equal value %x", formatValue(a), a, b)
			}
		}
	}
}

// TestCmpValueIsKeyOrderNumbers: the same over random numbers of every
// type, near the float64 precision limits; and eqKeys lists the key of
// every equal number.
func TestCmpValueIsKeyOrderNumbers(t *testing.T) {
	num := rapid.OneOf(
		rapid.Map(rapid.Int64(), vi),
		rapid.Map(rapid.Uint64(), vu),
		rapid.Map(rapid.Float64(), vf),
		rapid.Map(rapid.Float32(), vf32),
		rapid.Map(rapid.Int64Range(-1<<54, 1<<54), vi),
		rapid.Map(rapid.Int64Range(-1<<54, 1<<54), func(i int64) []byte { return vf(float64(i)) }),
		rapid.Map(rapid.Int64Range(-1<<20, 1<<20), func(i int64) []byte { return vf(float64(i) / 4) }),
	)
	rapid.Check(t, func(t *rapid.T) {
		a, b := num.Draw(t, "a"), num.Draw(t, "b")
		ka, kb := crdt.AppendValueKey(nil, a), crdt.AppendValueKey(nil, b)
		if got, want := cmpValue(a, b), bytes.Compare(ka, kb); got != want {
			t.Fatalf("cmpValue(%s, %s) = %d, key order %d", formatValue(a), formatValue(b), got, want)
		}
		if crdt.CompareValues(a, b) == 0 && !slices.ContainsFunc(eqKeys(a), func(k []byte) bool { return bytes.Equal(k, kb) }) {
			t.Fatalf("eqKeys(%s) lacks the key of equal %s", formatValue(a), formatValue(b))
		}
	})
}

// TestMatchTextAndList: a text field matches as the string it shows, a
// list field as the array of its values.
func TestMatchTextAndList(t *testing.T) {
	rec := &crdt.Record{}
	self := crdt.ReplicaID{9}
	cl, fields, err := rec.Prepare(self, crdt.IntentPut, []crdt.Change{
		{Name: "note", Type: crdt.TextSplice, Value: vs("hello world")},
		{Name: "items", Type: crdt.ListSplice, Value: varr(vs("milk"), vi(2))},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec.Apply(&crdt.Op{Namespace: "ns", Collection: "c", Key: "k", Dot: crdt.Dot{Origin: self, Seq: 1}, HLC: 1, CL: cl, TxEnd: true, Fields: fields})
	// Delete "hello " so the visible text differs from what was inserted.
	_, fields, err = rec.Prepare(self, crdt.IntentUpdate, []crdt.Change{{Name: "note", Type: crdt.TextSplice, Pos: 0, Del: 6}})
	if err != nil {
		t.Fatal(err)
	}
	rec.Apply(&crdt.Op{Namespace: "ns", Collection: "c", Key: "k", Dot: crdt.Dot{Origin: self, Seq: 2}, HLC: 2, CL: cl, TxEnd: true, Fields: fields})
	it := Item{ID: "k", Rec: rec}
	for _, tc := range []struct {
		name string
		p    Pred
		want bool
	}{
		{"text eq", cond("note", Eq, vs("world")), true},
		{"text contains", cond("note", Contains, vs("orl")), true},
		{"text contains a deleted part", cond("note", Contains, vs("hello")), false},
		{"text starts with", cond("note", StartsWith, vs("wor")), true},
		{"text starts with a deleted part", cond("note", StartsWith, vs("hel")), false},
		{"list contains", cond("items", Contains, vs("milk")), true},
		{"list contains not", cond("items", Contains, vs("eggs")), false},
	} {
		if got := Match(tc.p, it); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
}
