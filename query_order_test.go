package converge_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/vmihailenco/msgpack/v5"
)

// Event has a time.Time field, the type of issue 13's report.
type Event struct {
	ID        string        `msgpack:"-" converge:"id"`
	Meta      converge.Meta `msgpack:"-"`
	CreatedAt time.Time     `msgpack:"createdAt"`
}

// eventTimes are instants in every msgpack timestamp form: whole seconds
// after 1970 (4 bytes), with nanoseconds (8 bytes), before 1970 and after
// 2514 (12 bytes), out of instant order in their ids.
var eventTimes = map[string]time.Time{
	"e1": time.Date(2024, 5, 1, 12, 0, 0, 500, time.UTC),                // 8-byte form
	"e2": time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),                  // 4-byte form
	"e3": time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),              // 12-byte form, negative seconds
	"e4": time.Date(2024, 5, 1, 12, 0, 1, 0, time.UTC),                  // 4-byte
	"e5": time.Date(2024, 5, 1, 11, 59, 59, 999999999, time.UTC),        // 8-byte, large nanos
	"e6": time.Date(2600, 1, 1, 0, 0, 0, 0, time.UTC),                   // 12-byte, beyond 2^34 s
	"e7": time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),                      // the zero time
	"e8": time.Date(2024, 5, 1, 13, 0, 0, 0, time.FixedZone("X", 3600)), // = 12:00 UTC, as e2
}

// eventsByInstant is eventTimes' ids in ascending instant order, ties (e2,
// e8) by id.
var eventsByInstant = []string{"e7", "e3", "e5", "e2", "e8", "e1", "e4", "e6"}

func eventIDs(es []Event) []string { return ids(es, func(e Event) string { return e.ID }) }

// Issue 13, item 2: OrderBy on a time.Time field ordered by the msgpack
// extension bytes (newest first for ascending, among others), with or
// without an index, and a range filter on the field was refused.
func TestOrderByTimeIsByInstant(t *testing.T) {
	ctx := t.Context()
	for _, indexed := range []bool{false, true} {
		c := coll[Event](t, open(t, converge.Options{}), "events")
		if indexed {
			if err := c.EnsureIndex(ctx, "createdAt"); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(eventTimes)) {
			if _, err := c.Put(ctx, "ns", &Event{ID: id, CreatedAt: eventTimes[id]}); err != nil {
				t.Fatal(err)
			}
		}
		plan, _ := c.Explain(converge.Query{}.OrderBy("createdAt"))
		asc, err := c.Find(ctx, "ns", converge.Query{}.OrderBy("createdAt"))
		if err != nil {
			t.Fatalf("indexed=%v: OrderBy: %v", indexed, err)
		}
		if got := eventIDs(asc); !slices.Equal(got, eventsByInstant) {
			t.Errorf("indexed=%v (%s): OrderBy(createdAt) = %v, want %v", indexed, plan, got, eventsByInstant)
		}
		desc, err := c.Find(ctx, "ns", converge.Query{}.OrderByDesc("createdAt"))
		if err != nil {
			t.Fatalf("indexed=%v: OrderByDesc: %v", indexed, err)
		}
		want := slices.Clone(eventsByInstant)
		slices.Reverse(want)
		if got := eventIDs(desc); !slices.Equal(got, want) {
			t.Errorf("indexed=%v: OrderByDesc(createdAt) = %v, want %v", indexed, got, want)
		}
		// Pages through a cursor follow the same order.
		var paged []string
		cursor := ""
		for range len(eventTimes) + 1 {
			p, err := c.Page(ctx, "ns", converge.Query{}.OrderBy("createdAt").Limit(3), cursor)
			if err != nil {
				t.Fatalf("indexed=%v: Page: %v", indexed, err)
			}
			paged = append(paged, eventIDs(p.Items)...)
			if cursor = p.Next; cursor == "" {
				break
			}
		}
		if !slices.Equal(paged, eventsByInstant) {
			t.Errorf("indexed=%v: pages = %v, want %v", indexed, paged, eventsByInstant)
		}
		// Range filters compare instants.
		noon := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
		ranges := []struct {
			name string
			q    converge.Query
			want []string
		}{
			{"gt", converge.Where(converge.Gt("createdAt", noon)).OrderBy("createdAt"), []string{"e1", "e4", "e6"}},
			{"gte", converge.Where(converge.Gte("createdAt", noon)).OrderBy("createdAt"), []string{"e2", "e8", "e1", "e4", "e6"}},
			{"lt", converge.Where(converge.Lt("createdAt", noon)).OrderBy("createdAt"), []string{"e7", "e3", "e5"}},
			{"lte in another zone", converge.Where(converge.Lte("createdAt", noon.In(time.FixedZone("Y", -7200)))), []string{"e2", "e3", "e5", "e7", "e8"}},
			{"between", converge.Where(converge.Between("createdAt", time.Unix(-1, 0), noon.Add(time.Nanosecond))), []string{"e2", "e3", "e5", "e8"}},
			{"eq", converge.Where(converge.Eq("createdAt", noon)), []string{"e2", "e8"}},
		}
		for _, r := range ranges {
			got, err := c.Find(ctx, "ns", r.q)
			if err != nil {
				t.Errorf("indexed=%v: %s: %v", indexed, r.name, err)
				continue
			}
			if !slices.Equal(eventIDs(got), r.want) {
				t.Errorf("indexed=%v: %s = %v, want %v", indexed, r.name, eventIDs(got), r.want)
			}
		}
	}
}

// A time field compares with time values only.
func TestTimeFieldRefusesOtherValues(t *testing.T) {
	c := coll[Event](t, open(t, converge.Options{}), "events")
	for name, q := range map[string]converge.Query{
		"gt int":    converge.Where(converge.Gt("createdAt", 5)),
		"gt string": converge.Where(converge.Gt("createdAt", "2024-01-01")),
		"eq int":    converge.Where(converge.Eq("createdAt", 0)),
	} {
		if _, err := c.Find(t.Context(), "ns", q); !errors.Is(err, converge.ErrQuery) {
			t.Errorf("%s: %v, want ErrQuery", name, err)
		}
	}
}

type oddInner struct{ A int }

// selfEncoded encodes itself, as a string: its encoding need not follow
// its Go order.
type selfEncoded int

func (s selfEncoded) MarshalMsgpack() ([]byte, error) { return msgpack.Marshal(fmt.Sprint(int(s))) }

func (s *selfEncoded) UnmarshalMsgpack(b []byte) error {
	var str string
	if err := msgpack.Unmarshal(b, &str); err != nil {
		return err
	}
	_, err := fmt.Sscan(str, (*int)(s))
	return err
}

// Odd has fields of types that have no Go order.
type Odd struct {
	ID     string         `msgpack:"-" converge:"id"`
	Meta   converge.Meta  `msgpack:"-"`
	Struct oddInner       `msgpack:"struct"`
	PtrS   *oddInner      `msgpack:"ptrs"`
	Map    map[string]int `msgpack:"map"`
	List   []string       `msgpack:"list"`
	Ints   [2]int         `msgpack:"ints"`
	Tags   []string       `msgpack:"tags" converge:"set"`
	ByteS  []byte         `msgpack:"bytes" converge:"set"`
	Any    any            `msgpack:"any"`
	Self   selfEncoded    `msgpack:"self"`
	OK     int            `msgpack:"ok"`
}

// Issue 13, item 2: a field whose type has no Go order is refused when
// the query is built (OrderBy, OrderByDesc, the range filters, Explain),
// never ordered by its encoding.
func TestOrderByUnorderableTypeRefused(t *testing.T) {
	ctx := t.Context()
	c := coll[Odd](t, open(t, converge.Options{}), "odd")
	if _, err := c.Put(ctx, "ns", &Odd{ID: "a", Self: 10, List: []string{"x"}, Tags: []string{"t"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "ns", &Odd{ID: "b", Self: 9}); err != nil {
		t.Fatal(err)
	}
	bounds := map[string]any{
		"struct": oddInner{}, "ptrs": oddInner{}, "map": map[string]int{}, "list": []string{"a"},
		"ints": [2]int{}, "tags": "t", "bytes": []byte{1}, "any": 1, "self": selfEncoded(3),
	}
	for field, bound := range bounds {
		for name, q := range map[string]converge.Query{
			"OrderBy":     converge.Query{}.OrderBy(field),
			"OrderByDesc": converge.Query{}.OrderByDesc("ok").OrderByDesc(field),
			"Gt":          converge.Where(converge.Gt(field, bound)),
			"Between":     converge.Where(converge.Between(field, bound, bound)),
		} {
			if _, err := c.Find(ctx, "ns", q); !errors.Is(err, converge.ErrQuery) {
				t.Errorf("%s(%s): Find: %v, want ErrQuery", name, field, err)
			}
			if _, err := c.Explain(q); !errors.Is(err, converge.ErrQuery) {
				t.Errorf("%s(%s): Explain: %v, want ErrQuery", name, field, err)
			}
		}
	}
	// Equality still works on them.
	got, err := c.Find(ctx, "ns", converge.Where(converge.Eq("self", selfEncoded(9))).OrderBy("ok"))
	if err != nil || len(got) != 1 || got[0].ID != "b" {
		t.Errorf("Eq(self, 9) = %v, %v; want [b]", got, err)
	}
}
