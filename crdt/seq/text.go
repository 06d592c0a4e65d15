package seq

import (
	"errors"
	"fmt"
	"unicode/utf8"
	"unsafe"

	"github.com/convergedb/converge/internal/mp"
)

// Text is collaborative text: a sequence of Unicode code points. Positions
// and lengths count code points. The zero Text is empty and ready to use.
type Text struct{ Seq[rune] }

// String returns the visible text.
func (t *Text) String() string {
	if t.t.root == nil {
		return ""
	}
	b := make([]byte, 0, t.Len())
	for l := t.t.first; l != nil; l = l.next {
		for i := range l.runs {
			if r := &l.runs[i]; !r.deleted {
				for _, c := range t.content(r) {
					b = utf8.AppendRune(b, c)
				}
			}
		}
	}
	return string(b)
}

// InsertString inserts str at code point index pos as replica self: see
// [Seq.Insert]. str must be valid UTF-8.
func (t *Text) InsertString(self Replica, pos int, str string) (Insert[rune], error) {
	if !utf8.ValidString(str) {
		return Insert[rune]{}, errors.New("seq: text is not valid UTF-8")
	}
	return t.Insert(self, pos, []rune(str))
}

// Clone returns a deep copy of t.
func (t *Text) Clone() *Text { return &Text{*t.Seq.Clone()} }

// Merge joins o into t: see [Seq.Merge].
func (t *Text) Merge(o *Text) { t.Seq.Merge(&o.Seq) }

// AppendBinary appends t's canonical encoding to b (see the package's
// Encoding section): equal states have equal bytes.
func (t *Text) AppendBinary(b []byte) []byte { return appendState(b, &t.Seq, textCodec) }

// DecodeText decodes a state written by [Text.AppendBinary]. It refuses
// bytes that are not exactly such an encoding with an error wrapping
// [ErrInvalid]. The result does not alias b.
func DecodeText(b []byte) (*Text, error) {
	s, err := decodeState(b, textCodec)
	if err != nil {
		return nil, err
	}
	return &Text{*s}, nil
}

var textCodec = contentCodec[rune]{
	append: func(b []byte, parts [][]rune, n int) []byte {
		size := 0
		for _, p := range parts {
			for _, c := range p {
				size += utf8.RuneLen(c)
			}
		}
		b = mp.AppendStringHeader(b, size)
		for _, p := range parts {
			for _, c := range p {
				b = utf8.AppendRune(b, c)
			}
		}
		return b
	},
	read: func(r *mp.Reader, n int) ([]rune, error) {
		p, err := r.StringBytes()
		if err != nil {
			return nil, err
		}
		if !utf8.Valid(p) {
			return nil, errors.New("text is not valid UTF-8")
		}
		if c := utf8.RuneCount(p); c != n {
			return nil, fmt.Errorf("%d code points for %d elements", c, n)
		}
		if n == 0 {
			return nil, nil
		}
		return []rune(unsafe.String(&p[0], len(p))), nil
	},
}
