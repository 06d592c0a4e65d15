package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/hub"
	httptransport "github.com/convergedb/converge/transport/http"
)

// serveConfig is the configuration of `converge serve`: the hub's
// (package hub) and what the command adds. Every field has a flag and an
// environment variable (see parseServeConfig).
type serveConfig struct {
	Hub        hub.Config
	Listen     string
	Durability string
	LogLevel   string
	LogFormat  string
	// JWTKey is the file of the key that verifies JWTs; JWTIssuer and
	// JWTAudience are checked when set.
	JWTKey, JWTIssuer, JWTAudience string

	// listener, when set, is served instead of listening on Listen; serve
	// closes it. Tests use it to know the address before serve runs.
	listener net.Listener
}

const serveUsage = `usage: converge serve -dir DIR [-tokens FILE] [-jwt-key FILE] [-nats-url URL -namespaces NS,...] [flags]

Runs a hub (package hub): a replica with its own Pebble store in -dir that
  - answers the sync protocol over HTTP (POST /v1/sync/{ns}, POST /v1/snapshot/{ns},
    GET /v1/stream/{ns}, GET /v1/health) for the bearer tokens of the -tokens file
    and/or JSON Web Tokens signed with the -jwt-key, and/or
  - replicates the -namespaces over NATS with the other replicas on the bus.
With both, it bridges them: what HTTP clients write reaches the NATS replicas,
and what those write reaches the HTTP clients' live streams.

It listens on 127.0.0.1:8080 by default (loopback only): give -listen :8080 to
listen on every interface. With -tls-cert and -tls-key it serves HTTPS; with
-tls-client-ca too, clients must present a certificate signed by that CA (mTLS).

It also serves, on the same -listen address:
  GET /healthz   200 when the store and every transport answer, else 503 (JSON body)
  GET /metrics   Prometheus: ops, conflicts, quarantine, peers and replication state
                 per namespace, sync latency, HTTP requests, NATS counters, Go runtime
  GET /v1/admin/namespaces, GET /v1/admin/ns/{ns}   (with a token, for the
                 namespaces it grants) each namespace's vector, state hash, peers
                 and quarantine as JSON: compare replicas without stopping them

The token file has one token per line: "<token> <ns>[,<ns>...] [origins=<id>,...]",
where ns is a namespace or a pattern ending in ".>" ("acme.>"), or ">" for every
namespace, and origins, if given, are the replica ids the token may write as
(ops of any other origin are refused: one writer cannot forge another's);
blank lines and lines starting with # are ignored. The file is reloaded when it
changes (checked every -token-check-interval) and on SIGHUP; the live streams
of a token removed from it are closed. A JWT carries its grant in the claims
"ns" (a list of namespaces and patterns) and "origins", and must expire ("exp").

Every flag has an environment variable: the variable sets the default, the flag
overrides it. Prefer the environment for secrets (-nats-password, -nats-token):
flags show in the process list.

SIGHUP reloads the token file and the TLS certificate. On SIGINT or SIGTERM it
stops accepting connections, finishes the requests in progress, ends the live
streams, syncs the last HTTP writes over NATS, closes the replicator, the NATS
connection and the store (with -durability sync or group, every write it
accepted is on disk already). A second signal exits at once.

Flags:
`

// envFlag ties a flag to its environment variable.
type envFlag struct{ flag, env string }

// serveFlags declares the flags of serve on fs, writing into cfg; it
// returns the flags' environment variables and the raw -namespaces.
func serveFlags(fs interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	Int64Var(*int64, string, int64, string)
	IntVar(*int, string, int, string)
}, cfg *serveConfig, namespaces *string) []envFlag {
	var envs []envFlag
	str := func(p *string, name, env, def, usage string) {
		fs.StringVar(p, name, def, usage+" (env "+env+")")
		envs = append(envs, envFlag{name, env})
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, usage string) {
		fs.DurationVar(p, name, def, usage+" (env "+env+")")
		envs = append(envs, envFlag{name, env})
	}
	h, n := &cfg.Hub, &cfg.Hub.NATS
	str(&h.Dir, "dir", "CONVERGE_DIR", "", "the hub's store `directory` (required; created if absent)")
	str(&cfg.Listen, "listen", "CONVERGE_LISTEN", hub.DefaultListen, "HTTP listen `address` for the sync endpoint, /healthz and /metrics (\":8080\": every interface)")
	str(&h.TokenFile, "tokens", "CONVERGE_TOKENS", "", "token `file` for the HTTP sync endpoint, reloaded when it changes and on SIGHUP")
	dur(&h.TokenCheckInterval, "token-check-interval", "CONVERGE_TOKEN_CHECK_INTERVAL", 10*time.Second, "how often the token file is checked for changes and open streams' tokens revalidated (negative: only on SIGHUP)")
	str(&cfg.JWTKey, "jwt-key", "CONVERGE_JWT_KEY", "", "`file` of the key that verifies JSON Web Tokens: a PEM public key (ECDSA, RSA, Ed25519) or an HMAC secret")
	str(&cfg.JWTIssuer, "jwt-issuer", "CONVERGE_JWT_ISSUER", "", "required \"iss\" `claim` of JWTs")
	str(&cfg.JWTAudience, "jwt-audience", "CONVERGE_JWT_AUDIENCE", "", "required \"aud\" `claim` of JWTs")
	str(&h.TLSCertFile, "tls-cert", "CONVERGE_TLS_CERT", "", "TLS certificate `file` (PEM); with -tls-key, serve HTTPS")
	str(&h.TLSKeyFile, "tls-key", "CONVERGE_TLS_KEY", "", "TLS private key `file` (PEM)")
	str(&h.TLSClientCAFile, "tls-client-ca", "CONVERGE_TLS_CLIENT_CA", "", "CA certificates `file` (PEM): require client certificates signed by them (mTLS)")
	str(&cfg.Durability, "durability", "CONVERGE_DURABILITY", "sync", "durability `mode` of writes: sync (fsync each commit), group (one fsync shared by concurrent commits), none (a crash may lose the latest)")
	fs.Int64Var(&h.HTTP.MaxBody, "max-body", 0, "largest HTTP sync request body in `bytes`, compressed or not; 0 means 8 MiB (env CONVERGE_MAX_BODY)")
	envs = append(envs, envFlag{"max-body", "CONVERGE_MAX_BODY"})
	dur(&h.ShutdownTimeout, "shutdown-timeout", "CONVERGE_SHUTDOWN_TIMEOUT", 30*time.Second, "how long a graceful shutdown may take before connections are cut")
	str(&cfg.LogLevel, "log-level", "CONVERGE_LOG_LEVEL", "info", "log `level`: debug, info, warn or error")
	str(&cfg.LogFormat, "log-format", "CONVERGE_LOG_FORMAT", "text", "log `format`: text or json")
	dur(&h.FailureLogInterval, "failure-log-interval", "CONVERGE_FAILURE_LOG_INTERVAL", 5*time.Minute, "repeated sync failures are logged once per `interval` with their count (the first at once)")
	fs.IntVar(&h.MaxPeerSeries, "metrics-max-peers", 20, "per-peer series of converge_peer_behind_ops per namespace, the rest summed as peer=\"other\"; negative: none (env CONVERGE_METRICS_MAX_PEERS)")
	envs = append(envs, envFlag{"metrics-max-peers", "CONVERGE_METRICS_MAX_PEERS"})
	str(&n.URL, "nats-url", "CONVERGE_NATS_URL", "", "NATS server `URLs`, comma-separated; without it, NATS replication is off")
	str(namespaces, "namespaces", "CONVERGE_NAMESPACES", "", "`namespaces` to replicate over NATS, comma-separated (required with -nats-url)")
	str(&n.Creds, "nats-creds", "CONVERGE_NATS_CREDS", "", "NATS credentials `file` (user JWT and NKey seed)")
	str(&n.NKeyFile, "nats-nkey", "CONVERGE_NATS_NKEY", "", "NATS NKey seed `file`")
	str(&n.User, "nats-user", "CONVERGE_NATS_USER", "", "NATS `user`")
	str(&n.Password, "nats-password", "CONVERGE_NATS_PASSWORD", "", "NATS `password` (prefer the environment variable)")
	str(&n.Token, "nats-token", "CONVERGE_NATS_TOKEN", "", "NATS authentication `token` (prefer the environment variable)")
	str(&n.TLSCAFile, "nats-tls-ca", "CONVERGE_NATS_TLS_CA", "", "`file` of CA certificates to verify the NATS server (enables TLS)")
	str(&n.TLSCertFile, "nats-tls-cert", "CONVERGE_NATS_TLS_CERT", "", "client certificate `file` for NATS TLS (with -nats-tls-key)")
	str(&n.TLSKeyFile, "nats-tls-key", "CONVERGE_NATS_TLS_KEY", "", "client key `file` for NATS TLS (with -nats-tls-cert)")
	str(&n.InboxPrefix, "nats-inbox-prefix", "CONVERGE_NATS_INBOX_PREFIX", "", "inbox `prefix` for NATS replies (give each site its own and permit only that)")
	str(&n.Prefix, "nats-prefix", "CONVERGE_NATS_PREFIX", "converge", "first subject `tokens` of the replication subjects")
	str(&n.Name, "nats-name", "CONVERGE_NATS_NAME", "converge-serve", "connection `name` shown by the NATS server")
	dur(&n.Heartbeat, "nats-heartbeat", "CONVERGE_NATS_HEARTBEAT", 5*time.Second, "interval of the hub's vector announcements on NATS: replicas that missed something fetch it")
	dur(&n.SyncInterval, "sync-interval", "CONVERGE_SYNC_INTERVAL", 30*time.Second, "interval of the periodic anti-entropy sync over NATS")
	dur(&h.CompactInterval, "compact-interval", "CONVERGE_COMPACT_INTERVAL", 10*time.Minute, "interval of log compaction: ops every known peer holds are folded into base states (0 turns it off)")
	return envs
}

// parseServeConfig reads the configuration from the environment (through
// lookupEnv) and then from args, which override it.
func parseServeConfig(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (serveConfig, error) {
	var cfg serveConfig
	var namespaces string
	fs := newFlagSet("serve", stderr)
	envs := serveFlags(fs, &cfg, &namespaces)
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
			cfg.Hub.NATS.Namespaces = append(cfg.Hub.NATS.Namespaces, ns)
		}
	}
	if cfg.Hub.CompactInterval == 0 {
		cfg.Hub.CompactInterval = -1 // the flag's 0 turns compaction off
	}
	return cfg, cfg.validate()
}

// validate checks what the command adds to the hub's configuration (the
// hub checks the rest when it starts).
func (cfg *serveConfig) validate() error {
	switch {
	case cfg.Hub.Dir == "":
		return errors.New("serve: -dir (CONVERGE_DIR) is required")
	case cfg.Hub.TokenFile == "" && cfg.JWTKey == "" && cfg.Hub.NATS.URL == "":
		return errors.New("serve: nothing to serve: give -tokens or -jwt-key (HTTP sync) and/or -nats-url (NATS replication)")
	case cfg.Hub.NATS.URL != "" && len(cfg.Hub.NATS.Namespaces) == 0:
		return errors.New("serve: -nats-url needs -namespaces, the namespaces to replicate over NATS")
	case cfg.Hub.NATS.URL == "" && len(cfg.Hub.NATS.Namespaces) > 0:
		return errors.New("serve: -namespaces are replicated over NATS: give -nats-url too")
	case cfg.Hub.NATS.Password != "" && cfg.Hub.NATS.User == "":
		return errors.New("serve: -nats-password needs -nats-user")
	case (cfg.Hub.NATS.TLSCertFile == "") != (cfg.Hub.NATS.TLSKeyFile == ""):
		return errors.New("serve: -nats-tls-cert and -nats-tls-key go together")
	case (cfg.Hub.TLSCertFile == "") != (cfg.Hub.TLSKeyFile == ""):
		return errors.New("serve: -tls-cert and -tls-key go together")
	case cfg.Hub.TLSClientCAFile != "" && cfg.Hub.TLSCertFile == "":
		return errors.New("serve: -tls-client-ca needs -tls-cert and -tls-key")
	case cfg.Hub.HTTP.MaxBody < 0:
		return errors.New("serve: -max-body must not be negative")
	case cfg.Hub.ShutdownTimeout <= 0:
		return errors.New("serve: -shutdown-timeout must be positive")
	case (cfg.JWTIssuer != "" || cfg.JWTAudience != "") && cfg.JWTKey == "":
		return errors.New("serve: -jwt-issuer and -jwt-audience need -jwt-key")
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

// hubConfig returns the hub's configuration: the flags' and what the
// command reads for it (the durability, the JWT key, the logger).
func (cfg *serveConfig) hubConfig(logger *slog.Logger) (hub.Config, error) {
	hc := cfg.Hub
	hc.Durability, _ = parseDurability(cfg.Durability) // validated
	hc.Logger = logger
	if cfg.JWTKey != "" {
		key, err := httptransport.LoadJWTKey(cfg.JWTKey)
		if err != nil {
			return hc, fmt.Errorf("serve: %w", err)
		}
		hc.JWT = &httptransport.JWTOptions{Key: key, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, Leeway: time.Minute}
	}
	return hc, nil
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
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return serve(ctx, cfg, logger, hup)
}

// serve runs the hub until ctx ends, then shuts it down gracefully; a
// value on reload (SIGHUP) reloads its tokens and certificate. It returns
// nil after a clean shutdown.
func serve(ctx context.Context, cfg serveConfig, logger *slog.Logger, reload <-chan os.Signal) (err error) {
	ln := cfg.listener
	defer func() {
		if err != nil && ln != nil {
			ln.Close() // never served: nothing to report
		}
	}()
	if err := cfg.validate(); err != nil {
		return err
	}
	hc, err := cfg.hubConfig(logger)
	if err != nil {
		return err
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	h, err := hub.New(hc)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	rctx, stopReload := context.WithCancel(ctx)
	defer stopReload()
	go func() {
		for {
			select {
			case <-rctx.Done():
				return
			case <-reload:
				if err := h.Reload(ctx); err != nil {
					logger.Error("reload on SIGHUP; what was loaded before stays in force", "err", err)
				}
			}
		}
	}()
	served := ln
	ln = nil // Serve closes it
	return h.Serve(ctx, served)
}
