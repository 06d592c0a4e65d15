package seq_test

import (
	"fmt"

	"github.com/convergedb/converge/crdt/seq"
)

// Two replicas edit one note at the same time, exchange their edits (in
// any order) and end with the same text: each one's typing stays whole.
func Example() {
	alice, bob := seq.Replica{1}, seq.Replica{2}
	var a seq.Text
	first, _ := a.InsertString(alice, 0, "Meet at noon.")
	b := a.Clone()

	// Concurrently: Alice types a place, Bob changes the time.
	ins1, _ := a.InsertString(alice, 12, " at the café")
	del, _ := b.Delete(8, 4)
	ins2, _ := b.InsertString(bob, 8, "ten")

	// Each receives the other's edits.
	_ = a.ApplyDelete(del)
	_ = a.ApplyInsert(ins2)
	_ = b.ApplyInsert(ins1)
	_ = b.ApplyInsert(first) // a duplicate changes nothing

	fmt.Println(a.String())
	fmt.Println(b.String())
	// Output:
	// Meet at ten at the café.
	// Meet at ten at the café.
}

// An anchor keeps its place, here the start of the word "noon", through
// a concurrent edit before it.
func ExampleAnchor() {
	var a seq.Text
	a.InsertString(seq.Replica{1}, 0, "Meet at noon.")
	b := a.Clone()
	cursor, _ := a.Anchor(8, seq.Before) // just before "noon"

	ins, _ := b.InsertString(seq.Replica{2}, 0, "Please: ")
	_ = a.ApplyInsert(ins)

	pos, _ := a.Resolve(cursor)
	fmt.Println(pos, string([]rune(a.String())[pos:]))
	// Output:
	// 16 noon.
}
