package oplog_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
	"pgregory.net/rapid"
)

// dotsMachine is a store that is written, crashed with some of its
// unsynced data lost, closed, backed up and restored, in any order. It
// keeps every op ever handed out (returned by Write, or found in the
// store) by dot, and fails when two different ops share one.
type dotsMachine struct {
	fs      *vfs.MemFS
	l       *oplog.Log
	opts    oplog.Options
	ops     map[nsDot][]byte
	backups []*vfs.MemFS
	n       int
	changes int // identity changes seen
}

var dotsNamespaces = []string{"a", "b"}

func (m *dotsMachine) open(t *rapid.T) {
	m.opts.Durability = rapid.SampledFrom([]oplog.Durability{oplog.SyncEveryCommit, oplog.GroupCommit, oplog.NoSync}).Draw(t, "durability")
	l, err := oplog.Open("db", m.opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	m.l = l
	t.Logf("opened as %v", l.ReplicaID())
	if c := l.IdentityChange(); c != nil {
		m.changes++
		t.Logf("identity change: %v -> %v: %s; lost %v", c.Old, c.New, c.Reason, c.Lost)
	}
	for _, ns := range dotsNamespaces {
		for e, err := range l.Missing(t.Context(), ns, nil) {
			if err != nil {
				t.Fatalf("Missing: %v", err)
			}
			m.see(t, ns, e.Op.Dot, e.Raw)
		}
	}
}

// nsDot is an op's identity: dots are per namespace.
type nsDot struct {
	ns  string
	dot crdt.Dot
}

// see records op raw under its dot, failing if another op had it.
func (m *dotsMachine) see(t *rapid.T, ns string, d crdt.Dot, raw []byte) {
	k := nsDot{ns, d}
	if prev, ok := m.ops[k]; ok && !bytes.Equal(prev, raw) {
		t.Fatalf("dot %v of %q reused: two different ops share it", d, ns)
	}
	m.ops[k] = bytes.Clone(raw)
}

func (m *dotsMachine) Write(t *rapid.T) {
	ns := rapid.SampledFrom(dotsNamespaces).Draw(t, "ns")
	k := rapid.IntRange(1, 3).Draw(t, "ops")
	c, err := m.l.Write(t.Context(), ns, func(tx *oplog.Tx) error {
		for range k {
			m.n++
			key := fmt.Sprintf("k%d", m.n%5)
			if _, err := tx.Mutate("c", key, crdt.IntentPut, []crdt.Change{setInt("n", int64(m.n))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	for i := range c.Ops {
		m.see(t, ns, c.Ops[i].Dot, crdt.AppendOp(nil, &c.Ops[i]))
	}
}

func (m *dotsMachine) Crash(t *rapid.T) {
	pct := rapid.IntRange(0, 100).Draw(t, "unsynced%")
	clone := m.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(uint64(pct), uint64(m.n)))})
	_ = m.l.Close() // writes to the old file system, which is dropped
	m.fs = clone
	m.opts.FS = clone
	synced := m.opts.Durability == oplog.SyncEveryCommit
	m.open(t)
	if c := m.l.IdentityChange(); c != nil && synced {
		t.Fatalf("a crash of a store that syncs every commit changed the replica's id: %s", c.Reason)
	}
}

func (m *dotsMachine) Reopen(t *rapid.T) {
	if err := m.l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	m.open(t)
	if c := m.l.IdentityChange(); c != nil {
		t.Fatalf("a clean close and open changed the replica's id: %s", c.Reason)
	}
}

func (m *dotsMachine) Backup(t *rapid.T) {
	clone := m.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, uint64(m.n)))})
	// A backup is the Pebble store without the DotsFile (a checkpoint
	// does not copy it).
	if err := clone.Remove(clone.PathJoin("db", oplog.DotsFile)); err != nil {
		t.Fatal(err)
	}
	d, err := clone.OpenDir("db")
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	m.backups = append(m.backups, clone)
}

func (m *dotsMachine) Restore(t *rapid.T) {
	if len(m.backups) == 0 {
		t.Skip("no backup")
	}
	b := rapid.SampledFrom(m.backups).Draw(t, "backup")
	if err := m.l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	m.fs = b.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(2, uint64(m.n)))})
	m.opts.FS = m.fs
	m.open(t)
}

func (m *dotsMachine) Check(t *rapid.T) {}

// TestDotsNeverReused: across crashes that lose unsynced data, clean
// restarts and restores of older copies, no two different ops ever share
// a dot.
func TestDotsNeverReused(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := &dotsMachine{fs: vfs.NewCrashableMem(), ops: make(map[nsDot][]byte)}
		m.opts = oplog.Options{FS: m.fs, Logger: quietLogger}
		m.open(t)
		defer func() { _ = m.l.Close() }()
		t.Repeat(rapid.StateMachineActions(m))
	})
}
