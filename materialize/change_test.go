package materialize_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/internal/mp"
	"github.com/convergedb/converge/materialize"
)

func sampleChange() materialize.Change {
	return materialize.Change{
		Collection: "tasks", Key: "t1", Kind: materialize.Updated,
		Fields: []string{"done", "title"},
		Dot:    crdt.Dot{Origin: crdt.ReplicaID{1, 2, 3}, Seq: 42},
		HLC:    hlc.New(1_800_000_000_000, 7),
		Local:  true,
	}
}

func TestChangeRoundTrip(t *testing.T) {
	for _, c := range []materialize.Change{sampleChange(), {Collection: "c", Key: "k", Kind: materialize.Deleted, Dot: crdt.Dot{Origin: crdt.ReplicaID{9}, Seq: 1}}} {
		got, err := materialize.DecodeChange(materialize.AppendChange(nil, &c))
		if err != nil {
			t.Fatalf("DecodeChange: %v", err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, c)
		}
	}
}

func TestDecodeChangeErrors(t *testing.T) {
	c := sampleChange()
	good := materialize.AppendChange(nil, &c)
	for i := range len(good) {
		if _, err := materialize.DecodeChange(good[:i]); !errors.Is(err, mp.ErrMalformed) {
			t.Errorf("truncated to %d bytes: %v, want ErrMalformed", i, err)
		}
	}
	if _, err := materialize.DecodeChange(append(bytes.Clone(good), 0)); !errors.Is(err, mp.ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	v2 := bytes.Clone(good)
	v2[1] = 2
	if _, err := materialize.DecodeChange(v2); !errors.Is(err, crdt.ErrUnknownVersion) {
		t.Errorf("version 2: %v, want ErrUnknownVersion", err)
	}
}

func FuzzDecodeChange(f *testing.F) {
	c := sampleChange()
	f.Add(materialize.AppendChange(nil, &c))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := materialize.DecodeChange(b)
		if err != nil {
			return
		}
		again, err := materialize.DecodeChange(materialize.AppendChange(nil, &c))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("re-decode: %+v, %v; want %+v", again, err, c)
		}
	})
}
