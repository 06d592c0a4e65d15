package transport

import (
	"testing"

	"github.com/convergedb/converge/crdt"
)

// TestMinVector: a snapshot stands for the pointwise minimum of its pages'
// vectors, an origin absent from a page counting as 0.
func TestMinVector(t *testing.T) {
	a, b, c := crdt.ReplicaID{1}, crdt.ReplicaID{2}, crdt.ReplicaID{3}
	pages := []crdt.VersionVector{{a: 5, b: 7}, {a: 9, b: 3, c: 4}, {a: 6, b: 8, c: 9}}
	var acc crdt.VersionVector
	for _, p := range pages {
		acc = minVector(acc, p)
	}
	if want := (crdt.VersionVector{a: 5, b: 3}); !acc.Equal(want) {
		t.Errorf("minimum %v, want %v", acc, want)
	}
	if got := minVector(nil, nil); got == nil || len(got) != 0 {
		t.Errorf("minimum of one empty page: %v, want an empty vector", got)
	}
	first := minVector(nil, pages[0])
	first[c] = 1 // the page's vector stays the page's
	if _, ok := pages[0][c]; ok {
		t.Error("the minimum aliases the first page's vector")
	}
}
