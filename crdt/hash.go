package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// StateHash accumulates a namespace's state, record by record, into a
// SHA-256 digest. Two replicas whose states are equal produce equal hashes
// when they add the same records in the same order (stores add them in key
// order). Records that do not exist are still state (their CL, their
// tombstones) and are hashed like any other.
type StateHash struct {
	h   hash.Hash
	n   int
	buf []byte
}

// NewStateHash returns an empty StateHash.
func NewStateHash() *StateHash { return &StateHash{h: sha256.New()} }

// Add hashes one record: its collection, key and canonical state bytes,
// each length-prefixed so that no two sequences collide.
func (s *StateHash) Add(collection, key string, state []byte) {
	s.buf = s.buf[:0]
	s.buf = binary.AppendUvarint(s.buf, uint64(len(collection)))
	s.buf = append(s.buf, collection...)
	s.buf = binary.AppendUvarint(s.buf, uint64(len(key)))
	s.buf = append(s.buf, key...)
	s.buf = binary.AppendUvarint(s.buf, uint64(len(state)))
	s.h.Write(s.buf)
	s.h.Write(state)
	s.n++
}

// Records returns the number of records added.
func (s *StateHash) Records() int { return s.n }

// Sum returns the digest as 64 hex digits.
func (s *StateHash) Sum() string { return hex.EncodeToString(s.h.Sum(nil)) }
