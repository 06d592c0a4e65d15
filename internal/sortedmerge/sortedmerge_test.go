package sortedmerge_test

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/convergedb/converge/internal/sortedmerge"
)

// TestWalkMatchesSets checks Walk against set arithmetic on random sorted
// slices without duplicates: onlyA is a minus b, onlyB is b minus a, both
// is their intersection, each in order.
func TestWalkMatchesSets(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := sortedSet(rapid.SliceOf(rapid.IntRange(0, 30)).Draw(t, "a"))
		b := sortedSet(rapid.SliceOf(rapid.IntRange(0, 30)).Draw(t, "b"))
		var onlyA, onlyB, both []int
		sortedmerge.Walk(a, b, cmp.Compare[int],
			func(x int) { onlyA = append(onlyA, x) },
			func(y int) { onlyB = append(onlyB, y) },
			func(x, y int) {
				if x != y {
					t.Fatalf("both(%d, %d): not equal", x, y)
				}
				both = append(both, x)
			})
		var wantA, wantB, wantBoth []int
		for _, x := range a {
			if slices.Contains(b, x) {
				wantBoth = append(wantBoth, x)
			} else {
				wantA = append(wantA, x)
			}
		}
		for _, y := range b {
			if !slices.Contains(a, y) {
				wantB = append(wantB, y)
			}
		}
		if !slices.Equal(onlyA, wantA) || !slices.Equal(onlyB, wantB) || !slices.Equal(both, wantBoth) {
			t.Fatalf("Walk(%v, %v) = only a %v, only b %v, both %v; want %v, %v, %v", a, b, onlyA, onlyB, both, wantA, wantB, wantBoth)
		}
		union := sortedmerge.Union(a, b, cmp.Compare[int], func(x, y int) int { return -x })
		var want []int
		for _, x := range sortedSet(append(slices.Clone(a), b...)) {
			if slices.Contains(a, x) && slices.Contains(b, x) {
				x = -x
			}
			want = append(want, x)
		}
		if !slices.Equal(union, want) {
			t.Fatalf("Union(%v, %v) = %v, want %v", a, b, union, want)
		}
	})
}

// TestWalkNilCallbacks checks that nil callbacks skip their elements.
func TestWalkNilCallbacks(t *testing.T) {
	var got []int
	sortedmerge.Walk([]int{1, 2, 4}, []int{2, 3}, cmp.Compare[int], nil, func(y int) { got = append(got, y) }, nil)
	if !slices.Equal(got, []int{3}) {
		t.Fatalf("onlyB = %v, want [3]", got)
	}
}

func sortedSet(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func ExampleWalk() {
	before, after := []string{"a", "b", "d"}, []string{"b", "c", "d"}
	sortedmerge.Walk(before, after, cmp.Compare[string],
		func(x string) { fmt.Println("removed", x) },
		func(y string) { fmt.Println("added", y) },
		nil)
	// Output:
	// removed a
	// added c
}
