package oplog

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// # What NoSync can lose
//
// A NoSync commit returns once it is in Pebble's memtable and in the WAL
// writer's in-process buffer: the buffer reaches the file (the OS page
// cache) when a 32 KiB WAL block fills or a sync asks for it. So a process
// kill loses the commits still in that buffer (up to about 32 KiB of
// them), and a machine crash loses what the OS had not written back too.
// Options.SyncInterval bounds the machine crash's loss by time: a
// goroutine fsyncs the WAL that often while commits happen. It does not
// shrink a process kill's loss: commits made during an fsync queue in
// process memory. Never part of a commit.

// syncTicker fsyncs the WAL every interval while there are new commits.
type syncTicker struct {
	quit chan struct{}
	wg   sync.WaitGroup
}

// startSyncTicker starts fsyncing the WAL every d while commits counts up.
func startSyncTicker(l *Log, d time.Duration, commits *atomic.Uint64) *syncTicker {
	t := &syncTicker{quit: make(chan struct{})}
	t.wg.Go(func() {
		tk := time.NewTicker(d)
		defer tk.Stop()
		var last uint64
		for {
			select {
			case <-t.quit:
				return
			case <-tk.C:
			}
			n := commits.Load()
			if n == last || l.faultErr() != nil {
				continue
			}
			last = n
			if err := l.db.LogData(nil, pebble.Sync); err != nil {
				l.logger.Warn("periodic WAL sync failed", "err", err)
			}
		}
	})
	return t
}

// stop ends the ticker; it waits for its goroutine unless the disk failed.
func (t *syncTicker) stop(faulted bool) {
	close(t.quit)
	if !faulted {
		t.wg.Wait()
	}
}
