package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// env is what every scenario shares during one invocation: the settings, a
// temp directory removed at the end, the logger, and lazily built
// workloads (the pool of pre-generated ops, the query dataset).
type env struct {
	cfg config
	log *slog.Logger
	tmp string // root of every temp dir; removed by close

	poolOnce sync.Once
	pool     *opPool
	poolErr  error

	queryMu sync.Mutex
	query   *queryData
}

// newEnv creates the temp root.
func newEnv(cfg config, log *slog.Logger) (*env, error) {
	tmp, err := os.MkdirTemp("", "converge-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	return &env{cfg: cfg, log: log, tmp: tmp}, nil
}

// dir returns a new empty directory under the temp root.
func (e *env) dir(name string) (string, error) {
	d, err := os.MkdirTemp(e.tmp, name+"-")
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	return d, nil
}

// ops returns the first n ops of the shared pool (see opPool).
func (e *env) ops(ctx context.Context, n int) ([]capturedOp, error) {
	e.poolOnce.Do(func() {
		start := time.Now()
		dir, err := e.dir("source")
		if err != nil {
			e.poolErr = err
			return
		}
		e.pool, e.poolErr = openOpPool(dir)
		e.log.Debug("op pool opened", "took", time.Since(start))
	})
	if e.poolErr != nil {
		return nil, e.poolErr
	}
	start := time.Now()
	ops, err := e.pool.get(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("generating %d ops on the source replica: %w", n, err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		e.log.Info("generated ops on a source replica", "ops", n, "took", d.Round(time.Millisecond))
	}
	return ops, nil
}

// close releases the shared workloads and removes the temp root.
func (e *env) close() error {
	var errs []error
	if e.pool != nil {
		errs = append(errs, e.pool.close())
	}
	e.queryMu.Lock()
	if e.query != nil {
		errs = append(errs, e.query.close())
		e.query = nil
	}
	e.queryMu.Unlock()
	if err := os.RemoveAll(e.tmp); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", e.tmp, err))
	}
	return errors.Join(errs...)
}

// removeDir removes a per-run directory, logging a failure: a leftover is
// removed with the temp root anyway.
func (e *env) removeDir(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		e.log.Warn("removing temp dir", "dir", dir, "err", err)
	}
}
