package oplog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// # A failing disk
//
// Pebble ends the process on WAL, MANIFEST and file-creation errors (its
// fatal path): a replica must not go on after a write it cannot account
// for, and the crash leaves the store as a crash does. Errors of flushes
// and compactions are retried in the background instead; while they fail,
// the memtables fill and every commit waits in Pebble's write stall, with
// no end. So every commit runs in its own goroutine and the caller waits
// at most Options.StallTimeout, or until its context ends once Pebble has
// begun a write stall. A commit given up on may still be applied later:
// the store then refuses every write with ErrDiskFault until it is
// reopened, so no seq of a commit that may be applied is ever used again,
// and reports the fault in [Log.DiskFault]. Reads keep working.

// ErrDiskFault is returned by writes once a commit could not complete (the
// disk failed or stalled): the store refuses writes until it is reopened.
// The commit that failed may or may not have been applied.
var ErrDiskFault = errors.New("oplog: disk fault: writes refused until the store is reopened")

// defaultStallTimeout is Options.StallTimeout's default.
const defaultStallTimeout = 30 * time.Second

// maxCloseWait bounds Close's wait for Pebble after a disk fault.
const maxCloseWait = 5 * time.Second

// faults is what the Log knows of the disk's health; safe for concurrent
// use.
type faults struct {
	logger  *slog.Logger
	fault   atomic.Pointer[error] // set once: writes are refused
	stalls  atomic.Int64          // write stalls in progress
	lastBg  atomic.Pointer[error] // the last background (flush, compaction) error
	bgCount atomic.Int64
}

// listen adds the fault tracking to Pebble's event listener.
func (f *faults) listen(el *pebble.EventListener) {
	el.WriteStallBegin = func(pebble.WriteStallBeginInfo) { f.stalls.Add(1) }
	el.WriteStallEnd = func() { f.stalls.Add(-1) }
	el.BackgroundError = func(err error) {
		f.lastBg.Store(&err)
		// Pebble retries a failed flush at once, and reports each
		// failure: log the first and then every 1000th.
		if n := f.bgCount.Add(1); n%1000 == 1 {
			f.logger.Error("background write failed (flush or compaction): writes will stall if it persists", "err", err, "failures", n)
		}
	}
}

// DiskFault returns the error that made the store refuse writes, or, while
// Pebble's background flushes or compactions fail and writes stall, an
// error wrapping ErrDiskFault saying so; nil when the disk looks healthy.
func (l *Log) DiskFault() error {
	if p := l.faults.fault.Load(); p != nil {
		return *p
	}
	if l.faults.stalls.Load() > 0 {
		if p := l.faults.lastBg.Load(); p != nil {
			return fmt.Errorf("%w: writes stall while background writes fail (%d errors, the last: %w)", ErrDiskFault, l.faults.bgCount.Load(), *p)
		}
	}
	return nil
}

// fail records err (wrapping ErrDiskFault) as the store's fault, once,
// and returns the recorded fault.
func (l *Log) fail(err error) error {
	if l.faults.fault.CompareAndSwap(nil, &err) {
		l.logger.Error("disk fault: the store refuses writes until it is reopened", "err", err)
	}
	return *l.faults.fault.Load()
}

// faultErr returns the recorded fault, or nil.
func (l *Log) faultErr() error {
	if p := l.faults.fault.Load(); p != nil {
		return *p
	}
	return nil
}

// bounded runs fn, a Pebble commit, and waits for it at most
// Options.StallTimeout, or until ctx ends while Pebble stalls writes. If
// it gives up, the store fails (see ErrDiskFault) and fn finishes, or not,
// on its own.
func (l *Log) bounded(ctx context.Context, what string, fn func() error) error {
	if err := l.faultErr(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	timer := time.NewTimer(l.opts.StallTimeout)
	defer timer.Stop()
	ctxDone := ctx.Done()
	for {
		select {
		case err := <-done:
			return err
		case <-timer.C:
			return l.fail(fmt.Errorf("%w: %s did not complete within %v (%v); it may still be applied", ErrDiskFault, what, l.opts.StallTimeout, l.stallCause()))
		case <-ctxDone:
			if l.faults.stalls.Load() == 0 {
				ctxDone = nil // not stalled: the commit ends soon; wait for it
				continue
			}
			return fmt.Errorf("%w: %w", ctx.Err(), l.fail(fmt.Errorf("%w: %s waited in a write stall until its context ended (%v); it may still be applied", ErrDiskFault, what, l.stallCause())))
		}
	}
}

// stallCause describes why commits may be waiting.
func (l *Log) stallCause() string {
	stalls := l.faults.stalls.Load()
	if p := l.faults.lastBg.Load(); p != nil {
		return fmt.Sprintf("%d write stalls in progress; %d background errors, the last: %v", stalls, l.faults.bgCount.Load(), *p)
	}
	return fmt.Sprintf("%d write stalls in progress; no background error", stalls)
}

// commitBatch commits b with durability wo, bounded as [Log.bounded] says,
// and closes b once the commit returns: the caller must not use b after
// the call, nor close it (a commit given up on may still be using it).
func (l *Log) commitBatch(ctx context.Context, what string, b *pebble.Batch, wo *pebble.WriteOptions) error {
	return l.bounded(ctx, what, func() error {
		err := b.Commit(wo)
		_ = b.Close() // spent either way; Close of a committed batch only recycles it
		return err
	})
}

// closeFaulted closes the store after a disk fault: Pebble's Close waits
// for the commits in flight, which may never end, so it gets
// Options.StallTimeout, after which the store is abandoned (its files as a
// crash leaves them). The DotsFile is left as it was: not clean.
func (l *Log) closeFaulted() error {
	bound := min(l.opts.StallTimeout, maxCloseWait)
	done := make(chan error, 1)
	go func() {
		err := l.db.Close()
		l.cache.Unref()
		done <- err
	}()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("oplog: close after %w: %w", l.faultErr(), err)
		}
		return nil
	case <-timer.C:
		return fmt.Errorf("oplog: close: Pebble did not close within %v; the store was abandoned as a crash leaves it: %w", bound, l.faultErr())
	}
}

// closeUnlessSpent closes b unless a commit took it over (see
// Log.commitBatch).
func closeUnlessSpent(b *pebble.Batch, spent *bool) {
	if !*spent {
		_ = b.Close() // a failed Close of an uncommitted batch loses nothing
	}
}

// commitLocal commits a batch of ops (see commitBatch). An error other
// than a disk fault fails the store too: Pebble may have applied the batch
// before it returned the error, so its seqs must never be used again; the
// store refuses writes until it is reopened, which reads what was applied.
func (l *Log) commitLocal(b *batch, wo *pebble.WriteOptions) error {
	b.spent = true
	err := l.commitBatch(b.ctx, "commit "+b.ns, b.pb, wo)
	if err != nil && !errors.Is(err, ErrDiskFault) {
		err = l.fail(fmt.Errorf("%w: a commit failed and may have been applied: %w", ErrDiskFault, err))
	}
	return err
}
