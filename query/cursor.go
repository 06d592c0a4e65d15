package query

import (
	"encoding/base64"
	"fmt"
	"hash/fnv"

	"github.com/convergedb/converge/internal/mp"
)

// cursorVersion is the first element of every cursor (see the package doc,
// # Cursor encoding).
const cursorVersion = 1

var cursorEncoding = base64.RawURLEncoding.Strict()

// fingerprint identifies an Order, so that a cursor made for one ordering
// is refused by a query with another.
func fingerprint(os []Order) uint64 {
	h := fnv.New64a()
	var b []byte
	for _, o := range os {
		b = mp.AppendString(b[:0], o.Field)
		b = mp.AppendBool(b, o.Desc)
		h.Write(b) // a hash.Hash never returns an error
	}
	return h.Sum64()
}

// CursorFor returns the cursor of the position of it in q's order: the
// next page after it starts with the first item that sorts after it.
// [Query.Run] returns the cursor of a page's last item; CursorFor serves
// executors that page on their own.
func (q *Query) CursorFor(it Item) string {
	p := q.positionOf(it)
	return q.cursorAt(&p)
}

func (q *Query) cursorAt(p *position) string {
	return cursorEncoding.EncodeToString(q.appendCursor(nil, p))
}

func (q *Query) appendCursor(b []byte, p *position) []byte {
	b = mp.AppendArrayHeader(b, 4)
	b = mp.AppendUint(b, cursorVersion)
	b = mp.AppendUint(b, fingerprint(q.Order))
	b = mp.AppendArrayHeader(b, len(p.vals))
	for _, v := range p.vals {
		b = mp.AppendBytes(b, v)
	}
	return mp.AppendString(b, p.id)
}

// AfterCursor reports whether it sorts strictly after the position of
// q.After, which is what the page after that cursor holds. It is true for
// every item when q.After is "". A cursor that is malformed or was made
// for another Order is an error wrapping [ErrBadCursor].
func (q *Query) AfterCursor(it Item) (bool, error) {
	if q.After == "" {
		return true, nil
	}
	c, err := q.decodeCursor(q.After)
	if err != nil {
		return false, err
	}
	p := q.positionOf(it)
	return q.comparePos(&p, &c) > 0, nil
}

// decodeCursor decodes s, made for q's Order.
func (q *Query) decodeCursor(s string) (position, error) {
	bad := func(format string, args ...any) (position, error) {
		return position{}, fmt.Errorf("%w: %s", ErrBadCursor, fmt.Sprintf(format, args...))
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil {
		return bad("not base64url: %v", err)
	}
	r := mp.NewReader(b)
	n, err := r.ArrayHeader()
	if err != nil || n != 4 {
		return bad("not a cursor")
	}
	v, err := r.Uint()
	if err != nil {
		return bad("not a cursor")
	}
	if v != cursorVersion {
		return bad("unknown version %d", v)
	}
	fp, err := r.Uint()
	if err != nil {
		return bad("not a cursor")
	}
	if fp != fingerprint(q.Order) {
		return bad("made for another ordering than %s", orderString(q.Order))
	}
	n, err = r.ArrayHeader()
	if err != nil || n != len(q.Order) {
		return bad("not a cursor")
	}
	p := position{vals: make([][]byte, n)}
	for i := range n {
		val, err := r.Bytes()
		if err != nil {
			return bad("value %d: %v", i, err)
		}
		if len(val) > 0 {
			if err := checkValue(val); err != nil {
				return bad("value %d: %v", i, err)
			}
		}
		p.vals[i] = val
	}
	id, err := r.String()
	if err != nil {
		return bad("id: %v", err)
	}
	p.id = id
	if r.Len() != 0 {
		return bad("%d trailing bytes", r.Len())
	}
	// Canonical form: smallest msgpack forms, and no characters the
	// base64 decoder skips (it ignores \r and \n).
	if q.cursorAt(&p) != s {
		return bad("not in canonical form")
	}
	return p, nil
}
