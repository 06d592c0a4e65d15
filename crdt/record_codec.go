package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
)

// RecordCodecVersion is the version of the record encoding.
const RecordCodecVersion = 1

// ErrInvalidRecord is wrapped by errors decoding a record's state.
var ErrInvalidRecord = errors.New("crdt: invalid record state")

// # Encoding
//
// A record state is one msgpack array; every list in it is sorted, so a
// normalized Record has exactly one encoding, and equal states have equal
// bytes (the basis of the state hash):
//
//	[ version=1, cl uint,
//	  created-hlc uint, created-replica bin(16),
//	  updated-hlc uint, updated-replica bin(16),
//	  [ field, ... ] ]                               sorted by (name, kind)
//
//	field:    [name, kind, at-cl, at-hlc, at-replica, payload...]
//	register: ... seen uint, value|nil
//	max, min: ... value|nil
//	set:      ... [[value, [origin, seq, cl, ...], [origin, seq, ...]], ...]
//	counter:  ... [origin, cl, p, n, ...]
//	text:     ... state                          a seq.Text state (package seq's Encoding)
//	list:     ... state                          a seq.List state

// AppendBinary appends r's canonical encoding to b.
func (r *Record) AppendBinary(b []byte) []byte {
	b = mp.AppendArrayHeader(b, 7)
	b = mp.AppendUint(b, RecordCodecVersion)
	b = mp.AppendUint(b, r.CL)
	b = appendStamp(b, r.Created)
	b = appendStamp(b, r.Updated)
	b = mp.AppendArrayHeader(b, len(r.Fields))
	for i := range r.Fields {
		f := &r.Fields[i]
		n := 6
		if f.Kind == KindRegister {
			n = 7
		}
		b = mp.AppendArrayHeader(b, n)
		b = mp.AppendString(b, f.Name)
		b = mp.AppendUint(b, uint64(f.Kind))
		b = mp.AppendUint(b, f.At.CL)
		b = appendStamp(b, f.At.Stamp)
		switch f.Kind {
		case KindRegister:
			b = mp.AppendUint(b, uint64(f.Seen))
			b = appendValue(b, f.Value)
		case KindMax, KindMin:
			b = appendValue(b, f.Value)
		case KindSet:
			b = mp.AppendArrayHeader(b, len(f.Elems))
			for _, e := range f.Elems {
				b = mp.AppendArrayHeader(b, 3)
				b = appendValue(b, e.Value)
				b = mp.AppendArrayHeader(b, 3*len(e.Adds))
				for _, t := range e.Adds {
					b = mp.AppendBytes(b, t.Dot.Origin[:])
					b = mp.AppendUint(b, t.Dot.Seq)
					b = mp.AppendUint(b, t.CL)
				}
				b = appendDots(b, e.Removed)
			}
		case KindCounter:
			b = mp.AppendArrayHeader(b, 4*len(f.Counts))
			for _, c := range f.Counts {
				b = mp.AppendBytes(b, c.Origin[:])
				b = mp.AppendUint(b, c.CL)
				b = mp.AppendUint(b, c.P)
				b = mp.AppendUint(b, c.N)
			}
		case KindText, KindList:
			b = f.appendSeqState(b)
		}
	}
	return b
}

// Encode returns r's canonical encoding.
func (r *Record) Encode() []byte { return r.AppendBinary(make([]byte, 0, 128)) }

func appendStamp(b []byte, s Stamp) []byte {
	b = mp.AppendUint(b, uint64(s.HLC))
	return mp.AppendBytes(b, s.Replica[:])
}

// DecodeRecord decodes a record state written by [Record.AppendBinary]. It
// checks that the state is normalized (sorted, no duplicates), so damaged
// bytes are an error rather than a wrong record. It does not require the
// tombstones to be collected: states stored before collection existed
// still decode, and the next [Record.Merge] collects them. Errors are a [*DecodeError]
// wrapping [ErrInvalidRecord] or [ErrUnknownVersion]. The result does not
// alias b.
func DecodeRecord(b []byte) (*Record, error) {
	d := newDecoder(b)
	r, err := d.record()
	if err == nil && d.r.Len() != 0 {
		err = fmt.Errorf("%d trailing bytes", d.r.Len())
	}
	// The reader accepts any form of an integer, string or header; only
	// the smallest, which AppendBinary writes, is canonical.
	if err == nil && !bytes.Equal(r.AppendBinary(make([]byte, 0, len(b))), b) {
		err = errors.New("not in canonical form")
	}
	if err != nil {
		if !errors.Is(err, ErrUnknownVersion) {
			err = fmt.Errorf("%w: %w", ErrInvalidRecord, err)
		}
		return nil, &DecodeError{What: "record", Offset: d.r.Offset(), Err: err}
	}
	return r, nil
}

func (d *decoder) stamp() (s Stamp, err error) {
	u, err := d.r.Uint()
	if err != nil {
		return s, err
	}
	s.HLC = hlc.Timestamp(u)
	s.Replica, err = d.replica()
	return s, err
}

func (d *decoder) record() (*Record, error) {
	if err := d.fixedArray(7); err != nil {
		return nil, err
	}
	if err := d.version(); err != nil {
		return nil, err
	}
	r := &Record{}
	var err error
	if r.CL, err = d.r.Uint(); err != nil {
		return nil, err
	}
	if r.Created, err = d.stamp(); err != nil {
		return nil, err
	}
	if r.Updated, err = d.stamp(); err != nil {
		return nil, err
	}
	n, err := d.r.ArrayHeader()
	if err != nil {
		return nil, err
	}
	r.Fields = make([]Field, n)
	for i := range r.Fields {
		f := &r.Fields[i]
		if err := d.field(f); err != nil {
			return nil, fmt.Errorf("field %d: %w", i, err)
		}
		if i > 0 && compareFieldKey(&r.Fields[i-1], f) >= 0 {
			return nil, fmt.Errorf("field %q out of order", f.Name)
		}
	}
	return r, nil
}

func (d *decoder) field(f *Field) (err error) {
	n, err := d.r.ArrayHeader()
	if err != nil {
		return err
	}
	if f.Name, err = d.str(); err != nil {
		return err
	}
	k, err := d.r.Uint()
	if err != nil {
		return err
	}
	f.Kind = Kind(k)
	if !f.Kind.valid() {
		return fmt.Errorf("unknown kind %d", k)
	}
	want := 6
	if f.Kind == KindRegister {
		want = 7
	}
	if n != want {
		return fmt.Errorf("%v field of %d elements, want %d", f.Kind, n, want)
	}
	if f.At.CL, err = d.r.Uint(); err != nil {
		return err
	}
	if f.At.Stamp, err = d.stamp(); err != nil {
		return err
	}
	switch f.Kind {
	case KindRegister:
		var u uint64
		if u, err = d.r.Uint(); err != nil {
			return err
		}
		f.Seen = hlc.Timestamp(u)
		f.Value, err = d.value()
		return err
	case KindMax, KindMin:
		f.Value, err = d.value()
		return err
	case KindSet:
		return d.elems(f)
	case KindText, KindList:
		return d.seqState(f)
	default:
		return d.counts(f)
	}
}

func (d *decoder) elems(f *Field) error {
	n, err := d.r.ArrayHeader()
	if err != nil {
		return err
	}
	f.Elems = make([]Elem, n)
	for i := range f.Elems {
		e := &f.Elems[i]
		if err := d.fixedArray(3); err != nil {
			return err
		}
		// Raw, not value: nil is an element like any other, and Delta
		// keeps it as its encoding.
		if e.Value, err = d.r.Raw(); err != nil {
			return err
		}
		if i > 0 && orderElems(f.Elems[i-1].Value, e.Value) >= 0 {
			return fmt.Errorf("set element %d out of order", i)
		}
		m, err := d.r.ArrayHeader()
		if err != nil {
			return err
		}
		if m%3 != 0 {
			return fmt.Errorf("add list of %d items", m)
		}
		e.Adds = make([]Tag, m/3)
		for j := range e.Adds {
			t := &e.Adds[j]
			if t.Dot.Origin, err = d.replica(); err != nil {
				return err
			}
			if t.Dot.Seq, err = d.r.Uint(); err != nil {
				return err
			}
			if t.CL, err = d.r.Uint(); err != nil {
				return err
			}
			if j > 0 && e.Adds[j-1].Dot.Compare(t.Dot) >= 0 {
				return fmt.Errorf("set adds out of order")
			}
		}
		if e.Removed, err = d.dots(); err != nil {
			return err
		}
		for j := 1; j < len(e.Removed); j++ {
			if e.Removed[j-1].Compare(e.Removed[j]) >= 0 {
				return fmt.Errorf("set removes out of order")
			}
		}
		for _, t := range e.Adds {
			if _, gone := slices.BinarySearchFunc(e.Removed, t.Dot, Dot.Compare); gone {
				return fmt.Errorf("set add %v is also removed", t.Dot)
			}
		}
	}
	return nil
}

func (d *decoder) counts(f *Field) error {
	n, err := d.r.ArrayHeader()
	if err != nil {
		return err
	}
	if n%4 != 0 {
		return fmt.Errorf("counter list of %d items", n)
	}
	f.Counts = make([]Tally, n/4)
	for i := range f.Counts {
		c := &f.Counts[i]
		if c.Origin, err = d.replica(); err != nil {
			return err
		}
		if c.CL, err = d.r.Uint(); err != nil {
			return err
		}
		if c.P, err = d.r.Uint(); err != nil {
			return err
		}
		if c.N, err = d.r.Uint(); err != nil {
			return err
		}
		if i > 0 && f.Counts[i-1].Origin.Compare(c.Origin) >= 0 {
			return fmt.Errorf("counter origins out of order")
		}
	}
	return nil
}
