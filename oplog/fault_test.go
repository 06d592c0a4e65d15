package oplog_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// failingSSTs returns a file system whose SSTable writes fail with err
// while the returned toggle is on.
func failingSSTs(fs vfs.FS, err error) (vfs.FS, *atomic.Bool) {
	on := &atomic.Bool{}
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if on.Load() && strings.HasSuffix(op.Path, ".sst") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return err
		}
		return nil
	})
	return errorfs.Wrap(fs, inj), on
}

// stallStore opens a store whose flushes fail from the start, and writes
// until a write fails; it returns the store and that write's error.
func stallStore(t *testing.T, perWrite, timeout time.Duration) (*oplog.Log, int, error) {
	t.Helper()
	fs, on := failingSSTs(vfs.NewMem(), syscall.EIO)
	l, err := oplog.Open("db", oplog.Options{FS: fs, Durability: oplog.NoSync, StallTimeout: timeout, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	on.Store(true)
	// Once the test is done the disk heals: Pebble's flushes succeed, the
	// stalled commit and the abandoned Close finish, and Pebble's retries
	// stop burning CPU.
	t.Cleanup(func() { on.Store(false) })
	for i := range 5000 {
		ctx, cancel := context.WithCancel(t.Context())
		if perWrite > 0 {
			ctx, cancel = context.WithTimeout(t.Context(), perWrite)
		}
		_, err := l.Write(ctx, "ns", func(tx *oplog.Tx) error {
			_, err := tx.Mutate("c", crashValue(i)[:6], crdt.IntentPut, []crdt.Change{setStr("v", crashValue(i))})
			return err
		})
		cancel()
		if err != nil {
			return l, i, err
		}
	}
	t.Fatal("5000 writes of 16 KiB with every flush failing: none stalled")
	return nil, 0, nil
}

// TestDiskStallWithoutDeadline: with every flush failing, Pebble stalls
// writes for ever; a write without a deadline fails after StallTimeout
// with ErrDiskFault, the store reports the fault, refuses writes at once,
// keeps serving reads, and closes.
func TestDiskStallWithoutDeadline(t *testing.T) {
	l, n, err := stallStore(t, 0, 200*time.Millisecond)
	t.Logf("write %d: %v", n, err)
	if !errors.Is(err, oplog.ErrDiskFault) {
		t.Fatalf("stalled write = %v, want ErrDiskFault", err)
	}
	checkFaulted(t, l, n)
}

// TestDiskStallContext: a write whose context ends while Pebble stalls
// returns then.
func TestDiskStallContext(t *testing.T) {
	l, n, err := stallStore(t, 300*time.Millisecond, time.Second)
	t.Logf("write %d: %v", n, err)
	if !errors.Is(err, oplog.ErrDiskFault) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled write = %v, want ErrDiskFault and DeadlineExceeded", err)
	}
	checkFaulted(t, l, n)
}

func checkFaulted(t *testing.T, l *oplog.Log, n int) {
	t.Helper()
	ctx := t.Context()
	if err := l.DiskFault(); !errors.Is(err, oplog.ErrDiskFault) {
		t.Errorf("DiskFault = %v, want ErrDiskFault", err)
	}
	_, err := l.Write(ctx, "ns", func(tx *oplog.Tx) error {
		_, err := tx.Mutate("c", "after", crdt.IntentPut, []crdt.Change{setStr("v", "x")})
		return err
	})
	if !errors.Is(err, oplog.ErrDiskFault) {
		t.Errorf("write after the fault = %v, want ErrDiskFault", err)
	}
	vv, err := l.Vector(ctx, "ns")
	if err != nil || vv.Sum() < uint64(n) {
		t.Errorf("Vector after the fault = %v, %v; want the %d writes", vv, err, n)
	}
	if r, err := l.Get(ctx, "ns", "c", crashValue(0)[:6]); err != nil || !r.Exists() {
		t.Errorf("Get after the fault = %v, %v", r, err)
	}
	got := 0
	for _, err := range l.Missing(ctx, "ns", nil) {
		if err != nil {
			t.Fatalf("Missing after the fault: %v", err)
		}
		got++
	}
	if got < n {
		t.Errorf("Missing after the fault yielded %d ops, want at least %d", got, n)
	}
	err = l.Close()
	t.Logf("Close: %v", err)
}
