package crdt

import (
	"fmt"
	"testing"

	"github.com/convergedb/converge/hlc"
	"github.com/vmihailenco/msgpack/v5"
)

// typicalOp is a create of a task: five register writes.
func typicalOp() *Op {
	return &Op{
		Namespace:  "acme",
		Collection: "tasks",
		Key:        "01HZX3J5V8Q2W6N4M7K9T1R0YB",
		Dot:        Dot{Origin: rA, Seq: 1234},
		HLC:        hlc.New(1_700_000_000_000, 3),
		CL:         1,
		TxEnd:      true,
		Fields: []FieldOp{
			{Name: "title", Type: Assign, Value: EncodeString("Write the benchmarks")},
			{Name: "priority", Type: Assign, Value: EncodeInt(3)},
			{Name: "done", Type: Assign, Value: vFalse},
			{Name: "owner", Type: Assign, Value: EncodeString("ada"), Seen: hlc.New(1_699_999_999_000, 0)},
			{Name: "score", Type: Assign, Value: vFloat(0.875)},
		},
	}
}

func BenchmarkOpEncode(b *testing.B) {
	op := typicalOp()
	buf := AppendOp(nil, op)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendOp(buf[:0], op)
	}
}

func BenchmarkOpEncodeAlloc(b *testing.B) {
	op := typicalOp()
	b.SetBytes(int64(len(EncodeOp(op))))
	b.ReportAllocs()
	for b.Loop() {
		_ = EncodeOp(op)
	}
}

func BenchmarkOpDecode(b *testing.B) {
	enc := EncodeOp(typicalOp())
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeOp(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// reflectOp is the op as a plain struct for vmihailenco's reflection
// codec: the baseline the hand-written codec is measured against.
type reflectOp struct {
	Version    uint8          `msgpack:"v"`
	Namespace  string         `msgpack:"ns"`
	Collection string         `msgpack:"c"`
	Key        string         `msgpack:"k"`
	Origin     []byte         `msgpack:"o"`
	Seq        uint64         `msgpack:"s"`
	HLC        uint64         `msgpack:"h"`
	CL         uint64         `msgpack:"cl"`
	TxEnd      bool           `msgpack:"tx"`
	Fields     []reflectField `msgpack:"f"`
}

type reflectField struct {
	Name  string             `msgpack:"n"`
	Type  uint8              `msgpack:"t"`
	Value msgpack.RawMessage `msgpack:"v"`
	Seen  uint64             `msgpack:"s"`
	Dots  []reflectDot       `msgpack:"d,omitempty"`
	P     uint64             `msgpack:"p,omitempty"`
	N     uint64             `msgpack:"m,omitempty"`
}

type reflectDot struct {
	Origin []byte `msgpack:"o"`
	Seq    uint64 `msgpack:"s"`
}

func toReflectOp(op *Op) *reflectOp {
	r := &reflectOp{
		Version: OpCodecVersion, Namespace: op.Namespace, Collection: op.Collection, Key: op.Key,
		Origin: op.Dot.Origin[:], Seq: op.Dot.Seq, HLC: uint64(op.HLC), CL: op.CL, TxEnd: op.TxEnd,
	}
	for _, f := range op.Fields {
		r.Fields = append(r.Fields, reflectField{Name: f.Name, Type: uint8(f.Type), Value: f.Value, Seen: uint64(f.Seen), P: f.P, N: f.N})
	}
	return r
}

func BenchmarkOpReflectEncode(b *testing.B) {
	op := toReflectOp(typicalOp())
	enc, err := msgpack.Marshal(op)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := msgpack.Marshal(op); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpReflectDecode(b *testing.B) {
	enc, err := msgpack.Marshal(toReflectOp(typicalOp()))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		var op reflectOp
		if err := msgpack.Unmarshal(enc, &op); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReflectBaselineRoundTrips keeps the baseline honest: it carries the
// same information as the op.
func TestReflectBaselineRoundTrips(t *testing.T) {
	want := toReflectOp(typicalOp())
	enc, err := msgpack.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got reflectOp
	if err := msgpack.Unmarshal(enc, &got); err != nil {
		t.Fatal(err)
	}
	if got.Key != want.Key || len(got.Fields) != 5 || string(got.Fields[0].Value) != string(want.Fields[0].Value) || got.Fields[3].Seen != want.Fields[3].Seen {
		t.Errorf("baseline round trip = %+v, want %+v", got, want)
	}
	t.Logf("op: %d bytes hand-written, %d bytes by reflection", len(EncodeOp(typicalOp())), len(enc))
}

func BenchmarkRecordApply(b *testing.B) {
	op := typicalOp()
	b.ReportAllocs()
	for b.Loop() {
		r := &Record{}
		r.Apply(op)
	}
}

func BenchmarkRecordDecode(b *testing.B) {
	r := apply(typicalOp())
	enc := r.Encode()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRecord(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordTextApply applies one keystroke (a one-character text
// insert) to a record whose text field holds n characters in n/8 runs: the
// cost of Apply (a merge: the record's sequence is cloned, never modified
// in place) and of the state's encoding and decoding, which the store pays
// per op.
func BenchmarkRecordTextApply(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		r := &Record{}
		var changes []Change
		for i := 0; i < n/8; i++ {
			changes = append(changes, Change{Name: "body", Type: TextSplice, Pos: i * 8 / 2, Value: EncodeString("abcdefgh")})
		}
		cl, fields, err := r.Prepare(rA, IntentPut, changes)
		if err != nil {
			b.Fatal(err)
		}
		r.Apply(mkOp(rA, 1, ts(1), cl, fields...))
		_, key, _ := r.Prepare(rB, IntentUpdate, []Change{{Name: "body", Type: TextSplice, Pos: n / 2, Value: EncodeString("x")}})
		op := mkOp(rB, 1, ts(2), cl, key...)
		enc := r.Encode()
		b.Run(fmt.Sprintf("n=%d/apply", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				next := *r
				next.Apply(op)
			}
		})
		b.Run(fmt.Sprintf("n=%d/decode+apply+encode", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(enc)))
			for b.Loop() {
				d, err := DecodeRecord(enc)
				if err != nil {
					b.Fatal(err)
				}
				d.Apply(op)
				_ = d.Encode()
			}
		})
	}
}
