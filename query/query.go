package query

import (
	"errors"
	"fmt"
	"strings"

	"github.com/convergedb/converge/crdt"
)

// IDField names the record id in predicates and orderings. It always
// exists, holds the id as a msgpack string, and shadows any stored field
// of the same name.
const IDField = "id"

// maxDepth bounds the nesting of And and Or groups. It is far beyond any
// hand-written query; it exists so that a cyclic predicate (an And that
// contains itself) is an error instead of endless recursion.
const maxDepth = 1000

var (
	// ErrInvalid is wrapped by every error [Query.Validate] returns, and
	// by the errors of [Query.Run] and [Query.AfterCursor].
	ErrInvalid = errors.New("query: invalid query")
	// ErrUnknownField is returned by [Query.Validate] for a field its
	// known function does not know. It wraps [ErrInvalid].
	ErrUnknownField = fmt.Errorf("%w: unknown field", ErrInvalid)
	// ErrBadCursor is returned by [Query.Validate], [Query.Run] and
	// [Query.AfterCursor] for a cursor that is malformed or was made for
	// another ordering. It wraps [ErrInvalid].
	ErrBadCursor = fmt.Errorf("%w: bad cursor", ErrInvalid)
)

// Op is the operator of a [Cond].
type Op uint8

// Operators. The zero Op is invalid.
const (
	// Eq matches a field equal to Values[0] ([crdt.CompareValues] == 0,
	// so 1 equals 1.0). An empty value (or msgpack nil) means missing:
	// Eq(missing) matches records without the field.
	Eq Op = iota + 1
	// Ne is the negation of Eq: it matches missing fields and values of
	// other types.
	Ne
	// Gt, Gte, Lt and Lte compare with Values[0], within its type only
	// (see the package doc): they never match a missing field.
	Gt
	Gte
	Lt
	Lte
	// Between matches Values[0] <= field <= Values[1], within their type.
	Between
	// In matches a field Eq to any of Values (at least one).
	In
	// Contains matches a set field, or a field holding an array, with an
	// element equal to Values[0], or a string field holding Values[0] (a
	// string) as a substring.
	Contains
	// StartsWith matches a string field that begins with Values[0], a
	// string (bytewise).
	StartsWith
)

var opNames = [...]string{Eq: "=", Ne: "!=", Gt: ">", Gte: ">=", Lt: "<", Lte: "<=",
	Between: "between", In: "in", Contains: "contains", StartsWith: "startsWith"}

func (o Op) valid() bool { return o >= Eq && o <= StartsWith }

// String returns the operator as Pred.String writes it ("=", ">=",
// "between", "startsWith", ...).
func (o Op) String() string {
	if o.valid() {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// isRange reports whether o is a range operator: type-bracketed, never
// matching a missing field, and planned as an interval of keys.
func (o Op) isRange() bool { return o >= Gt && o <= Between || o == StartsWith }

// Pred is a predicate over records: a [*Cond], [*And] or [*Or].
type Pred interface {
	// String renders the predicate, e.g. (status = "open" and priority > 3).
	String() string
	pred()
}

// Cond compares one field with values.
type Cond struct {
	Field string
	Op    Op
	// Values are msgpack-encoded ([crdt.EncodeString], [crdt.EncodeInt],
	// ...): two for Between (inclusive bounds), at least one for In, one
	// for the others. An empty value means missing (Eq, Ne and In only).
	Values [][]byte
}

// And matches the records every one of Preds matches (all, when empty).
type And struct{ Preds []Pred }

// Or matches the records any one of Preds matches. An empty Or is invalid.
type Or struct{ Preds []Pred }

func (*Cond) pred() {}
func (*And) pred()  {}
func (*Or) pred()   {}

// String renders the condition: priority > 3, name startsWith "ab",
// n between 1 and 5, tag in ("a", "b"). Values print as Go-like literals,
// and floats always with a point or exponent (1.0), so 1 and 1.0 differ.
func (c *Cond) String() string {
	if c == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString(fieldName(c.Field))
	b.WriteByte(' ')
	b.WriteString(c.Op.String())
	b.WriteByte(' ')
	switch {
	case c.Op == Between && len(c.Values) == 2:
		b.WriteString(formatValue(c.Values[0]))
		b.WriteString(" and ")
		b.WriteString(formatValue(c.Values[1]))
	case c.Op == In || len(c.Values) != 1:
		b.WriteByte('(')
		for i, v := range c.Values {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(formatValue(v))
		}
		b.WriteByte(')')
	default:
		b.WriteString(formatValue(c.Values[0]))
	}
	return b.String()
}

// String renders the group in parentheses, "true" when empty.
func (a *And) String() string {
	if a == nil {
		return "<nil>"
	}
	return group(a.Preds, " and ", "true", 0)
}

// String renders the group in parentheses, "false" when empty.
func (o *Or) String() string {
	if o == nil {
		return "<nil>"
	}
	return group(o.Preds, " or ", "false", 0)
}

func group(ps []Pred, sep, empty string, depth int) string {
	if len(ps) == 0 {
		return empty
	}
	var b strings.Builder
	b.WriteByte('(')
	for i, p := range ps {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(predString(p, depth+1))
	}
	b.WriteByte(')')
	return b.String()
}

func predString(p Pred, depth int) string {
	if depth > maxDepth {
		return "..."
	}
	switch p := p.(type) {
	case nil:
		return "<nil>"
	case *And:
		if p != nil {
			return group(p.Preds, " and ", "true", depth)
		}
	case *Or:
		if p != nil {
			return group(p.Preds, " or ", "false", depth)
		}
	}
	return p.String()
}

// fieldName quotes a field name unless it is a plain identifier.
func fieldName(f string) string {
	plain := f != ""
	for i, c := range f {
		if !(c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			plain = false
			break
		}
	}
	if plain {
		return f
	}
	return fmt.Sprintf("%q", f)
}

// Order is one sort key: a field (or [IDField]) and its direction.
type Order struct {
	Field string
	Desc  bool
}

func (o Order) String() string {
	if o.Desc {
		return fieldName(o.Field) + " desc"
	}
	return fieldName(o.Field)
}

// Query selects, orders and pages records. The zero Query selects every
// record, by id ascending.
type Query struct {
	// Where filters the records; nil keeps every record.
	Where Pred
	// Order sorts the records; ties (and an empty Order) are broken by
	// the id, in the direction of the last Order entry (see
	// [Query.Compare]).
	Order []Order
	// Limit bounds the page size; 0 means no limit.
	Limit int
	// Offset skips records at the start of the first page. A cursor
	// already holds its position, so Offset is ignored when After is set.
	Offset int
	// After is the cursor that ended the previous page ([Query.Run]
	// returns it); "" starts at the beginning.
	After string
}

// Item is one record as the evaluator sees it. Rec should be a live record
// ([crdt.Record.Exists]); a nil Rec has no fields.
type Item struct {
	ID  string
	Rec *crdt.Record
}

// String renders the query: where ..., order by ..., limit, offset, after.
func (q *Query) String() string {
	var parts []string
	if q.Where != nil {
		parts = append(parts, "where "+predString(q.Where, 0))
	}
	if len(q.Order) > 0 {
		parts = append(parts, "order by "+orderString(q.Order))
	}
	if q.Limit != 0 {
		parts = append(parts, fmt.Sprintf("limit %d", q.Limit))
	}
	if q.Offset != 0 {
		parts = append(parts, fmt.Sprintf("offset %d", q.Offset))
	}
	if q.After != "" {
		parts = append(parts, fmt.Sprintf("after %q", q.After))
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

func orderString(os []Order) string {
	if len(os) == 0 {
		return IDField
	}
	s := make([]string, len(os))
	for i, o := range os {
		s[i] = o.String()
	}
	return strings.Join(s, ", ")
}
