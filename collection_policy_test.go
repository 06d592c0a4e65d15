package converge_test

import (
	"strings"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/proptest"
)

// Note is a record with fields of several types, for typed resolvers.
type Note struct {
	ID    string   `msgpack:"-" converge:"id"`
	Title string   `msgpack:"title"`
	Rank  int      `msgpack:"rank"`
	Tags  []string `msgpack:"tags"`
	Meta  converge.Meta
}

// concurrentNoteWrites creates note "n" in collections "keep" and "plain"
// on a, syncs it to b, then has a and b concurrently set the fields of
// both records (b's writes later, so they win the merge), with policy p
// set on the collection "keep" of both replicas and the DBs left at their
// default; it syncs until quiet and returns a's "keep" and "plain".
func concurrentNoteWrites(t *testing.T, p converge.ConflictPolicy, na, nb Note) (keep, plain Note) {
	t.Helper()
	ctx := t.Context()
	ca, cb := proptest.NewManualClock(1_000_000), proptest.NewManualClock(1_000_000)
	a := open(t, converge.Options{Clock: ca.Now})
	b := open(t, converge.Options{Clock: cb.Now})
	for _, db := range []*converge.DB{a, b} {
		coll[Note](t, db, "keep").SetConflictPolicy(p)
	}
	if got := coll[Note](t, a, "keep").ConflictPolicy(); got.String() != p.String() {
		t.Fatalf("collection policy %v, want %v", got, p)
	}
	for _, name := range []string{"keep", "plain"} {
		if _, err := coll[Note](t, a, name).Put(ctx, "ns", &Note{ID: "n", Title: "init"}); err != nil {
			t.Fatal(err)
		}
	}
	syncQuiet(t, a, b, "ns")
	ca.Set(1_002_000)
	cb.Set(1_003_000)
	for _, w := range []struct {
		db *converge.DB
		n  Note
	}{{a, na}, {b, nb}} {
		for _, name := range []string{"keep", "plain"} {
			c := coll[Note](t, w.db, name)
			if err := c.Modify(ctx, "ns", "n", func(n *Note) error {
				n.Title, n.Rank, n.Tags = w.n.Title, w.n.Rank, w.n.Tags
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ra, rb := missing(t, a, b), missing(t, b, a)
	apply(t, b, ra)
	apply(t, a, rb)
	syncQuiet(t, a, b, "ns")
	if err := proptest.CheckConverged(ctx, "ns", a, b); err != nil {
		t.Fatal(err)
	}
	keep, err := coll[Note](t, a, "keep").Get(ctx, "ns", "n")
	if err != nil {
		t.Fatal(err)
	}
	plain, err = coll[Note](t, a, "plain").Get(ctx, "ns", "n")
	if err != nil {
		t.Fatal(err)
	}
	return keep, plain
}

// A collection's policy acts on its conflicts only; the others keep the
// DB's.
func TestCollectionConflictPolicy(t *testing.T) {
	na := Note{Title: "a", Rank: 1, Tags: []string{"x"}}
	nb := Note{Title: "b", Rank: 2, Tags: []string{"y"}}
	keep, plain := concurrentNoteWrites(t, converge.PreferLocal, na, nb)
	// b's writes won the merge; a, preferring its own, writes them again
	// in "keep" only.
	if plain.Title != "b" || plain.Rank != 2 {
		t.Errorf("plain (DB's last-write-wins): %+v, want b's values", plain)
	}
	if keep.Title != "a" || keep.Rank != 1 || strings.Join(keep.Tags, ",") != "x" {
		t.Errorf("keep (prefer local): %+v, want a's values", keep)
	}
}

// A typed resolver gets the records with each side's value of the field
// in conflict, and writes the field of the record it returns.
func TestResolveWithTypedValues(t *testing.T) {
	var seen []string
	p := converge.ResolveWith(func(field string, local, remote Note) Note {
		seen = append(seen, field)
		switch field {
		case "title": // join the titles, in a fixed order
			out := local
			l, r := local.Title, remote.Title
			if r < l {
				l, r = r, l
			}
			out.Title = l + "+" + r
			return out
		case "rank": // the greater rank
			if local.Rank > remote.Rank {
				return local
			}
			return remote
		}
		return remote // tags: accept the merge's choice when it is remote's
	})
	keep, plain := concurrentNoteWrites(t, p, Note{Title: "a", Rank: 9, Tags: []string{"x"}}, Note{Title: "b", Rank: 2, Tags: []string{"y"}})
	if keep.Title != "a+b" || keep.Rank != 9 {
		t.Errorf("keep: title %q rank %d, want a+b and 9", keep.Title, keep.Rank)
	}
	if strings.Join(keep.Tags, ",") != "x" && strings.Join(keep.Tags, ",") != "y" {
		t.Errorf("keep: tags %v, want one side's", keep.Tags)
	}
	if plain.Title != "b" || plain.Rank != 2 {
		t.Errorf("plain: %+v, want b's values (no policy)", plain)
	}
	if len(seen) == 0 {
		t.Error("the resolver never ran")
	}
}
