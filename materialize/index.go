package materialize

import (
	"bytes"
	"slices"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/sortedmerge"
)

// Index is a secondary index of a collection: the fields whose values order
// its entries. Each entry of a record is the concatenation of the value keys
// ([crdt.AppendValueKey]) of its fields: a missing field contributes the
// missing key, and a set field one entry per element (a compound index over
// set fields holds the cross product of their elements: keep such indexes to
// small sets). A metadata field ([crdt.FieldUpdated] …) indexes the
// record's metadata. A record that does not exist has no
// entries, so deleted records leave none behind.
type Index struct {
	Name   string
	Fields []string
}

// IndexKeys returns the entries of record r in idx, sorted and distinct.
func IndexKeys(idx Index, r *crdt.Record) [][]byte {
	if r == nil || !r.Exists() {
		return nil
	}
	keys := [][]byte{nil}
	for _, name := range idx.Fields {
		var vals [][]byte
		if m, ok := crdt.MetaFieldValue(r, name); ok {
			vals = [][]byte{m}
		} else if v, ok := r.Get(name); ok && v.Kind == crdt.KindSet {
			vals = r.SetElems(name)
			if len(vals) == 0 {
				vals = [][]byte{nil} // an empty set indexes as missing
			}
		} else {
			vals = [][]byte{v.Value}
		}
		next := make([][]byte, 0, len(keys)*len(vals))
		for _, k := range keys {
			for _, v := range vals {
				next = append(next, crdt.AppendValueKey(slices.Clip(k), v))
			}
		}
		keys = next
	}
	slices.SortFunc(keys, bytes.Compare)
	return slices.CompactFunc(keys, bytes.Equal)
}

// IndexDiff returns the entries of idx to delete and to add when a
// record's state goes from prev to next (either may be nil).
func IndexDiff(idx Index, prev, next *crdt.Record) (del, add [][]byte) {
	sortedmerge.Walk(IndexKeys(idx, prev), IndexKeys(idx, next), bytes.Compare,
		func(k []byte) { del = append(del, k) },
		func(k []byte) { add = append(add, k) },
		nil)
	return del, add
}
