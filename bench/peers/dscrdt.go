package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/bench/internal/stats"
	"github.com/convergedb/converge/bench/internal/workload"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	offline "github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	crdt "github.com/ipfs/go-ds-crdt"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

// go-ds-crdt (ipfs/go-ds-crdt): a Merkle-CRDT key-value datastore. Every
// Put is a delta in a new DAG node (an IPLD block) whose children are the
// replica's heads; the replica broadcasts its new head, and a receiver
// walks the DAG down from each head it has not seen, fetching the blocks
// it lacks, and merges the deltas (last writer wins per key, by DAG
// height).
//
// Set up in process, no network: each replica has its own datastore (an
// in-memory map, or go-ds-pebble on disk) holding the CRDT's keys and,
// under /blocks, its blockstore; its DAG service is boxo's merkledag over
// a blockservice whose exchange fetches missing blocks from the other
// replica's blockstore (what bitswap does over a network); the Broadcaster
// (the library takes one from the user) is a queue in memory between the
// two replicas.

// dsStore says which datastore a go-ds-crdt replica runs on.
type dsStore struct {
	Pebble bool // go-ds-pebble in a temp directory; false: in-memory map
	Sync   bool // go-ds-pebble's writes fsynced (pebble.Sync); with Pebble only
}

// String names the configuration, for the rows.
func (s dsStore) String() string {
	switch {
	case !s.Pebble:
		return "go-ds-crdt (in-memory datastore)"
	case s.Sync:
		return "go-ds-crdt (go-ds-pebble, fsync every write)"
	}
	return "go-ds-crdt (go-ds-pebble, no fsync)"
}

// dsReplica is one go-ds-crdt replica.
type dsReplica struct {
	store  ds.Batching
	blocks blockstore.Blockstore
	db     *crdt.Datastore
	// applied counts the records whose value the replica committed
	// (local and remote puts; see countingStore); the library's logged
	// errors fail it.
	applied *counter
	dir     string
}

// openDSReplica opens a replica on a fresh store of kind st (in a new
// directory for go-ds-pebble) that broadcasts through bc and fetches the
// blocks it lacks from peerBlocks (nil: only its own).
func openDSReplica(e *env, st dsStore, bc crdt.Broadcaster, peerBlocks blockstore.Blockstore) (*dsReplica, error) {
	r := &dsReplica{applied: newCounter()}
	if st.Pebble {
		dir, err := e.dir("ds-pebble")
		if err != nil {
			return nil, err
		}
		r.dir = dir
		wo := pebble.NoSync
		if st.Sync {
			wo = pebble.Sync
		}
		p, err := pebbleds.NewDatastore(dir, pebbleds.WithPebbleWriteOptions(wo), pebbleds.WithPebbleOpts(&pebble.Options{Logger: quietPebble{}}))
		if err != nil {
			e.removeDir(dir)
			return nil, fmt.Errorf("go-ds-pebble: %w", err)
		}
		r.store = p
	} else {
		r.store = dssync.MutexWrap(ds.NewMapDatastore())
	}
	r.blocks = blockstore.NewBlockstore(r.store)
	var exch blockFetcher = offline.Exchange(r.blocks)
	if peerBlocks != nil {
		exch = peerExchange{from: peerBlocks}
	}
	dag := merkledag.NewDAGService(blockservice.New(r.blocks, exch))
	opts := crdt.DefaultOptions()
	opts.Logger = dsLogger{fail: r.applied.fail, log: e.log}
	counted := countingStore{Batching: r.store, applied: r.applied}
	db, err := crdt.New(counted, ds.NewKey(dsNamespace), dag, bc, opts)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("go-ds-crdt: %w", err), r.closeStore(e))
	}
	r.db = db
	return r, nil
}

// close closes the replica, then its store, and removes its directory.
func (r *dsReplica) close(e *env) error {
	err := r.db.Close()
	return errors.Join(err, r.closeStore(e))
}

func (r *dsReplica) closeStore(e *env) error {
	err := r.store.Close()
	if r.dir != "" {
		e.removeDir(r.dir)
	}
	return err
}

// dsNamespace is where a replica keeps the CRDT's keys in its datastore.
const dsNamespace = "/crdt"

// dsValuePrefix and dsValueSuffix frame the datastore key under which
// go-ds-crdt v0.6.8 stores a record's current value:
// <namespace>/s/k/<record key>/v (its set's "keys" namespace).
const (
	dsValuePrefix = dsNamespace + "/s/k/" + workload.Collection + "/"
	dsValueSuffix = "/v"
)

// countingStore counts the records whose value go-ds-crdt commits to the
// datastore. Its PutHook will not do as the end of a receive: the set
// calls it when the value goes into a batch, before the batch commits, so
// a count reached there can precede the last record being readable.
type countingStore struct {
	ds.Batching
	applied *counter
}

// isValueKey reports whether k is a record's value key.
func isValueKey(k ds.Key) bool {
	s := k.String()
	return strings.HasPrefix(s, dsValuePrefix) && strings.HasSuffix(s, dsValueSuffix)
}

// Put implements ds.Write, counting a value written outside a batch.
func (s countingStore) Put(ctx context.Context, k ds.Key, v []byte) error {
	if err := s.Batching.Put(ctx, k, v); err != nil {
		return err
	}
	if isValueKey(k) {
		s.applied.add(1)
	}
	return nil
}

// Batch implements ds.Batching: the batch counts its values when it
// commits.
func (s countingStore) Batch(ctx context.Context) (ds.Batch, error) {
	b, err := s.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &countingBatch{Batch: b, applied: s.applied}, nil
}

// countingBatch is a batch of a countingStore.
type countingBatch struct {
	ds.Batch
	applied *counter
	values  int
}

// Put implements ds.Batch.
func (b *countingBatch) Put(ctx context.Context, k ds.Key, v []byte) error {
	if isValueKey(k) {
		b.values++
	}
	return b.Batch.Put(ctx, k, v)
}

// Commit implements ds.Batch.
func (b *countingBatch) Commit(ctx context.Context) error {
	if err := b.Batch.Commit(ctx); err != nil {
		return err
	}
	if b.values > 0 {
		b.applied.add(b.values)
	}
	return nil
}

// dsKey is a record's key in go-ds-crdt.
func dsKey(id string) ds.Key { return ds.NewKey("/" + workload.Collection + "/" + id) }

// put writes recs, one Put each, as a key-value user would: the record's
// msgpack encoding under its id.
func (r *dsReplica) put(ctx context.Context, recs []workload.Task) error {
	for i := range recs {
		v, err := workload.Encode(&recs[i])
		if err != nil {
			return err
		}
		if err := r.db.Put(ctx, dsKey(recs[i].ID), v); err != nil {
			return fmt.Errorf("go-ds-crdt: put %s: %w", recs[i].ID, err)
		}
	}
	return nil
}

// holds fails unless the replica holds exactly recs (every key with its
// record's encoding, and no other key).
func (r *dsReplica) holds(ctx context.Context, recs []workload.Task) error {
	res, err := r.db.Query(ctx, query.Query{Prefix: "/" + workload.Collection})
	if err != nil {
		return fmt.Errorf("go-ds-crdt: query: %w", err)
	}
	got := map[string][]byte{}
	for e := range res.Next() {
		if e.Error != nil {
			return fmt.Errorf("go-ds-crdt: query: %w", e.Error)
		}
		got[e.Key] = e.Value
	}
	if len(got) != len(recs) {
		return fmt.Errorf("go-ds-crdt replica holds %d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		want, err := workload.Encode(&recs[i])
		if err != nil {
			return err
		}
		if v, ok := got[dsKey(recs[i].ID).String()]; !ok || !bytes.Equal(v, want) {
			return fmt.Errorf("go-ds-crdt replica: record %s missing or different", recs[i].ID)
		}
	}
	return nil
}

// dsPut writes recs on a fresh replica and reports the rate. It checks
// that each put was broadcast once and that the replica holds the records.
func dsPut(ctx context.Context, e *env, st dsStore, recs []workload.Task) (_ Values, err error) {
	sink := newInbox(true)
	r, err := openDSReplica(e, st, &memBroadcaster{in: newInbox(false), out: sink}, nil)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, r.close(e)) }()
	start := time.Now()
	if err := r.put(ctx, recs); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	if applied, err := r.applied.state(); err != nil || applied != len(recs) {
		return nil, fmt.Errorf("go-ds-crdt applied %d of %d puts (%v)", applied, len(recs), err)
	}
	if n := sink.len(); n != len(recs) {
		return nil, fmt.Errorf("go-ds-crdt broadcast %d times for %d puts", n, len(recs))
	}
	if err := r.holds(ctx, recs); err != nil {
		return nil, err
	}
	return Values{"throughput": stats.PerSecond(len(recs), elapsed)}, nil
}

// dsReceive writes recs on one replica while the other's inbox holds the
// broadcasts, then releases them and times the receiver until it has
// committed every record's value, fetching the blocks from the writer's
// blockstore. It checks that the receiver holds exactly
// the records.
func dsReceive(ctx context.Context, e *env, st dsStore, recs []workload.Task) (_ Values, err error) {
	toWriter, toReceiver := newInbox(false), newInbox(true)
	writer, err := openDSReplica(e, st, &memBroadcaster{in: toWriter, out: toReceiver}, nil)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, writer.close(e)) }()
	receiver, err := openDSReplica(e, st, &memBroadcaster{in: toReceiver, out: toWriter}, writer.blocks)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, receiver.close(e)) }()
	if err := writer.put(ctx, recs); err != nil {
		return nil, err
	}
	if n := toReceiver.len(); n < len(recs) {
		return nil, fmt.Errorf("go-ds-crdt writer broadcast %d times for %d puts", n, len(recs))
	}
	start := time.Now()
	toReceiver.release()
	if err := receiver.applied.wait(ctx, len(recs)); err != nil {
		return nil, fmt.Errorf("go-ds-crdt receiver: %w", err)
	}
	elapsed := time.Since(start)
	if err := receiver.holds(ctx, recs); err != nil {
		return nil, err
	}
	return Values{"throughput": stats.PerSecond(len(recs), elapsed)}, nil
}

// inbox is one replica's queue of received broadcasts. While held, Next
// delivers nothing (the messages wait, as on a link that is down). It is
// safe for concurrent use.
type inbox struct {
	mu    sync.Mutex
	queue [][]byte
	total int // messages ever queued
	held  bool
	wake  chan struct{}
}

func newInbox(held bool) *inbox { return &inbox{held: held, wake: make(chan struct{})} }

// push queues a message.
func (b *inbox) push(msg []byte) {
	b.mu.Lock()
	b.queue = append(b.queue, msg)
	b.total++
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

// release lets Next deliver.
func (b *inbox) release() {
	b.mu.Lock()
	b.held = false
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

// len returns how many messages were ever queued.
func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

// next returns the oldest message, waiting for one, or an error when ctx
// ends.
func (b *inbox) next(ctx context.Context) ([]byte, error) {
	for {
		b.mu.Lock()
		if !b.held && len(b.queue) > 0 {
			msg := b.queue[0]
			b.queue[0] = nil
			b.queue = b.queue[1:]
			b.mu.Unlock()
			return msg, nil
		}
		w := b.wake
		b.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return nil, crdt.ErrNoMoreBroadcast
		}
	}
}

// memBroadcaster is a crdt.Broadcaster between two replicas in one
// process: Broadcast queues on the other replica's inbox, Next reads its
// own.
type memBroadcaster struct{ in, out *inbox }

// Broadcast implements crdt.Broadcaster.
func (m *memBroadcaster) Broadcast(_ context.Context, msg []byte) error {
	m.out.push(bytes.Clone(msg))
	return nil
}

// Next implements crdt.Broadcaster.
func (m *memBroadcaster) Next(ctx context.Context) ([]byte, error) { return m.in.next(ctx) }

// blockFetcher is the exchange a blockservice takes (boxo's
// exchange.Interface).
type blockFetcher interface {
	GetBlock(context.Context, cid.Cid) (blocks.Block, error)
	GetBlocks(context.Context, []cid.Cid) (<-chan blocks.Block, error)
	NotifyNewBlocks(context.Context, ...blocks.Block) error
	Close() error
}

// peerExchange fetches blocks from another replica's blockstore in the same
// process: the blockservice stores what it fetches in its own blockstore.
type peerExchange struct{ from blockstore.Blockstore }

// GetBlock implements exchange.Fetcher.
func (x peerExchange) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	return x.from.Get(ctx, c)
}

// GetBlocks implements exchange.Fetcher: it sends the blocks the peer has.
func (x peerExchange) GetBlocks(ctx context.Context, cs []cid.Cid) (<-chan blocks.Block, error) {
	out := make(chan blocks.Block)
	go func() {
		defer close(out)
		for _, c := range cs {
			b, err := x.from.Get(ctx, c)
			if err != nil {
				continue // not there: the caller sees it missing
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// NotifyNewBlocks implements exchange.Interface: nothing to announce.
func (peerExchange) NotifyNewBlocks(context.Context, ...blocks.Block) error { return nil }

// Close implements io.Closer.
func (peerExchange) Close() error { return nil }

// dsLogger is go-ds-crdt's logger: errors (the library logs, and goes on
// past, a head it failed to process) fail the replica's counter so that a
// wait on it returns the error; the rest goes to the debug log.
type dsLogger struct {
	fail func(error)
	log  *slog.Logger
}

func (l dsLogger) Debug(args ...any)            {}
func (l dsLogger) Debugf(string, ...any)        {}
func (l dsLogger) Info(args ...any)             {}
func (l dsLogger) Infof(string, ...any)         {}
func (l dsLogger) Warn(args ...any)             { l.log.Debug("go-ds-crdt: " + fmt.Sprint(args...)) }
func (l dsLogger) Warnf(f string, args ...any)  { l.log.Debug("go-ds-crdt: " + fmt.Sprintf(f, args...)) }
func (l dsLogger) Error(args ...any)            { l.fail(errors.New("go-ds-crdt: " + fmt.Sprint(args...))) }
func (l dsLogger) Errorf(f string, args ...any) { l.fail(fmt.Errorf("go-ds-crdt: "+f, args...)) }
func (l dsLogger) Fatal(args ...any)            { l.Error(args...) }
func (l dsLogger) Fatalf(f string, args ...any) { l.Errorf(f, args...) }
func (l dsLogger) Panic(args ...any)            { panic(fmt.Sprint(args...)) }
func (l dsLogger) Panicf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

// quietPebble drops go-ds-pebble's Pebble logging (Infof) and keeps its
// errors.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any) {}
func (quietPebble) Errorf(f string, args ...any) {
	slog.Error(fmt.Sprintf("go-ds-pebble: "+f, args...))
}
func (quietPebble) Fatalf(f string, args ...any) { panic(fmt.Sprintf("go-ds-pebble: "+f, args...)) }
