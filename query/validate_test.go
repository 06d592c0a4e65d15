package query

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestValidate(t *testing.T) {
	schema := func(f string) bool { return slices.Contains([]string{"a", "b", "s", "tags"}, f) }
	good := (&Query{Order: []Order{{Field: "a"}}}).CursorFor(item("x", assign("a", vi(1))))
	deep := Pred(cond("a", Eq, vi(1)))
	for range maxDepth + 1 {
		deep = and(deep)
	}
	okDeep := Pred(cond("a", Eq, vi(1)))
	for range 100 {
		okDeep = or(and(okDeep))
	}
	tests := []struct {
		name    string
		q       Query
		known   func(string) bool
		wantErr error // nil: valid
	}{
		{"zero query", Query{}, schema, nil},
		{"full query", Query{
			Where: and(cond("a", Eq, vi(1)), or(cond("b", Gt, vf(2)), cond("tags", Contains, vs("x"))), cond(IDField, StartsWith, vs("u"))),
			Order: []Order{{Field: "b", Desc: true}, {Field: IDField}}, Limit: 10, Offset: 3}, schema, nil},
		{"no schema check", Query{Where: cond("zzz", Eq, vi(1))}, nil, nil},
		{"cursor", Query{Order: []Order{{Field: "a"}}, After: good}, schema, nil},
		{"deep but fine", Query{Where: okDeep}, schema, nil},
		{"eq missing", Query{Where: cond("a", Eq, vMissing)}, schema, nil},
		{"in with missing", Query{Where: cond("a", In, vi(1), vMissing)}, schema, nil},
		{"contains nil", Query{Where: cond("tags", Contains, vNil)}, schema, nil},
		{"between equal bounds", Query{Where: cond("a", Between, vi(1), vf(1))}, schema, nil},
		{"between int float", Query{Where: cond("a", Between, vi(1), vf(1.5))}, schema, nil},
		{"gt time", Query{Where: cond("a", Gt, vt32(5))}, schema, nil},
		{"between times of two forms", Query{Where: cond("a", Between, vt32(5), vt96(5, 0))}, schema, nil},
		{"eq NaN", Query{Where: cond("a", Eq, vf(math.NaN()))}, schema, nil},

		{"unknown where field", Query{Where: cond("zzz", Eq, vi(1))}, schema, ErrUnknownField},
		{"unknown nested field", Query{Where: and(cond("a", Eq, vi(1)), or(cond("b", Eq, vi(1)), cond("zzz", Eq, vi(1))))}, schema, ErrUnknownField},
		{"unknown order field", Query{Order: []Order{{Field: "zzz"}}}, schema, ErrUnknownField},
		{"empty field", Query{Where: cond("", Eq, vi(1))}, nil, ErrInvalid},
		{"empty order field", Query{Order: []Order{{}}}, nil, ErrInvalid},
		{"zero op", Query{Where: cond("a", 0, vi(1))}, schema, ErrInvalid},
		{"op out of range", Query{Where: cond("a", 99, vi(1))}, schema, ErrInvalid},
		{"eq no value", Query{Where: cond("a", Eq)}, schema, ErrInvalid},
		{"eq two values", Query{Where: cond("a", Eq, vi(1), vi(2))}, schema, ErrInvalid},
		{"between one value", Query{Where: cond("a", Between, vi(1))}, schema, ErrInvalid},
		{"between three values", Query{Where: cond("a", Between, vi(1), vi(2), vi(3))}, schema, ErrInvalid},
		{"in no values", Query{Where: cond("a", In)}, schema, ErrInvalid},
		{"malformed value", Query{Where: cond("a", Eq, []byte{0xcb, 1, 2})}, schema, ErrInvalid},
		{"trailing bytes", Query{Where: cond("a", Eq, append(vi(1), 2))}, schema, ErrInvalid},
		{"reserved byte", Query{Where: cond("a", Eq, []byte{0xc1})}, schema, ErrInvalid},
		{"truncated string", Query{Where: cond("s", StartsWith, []byte{0xa3, 'a'})}, schema, ErrInvalid},
		{"malformed in value", Query{Where: cond("a", In, vi(1), []byte{0xdc})}, schema, ErrInvalid},
		{"gt missing", Query{Where: cond("a", Gt, vMissing)}, schema, ErrInvalid},
		{"gt nil", Query{Where: cond("a", Gt, vNil)}, schema, ErrInvalid},
		{"lt array", Query{Where: cond("a", Lt, varr(vi(1)))}, schema, ErrInvalid},
		{"lte map", Query{Where: cond("a", Lte, []byte{0x80})}, schema, ErrInvalid},
		{"between mixed types", Query{Where: cond("a", Between, vi(1), vs("z"))}, schema, ErrInvalid},
		{"between reversed", Query{Where: cond("a", Between, vi(5), vi(1))}, schema, ErrInvalid},
		{"between reversed times", Query{Where: cond("a", Between, vt64(5, 1), vt32(5))}, schema, ErrInvalid},
		{"between time and number", Query{Where: cond("a", Between, vt32(5), vi(6))}, schema, ErrInvalid},
		{"gt NaN", Query{Where: cond("a", Gt, vf(math.NaN()))}, schema, ErrInvalid},
		{"between NaN", Query{Where: cond("a", Between, vf(math.NaN()), vi(1))}, schema, ErrInvalid},
		{"lte other extension", Query{Where: cond("a", Lte, []byte{0xd6, 0x0d, 0, 0, 0, 1})}, schema, ErrInvalid},
		{"startsWith number", Query{Where: cond("s", StartsWith, vi(1))}, schema, ErrInvalid},
		{"startsWith binary", Query{Where: cond("s", StartsWith, vbin('a'))}, schema, ErrInvalid},
		{"contains missing", Query{Where: cond("tags", Contains, vMissing)}, schema, ErrInvalid},
		{"ne missing ok but ne no value", Query{Where: cond("a", Ne)}, schema, ErrInvalid},
		{"nil cond", Query{Where: (*Cond)(nil)}, schema, ErrInvalid},
		{"nil and", Query{Where: (*And)(nil)}, schema, ErrInvalid},
		{"nil or", Query{Where: (*Or)(nil)}, schema, ErrInvalid},
		{"nil in and", Query{Where: and(cond("a", Eq, vi(1)), nil)}, schema, ErrInvalid},
		{"nil in or", Query{Where: or(nil)}, schema, ErrInvalid},
		{"empty or", Query{Where: or()}, schema, ErrInvalid},
		{"too deep", Query{Where: deep}, schema, ErrInvalid},
		{"negative limit", Query{Limit: -1}, schema, ErrInvalid},
		{"negative offset", Query{Offset: -1}, schema, ErrInvalid},
		{"malformed cursor", Query{After: "!!"}, schema, ErrBadCursor},
		{"foreign cursor", Query{Order: []Order{{Field: "a", Desc: true}}, After: good}, schema, ErrBadCursor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.q.Validate(tt.known)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Validate() = %v, want %v", err, tt.wantErr)
			case tt.wantErr != nil && !errors.Is(err, ErrInvalid):
				t.Fatalf("Validate() = %v, does not wrap ErrInvalid", err)
			}
			if err != nil {
				t.Logf("%v", err)
				// Run and Plan refuse the query too, without panicking.
				if tt.known != nil && errors.Is(err, ErrUnknownField) {
					return
				}
				if _, _, rerr := tt.q.Run([]Item{item("x", assign("a", vi(1)))}); rerr == nil {
					t.Errorf("Run() = nil error for an invalid query")
				}
				if p := tt.q.Plan([]Index{{Name: "a", Fields: []string{"a"}}}); p.Index != "" {
					t.Errorf("Plan() = %v for an invalid query, want a scan", p)
				}
			}
		})
	}
}

func TestValidateErrorText(t *testing.T) {
	q := Query{Where: cond("priority", Lt, varr())}
	err := q.Validate(nil)
	if got, want := err.Error(), "query: invalid query: priority <: value 0 is an array, map or extension, which cannot be ordered (use a bool, number, string, binary or time)"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	q = Query{Where: cond("titel", Eq, vs("x"))}
	err = q.Validate(func(string) bool { return false })
	if got, want := err.Error(), `query: invalid query: unknown field "titel"`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}
