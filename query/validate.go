package query

import (
	"fmt"

	"github.com/convergedb/converge/crdt"
)

// Validate checks the query and returns the first problem found:
//   - every field (in Where and Order) is non-empty and, if known is not
//     nil, known: known(field) reports whether a field exists ([IDField]
//     always does). An unknown field is [ErrUnknownField];
//   - every condition has a valid operator and the values it needs (two
//     for Between, at least one for In, one otherwise), each a single
//     well-formed msgpack value; an empty value (missing) only for Eq, Ne
//     and In;
//   - range operators (Gt, Gte, Lt, Lte, Between) have bounds that can be
//     ordered: a bool, number (not NaN), string, binary or timestamp (not
//     nil, missing, an array, a map or another extension); Between's
//     bounds are of one type, low <= high;
//     StartsWith's value is a string;
//   - And and Or hold no nil predicate, Or holds at least one, and groups
//     nest at most 1000 deep (which also catches cyclic predicates);
//   - Limit and Offset are not negative, and After is "" or a cursor made
//     for this Order ([ErrBadCursor]).
//
// Every error wraps [ErrInvalid].
func (q *Query) Validate(known func(field string) bool) error {
	if q.Limit < 0 {
		return fmt.Errorf("%w: negative limit %d", ErrInvalid, q.Limit)
	}
	if q.Offset < 0 {
		return fmt.Errorf("%w: negative offset %d", ErrInvalid, q.Offset)
	}
	for i, o := range q.Order {
		if err := checkField(o.Field, known); err != nil {
			return fmt.Errorf("order %d: %w", i, err)
		}
	}
	if q.Where != nil {
		if err := validatePred(q.Where, known, 0); err != nil {
			return err
		}
	}
	if q.After != "" {
		if _, err := q.decodeCursor(q.After); err != nil {
			return err
		}
	}
	return nil
}

func checkField(f string, known func(string) bool) error {
	if f == "" {
		return fmt.Errorf("%w: empty field name", ErrInvalid)
	}
	if f != IDField && known != nil && !known(f) {
		return fmt.Errorf("%w %q", ErrUnknownField, f)
	}
	return nil
}

func validatePred(p Pred, known func(string) bool, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: predicates nested deeper than %d", ErrInvalid, maxDepth)
	}
	switch p := p.(type) {
	case *Cond:
		if p == nil {
			return fmt.Errorf("%w: nil condition", ErrInvalid)
		}
		return p.validate(known)
	case *And:
		if p == nil {
			return fmt.Errorf("%w: nil and", ErrInvalid)
		}
		return validateGroup(p.Preds, "and", known, depth)
	case *Or:
		if p == nil {
			return fmt.Errorf("%w: nil or", ErrInvalid)
		}
		if len(p.Preds) == 0 {
			return fmt.Errorf("%w: an or of no predicates (it would match nothing)", ErrInvalid)
		}
		return validateGroup(p.Preds, "or", known, depth)
	}
	return fmt.Errorf("%w: nil predicate", ErrInvalid)
}

func validateGroup(ps []Pred, what string, known func(string) bool, depth int) error {
	for i, p := range ps {
		if p == nil {
			return fmt.Errorf("%w: %s: predicate %d is nil", ErrInvalid, what, i)
		}
		if err := validatePred(p, known, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cond) validate(known func(string) bool) error {
	if err := checkField(c.Field, known); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s %v: %s", ErrInvalid, fieldName(c.Field), c.Op, fmt.Sprintf(format, args...))
	}
	if !c.Op.valid() {
		return fmt.Errorf("%w: %s: unknown operator %d", ErrInvalid, fieldName(c.Field), uint8(c.Op))
	}
	switch n := len(c.Values); {
	case c.Op == Between && n != 2:
		return bad("needs 2 values, has %d", n)
	case c.Op == In && n == 0:
		return bad("needs at least 1 value")
	case c.Op != Between && c.Op != In && n != 1:
		return bad("needs 1 value, has %d", n)
	}
	for i, v := range c.Values {
		if len(v) == 0 {
			if c.Op == Eq || c.Op == Ne || c.Op == In {
				continue
			}
			return bad("value %d is missing (empty)", i)
		}
		if err := checkValue(v); err != nil {
			return bad("value %d (0x%x) is not one msgpack value: %v", i, v, err)
		}
	}
	switch c.Op {
	case Gt, Gte, Lt, Lte, Between:
		for i, v := range c.Values {
			if cl := classOf(v); !rangeClass(cl) {
				return bad("value %d is %s, which cannot be ordered (use a bool, number, string, binary or time)",
					i, describeClass(cl))
			}
			if isNaN(v) {
				return bad("value %d is NaN, which bounds no range", i)
			}
		}
		if c.Op == Between {
			lo, hi := c.Values[0], c.Values[1]
			if cl, ch := classOf(lo), classOf(hi); cl != ch {
				return bad("bounds of different types (%s and %s)", classNames[cl], classNames[ch])
			}
			if crdt.CompareValues(lo, hi) > 0 {
				return bad("low bound %s above high bound %s", formatValue(lo), formatValue(hi))
			}
		}
	case StartsWith:
		if cl := classOf(c.Values[0]); cl != classString {
			return bad("value is %s, not a string", describeClass(cl))
		}
	}
	return nil
}

func describeClass(c int) string {
	switch c {
	case classMissing:
		return "missing"
	case classNil:
		return "nil"
	case classOther:
		return "an array, map or extension"
	case classTime:
		return "a time"
	case classBinary:
		return "binary"
	}
	return "a " + classNames[c]
}
