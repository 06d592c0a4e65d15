package converge_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/proptest"
	"pgregory.net/rapid"
)

// ItemV1 is the first version of an app's struct.
type ItemV1 struct {
	ID       string `msgpack:"-" converge:"id"`
	Name     string `msgpack:"name"`
	Priority string `msgpack:"priority"` // "1", "2", ...
	Legacy   string `msgpack:"legacy"`
	Cents    int64  `msgpack:"price_cents"`
	Meta     converge.Meta
}

// ItemV2 is the second: name renamed to title, priority now an int,
// legacy dropped, price in units under a new name.
type ItemV2 struct {
	ID       string  `msgpack:"-" converge:"id"`
	Title    string  `msgpack:"title"`
	Priority int     `msgpack:"priority"`
	Price    float64 `msgpack:"price"`
	Meta     converge.Meta
}

func itemsV2(t testing.TB, db *converge.DB) *converge.Collection[ItemV2] {
	c, err := converge.NewCollection[ItemV2](db, "items")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Migrate(
		converge.RenameField("name", "title"),
		converge.ConvertField("priority", func(s string) (int, error) { return strconv.Atoi(s) }),
		converge.DropField("legacy"),
		converge.RenameField("price_cents", "price"),
		converge.ConvertField("price", func(c int64) (float64, error) { return float64(c) / 100, nil }),
	)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func itemsV1(t testing.TB, db *converge.DB) *converge.Collection[ItemV1] {
	c, err := converge.NewCollection[ItemV1](db, "items")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Records an earlier version stored read migrated, are written migrated
// on their next Put, and edits by replicas still on the earlier version
// keep showing.
func TestMigrationsOnReadAndWrite(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	v1, v2 := itemsV1(t, db), itemsV2(t, db)
	mustPut(t, v1, "ns", &ItemV1{ID: "a", Name: "apple", Priority: "2", Legacy: "x", Cents: 250})
	got := mustGet(t, v2, "ns", "a")
	if got.Title != "apple" || got.Priority != 2 || got.Price != 2.5 {
		t.Fatalf("v2 reads %+v, want title apple, priority 2, price 2.5", got)
	}
	mustPut(t, v2, "ns", &got) // no edit: writes the migrated values
	st, err := db.Admin().Log().Get(ctx, "ns", "items", "a")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := st.Get("title"); !ok || string(v.Value) != "\xa5apple" {
		t.Errorf("stored title %q, want apple written by the Put", v.Value)
	}
	if v, ok := st.Get("name"); !ok || string(v.Value) != "\xa5apple" {
		t.Errorf("stored name %q, want apple kept for the earlier version", v.Value)
	}
	if v, ok := st.Get("legacy"); ok {
		t.Errorf("stored legacy %q, want it unset by the Put", v.Value)
	}
	version := mustGet(t, v2, "ns", "a").Meta.Version
	again := mustGet(t, v2, "ns", "a")
	mustPut(t, v2, "ns", &again)
	if again.Meta.Version != version {
		t.Errorf("a second Put of an unchanged migrated record wrote (version %d → %d)", version, again.Meta.Version)
	}
	// v1 renames the item after v2 wrote the title: the later name shows.
	if err := v1.Update(ctx, "ns", "a", converge.Set("name", "pear")); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, v2, "ns", "a"); got.Title != "pear" {
		t.Errorf("v2 reads title %q after v1's later rename, want pear", got.Title)
	}
}

// A record that cannot be read is reported with its id; the others are
// returned.
func TestMigrationReportsUnreadableRecords(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	v1, v2 := itemsV1(t, db), itemsV2(t, db)
	for _, it := range []ItemV1{{ID: "a", Priority: "1"}, {ID: "b", Priority: "high"}, {ID: "c", Priority: "3"}} {
		mustPut(t, v1, "ns", &it)
	}
	got, err := v2.Find(ctx, "ns", converge.Query{})
	re, ok := errors.AsType[*converge.RecordErrors](err)
	if !ok || !slices.Equal(re.IDs, []string{"b"}) || !errors.Is(err, converge.ErrSchema) {
		t.Fatalf("Find: %v, want RecordErrors for b wrapping ErrSchema", err)
	}
	if len(got) != 2 || got[0].ID != "a" || got[1].Priority != 3 {
		t.Errorf("Find returned %+v, want a and c", got)
	}
	var seen []string
	var bad int
	for v, err := range v2.All(ctx, "ns") {
		if err != nil {
			bad++
			continue
		}
		seen = append(seen, v.ID)
	}
	if bad != 1 || !slices.Equal(seen, []string{"a", "c"}) {
		t.Errorf("All: %v and %d errors, want a, c and 1", seen, bad)
	}
	if _, err := v2.Get(ctx, "ns", "b"); !errors.Is(err, converge.ErrSchema) {
		t.Errorf("Get b: %v, want ErrSchema", err)
	}
}

func TestMigrateRefusesMisfits(t *testing.T) {
	c := coll[ItemV2](t, open(t, converge.Options{}), "items")
	for _, m := range []converge.Migration{
		converge.RenameField("name", "nope"),
		converge.RenameField("title", "title"),
		converge.ConvertField("priority", func(s string) (int64, error) { return 0, nil }),
		converge.DropField("title"),
		{},
	} {
		if err := c.Migrate(m); !errors.Is(err, converge.ErrSchema) {
			t.Errorf("Migrate(%+v): %v, want ErrSchema", m, err)
		}
	}
}

// Replicas running two versions of the app, editing and syncing in any
// order, converge; every replica reads every record in both versions,
// and reads the same.
func TestMigrationReplicasOnTwoVersionsConverge(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ctx := t.Context()
		const n = 3
		dbs := make([]*converge.DB, n)
		v1s := make([]*converge.Collection[ItemV1], n)
		v2s := make([]*converge.Collection[ItemV2], n)
		newer := make([]bool, n)
		for i := range dbs {
			db, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync})
			if err != nil {
				rt.Fatal(err)
			}
			defer db.Close()
			dbs[i], v1s[i], v2s[i] = db, itemsV1(t, db), itemsV2(t, db)
			newer[i] = i > 0 && rapid.Bool().Draw(rt, fmt.Sprintf("v2_%d", i))
		}
		ids := []string{"a", "b"}
		for step := range rapid.IntRange(1, 25).Draw(rt, "steps") {
			i := rapid.IntRange(0, n-1).Draw(rt, "replica")
			id := rapid.SampledFrom(ids).Draw(rt, "id")
			word := rapid.SampledFrom([]string{"x", "y", "z"}).Draw(rt, "word")
			prio := rapid.IntRange(1, 3).Draw(rt, "prio")
			switch rapid.IntRange(0, 2).Draw(rt, "action") {
			case 0: // edit
				var err error
				if newer[i] {
					v, gerr := v2s[i].Get(ctx, "ns", id)
					if gerr != nil && !errors.Is(gerr, converge.ErrNotFound) {
						rt.Fatalf("step %d: v2 get: %v", step, gerr)
					}
					v.ID, v.Title, v.Priority, v.Price = id, word, prio, float64(prio)/2
					_, err = v2s[i].Put(ctx, "ns", &v)
				} else {
					v, gerr := v1s[i].Get(ctx, "ns", id)
					if errors.Is(gerr, converge.ErrSchema) {
						// v2 wrote priority as an int, which v1 cannot
						// read: v1 edits the fields it can.
						err := v1s[i].Update(ctx, "ns", id, converge.Set("name", word), converge.Set("price_cents", int64(prio)*50))
						if err != nil {
							rt.Fatalf("step %d: v1 update: %v", step, err)
						}
						continue
					}
					if gerr != nil && !errors.Is(gerr, converge.ErrNotFound) {
						rt.Fatalf("step %d: v1 get: %v", step, gerr)
					}
					v.ID, v.Name, v.Priority, v.Legacy, v.Cents = id, word, strconv.Itoa(prio), word, int64(prio)*50
					_, err = v1s[i].Put(ctx, "ns", &v)
				}
				if err != nil {
					rt.Fatalf("step %d: put: %v", step, err)
				}
			case 1: // delete
				if err := v1s[i].Delete(ctx, "ns", id); err != nil && !errors.Is(err, converge.ErrNotFound) {
					rt.Fatalf("step %d: delete: %v", step, err)
				}
			case 2: // sync
				j := rapid.IntRange(0, n-1).Draw(rt, "peer")
				if i != j {
					syncPair(t, dbs[i], dbs[j], "ns")
				}
			}
		}
		for range 2 {
			for i := 1; i < n; i++ {
				syncPair(t, dbs[0], dbs[i], "ns")
			}
		}
		if err := proptest.CheckConverged(ctx, "ns", dbs...); err != nil {
			rt.Fatal(err)
		}
		var first []ItemV2
		for i := range dbs {
			got, err := v2s[i].Find(ctx, "ns", converge.Query{})
			if err != nil {
				rt.Fatalf("replica %d: v2 Find: %v", i, err)
			}
			if _, err := v1s[i].Find(ctx, "ns", converge.Query{}); err != nil && newer[i] {
				// v1 cannot read a priority v2 wrote as an int: expected.
				if !errors.Is(err, converge.ErrSchema) {
					rt.Fatalf("replica %d: v1 Find: %v", i, err)
				}
			}
			for k := range got {
				got[k].Meta = converge.Meta{}
			}
			if i == 0 {
				first = got
			} else if !slices.EqualFunc(first, got, func(a, b ItemV2) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
				rt.Fatalf("replica %d reads %+v, replica 0 %+v", i, got, first)
			}
		}
	})
}

// A watch reports the records it cannot read with the others, and goes
// on: a later change that makes them readable shows them.
func TestWatchGoesOnPastUnreadableRecords(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	v1, v2 := itemsV1(t, db), itemsV2(t, db)
	mustPut(t, v1, "ns", &ItemV1{ID: "a", Priority: "1"})
	mustPut(t, v1, "ns", &ItemV1{ID: "b", Priority: "high"})
	step := 0
	for w, err := range v2.Watch(ctx, "ns", converge.Query{}) {
		items := w.Value
		step++
		switch step {
		case 1:
			if _, ok := errors.AsType[*converge.RecordErrors](err); !ok || len(items) != 1 {
				t.Fatalf("first result: %d items, %v; want a and RecordErrors for b", len(items), err)
			}
			if err := v1.Update(ctx, "ns", "b", converge.Set("priority", "2")); err != nil {
				t.Fatal(err)
			}
		default:
			if err == nil && len(items) == 2 && items[1].Priority == 2 {
				return
			}
			if step > 5 {
				t.Fatalf("result %d: %d items, %v", step, len(items), err)
			}
		}
	}
}

// MigrateStored writes the migrated values, so queries and indexes see
// them; records it cannot read are reported, the others written.
func TestMigrateStored(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	v1, v2 := itemsV1(t, db), itemsV2(t, db)
	for _, it := range []ItemV1{{ID: "a", Name: "apple", Priority: "1", Legacy: "x"}, {ID: "b", Priority: "high"}, {ID: "c", Name: "cherry", Priority: "3"}} {
		mustPut(t, v1, "ns", &it)
	}
	if got, err := v2.Count(ctx, "ns", converge.Where(converge.Eq("title", "apple"))); err != nil || got != 0 {
		t.Fatalf("before: %d records titled apple, %v; want 0 (stored under name)", got, err)
	}
	n, err := v2.MigrateStored(ctx, "ns")
	if re, ok := errors.AsType[*converge.RecordErrors](err); !ok || !slices.Equal(re.IDs, []string{"b"}) || n != 2 {
		t.Fatalf("MigrateStored: %d, %v; want 2 written and b reported", n, err)
	}
	got, err := v2.Find(ctx, "ns", converge.Where(converge.Gte("priority", 1)).OrderByDesc("priority"))
	if err != nil || len(got) != 2 || got[0].Title != "cherry" || got[1].Title != "apple" {
		t.Fatalf("after: %+v, %v; want cherry then apple", got, err)
	}
	if n, err := v2.MigrateStored(ctx, "ns"); n != 0 || !errors.Is(err, converge.ErrSchema) {
		t.Errorf("again: %d written, %v; want 0 and b reported", n, err)
	}
}
