package oplog

import (
	"encoding/binary"

	"github.com/convergedb/converge/crdt"
)

// # Stored states
//
// A record state ('S') is stored as its canonical encoding
// ([crdt.Record.AppendBinary]), preceded by the count of ops this replica
// applied to it ([crdt.Record.Applied]) as a msgpack uint64 (0xcf and 8
// bytes, big-endian). The count is local: it is left out of the state
// hash and of snapshots. A state stored before the count existed has no
// prefix (its encoding starts with an array header, never 0xcf) and
// reads as Applied 0. Base states ('B') have no prefix.

const appliedPrefixLen = 9

// appendStored appends the stored form of r to b.
func appendStored(b []byte, r *crdt.Record) []byte {
	b = append(b, 0xcf)
	b = binary.BigEndian.AppendUint64(b, r.Applied)
	return r.AppendBinary(b)
}

// splitStored returns the applied count and the canonical encoding of a
// stored state.
func splitStored(v []byte) (applied uint64, state []byte) {
	if len(v) >= appliedPrefixLen && v[0] == 0xcf {
		return binary.BigEndian.Uint64(v[1:appliedPrefixLen]), v[appliedPrefixLen:]
	}
	return 0, v
}

// decodeStored decodes a stored state.
func decodeStored(v []byte) (*crdt.Record, error) {
	applied, enc := splitStored(v)
	r, err := crdt.DecodeRecord(enc)
	if err != nil {
		return nil, err
	}
	r.Applied = applied
	return r, nil
}
