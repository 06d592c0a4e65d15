package crdt

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
	"github.com/vmihailenco/msgpack/v5"
)

// Fixed replica ids, in byte order: rA < rB < rC.
var (
	rA = rid(0x0a)
	rB = rid(0x0b)
	rC = rid(0x0c)
)

func rid(b byte) ReplicaID {
	var r ReplicaID
	r[0], r[15] = 0x01, b
	return r
}

// Encoded values.
var (
	vNil   = mp.AppendNil(nil)
	vFalse = mp.AppendBool(nil, false)
	vTrue  = mp.AppendBool(nil, true)
)

func vInt(i int64) []byte     { return mp.AppendInt(nil, i) }
func vUint(u uint64) []byte   { return mp.AppendUint(nil, u) }
func vFloat(f float64) []byte { return mp.AppendFloat64(nil, f) }
func vStr(s string) []byte    { return mp.AppendString(nil, s) }
func vBin(b ...byte) []byte   { return mp.AppendBytes(nil, b) }

// vFloat32 is f as a msgpack float32.
func vFloat32(f float32) []byte {
	b := []byte{0xca, 0, 0, 0, 0}
	bits := math.Float32bits(f)
	b[1], b[2], b[3], b[4] = byte(bits>>24), byte(bits>>16), byte(bits>>8), byte(bits)
	return b
}

// vArr is an array of the given encoded values.
// vTime32, vTime64 and vTime96 encode a msgpack timestamp in the given
// form, whatever its value (the form need not be the smallest).
func vTime32(sec uint32) []byte { return binary.BigEndian.AppendUint32([]byte{0xd6, 0xff}, sec) }

func vTime64(sec uint64, nsec uint32) []byte {
	return binary.BigEndian.AppendUint64([]byte{0xd7, 0xff}, uint64(nsec)<<34|sec&(1<<34-1))
}

func vTime96(sec int64, nsec uint32) []byte {
	b := binary.BigEndian.AppendUint32([]byte{0xc7, 12, 0xff}, nsec)
	return binary.BigEndian.AppendUint64(b, uint64(sec))
}

// vTime encodes t as the root package does (vmihailenco/msgpack: the
// smallest form).
func vTime(t time.Time) []byte {
	b, err := msgpack.Marshal(t)
	if err != nil {
		panic(err)
	}
	return b
}

func vArr(elems ...[]byte) []byte {
	b := mp.AppendArrayHeader(nil, len(elems))
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

// ts is the HLC timestamp at wall ms with logical 0.
func ts(wall int64) hlc.Timestamp { return hlc.New(wall, 0) }

// mkOp returns an op on record ns/c/k.
func mkOp(origin ReplicaID, seq uint64, at hlc.Timestamp, cl uint64, fields ...FieldOp) *Op {
	return &Op{
		Namespace:  "ns",
		Collection: "c",
		Key:        "k",
		Dot:        Dot{Origin: origin, Seq: seq},
		HLC:        at,
		CL:         cl,
		TxEnd:      true,
		Fields:     fields,
	}
}

func assign(name string, v []byte) FieldOp { return FieldOp{Name: name, Type: Assign, Value: v} }
func assignSeen(name string, v []byte, seen hlc.Timestamp) FieldOp {
	return FieldOp{Name: name, Type: Assign, Value: v, Seen: seen}
}
func add(name string, v []byte) FieldOp { return FieldOp{Name: name, Type: Add, Value: v} }
func remove(name string, v []byte, dots ...Dot) FieldOp {
	return FieldOp{Name: name, Type: Remove, Value: v, Dots: dots}
}
func count(name string, p, n uint64) FieldOp { return FieldOp{Name: name, Type: Count, P: p, N: n} }
func writeMax(name string, v []byte) FieldOp { return FieldOp{Name: name, Type: WriteMax, Value: v} }
func writeMin(name string, v []byte) FieldOp { return FieldOp{Name: name, Type: WriteMin, Value: v} }

// apply returns the record that ops produce, applied in order.
func apply(ops ...*Op) *Record {
	r := &Record{}
	for _, op := range ops {
		r.Apply(op)
	}
	return r
}

// merged returns a fresh record that is the join of rs.
func merged(rs ...*Record) *Record {
	out := &Record{}
	for _, r := range rs {
		out.Merge(r)
	}
	return out
}

// fataler is what *testing.T and *rapid.T share.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// mustValid fails the test if op is invalid.
func mustValid(t fataler, op *Op) {
	t.Helper()
	if err := op.Validate(); err != nil {
		t.Fatalf("op %+v: %v", op, err)
	}
}

// checkGet checks the visible value of field name in r.
func checkGet(t *testing.T, r *Record, name string, kind Kind, want []byte) {
	t.Helper()
	got, ok := r.Get(name)
	if want == nil {
		if ok {
			t.Errorf("Get(%q) = %v %x, want no visible value", name, got.Kind, got.Value)
		}
		return
	}
	if !ok {
		t.Errorf("Get(%q) = not visible, want %v %x", name, kind, want)
		return
	}
	if got.Name != name || got.Kind != kind || !bytes.Equal(got.Value, want) {
		t.Errorf("Get(%q) = %q %v %x, want %q %v %x", name, got.Name, got.Kind, got.Value, name, kind, want)
	}
}

// checkSameBytes fails unless a and b encode identically.
func checkSameBytes(t fataler, what string, a, b *Record) {
	t.Helper()
	if ea, eb := a.Encode(), b.Encode(); !bytes.Equal(ea, eb) {
		t.Fatalf("%s: records differ:\n%x\n%x", what, ea, eb)
	}
}
