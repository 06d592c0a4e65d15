package seq

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// Replicas in byte order: rep(1) < rep(2) < …
func rep(i byte) Replica { return Replica{0x01, 15: i} }

// textOp is one local edit, as it travels: an insert or a delete.
type textOp struct {
	origin int
	ins    *Insert[rune]
	del    []Span
}

func (o textOp) String() string {
	if o.ins != nil {
		return fmt.Sprintf("r%d ins %v L=%v R=%v %q", o.origin, o.ins.ID, o.ins.Left, o.ins.Right, string(o.ins.Content))
	}
	return fmt.Sprintf("r%d del %v", o.origin, o.del)
}

// world is a set of replicas editing one text, with the ops each holds.
type world struct {
	docs []*Text
	held []map[int]bool // replica -> indexes into ops
	ops  []textOp
	// last is, per replica, the position after its last insert, so that
	// replicas often type runs.
	last []int
}

func newWorld(n int) *world {
	w := &world{}
	for range n {
		w.docs = append(w.docs, &Text{})
		w.held = append(w.held, map[int]bool{})
		w.last = append(w.last, -1)
	}
	return w
}

var alphabet = []rune("abcxyzé世")

func (w *world) localInsert(t *rapid.T, i int) {
	d := w.docs[i]
	pos := rapid.IntRange(0, d.Len()).Draw(t, "pos")
	if w.last[i] >= 0 && w.last[i] <= d.Len() && rapid.IntRange(0, 2).Draw(t, "type-on") > 0 {
		pos = w.last[i]
	}
	n := rapid.IntRange(1, 3).Draw(t, "n")
	content := make([]rune, n)
	for k := range content {
		content[k] = rapid.SampledFrom(alphabet).Draw(t, "c")
	}
	ins, err := d.Insert(rep(byte(i+1)), pos, content)
	if err != nil {
		t.Fatal(err)
	}
	w.last[i] = pos + n
	w.record(i, textOp{origin: i, ins: &ins})
}

func (w *world) localDelete(t *rapid.T, i int) {
	d := w.docs[i]
	if d.Len() == 0 {
		return
	}
	pos := rapid.IntRange(0, d.Len()-1).Draw(t, "pos")
	n := rapid.IntRange(1, min(3, d.Len()-pos)).Draw(t, "n")
	spans, err := d.Delete(pos, n)
	if err != nil {
		t.Fatal(err)
	}
	w.last[i] = pos
	w.record(i, textOp{origin: i, del: spans})
}

func (w *world) record(i int, op textOp) {
	w.ops = append(w.ops, op)
	w.held[i][len(w.ops)-1] = true
}

// deliver applies op k to replica i, as a remote op.
func (w *world) deliver(t *rapid.T, i, k int) {
	op := w.ops[k]
	var err error
	if op.ins != nil {
		err = w.docs[i].ApplyInsert(*op.ins)
	} else {
		err = w.docs[i].ApplyDelete(op.del)
	}
	if err != nil {
		t.Fatalf("deliver %v to r%d: %v", op, i, err)
	}
	w.held[i][k] = true
}

// merge merges replica j's state into replica i's.
func (w *world) merge(i, j int) {
	w.docs[i].Merge(w.docs[j])
	for k := range w.held[j] {
		w.held[i][k] = true
	}
}

// modelOf returns the model holding the ops in held.
func (w *world) modelOf(held map[int]bool) *model {
	m := newModel()
	for k := range w.ops {
		if !held[k] {
			continue
		}
		if op := w.ops[k]; op.ins != nil {
			m.insert(*op.ins)
		} else {
			m.delete(op.del)
		}
	}
	return m
}

// check compares replica i with the model of what it holds, and checks
// that its encoding round-trips.
func (w *world) check(t *rapid.T, i int) {
	t.Helper()
	want := w.modelOf(w.held[i]).text()
	if got := w.docs[i].String(); got != want {
		t.Fatalf("replica %d shows %q, model %q\nops: %v", i, got, want, w.heldOps(i))
	}
	checkRoundTrip(t, w.docs[i])
}

func (w *world) heldOps(i int) string {
	var b strings.Builder
	for k, op := range w.ops {
		if w.held[i][k] {
			fmt.Fprintf(&b, "\n  %d: %v", k, op)
		}
	}
	return b.String()
}

func checkRoundTrip(t interface {
	Helper()
	Fatalf(string, ...any)
}, d *Text) {
	t.Helper()
	enc := d.AppendBinary(nil)
	dec, err := DecodeText(enc)
	if err != nil {
		t.Fatalf("decode own encoding: %v\n%x", err, enc)
	}
	if again := dec.AppendBinary(nil); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoding differs")
	}
	if dec.String() != d.String() {
		t.Fatalf("decoded text %q, want %q", dec.String(), d.String())
	}
}

// step draws and performs one action.
func (w *world) step(t *rapid.T) {
	n := len(w.docs)
	i := rapid.IntRange(0, n-1).Draw(t, "replica")
	switch rapid.IntRange(0, 9).Draw(t, "action") {
	case 0, 1, 2, 3:
		w.localInsert(t, i)
	case 4, 5:
		w.localDelete(t, i)
	case 6, 7, 8:
		if len(w.ops) > 0 {
			w.deliver(t, i, rapid.IntRange(0, len(w.ops)-1).Draw(t, "op"))
		}
	case 9:
		w.merge(i, rapid.IntRange(0, n-1).Draw(t, "from"))
	}
	w.check(t, i)
}

// finish delivers every op to every replica in a random order, some as
// ops and some through state merges, and checks they all converge on the
// model.
func (w *world) finish(t *rapid.T) {
	for i := range w.docs {
		order := rapid.Permutation(indexes(len(w.ops))).Draw(t, "order")
		for _, k := range order {
			if !w.held[i][k] {
				w.deliver(t, i, k)
			}
		}
	}
	want := w.modelOf(w.held[0]).text()
	enc0 := w.docs[0].AppendBinary(nil)
	for i, d := range w.docs {
		if got := d.String(); got != want {
			t.Fatalf("replica %d ends at %q, model %q\nops: %v", i, got, want, w.heldOps(i))
		}
		if enc := d.AppendBinary(nil); !bytes.Equal(enc, enc0) {
			t.Fatalf("replica %d encodes differently from replica 0:\n%x\n%x", i, enc, enc0)
		}
	}
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestConvergence: replicas edit concurrently and exchange ops in any
// order (not causal: an insert may arrive before its origins) and whole
// states; each always shows what the model computes from the ops it holds,
// and all end equal, byte for byte.
func TestConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(rapid.IntRange(2, 4).Draw(t, "replicas"))
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			w.step(t)
		}
		w.finish(t)
	})
}

// TestMergeLaws: Merge of states holding random subsets of one history
// is commutative, associative and idempotent, byte for byte.
func TestMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(3)
		for range rapid.IntRange(1, 40).Draw(t, "steps") {
			w.step(t)
		}
		sub := func(label string) *Text {
			d := &Text{}
			for _, k := range rapid.Permutation(indexes(len(w.ops))).Draw(t, label) {
				if rapid.Bool().Draw(t, label+"-take") {
					op := w.ops[k]
					if op.ins != nil {
						_ = d.ApplyInsert(*op.ins)
					} else {
						_ = d.ApplyDelete(op.del)
					}
				}
			}
			return d
		}
		a, b, c := sub("a"), sub("b"), sub("c")
		join := func(x, y *Text) *Text {
			z := x.Clone()
			z.Merge(y)
			return z
		}
		same := func(what string, x, y *Text) {
			if ex, ey := x.AppendBinary(nil), y.AppendBinary(nil); !bytes.Equal(ex, ey) {
				t.Fatalf("%s: %q vs %q\n%x\n%x", what, x.String(), y.String(), ex, ey)
			}
		}
		ab := join(a, b)
		same("a⊔b = b⊔a", ab, join(b, a))
		same("(a⊔b)⊔c = a⊔(b⊔c)", join(ab, c), join(a, join(b, c)))
		same("a⊔a = a", join(a, a), a)
		same("(a⊔b)⊔a = a⊔b", join(ab, a), ab)
		encB := b.AppendBinary(nil)
		a.Merge(b)
		if !bytes.Equal(b.AppendBinary(nil), encB) {
			t.Fatal("Merge modified its argument")
		}
		checkRoundTrip(t, ab)
	})
}

// TestNonInterleaving: replicas that type at one position concurrently,
// forwards or backwards, find each one's typing contiguous after merging.
func TestNonInterleaving(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(t, "replicas")
		base := &Text{}
		if _, err := base.InsertString(rep(9), 0, rapid.StringMatching(`[a-e]{0,6}`).Draw(t, "base")); err != nil {
			t.Fatal(err)
		}
		pos := rapid.IntRange(0, base.Len()).Draw(t, "pos")
		docs := make([]*Text, n)
		typed := make([]string, n)
		for i := range docs {
			docs[i] = base.Clone()
			word := strings.Repeat(string(rune('K'+i)), rapid.IntRange(1, 8).Draw(t, "len"))
			backwards := rapid.Bool().Draw(t, "backwards")
			var b strings.Builder
			for k, c := range word {
				at := pos + k
				if backwards {
					at = pos
				}
				if _, err := docs[i].Insert(rep(byte(i+1)), at, []rune{c + rune(k%2)}); err != nil {
					t.Fatal(err)
				}
				b.WriteRune(c + rune(k%2))
			}
			typed[i] = b.String()
			if backwards {
				r := []rune(typed[i])
				slices.Reverse(r)
				typed[i] = string(r)
			}
		}
		merged := docs[0].Clone()
		for _, d := range docs[1:] {
			merged.Merge(d)
		}
		got := merged.String()
		for i, s := range typed {
			if !strings.Contains(got, s) {
				t.Fatalf("replica %d typed %q, interleaved in %q", i, s, got)
			}
		}
	})
}

// TestAnchors: anchors taken on any replica at any time resolve, on every
// replica that holds their element and after any concurrent edits, to
// where the model puts them: just after their element (After) or just
// before it (Before), or where it was if it is deleted.
func TestAnchors(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(rapid.IntRange(2, 3).Draw(t, "replicas"))
		var anchors []Anchor
		for range rapid.IntRange(1, 50).Draw(t, "steps") {
			if rapid.IntRange(0, 4).Draw(t, "anchor") == 0 {
				d := w.docs[rapid.IntRange(0, len(w.docs)-1).Draw(t, "on")]
				pos := rapid.IntRange(0, d.Len()).Draw(t, "at")
				side := rapid.SampledFrom([]Side{After, Before}).Draw(t, "side")
				a, err := d.Anchor(pos, side)
				if err != nil {
					t.Fatal(err)
				}
				if got, ok := d.Resolve(a); !ok || got != pos {
					t.Fatalf("a new anchor at %d resolves to %d, %v", pos, got, ok)
				}
				anchors = append(anchors, a)
				continue
			}
			w.step(t)
			for _, a := range anchors {
				for i, d := range w.docs {
					checkAnchor(t, w.modelOf(w.held[i]), d, a)
				}
			}
		}
		w.finish(t)
		for _, a := range anchors {
			for i, d := range w.docs {
				checkAnchor(t, w.modelOf(w.held[i]), d, a)
			}
		}
	})
}

func checkAnchor(t *rapid.T, m *model, d *Text, a Anchor) {
	t.Helper()
	got, ok := d.Resolve(a)
	var want int
	var found bool
	switch {
	case a.ID.IsZero() && a.Side == After:
		want, found = 0, true
	case a.ID.IsZero():
		want, found = len([]rune(m.text())), true
	default:
		var visible bool
		want, visible, found = m.visibleIndex(a.ID)
		if visible && a.Side == After {
			want++
		}
	}
	if ok != found || ok && got != want {
		t.Fatalf("anchor %v/%v resolves to %d, %v; model %d, %v (text %q)", a.ID, a.Side, got, ok, want, found, d.String())
	}
}
