package materialize

import (
	"bytes"
	"fmt"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
)

// # Encoding
//
// A stored conflict is one msgpack array:
//
//	[ version=1, namespace, collection, key, field,
//	  winner-cl, winner-hlc, winner-replica bin(16), winner-value|nil,
//	  loser-cl,  loser-hlc,  loser-replica bin(16),  loser-value|nil ]
//
// Conflict.Resolution is not stored: a decoded conflict has it false.

// AppendConflict appends the encoding of c to b.
func AppendConflict(b []byte, c *Conflict) []byte {
	b = mp.AppendArrayHeader(b, 13)
	b = mp.AppendUint(b, 1)
	for _, s := range [...]string{c.Namespace, c.Collection, c.Key, c.Field} {
		b = mp.AppendString(b, s)
	}
	for _, w := range [...]*Write{&c.Winner, &c.Loser} {
		b = mp.AppendUint(b, w.Version.CL)
		b = mp.AppendUint(b, uint64(w.Version.HLC))
		b = mp.AppendBytes(b, w.Version.Replica[:])
		if len(w.Value) == 0 {
			b = mp.AppendNil(b)
		} else {
			b = append(b, w.Value...)
		}
	}
	return b
}

// DecodeConflict decodes a conflict written by AppendConflict. The result
// aliases b.
func DecodeConflict(b []byte) (Conflict, error) {
	var c Conflict
	r := mp.NewReader(b)
	fail := func(err error) (Conflict, error) {
		return Conflict{}, fmt.Errorf("materialize: decode conflict: %w", err)
	}
	n, err := r.ArrayHeader()
	if err != nil {
		return fail(err)
	}
	if n != 13 {
		return fail(fmt.Errorf("%w: %d elements, want 13", mp.ErrMalformed, n))
	}
	v, err := r.Uint()
	if err != nil {
		return fail(err)
	}
	if v != 1 {
		return fail(fmt.Errorf("%w: conflict version %d", crdt.ErrUnknownVersion, v))
	}
	for _, s := range [...]*string{&c.Namespace, &c.Collection, &c.Key, &c.Field} {
		if *s, err = r.String(); err != nil {
			return fail(err)
		}
	}
	for _, w := range [...]*Write{&c.Winner, &c.Loser} {
		if w.Version.CL, err = r.Uint(); err != nil {
			return fail(err)
		}
		h, err := r.Uint()
		if err != nil {
			return fail(err)
		}
		w.Version.HLC = hlc.Timestamp(h)
		id, err := r.Bytes()
		if err != nil {
			return fail(err)
		}
		if len(id) != 16 {
			return fail(fmt.Errorf("%w: replica id of %d bytes", mp.ErrMalformed, len(id)))
		}
		w.Version.Replica = crdt.ReplicaID(id)
		if !r.IsNil() {
			if w.Value, err = r.Raw(); err != nil {
				return fail(err)
			}
		}
	}
	if r.Len() != 0 {
		return fail(fmt.Errorf("%w: %d trailing bytes", mp.ErrMalformed, r.Len()))
	}
	// Only the canonical encoding is accepted, as for record states.
	if !bytes.Equal(AppendConflict(make([]byte, 0, len(b)), &c), b) {
		return fail(fmt.Errorf("%w: not the canonical encoding", mp.ErrMalformed))
	}
	return c, nil
}

// # Change encoding
//
// A stored change (the change feed) is one msgpack array:
//
//	[ version=1, collection, key, kind, [field, ...],
//	  origin bin(16), seq, hlc, local bool ]
//
// The namespace and the feed position are the store's key.

// AppendChange appends the encoding of c (without namespace and Seq) to b.
func AppendChange(b []byte, c *Change) []byte {
	b = mp.AppendArrayHeader(b, 9)
	b = mp.AppendUint(b, 1)
	b = mp.AppendString(b, c.Collection)
	b = mp.AppendString(b, c.Key)
	b = mp.AppendUint(b, uint64(c.Kind))
	b = mp.AppendArrayHeader(b, len(c.Fields))
	for _, f := range c.Fields {
		b = mp.AppendString(b, f)
	}
	b = mp.AppendBytes(b, c.Dot.Origin[:])
	b = mp.AppendUint(b, c.Dot.Seq)
	b = mp.AppendUint(b, uint64(c.HLC))
	return mp.AppendBool(b, c.Local)
}

// DecodeChange decodes a change written by AppendChange; the caller sets
// Namespace and Seq from the key.
func DecodeChange(b []byte) (Change, error) {
	var c Change
	fail := func(err error) (Change, error) {
		return Change{}, fmt.Errorf("materialize: decode change: %w", err)
	}
	r := mp.NewReader(b)
	n, err := r.ArrayHeader()
	if err != nil {
		return fail(err)
	}
	if n != 9 {
		return fail(fmt.Errorf("%w: %d elements, want 9", mp.ErrMalformed, n))
	}
	if v, err := r.Uint(); err != nil || v != 1 {
		if err == nil {
			err = fmt.Errorf("%w: change version %d", crdt.ErrUnknownVersion, v)
		}
		return fail(err)
	}
	if c.Collection, err = r.String(); err != nil {
		return fail(err)
	}
	if c.Key, err = r.String(); err != nil {
		return fail(err)
	}
	k, err := r.Uint()
	if err != nil {
		return fail(err)
	}
	if k > uint64(Deleted) {
		return fail(fmt.Errorf("%w: change kind %d", mp.ErrMalformed, k))
	}
	c.Kind = ChangeKind(k)
	nf, err := r.ArrayHeader()
	if err != nil {
		return fail(err)
	}
	if nf > 0 {
		c.Fields = make([]string, nf)
	}
	for i := range c.Fields {
		if c.Fields[i], err = r.String(); err != nil {
			return fail(err)
		}
	}
	id, err := r.Bytes()
	if err != nil {
		return fail(err)
	}
	if len(id) != 16 {
		return fail(fmt.Errorf("%w: replica id of %d bytes", mp.ErrMalformed, len(id)))
	}
	c.Dot.Origin = crdt.ReplicaID(id)
	if c.Dot.Seq, err = r.Uint(); err != nil {
		return fail(err)
	}
	h, err := r.Uint()
	if err != nil {
		return fail(err)
	}
	c.HLC = hlc.Timestamp(h)
	if c.Local, err = r.Bool(); err != nil {
		return fail(err)
	}
	if r.Len() != 0 {
		return fail(fmt.Errorf("%w: %d trailing bytes", mp.ErrMalformed, r.Len()))
	}
	return c, nil
}
