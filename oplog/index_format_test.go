package oplog_test

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
	"github.com/convergedb/converge/materialize"
	"github.com/convergedb/converge/oplog"
)

// Value key format 1, as the store wrote it before format 2: the bytes
// here are written by hand, from the documented layouts (oplog/keys.go,
// crdt/keyenc.go at format 1), not by the code under test.

// escaped is a string as keys hold it: 0x00 written 0x00 0xff, then 0x00 0x01.
func escaped(b []byte, s string) []byte {
	for i := range len(s) {
		if s[i] == 0 {
			b = append(b, 0, 0xff)
		} else {
			b = append(b, s[i])
		}
	}
	return append(b, 0, 1)
}

// format1OtherKey is the format 1 value key of a value of the "other"
// class, which held timestamps: 0x08, the escaped encoding, 0x00 0x01.
func format1OtherKey(v []byte) []byte { return escaped([]byte{0x08}, string(v)) }

// format1Registry is a format 1 registry value: the array of field names.
func format1Registry(fields ...string) []byte {
	b := mp.AppendArrayHeader(nil, len(fields))
	for _, f := range fields {
		b = mp.AppendString(b, f)
	}
	return b
}

func indexKeyPrefix(ns, coll, name string) []byte {
	return escaped(escaped(escaped([]byte{'I'}, ns), coll), name)
}

func registryKeyOf(coll, name string) []byte { return escaped(escaped([]byte{'X'}, coll), name) }

func prefixEndOf(p []byte) []byte {
	end := slices.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// indexFormatTimes are instants whose msgpack bytes order otherwise than
// they do (the three timestamp forms), by record key.
var indexFormatTimes = map[string]time.Time{
	"k1": time.Date(2024, 5, 1, 12, 0, 0, 500, time.UTC), // 8 bytes
	"k2": time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),   // 4 bytes
	"k3": time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC),    // 12 bytes
	"k4": time.Date(2024, 5, 1, 12, 0, 1, 0, time.UTC),   // 4 bytes
	"k5": time.Date(2700, 1, 1, 0, 0, 0, 0, time.UTC),    // 12 bytes
}

var indexFormatByInstant = []string{"k3", "k2", "k1", "k4", "k5"}

// writeFormat1Index turns index "at" of "events" in ns of the closed store
// in dir into what format 1 wrote: its entries keyed by the timestamps'
// msgpack bytes, its registry value a plain array of field names.
func writeFormat1Index(t *testing.T, dir, ns string) {
	tamper(t, dir, func(db *pebble.DB) {
		prefix := indexKeyPrefix(ns, "events", "at")
		b := db.NewBatch()
		if err := b.DeleteRange(prefix, prefixEndOf(prefix), nil); err != nil {
			t.Fatal(err)
		}
		for key, tm := range indexFormatTimes {
			e := escaped(append(slices.Clone(prefix), format1OtherKey(crdt.EncodeTime(tm))...), key)
			if err := b.Set(e, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Set(registryKeyOf("events", "at"), format1Registry("at"), nil); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
	})
}

func openQuiet(t *testing.T, dir string) *oplog.Log {
	t.Helper()
	l, err := oplog.Open(dir, oplog.Options{Durability: oplog.NoSync, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestIndexOfOldKeyFormatRebuiltOnOpen: a store holding an index built
// with value key format 1 (timestamps keyed by their msgpack bytes) gets
// it rebuilt when it opens: a scan yields the records by instant, ranges
// of current keys find them, and the registry records the current format.
func TestIndexOfOldKeyFormatRebuiltOnOpen(t *testing.T) {
	dir := t.TempDir()
	l := openQuiet(t, dir)
	at := materialize.Index{Name: "at", Fields: []string{"at"}}
	if err := l.EnsureIndex(t.Context(), "events", at); err != nil {
		t.Fatal(err)
	}
	for key, tm := range indexFormatTimes {
		put(t, l, "ns", "events", key, crdt.Change{Name: "at", Type: crdt.Set, Value: crdt.EncodeTime(tm)})
	}
	l.Close()
	writeFormat1Index(t, dir, "ns")

	l = openQuiet(t, dir)
	defer l.Close()
	if got := l.Indexes("events"); len(got) != 1 || got[0].Name != "at" || !slices.Equal(got[0].Fields, []string{"at"}) {
		t.Fatalf("Indexes after reopen = %+v, want the index at", got)
	}
	var keys []string
	for e, err := range l.IndexScan(t.Context(), "ns", "events", at, nil, nil, false) {
		if err != nil {
			t.Fatalf("IndexScan: %v", err)
		}
		if want := crdt.AppendValueKey(nil, crdt.EncodeTime(indexFormatTimes[e.Key])); !bytes.Equal(e.Values, want) {
			t.Errorf("entry of %s: values %x, want the current key %x", e.Key, e.Values, want)
		}
		keys = append(keys, e.Key)
	}
	if !slices.Equal(keys, indexFormatByInstant) {
		t.Errorf("index scan = %v, want by instant %v", keys, indexFormatByInstant)
	}
	lo := crdt.AppendValueKey(nil, crdt.EncodeTime(indexFormatTimes["k2"]))
	hi := crdt.AppendValueKey(nil, crdt.EncodeTime(indexFormatTimes["k4"]))
	if got := scanKeys(t, l, "ns", "events", at, lo, hi); !slices.Equal(got, []string{"k2", "k1"}) {
		t.Errorf("scan [k2's instant, k4's) = %v, want [k2 k1]", got)
	}
	l.Close()
	tamper(t, dir, func(db *pebble.DB) {
		v, closer, err := db.Get(registryKeyOf("events", "at"))
		if err != nil {
			t.Fatal(err)
		}
		defer closer.Close()
		r := mp.NewReader(v)
		n, _ := r.ArrayHeader()
		format, err := r.Uint()
		if n != 2 || err != nil || format != crdt.ValueKeyFormat {
			t.Errorf("registry value %x: want [%d, fields]", v, crdt.ValueKeyFormat)
		}
	})
}

// TestIndexOfOldKeyFormatWithBadStateUnregistered: when the rebuild at
// Open meets a state that does not decode, the store still opens, without
// the index (queries scan), and EnsureIndex reports the damage.
func TestIndexOfOldKeyFormatWithBadStateUnregistered(t *testing.T) {
	dir := t.TempDir()
	l := openQuiet(t, dir)
	at := materialize.Index{Name: "at", Fields: []string{"at"}}
	if err := l.EnsureIndex(t.Context(), "events", at); err != nil {
		t.Fatal(err)
	}
	for key, tm := range indexFormatTimes {
		put(t, l, "ns", "events", key, crdt.Change{Name: "at", Type: crdt.Set, Value: crdt.EncodeTime(tm)})
	}
	l.Close()
	writeFormat1Index(t, dir, "ns")
	tamper(t, dir, func(db *pebble.DB) {
		k := escaped(escaped(escaped([]byte{'S'}, "ns"), "events"), "k1")
		if err := db.Set(k, []byte{0xc1, 0xc1}, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	})
	var logs strings.Builder
	l, err := oplog.Open(dir, oplog.Options{Durability: oplog.NoSync, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open with an old-format index over a bad state: %v", err)
	}
	defer l.Close()
	if got := l.Indexes("events"); len(got) != 0 {
		t.Errorf("Indexes = %+v, want none (unregistered)", got)
	}
	if !strings.Contains(logs.String(), "index not rebuilt") {
		t.Errorf("log %q does not report the index left unbuilt", logs.String())
	}
	if err := l.EnsureIndex(t.Context(), "events", at); err == nil {
		t.Error("EnsureIndex over a bad state succeeded, want the error")
	}
}
