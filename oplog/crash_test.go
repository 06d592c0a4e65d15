package oplog_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// crashOpen opens the log on a crash clone of fs and checks what every
// store must satisfy after a crash: it opens, its log matches its vector,
// and its state is the state its log produces.
func crashOpen(t *testing.T, fs *vfs.MemFS, cfg vfs.CrashCloneCfg) *oplog.Log {
	t.Helper()
	clone := fs.CrashClone(cfg)
	l, err := oplog.Open("db", oplog.Options{FS: clone, Durability: oplog.NoSync})
	if err != nil {
		t.Fatalf("Open after crash (unsynced %d%%): %v", cfg.UnsyncedDataPercent, err)
	}
	t.Cleanup(func() { l.Close() })
	checkLogMatchesVector(t, l, "ns")
	mustVerify(t, l, "ns")
	return l
}

// crashCfgs are the crash clones taken at each crash point: only synced
// data, some of the unsynced data, all of it.
func crashCfgs(seed uint64) []vfs.CrashCloneCfg {
	return []vfs.CrashCloneCfg{
		{UnsyncedDataPercent: 0},
		{UnsyncedDataPercent: 30, RNG: rand.New(rand.NewPCG(seed, 1))},
		{UnsyncedDataPercent: 70, RNG: rand.New(rand.NewPCG(seed, 2))},
		{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(seed, 3))},
	}
}

// checkAcked checks that every acknowledged write is present with its value.
func checkAcked(t *testing.T, l *oplog.Log, acked map[string]string) {
	t.Helper()
	for key, want := range acked {
		r, err := l.Get(t.Context(), "ns", "c", key)
		if err != nil {
			t.Fatalf("Get %s: %v", key, err)
		}
		v, ok := r.Get("v")
		if !ok || string(v.Value) != string(crdt.EncodeString(want)) {
			t.Fatalf("acknowledged write %s lost after crash (present %v)", key, ok)
		}
	}
}

// crashValue is the value of write i: big enough that a few hundred writes
// fill a memtable, so crashes land around flushes too.
func crashValue(i int) string {
	return fmt.Sprintf("%06d", i) + strings.Repeat("x", 16<<10)
}

func TestCrashSyncEveryCommit(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l, err := oplog.Open("db", oplog.Options{FS: fs, Durability: oplog.SyncEveryCommit})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acked := make(map[string]string)
	crashAt := map[int]bool{0: true, 1: true, 7: true, 60: true, 250: true, 400: true}
	for i := 0; i <= 400; i++ {
		if crashAt[i] {
			for _, cfg := range crashCfgs(uint64(i)) {
				c := crashOpen(t, fs, cfg)
				checkAcked(t, c, acked)
				if got := vector(t, c, "ns")[l.ReplicaID()]; got < uint64(i) {
					t.Fatalf("crash after %d acknowledged writes: vector %d", i, got)
				}
				// The crashed store carries on writing where it stopped.
				if i > 0 {
					put(t, c, "ns", "c", "after-crash", setStr("v", "x"))
					checkLogMatchesVector(t, c, "ns")
				}
				c.Close()
			}
		}
		key := fmt.Sprintf("k%d", i%300) // some keys are written twice
		v := crashValue(i)
		_, err := l.Write(t.Context(), "ns", func(tx *oplog.Tx) error {
			_, err := tx.Mutate("c", key, crdt.IntentPut, []crdt.Change{setStr("v", v)})
			return err
		})
		if err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
		acked[key] = v
	}
	names, _ := fs.List("db")
	t.Logf("files at the end: %v", names)
}

func TestCrashGroupCommit(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l, err := oplog.Open("db", oplog.Options{FS: fs, Durability: oplog.GroupCommit})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const writers, perWriter = 4, 40
	type crash struct {
		fs    *vfs.MemFS
		acked map[string]string // acknowledged before the crash
	}
	var (
		mu      sync.Mutex
		acked   = make(map[string]string)
		crashes []crash
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("w%d-%d", w, i)
				v := fmt.Sprintf("value %d %d", w, i)
				_, err := l.Write(t.Context(), "ns", func(tx *oplog.Tx) error {
					_, err := tx.Mutate("c", key, crdt.IntentPut, []crdt.Change{setStr("v", v)})
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked[key] = v
				// Crash while the other writers are mid-commit.
				if w == 0 && i%10 == 5 {
					crashes = append(crashes, crash{fs: fs.CrashClone(vfs.CrashCloneCfg{}), acked: maps.Clone(acked)})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Write: %v", err)
	}
	crashes = append(crashes, crash{fs: fs.CrashClone(vfs.CrashCloneCfg{}), acked: acked})
	for _, c := range crashes {
		cl, err := oplog.Open("db", oplog.Options{FS: c.fs, Durability: oplog.NoSync, Logger: quietLogger})
		if err != nil {
			t.Fatalf("Open after crash: %v", err)
		}
		checkAcked(t, cl, c.acked)
		checkLogMatchesVector(t, cl, "ns")
		mustVerify(t, cl, "ns")
		cl.Close()
	}
}

// TestCrashNoSync crashes a store that never syncs: writes may be lost, but
// never part of a transaction, and the store opens consistent.
func TestCrashNoSync(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l, err := oplog.Open("db", oplog.Options{FS: fs, Durability: oplog.NoSync})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const txSize = 3
	written := 0
	crashAt := map[int]bool{1: true, 10: true, 60: true, 150: true}
	for i := 0; i <= 150; i++ {
		if crashAt[i] {
			for _, cfg := range crashCfgs(uint64(1000 + i)) {
				c := crashOpen(t, fs, cfg)
				present := 0
				for tx := range written {
					n := 0
					for j := range txSize {
						r, err := c.Get(t.Context(), "ns", "c", fmt.Sprintf("t%d-%d", tx, j))
						if err != nil {
							t.Fatal(err)
						}
						if r.Exists() {
							n++
						}
					}
					if n != 0 && n != txSize {
						t.Fatalf("crash at %d (unsynced %d%%): transaction %d has %d of its %d records", i, cfg.UnsyncedDataPercent, tx, n, txSize)
					}
					if n == txSize {
						present++
					}
				}
				vv := vector(t, c, "ns")[l.ReplicaID()]
				if vv != uint64(present*txSize) {
					t.Fatalf("crash at %d: %d transactions present, vector %d", i, present, vv)
				}
				t.Logf("crash at %d, unsynced %d%%: %d of %d transactions present", i, cfg.UnsyncedDataPercent, present, written)
				c.Close()
			}
		}
		var ms []mutation
		for j := range txSize {
			ms = append(ms, mutation{"c", fmt.Sprintf("t%d-%d", i, j), crdt.IntentPut, []crdt.Change{setStr("v", crashValue(i))}})
		}
		writeTx(t, l, "ns", ms...)
		written++
	}
}
