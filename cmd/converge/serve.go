package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// serveConfig is the configuration of `converge serve`. Every field has a
// flag and an environment variable (see serveFlags).
type serveConfig struct {
	Dir             string
	Listen          string
	Tokens          string
	Durability      string
	MaxBody         int64
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string

	NATSURL       string
	Namespaces    []string
	NATSCreds     string
	NATSNKey      string
	NATSUser      string
	NATSPassword  string
	NATSToken     string
	NATSTLSCA     string
	NATSTLSCert   string
	NATSTLSKey    string
	NATSInbox     string
	NATSPrefix    string
	NATSName      string
	NATSHeartbeat time.Duration
	SyncInterval  time.Duration

	CompactInterval time.Duration

	// listener, when set, is served instead of listening on Listen; serve
	// closes it. Tests use it to know the address before serve runs.
	listener net.Listener
}

const serveUsage = `usage: converge serve -dir DIR [-tokens FILE] [-nats-url URL -namespaces NS,...] [flags]

Runs a hub: a replica with its own Pebble store in -dir that
  - answers the sync protocol over HTTP (POST /v1/sync/{ns}, GET /v1/stream/{ns},
    GET /v1/health) for the bearer tokens of the -tokens file, and/or
  - replicates the -namespaces over NATS with the other replicas on the bus.
With both, it bridges them: what HTTP clients write reaches the NATS replicas,
and what those write reaches the HTTP clients' live streams.

It also serves, on the same -listen address and without a token:
  GET /healthz   200 when the store and every transport answer, else 503 (JSON body)
  GET /metrics   Prometheus text format: ops, conflicts and replication state per
                 namespace, sync latency, HTTP requests, NATS transport counters

The token file has one token per line: "<token> <ns>[,<ns>...] [origins=<id>,...]",
where ns is a namespace or a pattern ending in ".>" ("acme.>"), or ">" for every
namespace, and origins, if given, are the replica ids the token may write as
(ops of any other origin are refused: one writer cannot forge another's);
blank lines and lines starting with # are ignored.

Every flag has an environment variable: the variable sets the default, the flag
overrides it. Prefer the environment for secrets (-nats-password, -nats-token):
flags show in the process list.

On SIGINT or SIGTERM it stops accepting connections, finishes the requests in
progress, ends the live streams, syncs the last HTTP writes over NATS, closes
the replicator, the NATS connection and the store (with -durability sync or
group, every write it accepted is on disk already). A second signal exits at once.

Flags:
`

// envFlag ties a flag to its environment variable.
type envFlag struct{ flag, env string }

// parseServeConfig reads the configuration from the environment (through
// lookupEnv) and then from args, which override it.
func parseServeConfig(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (serveConfig, error) {
	var cfg serveConfig
	var namespaces string
	fs := newFlagSet("serve", stderr)
	var envs []envFlag
	str := func(p *string, name, env, def, usage string) {
		fs.StringVar(p, name, def, usage+" (env "+env+")")
		envs = append(envs, envFlag{name, env})
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, usage string) {
		fs.DurationVar(p, name, def, usage+" (env "+env+")")
		envs = append(envs, envFlag{name, env})
	}
	str(&cfg.Dir, "dir", "CONVERGE_DIR", "", "the hub's store `directory` (required; created if absent)")
	str(&cfg.Listen, "listen", "CONVERGE_LISTEN", ":8080", "HTTP listen `address` for the sync endpoint, /healthz and /metrics")
	str(&cfg.Tokens, "tokens", "CONVERGE_TOKENS", "", "token `file` for the HTTP sync endpoint; without it, HTTP sync is off")
	str(&cfg.Durability, "durability", "CONVERGE_DURABILITY", "sync", "durability `mode` of writes: sync (fsync each commit), group (one fsync shared by concurrent commits), none (a crash may lose the latest)")
	fs.Int64Var(&cfg.MaxBody, "max-body", 0, "largest HTTP sync request body in `bytes`, compressed or not; 0 means 8 MiB (env CONVERGE_MAX_BODY)")
	envs = append(envs, envFlag{"max-body", "CONVERGE_MAX_BODY"})
	dur(&cfg.ShutdownTimeout, "shutdown-timeout", "CONVERGE_SHUTDOWN_TIMEOUT", 30*time.Second, "how long a graceful shutdown may take before connections are cut")
	str(&cfg.LogLevel, "log-level", "CONVERGE_LOG_LEVEL", "info", "log `level`: debug, info, warn or error")
	str(&cfg.LogFormat, "log-format", "CONVERGE_LOG_FORMAT", "text", "log `format`: text or json")
	str(&cfg.NATSURL, "nats-url", "CONVERGE_NATS_URL", "", "NATS server `URLs`, comma-separated; without it, NATS replication is off")
	str(&namespaces, "namespaces", "CONVERGE_NAMESPACES", "", "`namespaces` to replicate over NATS, comma-separated (required with -nats-url)")
	str(&cfg.NATSCreds, "nats-creds", "CONVERGE_NATS_CREDS", "", "NATS credentials `file` (user JWT and NKey seed)")
	str(&cfg.NATSNKey, "nats-nkey", "CONVERGE_NATS_NKEY", "", "NATS NKey seed `file`")
	str(&cfg.NATSUser, "nats-user", "CONVERGE_NATS_USER", "", "NATS `user`")
	str(&cfg.NATSPassword, "nats-password", "CONVERGE_NATS_PASSWORD", "", "NATS `password` (prefer the environment variable)")
	str(&cfg.NATSToken, "nats-token", "CONVERGE_NATS_TOKEN", "", "NATS authentication `token` (prefer the environment variable)")
	str(&cfg.NATSTLSCA, "nats-tls-ca", "CONVERGE_NATS_TLS_CA", "", "`file` of CA certificates to verify the NATS server (enables TLS)")
	str(&cfg.NATSTLSCert, "nats-tls-cert", "CONVERGE_NATS_TLS_CERT", "", "client certificate `file` for NATS TLS (with -nats-tls-key)")
	str(&cfg.NATSTLSKey, "nats-tls-key", "CONVERGE_NATS_TLS_KEY", "", "client key `file` for NATS TLS (with -nats-tls-cert)")
	str(&cfg.NATSInbox, "nats-inbox-prefix", "CONVERGE_NATS_INBOX_PREFIX", "", "inbox `prefix` for NATS replies (give each site its own and permit only that)")
	str(&cfg.NATSPrefix, "nats-prefix", "CONVERGE_NATS_PREFIX", "converge", "first subject `tokens` of the replication subjects")
	str(&cfg.NATSName, "nats-name", "CONVERGE_NATS_NAME", "converge-serve", "connection `name` shown by the NATS server")
	dur(&cfg.NATSHeartbeat, "nats-heartbeat", "CONVERGE_NATS_HEARTBEAT", 5*time.Second, "interval of the hub's vector announcements on NATS: replicas that missed something fetch it")
	dur(&cfg.SyncInterval, "sync-interval", "CONVERGE_SYNC_INTERVAL", 30*time.Second, "interval of the periodic anti-entropy sync over NATS")
	dur(&cfg.CompactInterval, "compact-interval", "CONVERGE_COMPACT_INTERVAL", 10*time.Minute, "interval of log compaction: ops every known peer holds are folded into base states (0 turns it off)")
	fs.Usage = func() {
		fmt.Fprint(stderr, serveUsage)
		fs.PrintDefaults()
	}
	for _, e := range envs {
		v, ok := lookupEnv(e.env)
		if !ok || v == "" {
			continue
		}
		if err := fs.Set(e.flag, v); err != nil {
			return cfg, fmt.Errorf("serve: %s=%q: %w", e.env, v, err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("serve: unexpected argument %q (flags only; see converge serve -h)", fs.Arg(0))
	}
	for ns := range strings.SplitSeq(namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			cfg.Namespaces = append(cfg.Namespaces, ns)
		}
	}
	return cfg, cfg.validate()
}

func (cfg *serveConfig) validate() error {
	switch {
	case cfg.Dir == "":
		return errors.New("serve: -dir (CONVERGE_DIR) is required")
	case cfg.Tokens == "" && cfg.NATSURL == "":
		return errors.New("serve: nothing to serve: give -tokens (HTTP sync) and/or -nats-url (NATS replication)")
	case cfg.NATSURL != "" && len(cfg.Namespaces) == 0:
		return errors.New("serve: -nats-url needs -namespaces, the namespaces to replicate over NATS")
	case cfg.NATSURL == "" && len(cfg.Namespaces) > 0:
		return errors.New("serve: -namespaces are replicated over NATS: give -nats-url too")
	case cfg.NATSPassword != "" && cfg.NATSUser == "":
		return errors.New("serve: -nats-password needs -nats-user")
	case (cfg.NATSTLSCert == "") != (cfg.NATSTLSKey == ""):
		return errors.New("serve: -nats-tls-cert and -nats-tls-key go together")
	case cfg.MaxBody < 0:
		return errors.New("serve: -max-body must not be negative")
	case cfg.ShutdownTimeout <= 0:
		return errors.New("serve: -shutdown-timeout must be positive")
	}
	methods := 0
	for _, s := range []string{cfg.NATSCreds, cfg.NATSNKey, cfg.NATSUser, cfg.NATSToken} {
		if s != "" {
			methods++
		}
	}
	if methods > 1 {
		return errors.New("serve: give one NATS authentication: -nats-creds, -nats-nkey, -nats-user or -nats-token")
	}
	for _, ns := range cfg.Namespaces {
		if len(ns) > crdt.MaxNameLen {
			return fmt.Errorf("serve: namespace %q is longer than %d bytes", ns, crdt.MaxNameLen)
		}
	}
	if _, err := parseDurability(cfg.Durability); err != nil {
		return err
	}
	if _, err := cfg.logger(io.Discard); err != nil {
		return err
	}
	return nil
}

func parseDurability(s string) (converge.Durability, error) {
	switch s {
	case "sync":
		return converge.SyncEveryCommit, nil
	case "group":
		return converge.GroupCommit, nil
	case "none":
		return converge.NoSync, nil
	}
	return 0, fmt.Errorf("serve: -durability must be sync, group or none, not %q", s)
}

// logger returns the logger the configuration asks for, writing to w.
func (cfg *serveConfig) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("serve: -log-level must be debug, info, warn or error, not %q", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("serve: -log-format must be text or json, not %q", cfg.LogFormat)
}

// natsOptions turns the NATS flags into connection options.
func (cfg *serveConfig) natsOptions(logger *slog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(cfg.NATSName),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("NATS connection lost; reconnecting", "err", err)
			}
		}),
	}
	switch {
	case cfg.NATSCreds != "":
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	case cfg.NATSNKey != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NATSNKey)
		if err != nil {
			return nil, fmt.Errorf("serve: -nats-nkey: %w", err)
		}
		opts = append(opts, o)
	case cfg.NATSUser != "":
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	case cfg.NATSToken != "":
		opts = append(opts, nats.Token(cfg.NATSToken))
	}
	if cfg.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCA))
	}
	if cfg.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSTLSCert, cfg.NATSTLSKey))
	}
	if cfg.NATSInbox != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.NATSInbox))
	}
	return opts, nil
}

func runServe(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg, err := parseServeConfig(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, logger)
}

// hub is a running `converge serve`.
type hub struct {
	cfg     serveConfig
	log     *slog.Logger
	db      *converge.DB
	metrics *serveMetrics
	syncSrv *httptransport.Server    // nil without -tokens
	tr      *natstransport.Transport // nil without -nats-url
	rep     *converge.Replicator     // over tr
	bridge  map[string]*bridgeState  // namespaces replicated over NATS, when HTTP sync is on too
	closing atomic.Bool              // shutting down: /healthz answers 503
	ctx     context.Context          // the hub's background work; ends at shutdown
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// bridgeState is a namespace that HTTP clients write and the hub
// replicates over NATS: after HTTP clients' ops are applied, the hub syncs
// it over NATS at once (the NATS transport publishes live only the hub's
// own ops, so without this the NATS replicas would learn of them from the
// hub's next announcement).
type bridgeState struct {
	kick  chan struct{}
	dirty atomic.Bool // HTTP clients' ops applied and not yet synced over NATS
}

// serve runs the hub until ctx ends, then shuts it down gracefully. It
// returns nil after a clean shutdown.
func serve(ctx context.Context, cfg serveConfig, logger *slog.Logger) (err error) {
	ln := cfg.listener
	defer func() {
		if err != nil && ln != nil {
			ln.Close() // never served: nothing to report
		}
	}()
	if err := cfg.validate(); err != nil {
		return err
	}
	durability, _ := parseDurability(cfg.Durability) // validated
	var auth httptransport.Authorizer
	if cfg.Tokens != "" {
		tf, err := httptransport.LoadTokenFile(cfg.Tokens)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		auth = tf
	}
	var natsOpts []nats.Option
	if cfg.NATSURL != "" {
		if natsOpts, err = cfg.natsOptions(logger); err != nil {
			return err
		}
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}

	h := &hub{cfg: cfg, log: logger, metrics: newServeMetrics(), bridge: map[string]*bridgeState{}}
	h.ctx, h.stop = context.WithCancel(context.Background())
	defer h.stop()
	dbOpts := converge.Options{Durability: durability, Logger: logger,
		Compaction: converge.CompactionOptions{Interval: cfg.CompactInterval, Disabled: cfg.CompactInterval <= 0}}
	if h.db, err = converge.Open(cfg.Dir, dbOpts); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	logger = logger.With("replica", h.db.ReplicaID())
	h.log = logger
	// On a failed start, undo what was started, in reverse order.
	started := false
	defer func() {
		if !started {
			err = errors.Join(err, h.closeReplication(context.Background()), h.db.Close())
		}
	}()

	if cfg.NATSURL != "" {
		h.tr, err = natstransport.Connect(cfg.NATSURL, natstransport.Options{
			Store: h.db.SyncStore(), Prefix: cfg.NATSPrefix, Heartbeat: cfg.NATSHeartbeat, Logger: logger,
			OnRoundTrip: h.natsRoundTrip,
		}, natsOpts...)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		h.rep, err = h.db.OpenReplicator(h.tr, converge.ReplicatorOptions{
			Namespaces: cfg.Namespaces, Interval: cfg.SyncInterval, Logger: logger,
		})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}

	mux := http.NewServeMux()
	if auth != nil {
		h.syncSrv, err = newSyncServer(h.db.SyncStore(), auth, cfg.MaxBody, logger, h.applied)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		mux.Handle("/v1/", h.syncSrv)
		if h.rep != nil {
			for _, ns := range cfg.Namespaces {
				h.bridge[ns] = &bridgeState{kick: make(chan struct{}, 1)}
			}
		}
		for ns, b := range h.bridge {
			h.wg.Go(func() { h.bridgeLoop(ns, b) })
		}
	}
	mux.HandleFunc("GET /healthz", h.health)
	mux.HandleFunc("GET /metrics", h.serveMetrics)

	srv := &http.Server{
		Handler:           h.instrument(mux),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	if h.syncSrv != nil {
		// Shutdown closes the listener, then runs this: the live streams
		// end, so their connections go idle and Shutdown can finish.
		srv.RegisterOnShutdown(h.syncSrv.Close)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	started = true
	logger.Info("serving", "listen", ln.Addr().String(), "dir", cfg.Dir, "http_sync", h.syncSrv != nil,
		"nats", redactURLs(cfg.NATSURL), "namespaces", cfg.Namespaces, "durability", cfg.Durability)

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "cause", context.Cause(ctx))
	case err := <-served:
		runErr = fmt.Errorf("serve: %w", err)
		logger.Error("HTTP server failed; shutting down", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return errors.Join(runErr, h.shutdown(sctx, srv))
}

// shutdown stops the hub: no new connections, the requests in progress
// finish, the live streams end, the last HTTP writes are synced over NATS,
// the replicator and the NATS connection close, then the store.
func (h *hub) shutdown(ctx context.Context, srv *http.Server) error {
	h.closing.Store(true)
	var errs []error
	if err := srv.Shutdown(ctx); err != nil {
		h.log.Warn("requests still running at the shutdown timeout; closing their connections", "err", err)
		errs = append(errs, fmt.Errorf("serve: shutdown: %w", err), srv.Close())
	}
	if h.syncSrv != nil {
		h.syncSrv.Close() // Shutdown ran it; this waits for the stream handlers
	}
	h.stop()
	h.wg.Wait()
	// What HTTP clients wrote last may not have reached NATS yet: one more
	// sync, bounded by the shutdown's deadline. It is in the store anyway,
	// and anti-entropy carries it when the hub is back.
	for _, ns := range slices.Sorted(maps.Keys(h.bridge)) {
		if h.bridge[ns].dirty.Load() {
			if _, err := h.rep.SyncNow(ctx, ns); err != nil {
				h.log.Warn("last sync over NATS failed; the ops are in the store and sync when the hub is back", "namespace", ns, "err", err)
			}
		}
	}
	errs = append(errs, h.closeReplication(ctx))
	if err := h.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("serve: close store: %w", err))
	}
	err := errors.Join(errs...)
	if err == nil {
		h.log.Info("stopped")
	}
	return err
}

// closeReplication closes the replicator and the NATS transport, if open.
// It runs once: at shutdown, or when the start fails.
func (h *hub) closeReplication(ctx context.Context) error {
	var errs []error
	if h.rep != nil {
		if err := h.rep.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("serve: %w", err))
		}
	}
	if h.tr != nil {
		if err := h.tr.Close(); err != nil {
			errs = append(errs, fmt.Errorf("serve: close NATS: %w", err))
		}
	}
	return errors.Join(errs...)
}

// newSyncServer is the HTTP sync server of `converge serve`: it serves
// store itself, never a wrapper, so every ability of the store is served
// (snapshots for clients below the compaction horizon, the record of
// which peer holds what, the commits that wake the live streams), and
// onApply hears what clients pushed. The conformance suite runs through it
// (serve_test.go).
func newSyncServer(store transport.Store, auth httptransport.Authorizer, maxBody int64, logger *slog.Logger,
	onApply func(ns string, a transport.Applied)) (*httptransport.Server, error) {
	return httptransport.NewServer(httptransport.ServerOptions{
		Store:   store,
		OnApply: onApply,
		Auth:    auth,
		MaxBody: maxBody,
		Logger:  logger,
	})
}

// natsRoundTrip is told of every anti-entropy round trip over NATS.
func (h *hub) natsRoundTrip(_ string, took time.Duration, err error) {
	if err == nil {
		h.metrics.natsRoundTrip.observe(took)
	}
}

// applied is the HTTP server's OnApply: it is called after the ops an
// HTTP client pushed in a round trip went to the store.
func (h *hub) applied(ns string, a transport.Applied) {
	if a.Applied == 0 {
		return
	}
	h.metrics.httpApplied(ns, a.Applied)
	if b, ok := h.bridge[ns]; ok {
		b.dirty.Store(true)
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// bridgeLoop syncs ns over NATS after HTTP clients' ops are applied. A
// failed sync is retried with backoff until one succeeds: the replicator's
// own syncs start only on the hub's own commits and periodically.
func (h *hub) bridgeLoop(ns string, b *bridgeState) {
	var retry <-chan time.Time
	backoff := bridgeMinBackoff
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-b.kick:
		case <-retry:
		}
		retry = nil
		b.dirty.Store(false)
		res, err := h.rep.SyncNow(h.ctx, ns)
		h.metrics.bridgeSync(err)
		if h.ctx.Err() != nil {
			b.dirty.Store(true)
			return
		}
		if err != nil {
			b.dirty.Store(true)
			h.log.Debug("bridge sync over NATS failed; retrying", "namespace", ns, "err", err, "wait", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, bridgeMaxBackoff)
			continue
		}
		backoff = bridgeMinBackoff
		h.log.Debug("bridged HTTP writes to NATS", "namespace", ns, "sent", res.Sent, "received", res.Received)
	}
}

// The bounds of the bridge's retry backoff.
const (
	bridgeMinBackoff = 100 * time.Millisecond
	bridgeMaxBackoff = 10 * time.Second
)

// health answers /healthz: 200 when the store and the transports answer,
// 503 otherwise or while shutting down, with a JSON body saying which.
func (h *hub) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	check := func(name string, err error) {
		if err != nil {
			checks[name] = err.Error()
			ok = false
		} else {
			checks[name] = "ok"
		}
	}
	_, err := h.db.Namespaces(ctx)
	check("store", err)
	if h.syncSrv != nil {
		var err error
		if h.closing.Load() {
			err = errors.New("closing")
		}
		check("http", err)
	}
	if h.rep != nil {
		check("nats", h.rep.Health(ctx).Peer)
	}
	status := "ok"
	switch {
	case h.closing.Load():
		status, ok = "shutting down", false
	case !ok:
		status = "unhealthy"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	// A failed write is the prober's loss.
	_ = json.NewEncoder(w).Encode(struct {
		Status  string            `json:"status"`
		Replica string            `json:"replica"`
		Checks  map[string]string `json:"checks"`
	}{status, h.db.ReplicaID(), checks})
}

// redactURLs drops user info from comma-separated URLs, for logs.
func redactURLs(urls string) string {
	var out []string
	for u := range strings.SplitSeq(urls, ",") {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if i := strings.Index(u, "://"); i >= 0 && i < at {
				u = u[:i+3] + "***" + u[at:]
			}
		}
		out = append(out, u)
	}
	if urls == "" {
		return ""
	}
	return strings.Join(out, ",")
}
