package oplog

import (
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// groupSyncer shares one WAL fsync among all commits waiting for one. A
// waiter joins the round that has not started yet; the round's fsync starts
// after the waiter's commit, so it covers it.
type groupSyncer struct {
	db   *pebble.DB
	kick chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup

	mu   sync.Mutex
	next *syncRound
}

type syncRound struct {
	done chan struct{}
	err  error
}

func startGroupSyncer(db *pebble.DB) *groupSyncer {
	g := &groupSyncer{db: db, kick: make(chan struct{}, 1), quit: make(chan struct{}), next: &syncRound{done: make(chan struct{})}}
	g.wg.Go(g.loop)
	return g
}

func (g *groupSyncer) loop() {
	for {
		select {
		case <-g.quit:
			g.mu.Lock()
			r := g.next
			g.next = nil
			g.mu.Unlock()
			r.err = errStopped
			close(r.done)
			return
		case <-g.kick:
		}
		g.mu.Lock()
		r := g.next
		g.next = &syncRound{done: make(chan struct{})}
		g.mu.Unlock()
		r.err = g.db.LogData(nil, pebble.Sync)
		close(r.done)
	}
}

// wait returns once an fsync that started after the call has finished. It
// does not give up early: the commit it waits for is applied already, and
// the caller is owed its durability (or the sync's error).
func (g *groupSyncer) wait() error {
	g.mu.Lock()
	r := g.next
	g.mu.Unlock()
	if r == nil {
		return errStopped
	}
	select {
	case g.kick <- struct{}{}:
	default: // a kick is pending already
	}
	<-r.done
	return r.err
}

// stop ends the syncer; it waits for its goroutine unless the disk
// failed (an fsync may never return).
func (g *groupSyncer) stop(faulted bool) {
	close(g.quit)
	if !faulted {
		g.wg.Wait()
	}
}
