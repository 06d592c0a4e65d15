package hub

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	httptransport "github.com/convergedb/converge/transport/http"
)

// DefaultListen is the listen address of `converge serve`: loopback.
// Listening on every interface (":8080") is an explicit choice.
const DefaultListen = "127.0.0.1:8080"

// Config configures a [Hub]. The zero value of each optional field means
// the default its comment gives. HTTP sync is on when TokenFile, JWT or
// Auth is set; NATS replication when NATS.URL is. A hub needs one of them.
type Config struct {
	// Dir is the directory of the hub's store, created if absent.
	// Required.
	Dir string
	// Durability of the store's writes. Zero means
	// converge.SyncEveryCommit.
	Durability converge.Durability
	// CompactInterval is the interval of the background log compaction.
	// Zero means 10 minutes; negative turns it off.
	CompactInterval time.Duration

	// TokenFile is a token file (httptransport.TokenFile) of the bearer
	// tokens of the HTTP sync endpoint. The hub reloads it when it changes
	// (see TokenCheckInterval) and on [Hub.ReloadTokens]; a revoked
	// token's live streams are closed.
	TokenFile string
	// TokenCheckInterval is how often the hub checks whether TokenFile
	// changed (its modification time, size or inode) and asks the
	// authorizers again about the tokens of the open live streams (a JWT
	// expires). Zero means 10s; negative turns the checks off
	// ([Hub.ReloadTokens] still works).
	TokenCheckInterval time.Duration
	// JWT, if set, also accepts JSON Web Tokens signed with JWT.Key
	// (httptransport.JWTAuthorizer), after the token file.
	JWT *httptransport.JWTOptions
	// Auth, if set, is asked last, after the token file and JWT.
	Auth httptransport.Authorizer
	// HTTP holds the HTTP sync server's limits (MaxBody, MaxOpsPerRequest,
	// MaxStreamsPerToken, MaxSyncsPerToken, HeartbeatInterval, Limits);
	// the hub sets Store, Auth, OnApply and Logger itself.
	HTTP httptransport.ServerOptions

	// NATS configures the replication over NATS.
	NATS NATSConfig

	// TLSCertFile and TLSKeyFile, if set, make [Hub.Serve] serve HTTPS
	// with that certificate (PEM). TLSClientCAFile, if set too, makes it
	// require client certificates signed by those CAs (mTLS).
	TLSCertFile, TLSKeyFile, TLSClientCAFile string

	// ShutdownTimeout bounds the graceful shutdown of [Hub.Serve]. Zero
	// means 30s.
	ShutdownTimeout time.Duration
	// FailureLogInterval bounds how often repeated sync failures (the
	// replicator's, the bridge's) are logged: the first at once, then one
	// line per interval with the count. Zero means 5 minutes.
	FailureLogInterval time.Duration
	// MaxPeerSeries bounds the per-peer series of
	// converge_peer_behind_ops per namespace: the peers furthest behind
	// get a series each, the rest are summed under peer="other". Zero
	// means 20; negative turns the per-peer series off.
	MaxPeerSeries int
	// Logger receives the hub's events. Nil means slog.Default().
	Logger *slog.Logger
}

// NATSConfig configures the hub's replication over NATS.
type NATSConfig struct {
	// URL lists the NATS servers, comma-separated. Empty turns NATS off.
	URL string
	// Namespaces to replicate over NATS. Required with URL.
	Namespaces []string
	// Creds is a credentials file (user JWT and NKey seed); NKeyFile an
	// NKey seed file; User and Password, or Token, plain credentials. At
	// most one of Creds, NKeyFile, User and Token.
	Creds, NKeyFile, User, Password, Token string
	// TLSCAFile holds the CA certificates that verify the NATS server
	// (and turns TLS on); TLSCertFile and TLSKeyFile, a client
	// certificate for servers that verify clients.
	TLSCAFile, TLSCertFile, TLSKeyFile string
	// InboxPrefix is the prefix of the hub's reply subjects: give each
	// site its own and permit only that.
	InboxPrefix string
	// Name is the connection name the NATS server shows. Zero means
	// "converge-serve".
	Name string
	// Prefix is the first subject tokens of the replication subjects.
	// Zero means "converge".
	Prefix string
	// Heartbeat is the interval of the hub's vector announcements. Zero
	// means 5s.
	Heartbeat time.Duration
	// SyncInterval is the interval of the periodic anti-entropy syncs.
	// Zero means 30s.
	SyncInterval time.Duration
	// Options are more connection options, after the ones above.
	Options []nats.Option
}

// withDefaults returns cfg with its defaults filled.
func (cfg Config) withDefaults() Config {
	if cfg.TokenCheckInterval == 0 {
		cfg.TokenCheckInterval = 10 * time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.MaxPeerSeries == 0 {
		cfg.MaxPeerSeries = 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NATS.Name == "" {
		cfg.NATS.Name = "converge-serve"
	}
	if cfg.NATS.Prefix == "" {
		cfg.NATS.Prefix = "converge"
	}
	if cfg.NATS.Heartbeat == 0 {
		cfg.NATS.Heartbeat = 5 * time.Second
	}
	if cfg.NATS.SyncInterval <= 0 {
		cfg.NATS.SyncInterval = 30 * time.Second
	}
	return cfg
}

// httpSync reports whether the configuration turns HTTP sync on.
func (cfg *Config) httpSync() bool {
	return cfg.TokenFile != "" || cfg.JWT != nil || cfg.Auth != nil
}

// validate checks cfg; the error says what to fix.
func (cfg *Config) validate() error {
	n := &cfg.NATS
	switch {
	case cfg.Dir == "":
		return fmt.Errorf("%w: Dir is required", ErrInvalidConfig)
	case !cfg.httpSync() && n.URL == "":
		return fmt.Errorf("%w: nothing to serve: give a token file, a JWT key or an authorizer (HTTP sync) and/or a NATS URL", ErrInvalidConfig)
	case n.URL != "" && len(n.Namespaces) == 0:
		return fmt.Errorf("%w: a NATS URL needs the namespaces to replicate over NATS", ErrInvalidConfig)
	case n.URL == "" && len(n.Namespaces) > 0:
		return fmt.Errorf("%w: namespaces are replicated over NATS: give a NATS URL too", ErrInvalidConfig)
	case n.Password != "" && n.User == "":
		return fmt.Errorf("%w: a NATS password needs a NATS user", ErrInvalidConfig)
	case (n.TLSCertFile == "") != (n.TLSKeyFile == ""):
		return fmt.Errorf("%w: the NATS TLS certificate and key go together", ErrInvalidConfig)
	case (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == ""):
		return fmt.Errorf("%w: the TLS certificate and key go together", ErrInvalidConfig)
	case cfg.TLSClientCAFile != "" && cfg.TLSCertFile == "":
		return fmt.Errorf("%w: client certificates (mTLS) need TLS: give a certificate and key", ErrInvalidConfig)
	case cfg.HTTP.MaxBody < 0:
		return fmt.Errorf("%w: the largest body must not be negative", ErrInvalidConfig)
	}
	methods := 0
	for _, s := range []string{n.Creds, n.NKeyFile, n.User, n.Token} {
		if s != "" {
			methods++
		}
	}
	if methods > 1 {
		return fmt.Errorf("%w: give one NATS authentication: credentials file, NKey, user or token", ErrInvalidConfig)
	}
	for _, ns := range n.Namespaces {
		if ns == "" || len(ns) > crdt.MaxNameLen {
			return fmt.Errorf("%w: namespace %q: want 1 to %d bytes", ErrInvalidConfig, ns, crdt.MaxNameLen)
		}
	}
	return nil
}

// natsOptions turns the NATS configuration into connection options.
func (n *NATSConfig) natsOptions(logger *slog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(n.Name),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("NATS connection lost; reconnecting", "err", err)
			}
		}),
	}
	switch {
	case n.Creds != "":
		opts = append(opts, nats.UserCredentials(n.Creds))
	case n.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(n.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("hub: NATS NKey: %w", err)
		}
		opts = append(opts, o)
	case n.User != "":
		opts = append(opts, nats.UserInfo(n.User, n.Password))
	case n.Token != "":
		opts = append(opts, nats.Token(n.Token))
	}
	if n.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(n.TLSCAFile))
	}
	if n.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(n.TLSCertFile, n.TLSKeyFile))
	}
	if n.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(n.InboxPrefix))
	}
	return append(opts, n.Options...), nil
}
