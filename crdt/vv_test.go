package crdt

import (
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

func TestVersionVectorMerge(t *testing.T) {
	tests := []struct {
		name    string
		v, o    VersionVector
		want    VersionVector
		wantSum uint64
	}{
		{"both empty", VersionVector{}, VersionVector{}, VersionVector{}, 0},
		{"into empty", VersionVector{}, VersionVector{rA: 3}, VersionVector{rA: 3}, 3},
		{"from nil", VersionVector{rA: 3}, nil, VersionVector{rA: 3}, 3},
		{"disjoint", VersionVector{rA: 3}, VersionVector{rB: 2}, VersionVector{rA: 3, rB: 2}, 5},
		{"pointwise max", VersionVector{rA: 3, rB: 7}, VersionVector{rA: 5, rB: 1}, VersionVector{rA: 5, rB: 7}, 12},
		{"equal", VersionVector{rA: 3}, VersionVector{rA: 3}, VersionVector{rA: 3}, 3},
		{"zero entry kept out", VersionVector{rA: 3}, VersionVector{rB: 0}, VersionVector{rA: 3}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.v.Clone()
			v.Merge(tt.o)
			if !reflect.DeepEqual(v, tt.want) {
				t.Errorf("%v.Merge(%v) = %v, want %v", tt.v, tt.o, v, tt.want)
			}
			if got := v.Sum(); got != tt.wantSum {
				t.Errorf("Sum() = %d, want %d", got, tt.wantSum)
			}
			if !v.Covers(tt.v) || !v.Covers(tt.o) {
				t.Errorf("merge %v does not cover both %v and %v", v, tt.v, tt.o)
			}
		})
	}
}

func TestVersionVectorCoversEqual(t *testing.T) {
	tests := []struct {
		name   string
		v, o   VersionVector
		covers bool // v covers o
		equal  bool
	}{
		{"empty empty", VersionVector{}, VersionVector{}, true, true},
		{"nil nil", nil, nil, true, true},
		{"nil empty", nil, VersionVector{}, true, true},
		{"explicit zero", VersionVector{rA: 0}, VersionVector{}, true, true},
		{"ahead", VersionVector{rA: 3}, VersionVector{rA: 2}, true, false},
		{"behind", VersionVector{rA: 2}, VersionVector{rA: 3}, false, false},
		{"same", VersionVector{rA: 2, rB: 1}, VersionVector{rB: 1, rA: 2}, true, true},
		{"missing origin", VersionVector{rA: 5}, VersionVector{rB: 1}, false, false},
		{"superset", VersionVector{rA: 5, rB: 1}, VersionVector{rB: 1}, true, false},
		{"concurrent", VersionVector{rA: 5, rB: 1}, VersionVector{rA: 4, rB: 2}, false, false},
		{"empty covers nothing", VersionVector{}, VersionVector{rC: 1}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.Covers(tt.o); got != tt.covers {
				t.Errorf("%v.Covers(%v) = %v, want %v", tt.v, tt.o, got, tt.covers)
			}
			if got := tt.v.Equal(tt.o); got != tt.equal {
				t.Errorf("%v.Equal(%v) = %v, want %v", tt.v, tt.o, got, tt.equal)
			}
			if got := tt.o.Equal(tt.v); got != tt.equal {
				t.Errorf("%v.Equal(%v) = %v, want %v", tt.o, tt.v, got, tt.equal)
			}
		})
	}
}

func TestVersionVectorContains(t *testing.T) {
	v := VersionVector{rA: 3, rB: 0}
	tests := []struct {
		d    Dot
		want bool
	}{
		{Dot{rA, 0}, false},
		{Dot{rA, 1}, true},
		{Dot{rA, 3}, true},
		{Dot{rA, 4}, false},
		{Dot{rB, 0}, false},
		{Dot{rB, 1}, false},
		{Dot{rC, 1}, false},
		{Dot{ReplicaID{}, 0}, false},
	}
	for _, tt := range tests {
		if got := v.Contains(tt.d); got != tt.want {
			t.Errorf("%v.Contains(%v) = %v, want %v", v, tt.d, got, tt.want)
		}
	}
	if got := v.Get(rA); got != 3 {
		t.Errorf("Get(rA) = %d, want 3", got)
	}
	if got := v.Get(rC); got != 0 {
		t.Errorf("Get(rC) = %d, want 0", got)
	}
}

func TestVersionVectorMissing(t *testing.T) {
	tests := []struct {
		name    string
		v, have VersionVector
		want    []Range
	}{
		{"nothing", VersionVector{}, VersionVector{rA: 3}, nil},
		{"equal", VersionVector{rA: 3}, VersionVector{rA: 3}, nil},
		{"have more", VersionVector{rA: 3}, VersionVector{rA: 9}, nil},
		{"all", VersionVector{rA: 3}, nil, []Range{{rA, 1, 3}}},
		{"suffix", VersionVector{rA: 5}, VersionVector{rA: 2}, []Range{{rA, 3, 5}}},
		{"one", VersionVector{rA: 5}, VersionVector{rA: 4}, []Range{{rA, 5, 5}}},
		{
			"sorted by origin",
			VersionVector{rC: 2, rA: 5, rB: 1},
			VersionVector{rA: 4, rB: 1},
			[]Range{{rA, 5, 5}, {rC, 1, 2}},
		},
		{"zero entries skipped", VersionVector{rA: 0, rB: 2}, VersionVector{}, []Range{{rB, 1, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.v.Missing(tt.have)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%v.Missing(%v) = %v, want %v", tt.v, tt.have, got, tt.want)
			}
		})
	}
	if got := (Range{rA, 3, 5}).Len(); got != 3 {
		t.Errorf("Range{3, 5}.Len() = %d, want 3", got)
	}
}

func TestVersionVectorMisc(t *testing.T) {
	v := VersionVector{rC: 2, rA: 5, rB: 0}
	if got, want := v.Origins(), []ReplicaID{rA, rC}; !reflect.DeepEqual(got, want) {
		t.Errorf("Origins() = %v, want %v", got, want)
	}
	c := v.Clone()
	c[rA] = 9
	c[rB] = 1
	if v[rA] != 5 || v[rB] != 0 {
		t.Errorf("mutating a Clone changed the original: %v", v)
	}
	if c := VersionVector(nil).Clone(); c == nil {
		t.Errorf("Clone of nil = nil, want an empty vector")
	}
	want := "{" + rA.String() + ":5 " + rB.String() + ":0 " + rC.String() + ":2}"
	if got := v.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (VersionVector{}).String(); got != "{}" {
		t.Errorf("String() of empty = %q, want {}", got)
	}
}

var vvReplicas = []ReplicaID{rA, rB, rC, rid(0x0d)}

func genVV() *rapid.Generator[VersionVector] {
	return rapid.Custom(func(t *rapid.T) VersionVector {
		v := VersionVector{}
		for _, r := range vvReplicas {
			// Absent, explicit zero, or a sequence number.
			switch rapid.IntRange(0, 3).Draw(t, "kind") {
			case 0:
			case 1:
				v[r] = 0
			default:
				v[r] = rapid.Uint64Range(1, 8).Draw(t, "seq")
			}
		}
		return v
	})
}

func TestVersionVectorProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genVV().Draw(t, "a"), genVV().Draw(t, "b"), genVV().Draw(t, "c")
		join := func(x, y VersionVector) VersionVector {
			z := x.Clone()
			z.Merge(y)
			return z
		}
		if ab, ba := join(a, b), join(b, a); !ab.Equal(ba) {
			t.Fatalf("merge not commutative: %v vs %v", ab, ba)
		}
		if l, r := join(join(a, b), c), join(a, join(b, c)); !l.Equal(r) {
			t.Fatalf("merge not associative: %v vs %v", l, r)
		}
		if aa := join(a, a); !aa.Equal(a) {
			t.Fatalf("merge not idempotent: %v vs %v", aa, a)
		}
		ab := join(a, b)
		if !ab.Covers(a) || !ab.Covers(b) {
			t.Fatalf("%v does not cover %v and %v", ab, a, b)
		}
		// Covers is the order of the lattice: a covers b iff a ⊔ b = a.
		if got, want := a.Covers(b), join(a, b).Equal(a); got != want {
			t.Fatalf("%v.Covers(%v) = %v, but join equal = %v", a, b, got, want)
		}
		if got, want := a.Equal(b), a.Covers(b) && b.Covers(a); got != want {
			t.Fatalf("%v.Equal(%v) = %v, want %v", a, b, got, want)
		}
		if ab.Sum() < a.Sum() || ab.Sum() < b.Sum() {
			t.Fatalf("Sum of the join %d below a %d or b %d", ab.Sum(), a.Sum(), b.Sum())
		}

		// Missing lists exactly the dots a has and b lacks.
		missing := a.Missing(b)
		for i := 1; i < len(missing); i++ {
			if missing[i-1].Origin.Compare(missing[i].Origin) >= 0 {
				t.Fatalf("Missing not sorted by origin: %v", missing)
			}
		}
		inMissing := func(d Dot) bool {
			for _, r := range missing {
				if r.Origin == d.Origin && d.Seq >= r.From && d.Seq <= r.To {
					return true
				}
			}
			return false
		}
		var n uint64
		for _, r := range missing {
			if r.From == 0 || r.From > r.To {
				t.Fatalf("bad range %v in %v", r, missing)
			}
			n += r.Len()
		}
		var want uint64
		for _, r := range vvReplicas {
			for s := uint64(0); s <= 9; s++ {
				d := Dot{Origin: r, Seq: s}
				w := a.Contains(d) && !b.Contains(d)
				if w {
					want++
				}
				if got := inMissing(d); got != w {
					t.Fatalf("%v.Missing(%v) = %v: dot %v listed %v, want %v", a, b, missing, d, got, w)
				}
			}
		}
		if n != want {
			t.Fatalf("Missing covers %d dots, want %d", n, want)
		}
		// Merging what is missing makes b cover a.
		bb := b.Clone()
		for _, r := range missing {
			bb.Merge(VersionVector{r.Origin: r.To})
		}
		if !bb.Covers(a) || len(a.Missing(bb)) != 0 {
			t.Fatalf("after receiving %v, %v still lacks some of %v", missing, bb, a)
		}
	})
}
