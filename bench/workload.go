package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/bench/internal/workload"
	"github.com/convergedb/converge/crdt"
)

// The workload's shapes are those of the repository's go-test benchmarks
// (bench_test.go, oplog/bench_test.go): a 5-field task record, one per key,
// in namespace "bench", collection "tasks". They live in
// bench/internal/workload, shared with the peers module (bench/peers).
const (
	benchNS   = workload.NS
	benchColl = workload.Collection
)

// task is the 5-field record of the write and replication workloads.
type task = workload.Task

// taskKey is the id of the i-th record of a workload.
func taskKey(prefix string, i int) string { return workload.Key(prefix, i) }

// makeTask returns the i-th record of a workload, with id key.
func makeTask(key string, i int) task { return workload.MakeTask(key, i) }

// encodeTask is the record as a user of a plain key-value store would store
// it: msgpack of the struct (the id is the key).
func encodeTask(t *task) ([]byte, error) { return workload.Encode(t) }

// openConverge opens a Converge replica in dir with the harness's
// defaults: quiet, and a change buffer large enough that the harness's
// subscriptions never lag.
func openConverge(dir string, d converge.Durability) (*converge.DB, *converge.Collection[task], error) {
	db, err := converge.Open(dir, converge.Options{Durability: d, Logger: quietLogger, ChangeBuffer: 1 << 20})
	if err != nil {
		return nil, nil, fmt.Errorf("opening a replica: %w", err)
	}
	tasks, err := converge.NewCollection[task](db, benchColl)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("collection: %w", err)
	}
	return db, tasks, nil
}

// capturedOp is an op written on the source replica, as it travels (its
// canonical encoding) and with what a store keeps for it (the record's
// state encoding after it), plus its identity for raw-Pebble keys.
type capturedOp struct {
	Raw    []byte
	State  []byte
	Origin crdt.ReplicaID
	Seq    uint64
	Coll   string
	Key    string
}

// opPool is a source replica writing the shared workload, one Put of a new
// 5-field record per op (one commit each), and the ops it wrote. Scenarios
// take the first n: put and put-sync's raw-Pebble baselines write their
// bytes, ingest applies them to a fresh replica, catch-up loads them into
// the hub.
type opPool struct {
	mu    sync.Mutex
	db    *converge.DB
	tasks *converge.Collection[task]
	ops   []capturedOp
	have  crdt.VersionVector
}

// openOpPool opens the source replica in dir.
func openOpPool(dir string) (*opPool, error) {
	db, tasks, err := openConverge(dir, converge.NoSync)
	if err != nil {
		return nil, fmt.Errorf("source replica: %w", err)
	}
	return &opPool{db: db, tasks: tasks, have: crdt.VersionVector{}}, nil
}

// get returns the first n ops, writing more on the source replica if needed.
func (p *opPool) get(ctx context.Context, n int) ([]capturedOp, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ops) >= n {
		return p.ops[:n:n], nil
	}
	for i := len(p.ops); i < n; i++ {
		t := makeTask(taskKey("task", i), i)
		if _, err := p.tasks.Put(ctx, benchNS, &t); err != nil {
			return nil, err
		}
	}
	log := p.db.Admin().Log()
	for e, err := range log.Missing(ctx, benchNS, p.have) {
		if err != nil {
			return nil, err
		}
		st, err := log.Get(ctx, benchNS, e.Op.Collection, e.Op.Key)
		if err != nil {
			return nil, fmt.Errorf("state of %s: %w", e.Op.Key, err)
		}
		p.ops = append(p.ops, capturedOp{Raw: e.Raw, State: st.Encode(), Origin: e.Op.Dot.Origin, Seq: e.Op.Dot.Seq, Coll: e.Op.Collection, Key: e.Op.Key})
		p.have[e.Op.Dot.Origin] = e.Op.Dot.Seq
	}
	if len(p.ops) < n {
		return nil, fmt.Errorf("source replica holds %d ops, want %d", len(p.ops), n)
	}
	return p.ops[:n:n], nil
}

// close closes the source replica.
func (p *opPool) close() error {
	if err := p.db.Close(); err != nil {
		return fmt.Errorf("closing the source replica: %w", err)
	}
	return nil
}

// rawOps returns the encodings of ops.
func rawOps(ops []capturedOp) [][]byte {
	out := make([][]byte, len(ops))
	for i := range ops {
		out[i] = ops[i].Raw
	}
	return out
}

// encodedSize is the total size of the ops' encodings.
func encodedSize(ops []capturedOp) int {
	n := 0
	for i := range ops {
		n += len(ops[i].Raw)
	}
	return n
}

// counter counts events (ops received, say) and lets goroutines wait for
// a count. It is safe for concurrent use.
type counter struct {
	mu   sync.Mutex
	n    int
	at   time.Time // when n last grew
	err  error
	wake chan struct{}
}

func newCounter() *counter { return &counter{wake: make(chan struct{})} }

// add adds k and wakes the waiters.
func (c *counter) add(k int) {
	c.mu.Lock()
	c.n += k
	c.at = time.Now()
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
}

// raise sets the count to n if that is more, and wakes the waiters.
func (c *counter) raise(n int) {
	c.mu.Lock()
	if n > c.n {
		c.n = n
		c.at = time.Now()
		close(c.wake)
		c.wake = make(chan struct{})
	}
	c.mu.Unlock()
}

// fail records the error that stops the count: waiters return it.
func (c *counter) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.wake)
		c.wake = make(chan struct{})
	}
	c.mu.Unlock()
}

// wait blocks until the count reaches n, the counter fails, or ctx ends.
func (c *counter) wait(ctx context.Context, n int) error {
	_, err := c.waitTime(ctx, n)
	return err
}

// waitTime is wait, returning when the count last grew: when it reached n
// if the caller waits for each event in turn.
func (c *counter) waitTime(ctx context.Context, n int) (time.Time, error) {
	for {
		c.mu.Lock()
		got, at, err, w := c.n, c.at, c.err, c.wake
		c.mu.Unlock()
		if got >= n {
			return at, nil
		}
		if err != nil {
			return time.Time{}, err
		}
		select {
		case <-w:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for %d events, have %d: %w", n, got, ctx.Err())
		}
	}
}

// waitAll waits until every counter reaches n.
func waitAll(ctx context.Context, cs []*counter, n int) error {
	var errs []error
	for i, c := range cs {
		if err := c.wait(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("receiver %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// sampleLatency waits until every counter reaches n and appends to lat,
// for each, the time from start until its count reached n.
func sampleLatency(ctx context.Context, cs []*counter, n int, start time.Time, lat []time.Duration) ([]time.Duration, error) {
	for i, c := range cs {
		at, err := c.waitTime(ctx, n)
		if err != nil {
			return lat, fmt.Errorf("receiver %d: %w", i, err)
		}
		lat = append(lat, at.Sub(start))
	}
	return lat, nil
}
