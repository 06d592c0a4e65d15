package seq

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/convergedb/converge/internal/mp"
)

var update = flag.Bool("update", false, "rewrite the seed corpora under testdata/fuzz")

// sampleTexts are text states covering runs of several replicas,
// tombstones, pending inserts and pending deletes.
func sampleTexts() []*Text {
	empty := &Text{}
	one := &Text{}
	one.InsertString(rep(1), 0, "hello")
	two := one.Clone()
	two.Delete(1, 2)
	two.InsertString(rep(2), 1, "ipp")
	other := one.Clone()
	other.InsertString(rep(3), 5, " world")
	two.Merge(other)
	pending := &Text{}
	ins, _ := other.InsertString(rep(3), 0, "¡")
	pending.ApplyInsert(Insert[rune]{ID: ID{rep(4), 0}, Left: ins.ID, Content: []rune("x")})
	pending.ApplyDelete([]Span{{ID: ID{rep(5), 3}, N: 2}})
	two.Merge(pending)
	return []*Text{empty, one, two, pending}
}

func sampleLists() []*List {
	l := &List{}
	l.Insert(rep(1), 0, [][]byte{mp.AppendString(nil, "a"), mp.AppendInt(nil, 2), mp.AppendNil(nil)})
	m := l.Clone()
	m.Delete(1, 1)
	m.Insert(rep(2), 1, [][]byte{mp.AppendArrayHeader(nil, 0)})
	l.Insert(rep(3), 3, [][]byte{mp.AppendBool(nil, true)})
	m.Merge(l)
	return []*List{{}, l, m}
}

func corpusFile(b []byte) string { return fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b) }

// TestSeedCorpora checks (and with -update rewrites) the seed corpora
// under testdata/fuzz, which hold real encodings.
func TestSeedCorpora(t *testing.T) {
	corpora := map[string][][]byte{}
	for _, s := range sampleTexts() {
		corpora["FuzzDecodeText"] = append(corpora["FuzzDecodeText"], s.AppendBinary(nil))
	}
	for _, s := range sampleLists() {
		corpora["FuzzDecodeList"] = append(corpora["FuzzDecodeList"], s.AppendBinary(nil))
	}
	for target, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", target)
		for i, b := range seeds {
			path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			want := corpusFile(b)
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestSeedCorpora -update)", err)
			}
			if string(got) != want {
				t.Errorf("%s is stale (run go test -run TestSeedCorpora -update)", path)
			}
		}
	}
}

// FuzzDecodeText checks that DecodeText never panics, that what it
// accepts re-encodes to the same bytes, and that a decoded state takes
// merges and edits.
func FuzzDecodeText(f *testing.F) {
	for _, s := range sampleTexts() {
		f.Add(s.AppendBinary(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeText(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeText error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if enc := d.AppendBinary(nil); !bytes.Equal(enc, b) {
			t.Fatalf("DecodeText(%x) re-encodes as %x", b, enc)
		}
		exercise(t, &d.Seq, func(s *Seq[rune]) []byte { return (&Text{*s}).AppendBinary(nil) }, func(b []byte) error { _, err := DecodeText(b); return err }, []rune("zy"))
		for _, o := range sampleTexts() {
			m := d.Clone()
			m.Merge(o)
			n := o.Clone()
			n.Merge(d)
			if !bytes.Equal(m.AppendBinary(nil), n.AppendBinary(nil)) && !hostile(&d.Seq) && agree(&d.Seq, &o.Seq) {
				t.Fatalf("merge with a sample is not commutative")
			}
		}
		if !bytes.Equal(d.AppendBinary(nil), b) {
			t.Fatal("merging from a decoded state changed it")
		}
	})
}

// FuzzDecodeList is FuzzDecodeText for lists.
func FuzzDecodeList(f *testing.F) {
	for _, s := range sampleLists() {
		f.Add(s.AppendBinary(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeList(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeList error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if enc := d.AppendBinary(nil); !bytes.Equal(enc, b) {
			t.Fatalf("DecodeList(%x) re-encodes as %x", b, enc)
		}
		exercise(t, &d.Seq, func(s *Seq[[]byte]) []byte { return (&List{*s}).AppendBinary(nil) }, func(b []byte) error { _, err := DecodeList(b); return err }, [][]byte{{0xc0}})
	})
}

// hostile reports whether s holds runs whose origins are not where honest
// replicas would have put them (the decoders check that origins exist,
// not where they are); merges of such states are deterministic but need
// not commute.
func hostile[E any](s *Seq[E]) bool {
	s.ensureIndex()
	for l := s.t.first; l != nil; l = l.next {
		for i := range l.runs {
			r := &l.runs[i]
			c := cursor{leaf: l, i: i}
			p := s.t.position(c, false)
			if r.left != none && s.posLeft(r.left) >= p {
				return true
			}
			if r.right != none && s.posRight(r.right) <= p+r.n-1 {
				return true
			}
		}
	}
	return false
}

// elem is what a state says of one element: its origins and content.
type elem[E any] struct {
	left, right ID
	content     E
	live        bool
}

func elems[E any](s *Seq[E]) map[ID]elem[E] {
	out := map[ID]elem[E]{}
	add := func(r run, content []E) {
		for k := range r.n {
			e := elem[E]{left: s.toID(r.leftOf(k)), right: s.toID(r.right), live: !r.deleted}
			if e.live {
				e.content = content[k]
			}
			out[s.toID(r.id(k))] = e
		}
	}
	if s.t.root != nil {
		for l := s.t.first; l != nil; l = l.next {
			for i := range l.runs {
				var c []E
				if r := &l.runs[i]; !r.deleted {
					c = s.content(r)
				}
				add(l.runs[i], c)
			}
		}
	}
	for _, it := range s.pending {
		add(it.run, it.content)
	}
	return out
}

// agree reports whether two states say the same of every element both
// hold (honest replicas always do: an id is inserted once).
func agree[E any](a, b *Seq[E]) bool {
	eb := elems(b)
	for id, x := range elems(a) {
		if y, ok := eb[id]; ok && (x.left != y.left || x.right != y.right || x.live && y.live && fmt.Sprint(x.content) != fmt.Sprint(y.content)) {
			return false
		}
	}
	return true
}

// exercise runs every operation on a decoded state: reads, anchors, local
// edits, a merge with itself, and checks the results still encode and
// decode.
func exercise[E any](t *testing.T, d *Seq[E], enc func(*Seq[E]) []byte, dec func([]byte) error, content []E) {
	t.Helper()
	d.Elements(nil)
	n := d.Len()
	for _, pos := range []int{0, n / 2, n} {
		for _, side := range []Side{After, Before} {
			a, err := d.Anchor(pos, side)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := d.Resolve(a); !ok || got != pos {
				t.Fatalf("Resolve(Anchor(%d, %v)) = %d, %v", pos, side, got, ok)
			}
		}
	}
	e := d.Clone()
	e.Merge(d)
	if !bytes.Equal(enc(e), enc(d)) {
		t.Fatal("merging a state with itself changed it")
	}
	if _, err := e.Insert(rep(7), n/2, content); err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		if _, err := e.Delete(0, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := dec(enc(e)); err != nil {
		t.Fatalf("an edited state does not decode: %v", err)
	}
}
