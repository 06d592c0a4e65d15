package oplog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/convergedb/converge/crdt"
)

// # Key layout
//
// Every key the store writes lives in one Pebble DB and starts with a
// one-byte keyspace tag. Strings inside keys are escaped and terminated
// (0x00 is written 0x00 0xFF, the terminator is 0x00 0x01), which keeps
// byte order equal to string order and makes every key prefix-free: no
// namespace's keys are a prefix of another's. Integers are 8-byte big-endian.
//
//	'M' name                              meta: "replica" → replica id (16 bytes)
//	                                            "hlc"     → HLC high-water mark (8 bytes)
//	'N' ns                                namespace registry → empty
//	'L' ns origin(16) seq(8)              op log → op encoding (crdt.AppendOp)
//	'V' ns origin(16)                     version vector entry → seq (8 bytes)
//	'S' ns collection key                 record state → applied count (0xcf, 8 bytes) and
//	                                      crdt.Record encoding (see stored.go)
//	'C' ns n(8)                           conflict log, a ring of the last N → conflict encoding
//	'F' ns n(8)                           change feed, every visible change in commit order → change encoding
//	'I' ns collection index values key    secondary index entry → empty
//	                                      (values: one crdt value key per indexed field)
//	'X' collection index                  index registry → the indexed field names
//	'Q' ns origin(16) seq(8)              quarantine: an op refused as invalid or beyond the
//	                                      clock bound → [1, kind, reason, unix ms, op encoding]
//	'P' ns peer(16)                       what a peer holds, as it said in sync messages
//	                                      → [1, origin bin(16), seq, ...]
//	'U' ns peer(16)                       upstream: a peer that answered a sync this replica
//	                                      started → empty
//	'H' ns origin(16)                     compaction horizon entry → seq (8 bytes): the log
//	                                      of origin holds only the ops after it
//	'B' ns collection key                 base state: the ops at or below the horizon folded
//	                                      (or a snapshot's state) → crdt.Record encoding
//
// A namespace's log holds, per origin, exactly the ops in (horizon, vector];
// its states are the base states merged with those ops.
//
// The log of one (namespace, origin) is contiguous and in sequence order,
// so the ops a peer lacks are one range scan per origin.
const (
	tagMeta       = 'M'
	tagNamespace  = 'N'
	tagLog        = 'L'
	tagVector     = 'V'
	tagState      = 'S'
	tagConflict   = 'C'
	tagFeed       = 'F'
	tagIndex      = 'I'
	tagRegistry   = 'X'
	tagQuarantine = 'Q'
	tagPeer       = 'P'
	tagUpstream   = 'U'
	tagHorizon    = 'H'
	tagBase       = 'B'
)

var (
	metaReplica = []byte{tagMeta, 'r', 'e', 'p', 'l', 'i', 'c', 'a'}
	metaHLC     = []byte{tagMeta, 'h', 'l', 'c'}
)

func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0, 0xff)
		} else {
			b = append(b, s[i])
		}
	}
	return append(b, 0, 1)
}

var errBadKey = errors.New("oplog: malformed key")

// readString decodes an escaped string at the start of b and returns it and
// the rest of b.
func readString(b []byte) (string, []byte, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			return "", nil, errBadKey
		}
		switch b[i+1] {
		case 0xff:
			out = append(out, 0)
			i++
		case 1:
			return string(out), b[i+2:], nil
		default:
			return "", nil, errBadKey
		}
	}
	return "", nil, errBadKey
}

func nsKey(tag byte, ns string) []byte {
	return appendNSKey(make([]byte, 0, 3+len(ns)), tag, ns)
}

// appendNSKey appends the prefix of namespace ns in keyspace tag to dst.
// The append* forms let a batch build its keys in one reused buffer
// (Pebble copies what a batch is given).
func appendNSKey(dst []byte, tag byte, ns string) []byte {
	return appendString(append(dst, tag), ns)
}

func logKey(ns string, d crdt.Dot) []byte {
	return appendLogKey(make([]byte, 0, 3+len(ns)+len(d.Origin)+8), ns, d)
}

func appendLogKey(dst []byte, ns string, d crdt.Dot) []byte {
	k := appendNSKey(dst, tagLog, ns)
	k = append(k, d.Origin[:]...)
	return binary.BigEndian.AppendUint64(k, d.Seq)
}

func vectorKey(ns string, origin crdt.ReplicaID) []byte {
	return appendVectorKey(make([]byte, 0, 3+len(ns)+len(origin)), ns, origin)
}

func appendVectorKey(dst []byte, ns string, origin crdt.ReplicaID) []byte {
	return append(appendNSKey(dst, tagVector, ns), origin[:]...)
}

func stateKey(ns, coll, key string) []byte {
	return appendStateKey(make([]byte, 0, 7+len(ns)+len(coll)+len(key)), ns, coll, key)
}

func appendStateKey(dst []byte, ns, coll, key string) []byte {
	return appendString(appendString(appendNSKey(dst, tagState, ns), coll), key)
}

func baseKey(ns, coll, key string) []byte {
	return appendString(appendString(nsKey(tagBase, ns), coll), key)
}

func horizonKey(ns string, origin crdt.ReplicaID) []byte {
	return append(nsKey(tagHorizon, ns), origin[:]...)
}

func feedKey(ns string, n uint64) []byte {
	return appendFeedKey(make([]byte, 0, 3+len(ns)+8), ns, n)
}

func appendFeedKey(dst []byte, ns string, n uint64) []byte {
	return binary.BigEndian.AppendUint64(appendNSKey(dst, tagFeed, ns), n)
}

func conflictKey(ns string, n uint64) []byte {
	return binary.BigEndian.AppendUint64(nsKey(tagConflict, ns), n)
}

// prefixEnd returns the least key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// splitStateKey returns the collection and key of a state key in ns.
func splitStateKey(k []byte, nsPrefixLen int) (coll, key string, err error) {
	coll, rest, err := readString(k[nsPrefixLen:])
	if err != nil {
		return "", "", fmt.Errorf("%w: state key %q", err, k)
	}
	key, rest, err = readString(rest)
	if err != nil || len(rest) != 0 {
		return "", "", fmt.Errorf("%w: state key %q", errBadKey, k)
	}
	return coll, key, nil
}
