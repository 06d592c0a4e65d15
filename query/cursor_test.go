package query

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/convergedb/converge/internal/mp"
	"pgregory.net/rapid"
)

// TestPagesCoverAll: paging with any page size yields every matching item
// exactly once, in order.
func TestPagesCoverAll(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		items := genItems(t, false, 0, 20)
		q := Query{Where: genWhere().Draw(t, "where"), Order: genOrder().Draw(t, "order")}
		all, next, err := q.Run(items)
		if err != nil {
			t.Fatal(err)
		}
		if next != "" {
			t.Fatalf("Run without limit returned cursor %q", next)
		}
		for i := 1; i < len(all); i++ {
			if q.Compare(all[i-1], all[i]) >= 0 {
				t.Fatalf("Run: %q not before %q", all[i-1].ID, all[i].ID)
			}
		}
		q.Limit = rapid.IntRange(1, 4).Draw(t, "limit")
		q.Offset = rapid.IntRange(0, 2).Draw(t, "offset")
		var got []Item
		for pages := 0; ; pages++ {
			if pages > len(items)+1 {
				t.Fatalf("more than %d pages", pages)
			}
			page, next, err := q.Run(items)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > q.Limit {
				t.Fatalf("page of %d > limit %d", len(page), q.Limit)
			}
			got = append(got, page...)
			if next == "" {
				break
			}
			if len(page) == 0 {
				t.Fatalf("empty page with cursor %q", next)
			}
			q.After = next
		}
		want := all[min(q.Offset, len(all)):]
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("pages = %q, want %q", ids(got), ids(want))
		}
	})
}

// TestPagesWhileRecordsChange: between pages, records are inserted and
// removed. No item is returned twice, pages continue in order, and every
// matching item that was never removed and either was there at the start
// or was inserted after the cursor's position is returned.
func TestPagesWhileRecordsChange(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		idl := genIDs(0, 24).Draw(t, "ids")
		nStart := rapid.IntRange(0, len(idl)).Draw(t, "start")
		var current []Item
		mustAppear := map[string]bool{}
		for _, id := range idl[:nStart] {
			current = append(current, genItem(id, false).Draw(t, "item"))
			mustAppear[id] = true
		}
		fresh := idl[nStart:]
		q := Query{
			Where: genWhere().Draw(t, "where"),
			Order: genOrder().Draw(t, "order"),
			Limit: rapid.IntRange(1, 3).Draw(t, "limit"),
		}
		seen := map[string]bool{}
		var last *Item
		for pages := 0; ; pages++ {
			if pages > len(idl)+1 {
				t.Fatalf("more than %d pages", pages)
			}
			page, next, err := q.Run(current)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page {
				if seen[it.ID] {
					t.Fatalf("item %q returned twice", it.ID)
				}
				seen[it.ID] = true
				if last != nil && q.Compare(*last, it) >= 0 {
					t.Fatalf("item %q does not follow %q", it.ID, last.ID)
				}
				last = &it
			}
			if next == "" {
				break
			}
			q.After = next
			// Remove some items, insert some.
			for _, it := range slices.Clone(current) {
				if rapid.IntRange(0, 4).Draw(t, "remove") == 0 {
					current = slices.DeleteFunc(current, func(x Item) bool { return x.ID == it.ID })
					delete(mustAppear, it.ID)
				}
			}
			for len(fresh) > 0 && rapid.Bool().Draw(t, "insert") {
				it := genItem(fresh[0], false).Draw(t, "new")
				fresh = fresh[1:]
				current = append(current, it)
				if after, err := q.AfterCursor(it); err != nil {
					t.Fatal(err)
				} else if after {
					mustAppear[it.ID] = true
				}
			}
		}
		for _, it := range current {
			if mustAppear[it.ID] && Match(q.Where, it) && !seen[it.ID] {
				t.Fatalf("item %q never returned", it.ID)
			}
		}
	})
}

func TestCursorFor(t *testing.T) {
	q := Query{Order: []Order{{Field: "p"}}}
	items := []Item{item("a", assign("p", vi(1))), item("b", assign("p", vf(1))), item("c", assign("p", vi(2))), item("d")}
	// Positions of absent items work as cursors too: the page after
	// holds what sorts after them.
	ghost := item("bb", assign("p", vf(1)))
	q.After = q.CursorFor(ghost)
	page, _, err := q.Run(items)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(page), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("after %s: %v, want %v", q.After, got, want)
	}
	for _, it := range items {
		after, err := q.AfterCursor(it)
		if err != nil {
			t.Fatal(err)
		}
		if want := q.Compare(it, ghost) > 0; after != want {
			t.Errorf("AfterCursor(%s) = %v, want %v", it.ID, after, want)
		}
	}
	q.After = ""
	if after, err := q.AfterCursor(items[0]); !after || err != nil {
		t.Errorf("AfterCursor with no cursor = %v, %v; want true, nil", after, err)
	}
}

func TestBadCursor(t *testing.T) {
	order := []Order{{Field: "p"}, {Field: "s", Desc: true}}
	q := Query{Order: order}
	it := item("id1", assign("p", vi(7)), assign("s", vs("x")))
	good := q.CursorFor(it)
	raw, err := base64.RawURLEncoding.DecodeString(good)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	cursor := func(version, fp uint64, vals [][]byte, id string) string {
		b := mp.AppendArrayHeader(nil, 4)
		b = mp.AppendUint(b, version)
		b = mp.AppendUint(b, fp)
		b = mp.AppendArrayHeader(b, len(vals))
		for _, v := range vals {
			b = mp.AppendBytes(b, v)
		}
		return enc(mp.AppendString(b, id))
	}
	fp := fingerprint(order)
	if c := cursor(1, fp, [][]byte{vi(7), vs("x")}, "id1"); c != good {
		t.Fatalf("test encoder disagrees: %s vs %s", c, good)
	}
	bin16 := mp.AppendArrayHeader(nil, 4)
	bin16 = append(bin16, 1)
	bin16 = mp.AppendUint(bin16, fp)
	bin16 = append(bin16, 0x92, 0xc5, 0, 1, 7)
	bin16 = mp.AppendBytes(bin16, vs("x"))
	bin16 = mp.AppendString(bin16, "id1")
	tests := map[string]string{
		"not base64":          "!!!",
		"padded base64":       good + "=",
		"std base64 alphabet": strings.NewReplacer("-", "+", "_", "/").Replace(enc([]byte{0xfb, 0xff, 0xfe})),
		"zero byte":           enc([]byte{0}),
		"not msgpack":         enc([]byte{0xc1}),
		"not an array":        enc(vi(1)),
		"short array":         enc(raw[:len(raw)-1]),
		"trailing bytes":      enc(append(slices.Clone(raw), 0)),
		"truncated":           good[:len(good)/2],
		"version 0":           cursor(0, fp, [][]byte{vi(7), vs("x")}, "id1"),
		"version 2":           cursor(2, fp, [][]byte{vi(7), vs("x")}, "id1"),
		"other order":         (&Query{Order: []Order{{Field: "p"}}}).CursorFor(it),
		"other direction":     (&Query{Order: []Order{{Field: "p"}, {Field: "s"}}}).CursorFor(it),
		"no order":            (&Query{}).CursorFor(it),
		"wrong value count":   cursor(1, fp, [][]byte{vi(7)}, "id1"),
		"malformed value":     cursor(1, fp, [][]byte{{0xcb, 0}, vs("x")}, "id1"),
		"value with trailing": cursor(1, fp, [][]byte{{7, 7}, vs("x")}, "id1"),
		"id not a string":     enc(append(raw[:len(raw)-4], 0x01)),
		"non-canonical":       enc(bin16),
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			q := Query{Order: order, After: c}
			if _, err := q.AfterCursor(it); !errors.Is(err, ErrBadCursor) || !errors.Is(err, ErrInvalid) {
				t.Errorf("AfterCursor(%q) = %v, want ErrBadCursor", c, err)
			}
			if err := q.Validate(nil); !errors.Is(err, ErrBadCursor) {
				t.Errorf("Validate = %v, want ErrBadCursor", err)
			}
			if _, _, err := q.Run([]Item{it}); !errors.Is(err, ErrBadCursor) {
				t.Errorf("Run = %v, want ErrBadCursor", err)
			}
		})
	}
	// A missing value is an empty bin.
	q.After = cursor(1, fp, [][]byte{nil, vs("x")}, "id1")
	if after, err := q.AfterCursor(it); err != nil || !after {
		t.Errorf("AfterCursor(missing p) = %v, %v; want true, nil", after, err)
	}
}

// FuzzCursor: decoding arbitrary strings never panics; a cursor that
// decodes is canonical (re-encoding gives it back) and is otherwise
// ErrBadCursor.
func FuzzCursor(f *testing.F) {
	order := []Order{{Field: "p"}, {Field: "s", Desc: true}}
	q0 := Query{Order: order}
	f.Add(q0.CursorFor(item("id1", assign("p", vi(7)), assign("s", vs("x")))))
	f.Add(q0.CursorFor(item("")))
	f.Add(q0.CursorFor(item("id3", assign("p", vt64(5, 1)), assign("s", vt96(-1, 0)))))
	f.Add((&Query{}).CursorFor(item("x")))
	f.Add("")
	f.Add("lAHPAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		q := Query{Order: order, After: s}
		it := item("id2", assign("p", vf(7)))
		_, err := q.AfterCursor(it)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("AfterCursor(%q) = %v, want ErrBadCursor", s, err)
			}
			return
		}
		if s == "" {
			return
		}
		p, err := q.decodeCursor(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.cursorAt(&p); got != s {
			t.Fatalf("cursor %q re-encodes as %q", s, got)
		}
		if _, _, err := q.Run([]Item{it}); err != nil {
			t.Fatal(err)
		}
	})
}
