// Package ratelog logs repeated failures at a bounded rate. An edge
// device that is offline fails every sync until it is back, and that is
// normal: its log should say when the failures began, how many there
// were, and when they ended, not repeat the same line every few seconds.
//
// A [Logger] keeps, per key (a namespace, a peer), the run of
// consecutive failures. It logs the first failure of a run at Warn at
// once, then at most one line per interval, carrying the count of
// failures since the run began and since the last line; the failures in
// between go to Debug. A success after a logged run logs the recovery at
// Info, with the count and how long the run lasted.
package ratelog

import (
	"log/slog"
	"sync"
	"time"
)

// DefaultInterval is the interval of a [Logger] created with zero.
const DefaultInterval = 5 * time.Minute

// Logger logs runs of failures at a bounded rate. It is safe for
// concurrent use.
type Logger struct {
	log      *slog.Logger
	interval time.Duration

	mu   sync.Mutex
	runs map[string]*run
}

// run is a key's current run of consecutive failures.
type run struct {
	first    time.Time // the first failure of the run
	logged   time.Time // the last line written
	failures int       // in the run
	unlogged int       // since the last line
}

// New returns a Logger writing to log, at most one line per key and
// interval while failures repeat. An interval of zero or less means
// [DefaultInterval].
func New(log *slog.Logger, interval time.Duration) *Logger {
	if interval <= 0 {
		interval = DefaultInterval
	}
	return &Logger{log: log, interval: interval, runs: map[string]*run{}}
}

// Failure records a failure of key with err. The first of a run is
// logged at Warn with msg; later ones at most once per interval, at Warn,
// with "failures" (the run's count) and "suppressed" (since the last
// line); the others at Debug. attrs are added to the line. It reports
// whether it wrote at Warn.
func (l *Logger) Failure(key, msg string, err error, attrs ...any) bool {
	now := time.Now()
	l.mu.Lock()
	r, ok := l.runs[key]
	if !ok {
		r = &run{first: now}
		l.runs[key] = r
	}
	r.failures++
	r.unlogged++
	due := r.failures == 1 || now.Sub(r.logged) >= l.interval
	failures, suppressed, since := r.failures, r.unlogged-1, now.Sub(r.first)
	if due {
		r.logged, r.unlogged = now, 0
	}
	l.mu.Unlock()
	attrs = append(attrs, "err", err)
	if !due {
		l.log.Debug(msg, attrs...)
		return false
	}
	if failures > 1 {
		attrs = append(attrs, "failures", failures, "suppressed", suppressed, "failing_for", since.Round(time.Second))
	}
	l.log.Warn(msg, attrs...)
	return true
}

// Success ends key's run of failures, if one is on: it logs msg at Info
// with the run's count of failures and how long it lasted. It reports
// whether a run ended.
func (l *Logger) Success(key, msg string, attrs ...any) bool {
	now := time.Now()
	l.mu.Lock()
	r, ok := l.runs[key]
	delete(l.runs, key)
	l.mu.Unlock()
	if !ok {
		return false
	}
	attrs = append(attrs, "failures", r.failures, "failed_for", now.Sub(r.first).Round(time.Second))
	l.log.Info(msg, attrs...)
	return true
}
