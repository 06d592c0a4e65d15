package main

import (
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/crdt"
)

// rawStore is a bare Pebble DB opened with the options Converge's store
// uses (64 MiB block cache, newest format): the storage baseline.
type rawStore struct {
	db     *pebble.DB
	cache  *pebble.Cache
	closed bool
}

// openRawPebble opens a raw Pebble DB in dir.
func openRawPebble(dir string) (*rawStore, error) {
	cache := pebble.NewCache(64 << 20)
	db, err := pebble.Open(dir, &pebble.Options{Cache: cache, FormatMajorVersion: pebble.FormatNewest, Logger: pebbleLogger{quietLogger}})
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("opening raw pebble in %s: %w", dir, err)
	}
	return &rawStore{db: db, cache: cache}, nil
}

// Close closes the DB. It is idempotent (not safe for concurrent calls).
func (r *rawStore) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.db.Close()
	r.cache.Unref()
	if err != nil {
		return fmt.Errorf("closing raw pebble: %w", err)
	}
	return nil
}

// writeOptions returns Pebble's write options for a sync mode.
func writeOptions(sync bool) *pebble.WriteOptions {
	if sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

// Keys with the layout of Converge's store (oplog/keys.go), so the baseline
// writes the same keys as well as the same values.

func appendKeyString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0, 0xff)
		} else {
			b = append(b, s[i])
		}
	}
	return append(b, 0, 1)
}

// rawLogKey is 'L' ns origin seq.
func rawLogKey(b []byte, ns string, origin crdt.ReplicaID, seq uint64) []byte {
	b = appendKeyString(append(b[:0], 'L'), ns)
	b = append(b, origin[:]...)
	return binary.BigEndian.AppendUint64(b, seq)
}

// rawStateKey is 'S' ns coll key.
func rawStateKey(b []byte, ns, coll, key string) []byte {
	return appendKeyString(appendKeyString(appendKeyString(append(b[:0], 'S'), ns), coll), key)
}

// rawVectorKey is 'V' ns origin.
func rawVectorKey(ns string, origin crdt.ReplicaID) []byte {
	return append(appendKeyString([]byte{'V'}, ns), origin[:]...)
}

// rawHLCKey is the HLC high-water mark's key.
var rawHLCKey = []byte("Mhlc")

// rawWriter writes ops to a raw Pebble batch as Converge's store lays them
// out: per op the log entry (the op's bytes) and the record's state (the
// state's bytes), and per batch the vector entry and the HLC mark.
type rawWriter struct {
	lk, sk []byte
	u      [8]byte
}

// add puts op's log entry and state in batch.
func (w *rawWriter) add(batch *pebble.Batch, op *capturedOp) error {
	w.lk = rawLogKey(w.lk, benchNS, op.Origin, op.Seq)
	w.sk = rawStateKey(w.sk, benchNS, op.Coll, op.Key)
	if err := batch.Set(w.lk, op.Raw, nil); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	if err := batch.Set(w.sk, op.State, nil); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	return nil
}

// finish puts the vector entry and HLC mark of the batch's last op.
func (w *rawWriter) finish(batch *pebble.Batch, last *capturedOp) error {
	binary.BigEndian.PutUint64(w.u[:], last.Seq)
	if err := batch.Set(rawVectorKey(benchNS, last.Origin), w.u[:], nil); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	if err := batch.Set(rawHLCKey, w.u[:], nil); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	return nil
}

// commitOps writes ops in one batch with the sync mode.
func (r *rawStore) commitOps(w *rawWriter, ops []capturedOp, wo *pebble.WriteOptions) error {
	if len(ops) == 0 {
		return nil
	}
	batch := r.db.NewBatch()
	defer batch.Close()
	for i := range ops {
		if err := w.add(batch, &ops[i]); err != nil {
			return err
		}
	}
	if err := w.finish(batch, &ops[len(ops)-1]); err != nil {
		return err
	}
	if err := batch.Commit(wo); err != nil {
		return fmt.Errorf("raw pebble commit: %w", err)
	}
	return nil
}

// pebbleLogger sends Pebble's log lines to slog (discarded by default),
// except fatal ones, which end the process as Pebble's default logger does.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}
