package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Run runs the hub's background work until ctx ends or the hub is
// closed: the bridge (HTTP clients' writes synced over NATS at once) and
// the token checks (a changed token file reloaded, the open live streams
// revalidated). It returns nil when ctx ends, [ErrClosed] if the hub is
// closed, [ErrRunning] if it runs already. [Hub.Serve] calls it.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	switch {
	case h.mu.closed:
		h.mu.Unlock()
		return ErrClosed
	case h.mu.running:
		h.mu.Unlock()
		return ErrRunning
	}
	h.mu.running = true
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel)
	defer stop()
	var wg sync.WaitGroup
	for ns, b := range h.bridge {
		wg.Go(func() { h.bridgeLoop(ctx, ns, b) })
	}
	if h.syncSrv != nil && h.cfg.TokenCheckInterval > 0 {
		wg.Go(func() { h.watchTokens(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	return nil
}

// watchTokens checks the token file every TokenCheckInterval, reloads it
// when it changed, and revalidates the open streams (JWTs expire).
func (h *Hub) watchTokens(ctx context.Context) {
	t := time.NewTicker(h.cfg.TokenCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.checkTokens(ctx)
	}
}

// checkTokens is one check of watchTokens.
func (h *Hub) checkTokens(ctx context.Context) {
	if h.tokens != nil {
		changed, err := h.tokens.changed()
		if err != nil {
			h.failures.Failure("tokens", "checking the token file", err)
			return
		}
		h.failures.Success("tokens", "the token file is readable again")
		if changed {
			if err := h.ReloadTokens(ctx); err != nil {
				h.log.Error("reloading the token file; the tokens loaded before stay in force", "err", err)
			}
			return
		}
	}
	if h.cfg.JWT != nil || h.cfg.Auth != nil {
		h.syncSrv.Revalidate(ctx)
	}
}

// ReloadTokens reads the token file again (a file that does not load is
// an error and leaves the tokens as they were) and ends the live streams
// of the tokens no longer granted. `converge serve` calls it on SIGHUP;
// the hub also calls it when the file changes.
func (h *Hub) ReloadTokens(ctx context.Context) error {
	if h.syncSrv == nil {
		return nil
	}
	if h.tokens != nil {
		if _, err := h.tokens.reload(); err != nil {
			return err
		}
	}
	ended := h.syncSrv.Revalidate(ctx)
	h.log.Info("tokens reloaded", "streams_ended", ended)
	return nil
}

// Reload reloads what can change without a restart: the tokens
// ([Hub.ReloadTokens]) and the TLS certificate and key (a renewed
// certificate serves new connections). Errors leave each as it was.
func (h *Hub) Reload(ctx context.Context) error {
	err := h.ReloadTokens(ctx)
	if h.cert != nil {
		if cerr := h.cert.load(); cerr != nil {
			err = errors.Join(err, cerr)
		} else {
			h.log.Info("TLS certificate reloaded")
		}
	}
	return err
}

// Serve serves the hub's handler on ln (over TLS when the configuration
// has a certificate) and runs it ([Hub.Run]) until ctx ends, then shuts
// it down gracefully and closes it: no new connections, requests in
// progress finish (within ShutdownTimeout), live streams end, the last
// HTTP writes are synced over NATS, then the replicator, the NATS
// connection and the store close. It closes ln. It returns nil after a
// clean shutdown.
func (h *Hub) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           h.handler,
		TLSConfig:         h.tls,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	// Shutdown closes the listener, then runs this: the live streams
	// end, so their connections go idle and Shutdown can finish.
	srv.RegisterOnShutdown(h.CloseStreams)
	served := make(chan error, 1)
	go func() {
		if h.tls != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	ran := make(chan error, 1)
	go func() { ran <- h.Run(runCtx) }()
	h.log.Info("serving", "listen", ln.Addr().String(), "tls", h.tls != nil, "mtls", h.cfg.TLSClientCAFile != "",
		"dir", h.cfg.Dir, "http_sync", h.syncSrv != nil, "nats", redactURLs(h.cfg.NATS.URL), "namespaces", h.cfg.NATS.Namespaces)

	var runErr error
	select {
	case <-ctx.Done():
		h.log.Info("shutting down", "cause", context.Cause(ctx))
	case err := <-served:
		runErr = fmt.Errorf("hub: serve: %w", err)
		h.log.Error("HTTP server failed; shutting down", "err", err)
	case err := <-ran:
		runErr = err
		ran <- nil // Run has returned: nothing to wait for below
	}
	h.closing.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), h.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		h.log.Warn("requests still running at the shutdown timeout; closing their connections", "err", err)
		runErr = errors.Join(runErr, fmt.Errorf("hub: shutdown: %w", err), srv.Close())
	}
	stopRun()
	if err := <-ran; err != nil && !errors.Is(err, ErrClosed) {
		runErr = errors.Join(runErr, err)
	}
	return errors.Join(runErr, h.Close(sctx))
}

// Close shuts the hub down: the live streams end, the background work
// stops, the last HTTP writes are synced over NATS (within ctx), the
// replicator, the NATS connection and the store close. With durability
// sync or group, every write the hub accepted is on disk. Close is
// idempotent; the first call's error is returned each time.
func (h *Hub) Close(ctx context.Context) error {
	h.closeOnce.Do(func() { h.closeErr = h.close(ctx) })
	return h.closeErr
}

func (h *Hub) close(ctx context.Context) error {
	h.closing.Store(true)
	h.mu.Lock()
	h.mu.closed = true
	h.mu.Unlock()
	if h.syncSrv != nil {
		h.syncSrv.Close() // ends the streams, waits for their handlers
	}
	h.stop()
	h.wg.Wait()
	// What HTTP clients wrote last may not have reached NATS yet: one more
	// sync, bounded by ctx. It is in the store anyway, and anti-entropy
	// carries it when the hub is back.
	for _, ns := range slices.Sorted(maps.Keys(h.bridge)) {
		if h.bridge[ns].dirty.Load() {
			if _, err := h.rep.SyncNow(ctx, ns); err != nil {
				h.log.Warn("last sync over NATS failed; the ops are in the store and sync when the hub is back", "namespace", ns, "err", err)
			}
		}
	}
	err := h.closeStore(ctx)
	if err == nil {
		h.log.Info("stopped")
	}
	return err
}

// closeStore closes the replicator, the NATS transport and the store,
// whichever are open. It runs once: at Close, or when New fails.
func (h *Hub) closeStore(ctx context.Context) error {
	var errs []error
	if h.rep != nil {
		if err := h.rep.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("hub: %w", err))
		}
	}
	if h.tr != nil {
		if err := h.tr.Close(); err != nil {
			errs = append(errs, fmt.Errorf("hub: close NATS: %w", err))
		}
	}
	if h.syncSrv != nil {
		h.syncSrv.Close()
	}
	h.stopOps()
	if err := h.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("hub: close store: %w", err))
	}
	return errors.Join(errs...)
}

// redactURLs drops user info from comma-separated URLs, for logs.
func redactURLs(urls string) string {
	if urls == "" {
		return ""
	}
	var out []string
	for u := range strings.SplitSeq(urls, ",") {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if i := strings.Index(u, "://"); i >= 0 && i < at {
				u = u[:i+3] + "***" + u[at:]
			}
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}
