package oplog_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// quietPebble sends Pebble's chatter to the test log, and fails on errors.
type quietPebble struct{ t testing.TB }

func (quietPebble) Infof(string, ...any)                {}
func (q quietPebble) Errorf(format string, args ...any) { q.t.Errorf(format, args...) }
func (q quietPebble) Fatalf(format string, args ...any) { q.t.Fatalf(format, args...) }

// tamper opens Pebble directly on the (closed) store in dir and runs fn on
// it.
func tamper(t *testing.T, dir string, fn func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{t}})
	if err != nil {
		t.Fatalf("pebble.Open: %v", err)
	}
	fn(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// findKey returns the first key with tag whose bytes contain sub.
func findKey(t *testing.T, db *pebble.DB, tag byte, sub string) []byte {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{tag}, UpperBound: []byte{tag + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if bytes.Contains(it.Key(), []byte(sub)) {
			return bytes.Clone(it.Key())
		}
	}
	t.Fatalf("no %c key containing %q", tag, sub)
	return nil
}

// corruptStore writes a few records to a store in a new dir, closes it,
// and returns the dir and the state hash before corruption.
func corruptStore(t *testing.T) (dir, hash string) {
	t.Helper()
	dir = t.TempDir()
	l, err := oplog.Open(dir, oplog.Options{Durability: oplog.NoSync})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		put(t, l, "ns", "c", fmt.Sprintf("key%d", i), setStr("f", fmt.Sprintf("v%d", i)), setInt("n", int64(i)))
	}
	hash = stateHash(t, l, "ns")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, hash
}

func TestCorruptState(t *testing.T) {
	for name, garbage := range map[string][]byte{
		"garbage":   {0xde, 0xad, 0xbe, 0xef},
		"empty":     {},
		"truncated": nil, // the real value, cut in half
	} {
		t.Run(name, func(t *testing.T) {
			dir, hashBefore := corruptStore(t)
			tamper(t, dir, func(db *pebble.DB) {
				k := findKey(t, db, 'S', "key2")
				v := garbage
				if v == nil {
					old, closer, err := db.Get(k)
					if err != nil {
						t.Fatal(err)
					}
					v = bytes.Clone(old[:len(old)/2])
					closer.Close()
				}
				if err := db.Set(k, v, pebble.Sync); err != nil {
					t.Fatal(err)
				}
			})
			l := openLog(t, dir, oplog.Options{Durability: oplog.NoSync})
			ctx := t.Context()
			if _, err := l.Get(ctx, "ns", "c", "key2"); !errors.Is(err, oplog.ErrCorrupt) {
				t.Errorf("Get of the corrupt record = %v, want ErrCorrupt", err)
			}
			if r, err := l.Get(ctx, "ns", "c", "key1"); err != nil || !r.Exists() {
				t.Errorf("Get of an intact record = %v, %v", r, err)
			}
			if v, err := l.Verify(ctx, "ns"); err == nil && v.OK() {
				t.Errorf("Verify = %+v, nil; want a mismatch or an error", v)
			}
			if h, _, err := l.StateHash(ctx, "ns"); err == nil && h == hashBefore {
				t.Error("StateHash unchanged by corruption")
			}
			var recErr error
			for _, err := range l.Records(ctx, "ns", "c") {
				if err != nil {
					recErr = err
				}
			}
			if !errors.Is(recErr, oplog.ErrCorrupt) {
				t.Errorf("Records = %v, want ErrCorrupt", recErr)
			}
			// Writing to the corrupt record fails rather than overwriting it.
			_, err := l.Write(ctx, "ns", func(tx *oplog.Tx) error {
				_, err := tx.Mutate("c", "key2", crdt.IntentPut, []crdt.Change{setStr("f", "x")})
				return err
			})
			if !errors.Is(err, oplog.ErrCorrupt) {
				t.Errorf("Write to the corrupt record = %v, want ErrCorrupt", err)
			}
			// Rebuild repairs the state from the log.
			if err := l.Rebuild(ctx, "ns"); err != nil {
				t.Fatal(err)
			}
			mustVerify(t, l, "ns")
			if h := stateHash(t, l, "ns"); h != hashBefore {
				t.Errorf("state hash after Rebuild = %s, want %s", h, hashBefore)
			}
			if _, err := l.Get(ctx, "ns", "c", "key2"); err != nil {
				t.Errorf("Get after Rebuild: %v", err)
			}
		})
	}
}

func TestCorruptLog(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(db *pebble.DB, k []byte) error
	}{
		{"garbage entry", func(db *pebble.DB, k []byte) error { return db.Set(k, []byte{0x93, 1, 2, 3}, pebble.Sync) }},
		{"missing entry", func(db *pebble.DB, k []byte) error { return db.Delete(k, pebble.Sync) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := corruptStore(t)
			tamper(t, dir, func(db *pebble.DB) {
				// The log entry of seq 3: the third 'L' key.
				it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{'L'}, UpperBound: []byte{'M'}})
				if err != nil {
					t.Fatal(err)
				}
				it.First()
				it.Next()
				it.Next()
				k := bytes.Clone(it.Key())
				it.Close()
				if err := tc.edit(db, k); err != nil {
					t.Fatal(err)
				}
			})
			l := openLog(t, dir, oplog.Options{Durability: oplog.NoSync})
			var missErr error
			for _, err := range l.Missing(t.Context(), "ns", nil) {
				if err != nil {
					missErr = err
				}
			}
			if !errors.Is(missErr, oplog.ErrCorrupt) {
				t.Errorf("Missing = %v, want ErrCorrupt", missErr)
			}
			if _, err := l.Page(t.Context(), "ns", nil, oplog.PageLimits{}); !errors.Is(err, oplog.ErrCorrupt) {
				t.Errorf("Page = %v, want ErrCorrupt", err)
			}
			if v, err := l.Verify(t.Context(), "ns"); !errors.Is(err, oplog.ErrCorrupt) {
				t.Errorf("Verify = %+v, %v; want ErrCorrupt", v, err)
			}
			if err := l.Rebuild(t.Context(), "ns"); !errors.Is(err, oplog.ErrCorrupt) {
				t.Errorf("Rebuild = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCorruptMeta(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
		val  []byte
	}{
		{"replica id", []byte("Mreplica"), []byte{1, 2, 3}},
		{"hlc", []byte("Mhlc"), []byte{1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := corruptStore(t)
			tamper(t, dir, func(db *pebble.DB) {
				if err := db.Set(tc.key, tc.val, pebble.Sync); err != nil {
					t.Fatal(err)
				}
			})
			l, err := oplog.Open(dir, oplog.Options{Durability: oplog.NoSync})
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, oplog.ErrCorrupt) {
				t.Errorf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCorruptVectorEntry(t *testing.T) {
	dir, _ := corruptStore(t)
	tamper(t, dir, func(db *pebble.DB) {
		k := findKey(t, db, 'V', "ns")
		if err := db.Set(k, []byte{1}, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	})
	// The integrity check at open reads every vector entry: a malformed
	// one fails Open.
	l, err := oplog.Open(dir, oplog.Options{Durability: oplog.NoSync})
	if err == nil {
		l.Close()
	}
	if !errors.Is(err, oplog.ErrCorrupt) {
		t.Errorf("Open = %v, want ErrCorrupt", err)
	}
}
