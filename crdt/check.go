package crdt

import (
	"fmt"

	"github.com/convergedb/converge/internal/mp"
)

// checkValue reports whether v is exactly one well-formed msgpack value
// nested at most maxValueNest deep.
func checkValue(v []byte) error {
	r := mp.NewReader(v)
	if err := skipNested(r, 0); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d trailing bytes after value", r.Len())
	}
	return nil
}

func skipNested(r *mp.Reader, depth int) error {
	if depth > maxValueNest {
		return fmt.Errorf("value nested deeper than %d", maxValueNest)
	}
	c, err := r.Peek()
	if err != nil {
		return err
	}
	switch {
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		n, err := r.ArrayHeader()
		if err != nil {
			return err
		}
		for range n {
			if err := skipNested(r, depth+1); err != nil {
				return err
			}
		}
		return nil
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		n, err := r.MapHeader()
		if err != nil {
			return err
		}
		for range 2 * n {
			if err := skipNested(r, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return r.Skip()
}
