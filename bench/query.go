package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge"
	"github.com/vmihailenco/msgpack/v5"
)

// Query scenarios over one dataset of -records records (the shapes of the
// repository's query_bench_test.go): an indexed equality against the same
// query as a scan, and a scan with a predicate against a raw Pebble scan.

// issue is the record of the query dataset.
type issue struct {
	ID       string   `msgpack:"-" converge:"id"`
	Status   string   `msgpack:"status"`   // statuses distinct values: an Eq matches 50 records
	Priority int      `msgpack:"priority"` // 0..999
	Title    string   `msgpack:"title"`
	Score    float64  `msgpack:"score"` // 0..999.99: score >= 990 matches about 1%
	Tags     []string `msgpack:"tags" converge:"set"`
	Meta     converge.Meta
}

const (
	issuesPerStatus = 50
	scanThreshold   = 990.0
	loadBatch       = 1000 // records per transaction while loading
)

var issueTags = []string{"bug", "feature", "docs", "ui", "backend", "perf", "security", "infra"}

// makeIssue returns the i-th record of a dataset with the given number of
// statuses.
func makeIssue(i, statuses int) issue {
	return issue{
		ID:       fmt.Sprintf("issue-%07d", i),
		Status:   issueStatus(i, statuses),
		Priority: (i * 7919) % 1000,
		Title:    fmt.Sprintf("issue number %d of the benchmark", i),
		Score:    float64((i*104729)%100_000) / 100,
		Tags:     []string{issueTags[i%len(issueTags)], issueTags[(i/len(issueTags))%len(issueTags)]},
	}
}

func issueStatus(i, statuses int) string { return fmt.Sprintf("status-%05d", i%statuses) }

// queryData is the dataset: one Converge replica holding the records twice,
// in "indexed" (indexes on status and priority) and "plain" (none), and a
// raw Pebble holding them as msgpack of the struct under their ids.
type queryData struct {
	records, statuses int
	db                *converge.DB
	indexed, plain    *converge.Collection[issue]
	raw               *rawStore
}

// close closes both stores (their directories go with the temp root).
func (q *queryData) close() error {
	return errors.Join(q.db.Close(), q.raw.Close())
}

// queryDataset returns the dataset of e.cfg.Records records, building it
// on first use.
func (e *env) queryDataset(ctx context.Context) (*queryData, error) {
	e.queryMu.Lock()
	defer e.queryMu.Unlock()
	if e.query != nil {
		return e.query, nil
	}
	start := time.Now()
	q, err := buildQueryData(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("building the query dataset: %w", err)
	}
	e.log.Info("built the query dataset", "records", q.records, "took", time.Since(start).Round(time.Millisecond))
	e.query = q
	return q, nil
}

func buildQueryData(ctx context.Context, e *env) (_ *queryData, err error) {
	n := e.cfg.Records
	q := &queryData{records: n, statuses: max(1, n/issuesPerStatus)}
	dir, err := e.dir("query")
	if err != nil {
		return nil, err
	}
	q.db, err = converge.Open(dir, converge.Options{Durability: converge.NoSync, Logger: quietLogger})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			q.db.Close()
		}
	}()
	if q.indexed, err = converge.NewCollection[issue](q.db, "indexed"); err != nil {
		return nil, err
	}
	if q.plain, err = converge.NewCollection[issue](q.db, "plain"); err != nil {
		return nil, err
	}
	for lo := 0; lo < n; lo += loadBatch {
		err := q.db.Update(ctx, benchNS, func(tx *converge.Tx) error {
			for i := lo; i < min(lo+loadBatch, n); i++ {
				for _, c := range []*converge.Collection[issue]{q.indexed, q.plain} {
					is := makeIssue(i, q.statuses)
					if _, err := c.Tx(tx).Put(&is); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("loading records %d..: %w", lo, err)
		}
	}
	// Built from the stored records, as the repository's benchmark does.
	for _, f := range []string{"status", "priority"} {
		if err := q.indexed.EnsureIndex(ctx, f); err != nil {
			return nil, fmt.Errorf("index on %s: %w", f, err)
		}
	}
	rawDir, err := e.dir("query-raw")
	if err != nil {
		return nil, err
	}
	if q.raw, err = openRawPebble(rawDir); err != nil {
		return nil, err
	}
	for lo := 0; lo < n; lo += loadBatch {
		b := q.raw.db.NewBatch()
		for i := lo; i < min(lo+loadBatch, n); i++ {
			is := makeIssue(i, q.statuses)
			v, err := msgpack.Marshal(&is)
			if err != nil {
				b.Close()
				q.raw.Close()
				return nil, fmt.Errorf("encoding record %d: %w", i, err)
			}
			if err := b.Set([]byte(is.ID), v, nil); err != nil {
				b.Close()
				q.raw.Close()
				return nil, err
			}
		}
		err := b.Commit(pebble.NoSync)
		b.Close()
		if err != nil {
			q.raw.Close()
			return nil, fmt.Errorf("raw pebble load: %w", err)
		}
	}
	return q, nil
}

// rawScan is the scan baseline: iterate every record of the raw Pebble,
// decode it and keep those with score >= threshold.
func (q *queryData) rawScan(threshold float64) ([]issue, error) {
	prefix := []byte("issue-")
	it, err := q.raw.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: []byte("issue.")})
	if err != nil {
		return nil, fmt.Errorf("raw scan: %w", err)
	}
	var out []issue
	for ok := it.First(); ok; ok = it.Next() {
		if !bytes.HasPrefix(it.Key(), prefix) {
			break
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, fmt.Errorf("raw scan: %w", err)
		}
		var is issue
		if err := msgpack.Unmarshal(v, &is); err != nil {
			it.Close()
			return nil, fmt.Errorf("raw scan: decoding %q: %w", it.Key(), err)
		}
		if is.Score >= threshold {
			is.ID = string(it.Key())
			out = append(out, is)
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("raw scan: %w", err)
	}
	return out, nil
}

// queryMetrics are the query scenarios' metrics, against baseline base.
func queryMetrics(base string) []Metric {
	return []Metric{
		{Name: "throughput", Kind: Throughput, Unit: "queries/s", Baseline: base},
		{Name: "query p50", Kind: Latency, Baseline: base},
		{Name: "query p99", Kind: Latency, Baseline: base},
	}
}

// timeQueries runs query(i) for i = 0, 1, ... for at least d and at least
// minimum times, checking each returns want(i) results, and reports the
// query metrics.
func timeQueries(ctx context.Context, d time.Duration, minimum int, want func(i int) int, query func(i int) (int, error)) (Values, error) {
	var lat []time.Duration
	start := time.Now()
	for i := 0; i < minimum || time.Since(start) < d; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		n, err := query(i)
		if err != nil {
			return nil, fmt.Errorf("query %d: %w", i, err)
		}
		lat = append(lat, time.Since(t0))
		if w := want(i); n != w {
			return nil, fmt.Errorf("query %d: %d results, want %d", i, n, w)
		}
	}
	return Values{
		"throughput": perSecond(len(lat), time.Since(start)),
		"query p50":  ms(percentile(lat, 50)),
		"query p99":  ms(percentile(lat, 99)),
	}, nil
}

// queryIndexScenario is an indexed equality against the same query as a scan.
func queryIndexScenario() *Scenario {
	const base = "same query, scan (no index)"
	return &Scenario{
		Name: "query-index",
		Description: "Collection.Find of status = X (matching 50 records, a different X each query) over -records records, with an index on status. " +
			"Baseline: the same query on a collection holding the same records without the index, which Converge answers with a scan: " +
			"what the index buys.",
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			q, err := e.queryDataset(ctx)
			if err != nil {
				return nil, err
			}
			status := func(i int) int { return (i * 7) % q.statuses }
			eq := func(i int) converge.Query {
				return converge.Where(converge.Eq("status", issueStatus(status(i), q.statuses)))
			}
			// Records i with i % statuses == s.
			want := func(i int) int {
				n := q.records / q.statuses
				if status(i) < q.records%q.statuses {
					n++
				}
				return n
			}
			for c, plan := range map[*converge.Collection[issue]]string{q.indexed: "index status", q.plain: "scan"} {
				got, err := c.Explain(eq(0))
				if err != nil {
					return nil, err
				}
				if !strings.HasPrefix(got, plan) {
					return nil, fmt.Errorf("plan of %s is %q, want %s", c.Name(), got, plan)
				}
			}
			run := func(c *converge.Collection[issue]) sideFunc {
				return func(ctx context.Context, _ int) (Values, error) {
					return timeQueries(ctx, e.cfg.QueryTime, e.cfg.MinQuery, want, func(i int) (int, error) {
						res, err := c.Find(ctx, benchNS, eq(i))
						return len(res), err
					})
				}
			}
			return &Trial{Metrics: queryMetrics(base), Ours: run(q.indexed), Baseline: run(q.plain)}, nil
		},
	}
}

// queryScanScenario is a scan with a predicate against a raw Pebble scan.
func queryScanScenario() *Scenario {
	const base = "raw Pebble scan + msgpack decode"
	return &Scenario{
		Name: "query-scan",
		Description: "Collection.Find of score >= 990 (about 1% of the records; no index covers score, so Converge scans) over -records records. " +
			"Baseline: what a user of a plain key-value store would write: the same records stored in raw Pebble as msgpack of the struct " +
			"under their ids, a full iteration decoding each value with vmihailenco/msgpack and keeping the matches.",
		Prepare: func(ctx context.Context, e *env) (*Trial, error) {
			q, err := e.queryDataset(ctx)
			if err != nil {
				return nil, err
			}
			filter := converge.Where(converge.Gte("score", scanThreshold))
			ours, err := q.plain.Find(ctx, benchNS, filter)
			if err != nil {
				return nil, err
			}
			raw, err := q.rawScan(scanThreshold)
			if err != nil {
				return nil, err
			}
			if len(ours) != len(raw) {
				return nil, fmt.Errorf("converge finds %d records, the raw scan %d", len(ours), len(raw))
			}
			want := func(int) int { return len(raw) }
			return &Trial{
				Metrics: queryMetrics(base),
				Ours: func(ctx context.Context, _ int) (Values, error) {
					return timeQueries(ctx, e.cfg.QueryTime, e.cfg.MinQuery, want, func(int) (int, error) {
						res, err := q.plain.Find(ctx, benchNS, filter)
						return len(res), err
					})
				},
				Baseline: func(ctx context.Context, _ int) (Values, error) {
					return timeQueries(ctx, e.cfg.QueryTime, e.cfg.MinQuery, want, func(int) (int, error) {
						res, err := q.rawScan(scanThreshold)
						return len(res), err
					})
				},
			}, nil
		},
	}
}
