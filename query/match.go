package query

import (
	"bytes"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
)

// fieldValue returns the visible value of field name in it (empty when
// missing) and its kind. IDField is the id as a msgpack string, and a
// metadata field ([crdt.MetaFieldValue]) the record's metadata.
func fieldValue(it Item, name string) ([]byte, crdt.Kind) {
	if name == IDField {
		return mp.AppendString(nil, it.ID), crdt.KindRegister
	}
	if v, ok := crdt.MetaFieldValue(it.Rec, name); ok {
		return v, crdt.KindRegister
	}
	if it.Rec == nil {
		return nil, 0
	}
	v, ok := it.Rec.Get(name)
	if !ok {
		return nil, 0
	}
	return v.Value, v.Kind
}

// Match reports whether it satisfies p; a nil p matches everything. The
// rules are in the package doc (# Comparison rules). Match expects a
// predicate that [Query.Validate] accepts; for one it would refuse, Match
// does not panic, and the offending condition (or nil group) matches
// nothing.
func Match(p Pred, it Item) bool {
	if p == nil {
		return true
	}
	return match(p, it, 0)
}

func match(p Pred, it Item, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch p := p.(type) {
	case *Cond:
		return p != nil && p.match(it)
	case *And:
		if p == nil {
			return false
		}
		for _, q := range p.Preds {
			if q == nil || !match(q, it, depth+1) {
				return false
			}
		}
		return true
	case *Or:
		if p == nil {
			return false
		}
		for _, q := range p.Preds {
			if q != nil && match(q, it, depth+1) {
				return true
			}
		}
	}
	return false
}

func (c *Cond) match(it Item) bool {
	if !c.Op.valid() || len(c.Values) == 0 || (c.Op == Between && len(c.Values) != 2) {
		return false
	}
	v, kind := fieldValue(it, c.Field)
	switch c.Op {
	case Eq:
		return equal(v, c.Values[0])
	case Ne:
		return !equal(v, c.Values[0])
	case In:
		for _, x := range c.Values {
			if equal(v, x) {
				return true
			}
		}
		return false
	case Gt, Gte, Lt, Lte:
		x := c.Values[0]
		cl := classOf(x)
		if !rangeClass(cl) || classOf(v) != cl || isNaN(v) || isNaN(x) {
			return false
		}
		d := crdt.CompareValues(v, x)
		switch c.Op {
		case Gt:
			return d > 0
		case Gte:
			return d >= 0
		case Lt:
			return d < 0
		}
		return d <= 0
	case Between:
		lo, hi := c.Values[0], c.Values[1]
		cl := classOf(lo)
		if !rangeClass(cl) || classOf(v) != cl || classOf(hi) != cl || isNaN(v) || isNaN(lo) || isNaN(hi) {
			return false
		}
		return crdt.CompareValues(v, lo) >= 0 && crdt.CompareValues(v, hi) <= 0
	case Contains:
		x := c.Values[0]
		if len(x) == 0 {
			return false
		}
		if kind == crdt.KindSet && c.Field != IDField {
			for _, e := range it.Rec.SetElems(c.Field) {
				if crdt.CompareValues(e, x) == 0 {
					return true
				}
			}
			return false
		}
		if isArray(v) {
			return arrayContains(v, x)
		}
		s, ok1 := strBytes(v)
		sub, ok2 := strBytes(x)
		return ok1 && ok2 && bytes.Contains(s, sub)
	case StartsWith:
		s, ok1 := strBytes(v)
		pre, ok2 := strBytes(c.Values[0])
		return ok1 && ok2 && bytes.HasPrefix(s, pre)
	}
	return false
}

// equal is Eq: crdt.CompareValues == 0, a query's nil meaning missing.
func equal(v, x []byte) bool { return crdt.CompareValues(v, normMissing(x)) == 0 }

// isArray reports whether v is encoded as a msgpack array.
func isArray(v []byte) bool {
	return len(v) > 0 && (v[0]&0xf0 == 0x90 || v[0] == 0xdc || v[0] == 0xdd)
}

// arrayContains reports whether the msgpack array v holds an element equal
// to x (crdt.CompareValues == 0). A malformed array holds nothing.
func arrayContains(v, x []byte) bool {
	r := mp.NewReader(v)
	n, err := r.ArrayHeader()
	if err != nil {
		return false
	}
	for range n {
		e, err := r.Raw()
		if err != nil {
			return false
		}
		if crdt.CompareValues(e, x) == 0 {
			return true
		}
	}
	return false
}
