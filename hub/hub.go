package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/ratelog"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// Hub is a running hub: a replica with its own store that serves the
// HTTP sync protocol and/or replicates namespaces over NATS, and bridges
// the two. It is safe for concurrent use.
type Hub struct {
	cfg      Config
	log      *slog.Logger
	db       *converge.DB
	tokens   *tokenFile               // nil without a token file
	auth     httptransport.Authorizer // nil: HTTP sync off
	syncSrv  *httptransport.Server    // nil: HTTP sync off
	tr       *natstransport.Transport // nil without NATS
	rep      *converge.Replicator     // over tr
	bridge   map[string]*bridgeState  // NATS namespaces, when HTTP sync is on too
	metrics  *metrics
	failures *ratelog.Logger // the bridge's failed syncs
	tls      *tls.Config     // nil: plain HTTP
	cert     *serverCert     // the certificate tls serves
	handler  http.Handler
	stopOps  func()      // ends the DB's OnOps hook
	closing  atomic.Bool // shutting down: /healthz answers 503

	ctx  context.Context // the background work; Close cancels it
	stop context.CancelFunc
	wg   sync.WaitGroup // Run

	mu struct {
		sync.Mutex
		running, closed bool
	}
	closeOnce sync.Once
	closeErr  error
}

// New opens the hub of cfg: its store, its authorizers, the HTTP sync
// server, and the NATS connection and replicator (a NATS server that is
// not reachable yet is connected to in the background; a URL that cannot
// be dialled or refused credentials are an error). The bridge and the
// token checks run in [Hub.Run]; serve [Hub.Handler] over HTTP, or call
// [Hub.Serve]. Close it with [Hub.Close]. An invalid configuration is
// [ErrInvalidConfig].
func New(cfg Config) (_ *Hub, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, log: cfg.Logger, bridge: map[string]*bridgeState{}}
	if err := h.openAuth(); err != nil {
		return nil, err
	}
	if h.tls, h.cert, err = tlsConfig(&h.cfg); err != nil {
		return nil, err
	}
	h.metrics = newMetrics(h.auth != nil, cfg.NATS.URL != "")
	if err := h.openStore(); err != nil {
		return nil, err
	}
	h.ctx, h.stop = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			err = errors.Join(err, h.closeStore(context.Background()))
		}
	}()
	if err := h.openNATS(); err != nil {
		return nil, err
	}
	if err := h.openHTTP(); err != nil {
		return nil, err
	}
	h.metrics.reg.MustRegister(storeCollector{h})
	h.handler = h.routes()
	return h, nil
}

// openAuth loads the token file and the JWT key, if configured, and
// chains the authorizers.
func (h *Hub) openAuth() error {
	if !h.cfg.httpSync() {
		return nil
	}
	var auths []httptransport.Authorizer
	if h.cfg.TokenFile != "" {
		tf, err := loadTokenFile(h.cfg.TokenFile)
		if err != nil {
			return err
		}
		h.tokens = tf
		auths = append(auths, tf)
	}
	if h.cfg.JWT != nil {
		ja, err := httptransport.NewJWTAuthorizer(*h.cfg.JWT)
		if err != nil {
			return fmt.Errorf("hub: %w", err)
		}
		auths = append(auths, ja)
	}
	if h.cfg.Auth != nil {
		auths = append(auths, h.cfg.Auth)
	}
	h.auth = httptransport.Authorizers(auths...)
	return nil
}

// openStore opens the hub's store, with compaction and ops counted.
func (h *Hub) openStore() error {
	cfg := &h.cfg
	db, err := converge.Open(cfg.Dir, converge.Options{Durability: cfg.Durability, Logger: cfg.Logger,
		Compaction: converge.CompactionOptions{Interval: cfg.CompactInterval, Disabled: cfg.CompactInterval < 0,
			OnCompact: func(st converge.CompactStats, err error) { h.metrics.compacted(st.Ops, err) }}})
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h.db = db
	h.stopOps = db.OnOps(h.metrics.opsApplied)
	h.log = cfg.Logger.With("replica", db.ReplicaID())
	h.failures = ratelog.New(h.log, cfg.FailureLogInterval)
	return nil
}

// openNATS connects to NATS and opens the replicator, if configured.
func (h *Hub) openNATS() error {
	n := &h.cfg.NATS
	if n.URL == "" {
		return nil
	}
	opts, err := n.natsOptions(h.log)
	if err != nil {
		return err
	}
	h.tr, err = natstransport.Connect(n.URL, natstransport.Options{
		Store: h.db.SyncStore(), Prefix: n.Prefix, Heartbeat: n.Heartbeat, Logger: h.log,
		OnRoundTrip: func(_ string, took time.Duration, err error) {
			if err == nil {
				h.metrics.observeRoundTrip("nats", took)
			}
		},
	}, opts...)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h.rep, err = h.db.OpenReplicator(h.tr, converge.ReplicatorOptions{
		Namespaces: n.Namespaces, Interval: n.SyncInterval, Logger: h.log, FailureLogInterval: h.cfg.FailureLogInterval,
	})
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

// openHTTP creates the HTTP sync server, if HTTP sync is on, and the
// bridge of the namespaces replicated over NATS too.
func (h *Hub) openHTTP() error {
	if h.auth == nil {
		return nil
	}
	srv, err := newSyncServer(h.cfg.HTTP, h.db.SyncStore(), h.auth, h.log, h.applied)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h.syncSrv = srv
	if h.rep != nil {
		for _, ns := range h.cfg.NATS.Namespaces {
			h.bridge[ns] = &bridgeState{kick: make(chan struct{}, 1)}
		}
	}
	return nil
}

// newSyncServer is the hub's HTTP sync server: it serves store itself,
// never a wrapper, so every ability of the store is served (snapshots
// for clients below the compaction horizon, the record of which peer
// holds what, the commits that wake the live streams), and onApply hears
// what clients pushed. The conformance suite runs through it.
func newSyncServer(opts httptransport.ServerOptions, store transport.Store, auth httptransport.Authorizer, logger *slog.Logger,
	onApply func(ns string, a transport.Applied)) (*httptransport.Server, error) {
	opts.Store, opts.Auth, opts.OnApply, opts.Logger = store, auth, onApply, logger
	return httptransport.NewServer(opts)
}

// routes is the hub's handler: the sync protocol, the admin endpoint,
// /healthz and /metrics, instrumented.
func (h *Hub) routes() http.Handler {
	mux := http.NewServeMux()
	if h.syncSrv != nil {
		mux.Handle("/v1/", h.syncSrv)
		mux.HandleFunc("GET /v1/admin/namespaces", h.adminNamespaces)
		mux.HandleFunc("GET /v1/admin/ns/{ns}", h.adminNamespace)
	}
	mux.HandleFunc("GET /healthz", h.health)
	mux.Handle("GET /metrics", h.metrics.handler(slog.NewLogLogger(h.log.Handler(), slog.LevelWarn)))
	return h.metrics.instrument(mux)
}

// Handler returns the hub's HTTP handler: POST /v1/sync/{ns},
// POST /v1/snapshot/{ns}, GET /v1/stream/{ns}, GET /v1/health and the
// admin endpoint (GET /v1/admin/namespaces, GET /v1/admin/ns/{ns}) with
// HTTP sync on; GET /healthz and GET /metrics always. In an http.Server
// of your own, register [Hub.CloseStreams] with RegisterOnShutdown: live
// streams last until the hub ends them, and Shutdown waits for them.
func (h *Hub) Handler() http.Handler { return h.handler }

// CloseStreams ends the live streams and refuses new ones (503), as the
// shutdown of a server begins; [Hub.Close] does it too. Pass it to
// http.Server.RegisterOnShutdown.
func (h *Hub) CloseStreams() {
	h.closing.Store(true)
	if h.syncSrv != nil {
		h.syncSrv.Close()
	}
}

// DB returns the hub's store. It is the hub's: do not close it.
func (h *Hub) DB() *converge.DB { return h.db }

// Replicator returns the replicator of the NATS namespaces, or nil
// without NATS.
func (h *Hub) Replicator() *converge.Replicator { return h.rep }

// ReplicaID returns the hub's replica id.
func (h *Hub) ReplicaID() string { return h.db.ReplicaID() }
