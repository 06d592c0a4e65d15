package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jetstream-kv: the put and replicate workloads on NATS JetStream KV, the
// system a user would otherwise pick for replicated key-value state.
// Durability is compared like for like: JetStream's file store fsyncs
// every two minutes by default (sync_interval), and after every write
// with sync_always (server Options.SyncAlways); Converge's NoSync is set
// against the default, SyncEveryCommit against sync_always.

const (
	jsBucket   = "bench"
	jsDefault  = "JetStream KV, default fsync (every 2m)"
	jsAlways   = "JetStream KV, sync_always"
	jsWatchers = "JetStream KV put + KV watchers, default fsync"
)

func jetstreamScenario() *Scenario {
	return &Scenario{
		Name: "jetstream-kv",
		Description: "The put and replicate workloads on NATS JetStream KV (nats-server embedded via internal/embednats with " +
			"JetStream on, file storage in a temp dir; client nats.go/jetstream, a KeyValue bucket with history 1), each record stored " +
			"as msgpack of the struct under its id, one kv.Put at a time (each waits for the server's ack). " +
			"Durability like for like: \"no fsync\" rows set Converge with Durability NoSync against JetStream's default " +
			"(fsync every 2 minutes); \"fsync\" rows set Converge with SyncEveryCommit against JetStream with sync_always " +
			"(server Options.SyncAlways). \"replicate\" rows: Converge is replicate-nats's measurement (one writer, -replicas replicas on an embedded NATS server, no fsync); JetStream " +
			"is one writer putting into the KV and -replicas KV watchers (kv.WatchAll, updates only) on their own connections, " +
			"timed the same way (latency: put until each watcher receives it), with the default fsync.",
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			n := max(e.cfg.PutOps, e.cfg.SyncOps, e.cfg.ReplicateOps) + e.cfg.LatencySamples
			keys := make([]string, n)
			values := make([][]byte, n)
			for i := range n {
				t := makeTask(taskKey("task", i), i)
				keys[i] = t.ID
				v, err := encodeTask(&t)
				if err != nil {
					return nil, err
				}
				values[i] = v
			}
			return &Trial{
				Metrics: []Metric{
					{Name: "put throughput, no fsync", Kind: Throughput, Unit: "records/s", Baseline: jsDefault},
					{Name: "put p50, no fsync", Kind: Latency, Baseline: jsDefault},
					{Name: "put p99, no fsync", Kind: Latency, Baseline: jsDefault},
					{Name: "put throughput, fsync", Kind: Throughput, Unit: "records/s", Baseline: jsAlways},
					{Name: "put p50, fsync", Kind: Latency, Baseline: jsAlways},
					{Name: "put p99, fsync", Kind: Latency, Baseline: jsAlways},
					{Name: "replicate throughput", Kind: Throughput, Baseline: jsWatchers},
					{Name: "replicate p50", Kind: Latency, Baseline: jsWatchers},
					{Name: "replicate p99", Kind: Latency, Baseline: jsWatchers},
				},
				Ours: func(ctx context.Context, _ int) (Values, error) {
					out := Values{}
					v, err := convergePuts(ctx, e, converge.NoSync, e.cfg.PutOps, 1)
					if err != nil {
						return nil, fmt.Errorf("put, no fsync: %w", err)
					}
					putValues(out, v, "no fsync")
					if v, err = convergePuts(ctx, e, converge.SyncEveryCommit, e.cfg.SyncOps, 1); err != nil {
						return nil, fmt.Errorf("put, fsync: %w", err)
					}
					putValues(out, v, "fsync")
					if v, err = replicateOverNATS(ctx, e); err != nil {
						return nil, fmt.Errorf("replicate: %w", err)
					}
					replValues(out, v)
					return out, nil
				},
				Baseline: func(ctx context.Context, _ int) (Values, error) {
					out := Values{}
					v, err := jsPuts(ctx, e, false, keys[:e.cfg.PutOps], values)
					if err != nil {
						return nil, fmt.Errorf("put, default fsync: %w", err)
					}
					putValues(out, v, "no fsync")
					if v, err = jsPuts(ctx, e, true, keys[:e.cfg.SyncOps], values); err != nil {
						return nil, fmt.Errorf("put, sync_always: %w", err)
					}
					putValues(out, v, "fsync")
					if v, err = jsReplicate(ctx, e, keys, values); err != nil {
						return nil, fmt.Errorf("replicate: %w", err)
					}
					replValues(out, v)
					return out, nil
				},
			}, nil
		},
	}
}

// putValues files commitValues under the jetstream-kv metric names.
func putValues(out, v Values, mode string) {
	out["put throughput, "+mode] = v["throughput"]
	out["put p50, "+mode] = v["commit p50"]
	out["put p99, "+mode] = v["commit p99"]
}

// replValues files replicateValues under the jetstream-kv metric names.
func replValues(out, v Values) {
	out["replicate throughput"] = v["throughput"]
	out["replicate p50"] = v["latency p50"]
	out["replicate p99"] = v["latency p99"]
}

// jetStream is an embedded JetStream server with its store in a temp dir.
type jetStream struct {
	node *embednats.Node
	dir  string
	e    *env
}

// startJetStream starts a JetStream server; syncAlways fsyncs every write.
func startJetStream(e *env, syncAlways bool) (*jetStream, error) {
	dir, err := e.dir("jetstream")
	if err != nil {
		return nil, err
	}
	o := embednats.Options()
	o.JetStream = true
	o.StoreDir = dir
	o.SyncAlways = syncAlways
	node, err := embednats.Start(o)
	if err != nil {
		e.removeDir(dir)
		return nil, fmt.Errorf("jetstream server: %w", err)
	}
	return &jetStream{node: node, dir: dir, e: e}, nil
}

// close stops the server and removes its store.
func (j *jetStream) close() {
	j.node.Stop()
	j.e.removeDir(j.dir)
}

// kv connects to the server and opens the bench bucket, creating it
// (file storage, history 1) if create.
func (j *jetStream) kv(ctx context.Context, create bool) (*nats.Conn, jetstream.KeyValue, error) {
	nc, err := nats.Connect(j.node.ClientURL(), nats.Name("converge-bench"), nats.NoReconnect())
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	var kv jetstream.KeyValue
	if create {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: jsBucket, Storage: jetstream.FileStorage, History: 1})
	} else {
		kv, err = js.KeyValue(ctx, jsBucket)
	}
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bucket %s: %w", jsBucket, err)
	}
	return nc, kv, nil
}

// jsPuts puts keys (values[i] under keys[i]) one at a time.
func jsPuts(ctx context.Context, e *env, syncAlways bool, keys []string, values [][]byte) (Values, error) {
	js, err := startJetStream(e, syncAlways)
	if err != nil {
		return nil, err
	}
	defer js.close()
	nc, kv, err := js.kv(ctx, true)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	lat := make([]time.Duration, 0, len(keys))
	start := time.Now()
	for i, k := range keys {
		t0 := time.Now()
		if _, err := kv.Put(ctx, k, values[i]); err != nil {
			return nil, fmt.Errorf("kv put %s: %w", k, err)
		}
		lat = append(lat, time.Since(t0))
	}
	return commitValues(len(keys), time.Since(start), lat), nil
}

// jsReplicate is the replicate workload on JetStream KV: a writer and
// e.cfg.Replicas watchers on their own connections.
func jsReplicate(ctx context.Context, e *env, keys []string, values [][]byte) (_ Values, err error) {
	n, samples := e.cfg.ReplicateOps, e.cfg.LatencySamples
	js, err := startJetStream(e, false)
	if err != nil {
		return nil, err
	}
	defer js.close()
	nc, kv, err := js.kv(ctx, true)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	counters := make([]*counter, e.cfg.Replicas)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range counters {
		wnc, wkv, err := js.kv(ctx, false)
		if err != nil {
			return nil, fmt.Errorf("watcher %d: %w", i, err)
		}
		defer wnc.Close()
		w, err := wkv.WatchAll(ctx, jetstream.UpdatesOnly())
		if err != nil {
			return nil, fmt.Errorf("watcher %d: %w", i, err)
		}
		defer func() {
			if serr := w.Stop(); serr != nil && !errors.Is(serr, nats.ErrConnectionClosed) {
				err = errors.Join(err, fmt.Errorf("stopping watcher %d: %w", i, serr))
			}
		}()
		c := newCounter()
		counters[i] = c
		wg.Go(func() {
			for entry := range w.Updates() {
				if entry != nil {
					c.add(1)
				}
			}
			c.fail(errors.New("watch ended"))
		})
	}
	written := 0
	put := func(k string, v []byte) error {
		if _, err := kv.Put(ctx, k, v); err != nil {
			return fmt.Errorf("kv put %s: %w", k, err)
		}
		written++
		return nil
	}
	if err := put("warmup", values[0]); err != nil {
		return nil, err
	}
	if err := waitAll(ctx, counters, written); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	lat := make([]time.Duration, 0, samples*len(counters))
	for i := range samples {
		start := time.Now()
		if err := put(taskKey("lat", i), values[n+i]); err != nil {
			return nil, err
		}
		if lat, err = sampleLatency(ctx, counters, written, start, lat); err != nil {
			return nil, fmt.Errorf("latency sample %d: %w", i, err)
		}
	}
	start := time.Now()
	for i := range n {
		if err := put(keys[i], values[i]); err != nil {
			return nil, err
		}
	}
	if err := waitAll(ctx, counters, written); err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	return replicateValues(n, time.Since(start), lat), nil
}
