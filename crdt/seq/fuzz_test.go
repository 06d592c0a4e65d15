package seq

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
			if !bytes.Equal(m.AppendBinary(nil), n.AppendBinary(nil)) && honest(&d.Seq, textCodec) && agree(&d.Seq, &o.Seq) {
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

// honest reports whether s is a state some history of inserts and deletes
// produces: integrating its runs one by one into an empty sequence gives
// it back. The decoders check that origins exist, not where they are nor
// that they could have existed first, so a hostile state can hold
// elements in an order no history gives; merges with it are deterministic
// but need not commute.
func honest[E any](s *Seq[E], cc contentCodec[E]) bool {
	r := &Seq[E]{}
	r.mergeFrom(s)
	return bytes.Equal(appendState(nil, r, cc), appendState(nil, s, cc))
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

// TestHonest checks the fuzz targets' notion of an honest state: states
// built by edits are honest (so the commutativity check is not vacuous),
// and a state whose runs depend on each other in a cycle is not.
func TestHonest(t *testing.T) {
	for i, s := range sampleTexts() {
		if !honest(&s.Seq, textCodec) {
			t.Errorf("sample text %d is not honest", i)
		}
	}
	for i, s := range sampleLists() {
		if !honest(&s.Seq, listCodec) {
			t.Errorf("sample list %d is not honest", i)
		}
	}
	// The failing input the fuzzer found: two runs, each the other's
	// origin.
	raw, err := os.ReadFile("testdata/fuzz/FuzzDecodeText/075f9b7579877464")
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	if _, err := fmt.Sscanf(strings.SplitN(string(raw), "\n", 2)[1], "[]byte(%q)", &b); err != nil {
		t.Fatal(err)
	}
	d, err := DecodeText(b)
	if err != nil {
		t.Fatal(err)
	}
	if honest(&d.Seq, textCodec) {
		t.Error("a state with a dependency cycle counts as honest")
	}
}
