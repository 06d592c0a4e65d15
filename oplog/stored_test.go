package oplog

import (
	"testing"

	"github.com/convergedb/converge/crdt"
)

// A stored state carries its applied count; one stored before the count
// existed (no prefix) reads as count 0; the hash and snapshots see only
// the canonical encoding.
func TestStoredStateCarriesAppliedCount(t *testing.T) {
	r := &crdt.Record{CL: 1, Applied: 7}
	v := appendStored(nil, r)
	got, err := decodeStored(v)
	if err != nil || got.Applied != 7 || got.CL != 1 {
		t.Fatalf("decodeStored(appendStored) = %+v, %v; want CL 1, applied 7", got, err)
	}
	if n, enc := splitStored(v); n != 7 || string(enc) != string(r.Encode()) {
		t.Fatalf("splitStored = %d, %x; want 7, %x", n, enc, r.Encode())
	}
	old, err := decodeStored(r.Encode())
	if err != nil || old.Applied != 0 || old.CL != 1 {
		t.Fatalf("a state without the prefix: %+v, %v; want CL 1, applied 0", old, err)
	}
}
