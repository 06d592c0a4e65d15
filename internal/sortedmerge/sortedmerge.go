// Package sortedmerge walks two sorted slices together, the merge step of
// merge sort, written once for the joins and diffs of crdt and
// materialize. It is pure: no I/O, no clock, no goroutines.
package sortedmerge

// Walk visits the elements of a and b in order: onlyA for an element of a
// with no equal element (by cmp) at its place in b, onlyB for one of b
// with none in a, and both for a pair of equal elements. a and b must each
// be sorted by cmp; an element of one is paired with at most one of the
// other. A nil callback skips those elements.
func Walk[T any](a, b []T, cmp func(x, y T) int, onlyA, onlyB func(T), both func(x, y T)) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		c := 0
		switch {
		case j == len(b):
			c = -1
		case i == len(a):
			c = 1
		default:
			c = cmp(a[i], b[j])
		}
		switch {
		case c < 0:
			if onlyA != nil {
				onlyA(a[i])
			}
			i++
		case c > 0:
			if onlyB != nil {
				onlyB(b[j])
			}
			j++
		default:
			if both != nil {
				both(a[i], b[j])
			}
			i++
			j++
		}
	}
}

// Union returns the elements of a and b in order, each pair of equal
// elements (by cmp) combined into one by combine, in a new slice. a and b
// must each be sorted by cmp.
func Union[T any](a, b []T, cmp func(x, y T) int, combine func(x, y T) T) []T {
	out := make([]T, 0, len(a)+len(b))
	add := func(x T) { out = append(out, x) }
	Walk(a, b, cmp, add, add, func(x, y T) { out = append(out, combine(x, y)) })
	return out
}
