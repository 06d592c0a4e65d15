package seq

import (
	"fmt"

	"github.com/convergedb/converge/internal/mp"
)

// List is a collaborative list of msgpack-encoded values. The zero List
// is empty and ready to use. The values are opaque to it: it neither
// checks nor changes them.
type List struct{ Seq[[]byte] }

// Clone returns a deep copy of l.
func (l *List) Clone() *List { return &List{*l.Seq.Clone()} }

// Merge joins o into l: see [Seq.Merge].
func (l *List) Merge(o *List) { l.Seq.Merge(&o.Seq) }

// AppendBinary appends l's canonical encoding to b (see the package's
// Encoding section): equal states have equal bytes.
func (l *List) AppendBinary(b []byte) []byte { return appendState(b, &l.Seq, listCodec) }

// DecodeList decodes a state written by [List.AppendBinary]. It refuses
// bytes that are not exactly such an encoding with an error wrapping
// [ErrInvalid]. The result's values alias b.
func DecodeList(b []byte) (*List, error) {
	s, err := decodeState(b, listCodec)
	if err != nil {
		return nil, err
	}
	return &List{*s}, nil
}

var listCodec = contentCodec[[]byte]{
	append: func(b []byte, parts [][][]byte, n int) []byte {
		b = mp.AppendArrayHeader(b, n)
		for _, p := range parts {
			for _, v := range p {
				b = append(b, v...)
			}
		}
		return b
	},
	read: func(r *mp.Reader, n int) ([][]byte, error) {
		m, err := r.ArrayHeader()
		if err != nil {
			return nil, err
		}
		if m != n {
			return nil, fmt.Errorf("%d values for %d elements", m, n)
		}
		if m == 0 {
			return nil, nil
		}
		out := make([][]byte, m)
		for i := range out {
			if out[i], err = r.Raw(); err != nil {
				return nil, err
			}
		}
		return out, nil
	},
}
