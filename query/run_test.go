package query

import (
	"slices"
	"testing"
)

func TestCompare(t *testing.T) {
	a1 := item("a", assign("p", vi(1)), assign("s", vs("x")))
	b1 := item("b", assign("p", vi(1)), assign("s", vs("y")))
	c1f := item("c", assign("p", vf(1)))
	d2 := item("d", assign("p", vi(2)))
	eMissing := item("e")
	fStr := item("f", assign("p", vs("1")))
	asc := []Order{{Field: "p"}}
	desc := []Order{{Field: "p", Desc: true}}
	tests := []struct {
		name  string
		order []Order
		a, b  Item
		want  int
	}{
		{"by id when no order", nil, a1, b1, -1},
		{"same item", asc, a1, a1, 0},
		{"asc", asc, a1, d2, -1},
		{"desc", desc, a1, d2, 1},
		{"missing first", asc, eMissing, a1, -1},
		{"missing last when desc", desc, eMissing, a1, 1},
		{"number before string", asc, d2, fStr, -1},
		{"equal numbers: float first", asc, c1f, a1, -1},
		{"equal numbers: float first, desc reversed", desc, c1f, a1, 1},
		{"tie by id asc", asc, a1, b1, -1},
		{"tie by id desc when last desc", desc, a1, b1, 1},
		{"second field", []Order{{Field: "p"}, {Field: "s", Desc: true}}, a1, b1, 1},
		{"tie direction from the last entry", []Order{{Field: "p", Desc: true}, {Field: "zz"}}, a1, b1, -1},
		{"tie direction from the last entry desc", []Order{{Field: "p"}, {Field: "zz", Desc: true}}, a1, b1, 1},
		{"id order", []Order{{Field: IDField, Desc: true}}, a1, b1, 1},
		{"id order ends the comparison", []Order{{Field: IDField}, {Field: "p", Desc: true}}, a1, d2, -1},
	}
	for _, tt := range tests {
		q := Query{Order: tt.order}
		if got := q.Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: Compare(%s, %s) = %d, want %d", tt.name, tt.a.ID, tt.b.ID, got, tt.want)
		}
		if got := q.Compare(tt.b, tt.a); got != -tt.want {
			t.Errorf("%s: Compare(%s, %s) = %d, want %d", tt.name, tt.b.ID, tt.a.ID, got, -tt.want)
		}
	}
}

func TestRun(t *testing.T) {
	items := []Item{
		item("t1", assign("status", vs("open")), assign("prio", vi(3))),
		item("t2", assign("status", vs("done")), assign("prio", vi(1))),
		item("t3", assign("status", vs("open")), assign("prio", vf(3))),
		item("t4", assign("status", vs("open"))),
		item("t5", assign("status", vs("open")), assign("prio", vf(2.5))),
		item("t6", assign("status", vs("open")), assign("prio", vs("high"))),
	}
	open := cond("status", Eq, vs("open"))
	tests := []struct {
		name     string
		q        Query
		want     []string
		wantNext bool
	}{
		{"all by id", Query{}, []string{"t1", "t2", "t3", "t4", "t5", "t6"}, false},
		{"filter", Query{Where: open}, []string{"t1", "t3", "t4", "t5", "t6"}, false},
		{"order asc", Query{Where: open, Order: []Order{{Field: "prio"}}}, []string{"t4", "t5", "t3", "t1", "t6"}, false},
		{"order desc", Query{Where: open, Order: []Order{{Field: "prio", Desc: true}}}, []string{"t6", "t1", "t3", "t5", "t4"}, false},
		{"range skips missing and strings", Query{Where: and(open, cond("prio", Lte, vi(3))), Order: []Order{{Field: "prio", Desc: true}}}, []string{"t1", "t3", "t5"}, false},
		{"limit", Query{Where: open, Limit: 2}, []string{"t1", "t3"}, true},
		{"limit exact", Query{Where: open, Limit: 5}, []string{"t1", "t3", "t4", "t5", "t6"}, false},
		{"offset", Query{Where: open, Offset: 3}, []string{"t5", "t6"}, false},
		{"offset and limit", Query{Where: open, Offset: 1, Limit: 2}, []string{"t3", "t4"}, true},
		{"offset past the end", Query{Offset: 10}, []string{}, false},
		{"none", Query{Where: cond("status", Eq, vs("nope"))}, []string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, next, err := tt.q.Run(items)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(page); !slices.Equal(got, tt.want) {
				t.Errorf("Run() = %v, want %v", got, tt.want)
			}
			if (next != "") != tt.wantNext {
				t.Errorf("Run() next = %q, want a cursor: %v", next, tt.wantNext)
			}
		})
	}
}

// TestRunDoesNotModifyItems: Run sorts a copy.
func TestRunDoesNotModifyItems(t *testing.T) {
	items := []Item{item("b"), item("a"), item("c")}
	q := Query{}
	if _, _, err := q.Run(items); err != nil {
		t.Fatal(err)
	}
	if got := ids(items); !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Errorf("items = %v after Run", got)
	}
}
