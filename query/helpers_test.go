package query

import (
	"encoding/binary"
	"math"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
)

var testOrigin = crdt.ReplicaID{0x01, 15: 0x07}

// Encoded values.
var (
	vNil     = mp.AppendNil(nil)
	vTrue    = mp.AppendBool(nil, true)
	vFalse   = mp.AppendBool(nil, false)
	vMissing []byte
)

func vi(i int64) []byte     { return mp.AppendInt(nil, i) }
func vu(u uint64) []byte    { return mp.AppendUint(nil, u) }
func vf(f float64) []byte   { return mp.AppendFloat64(nil, f) }
func vs(s string) []byte    { return mp.AppendString(nil, s) }
func vbin(b ...byte) []byte { return mp.AppendBytes(nil, b) }
func vf32(f float32) []byte { // f as a msgpack float32
	bits := math.Float32bits(f)
	return []byte{0xca, byte(bits >> 24), byte(bits >> 16), byte(bits >> 8), byte(bits)}
}

// vt32, vt64 and vt96 are msgpack timestamps in the given form.
func vt32(sec uint32) []byte { return binary.BigEndian.AppendUint32([]byte{0xd6, 0xff}, sec) }
func vt64(sec uint64, nsec uint32) []byte {
	return binary.BigEndian.AppendUint64([]byte{0xd7, 0xff}, uint64(nsec)<<34|sec)
}
func vt96(sec int64, nsec uint32) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32([]byte{0xc7, 12, 0xff}, nsec), uint64(sec))
}

// varr is an array of encoded values.
func varr(elems ...[]byte) []byte {
	b := mp.AppendArrayHeader(nil, len(elems))
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

// vstr8 is s as a str8, a non-smallest string encoding.
func vstr8(s string) []byte { return append([]byte{0xd9, byte(len(s))}, s...) }

func assign(name string, v []byte) crdt.FieldOp {
	return crdt.FieldOp{Name: name, Type: crdt.Assign, Value: v}
}

func add(name string, v []byte) crdt.FieldOp {
	return crdt.FieldOp{Name: name, Type: crdt.Add, Value: v}
}

// set returns Add ops for each element of set field name.
func set(name string, elems ...[]byte) []crdt.FieldOp {
	ops := make([]crdt.FieldOp, len(elems))
	for i, e := range elems {
		ops[i] = add(name, e)
	}
	return ops
}

// record returns the live record one create op with fields produces.
func record(fields ...crdt.FieldOp) *crdt.Record {
	r := &crdt.Record{}
	r.Apply(&crdt.Op{
		Namespace: "ns", Collection: "c", Key: "k",
		Dot: crdt.Dot{Origin: testOrigin, Seq: 1},
		HLC: hlc.New(1, 0), CL: 1, TxEnd: true,
		Fields: fields,
	})
	return r
}

func item(id string, fields ...crdt.FieldOp) Item { return Item{ID: id, Rec: record(fields...)} }

func cond(field string, op Op, vals ...[]byte) *Cond {
	return &Cond{Field: field, Op: op, Values: vals}
}

func and(ps ...Pred) *And { return &And{Preds: ps} }
func or(ps ...Pred) *Or   { return &Or{Preds: ps} }

func ids(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}
