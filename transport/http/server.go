package httptransport

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

// Defaults of [ServerOptions].
const (
	DefaultMaxBody           = 8 << 20
	DefaultHeartbeatInterval = 15 * time.Second
	// DefaultMaxOpsPerRequest is ten pages of transport's default size
	// (1000 ops): a client whose sync pages stay at the default never
	// meets it.
	DefaultMaxOpsPerRequest = 10000
	// DefaultMaxStreamsPerToken allows one device a live stream for each
	// of 16 namespaces, or 16 devices sharing a token one each.
	DefaultMaxStreamsPerToken = 16
	// DefaultMaxSyncsPerToken bounds the request bodies held in memory for
	// one token to 32 × MaxBody (256 MiB at the default MaxBody).
	DefaultMaxSyncsPerToken = 32
)

// Retry-After of the 429 answers, in seconds: a round trip frees its slot
// within a request's time, a stream only when it ends.
const (
	retryAfterSync   = "1"
	retryAfterStream = "5"
)

// gzipMinSize is the smallest body worth compressing.
const gzipMinSize = 1 << 10

// ServerOptions configure a [Server].
type ServerOptions struct {
	// Store is the replica served. Required. The server hears of its
	// commits (Store.OnCommit) and wakes the live streams itself: a
	// commit from a client, another transport or a local write reaches
	// the streams at once.
	Store transport.Store
	// OnApply, if set, is called after every round trip that pushed ops
	// (and was not refused), with the namespace and what became of the
	// ops (Applied counts those the store applied), before the answer is
	// sent. It is the hook for what a wrapped store would do (metrics, a
	// bridge to another transport): the server keeps the store itself, so
	// none of its abilities is hidden. It runs on the request's goroutine
	// and must not block for long.
	OnApply func(ns string, a transport.Applied)
	// Auth maps bearer tokens to grants. Required.
	Auth Authorizer
	// Limits cap the pages of ops answered (round trips and stream
	// frames). Zero fields mean transport's defaults (1000 ops, 1 MiB).
	Limits transport.Limits
	// MaxBody bounds a request body, on the wire and decompressed; beyond
	// it the answer is 413. Zero means DefaultMaxBody (8 MiB).
	MaxBody int64
	// MaxOpsPerRequest bounds the ops pushed in one round trip (one store
	// batch); beyond it the answer is 413 with the reason and nothing is
	// applied. Clients must keep their sync pages (transport.Limits.MaxOps
	// of the replicator) at or below it: a 413 is not retried. Zero means
	// DefaultMaxOpsPerRequest (10000); negative means no bound but the
	// message decoder's (131072).
	MaxOpsPerRequest int
	// MaxStreamsPerToken bounds the live streams open at once with one
	// bearer token. Beyond it a stream request is answered 429 with
	// Retry-After: 5 and a body naming the limit; a slot is released when
	// its stream ends (the client goes, the server closes, or a write
	// fails: a peer that vanished without closing its connection holds its
	// slot until TCP gives up on it). Zero means DefaultMaxStreamsPerToken
	// (16); negative means no bound.
	MaxStreamsPerToken int
	// MaxSyncsPerToken bounds the round trips in progress at once with one
	// bearer token, and so the request bodies held in memory for it
	// (MaxSyncsPerToken × MaxBody, decompressed). Beyond it the answer is
	// 429 with Retry-After: 1, which the client retries with backoff. Zero
	// means DefaultMaxSyncsPerToken (32); negative means no bound.
	MaxSyncsPerToken int
	// HeartbeatInterval is the longest silence on a live stream before an
	// empty frame is sent. Zero means DefaultHeartbeatInterval (15s).
	HeartbeatInterval time.Duration
	// Logger receives refused requests (Debug), stream events (Debug) and
	// server errors (Error). Nil means slog.Default().
	Logger *slog.Logger
}

// Server answers the sync protocol over HTTP: an http.Handler for the
// routes of the package doc, to mount at the root of a mux or under
// http.StripPrefix. It is safe for concurrent use. Call [Server.Close] to
// end the live streams before shutting down the http.Server.
type Server struct {
	store      transport.Store
	onApply    func(ns string, a transport.Applied)
	auth       Authorizer
	limits     transport.Limits
	maxBody    int64
	maxOps     int // per pushed request; <= 0: unbounded
	maxStreams int // per token; <= 0: unbounded
	maxSyncs   int // per token; <= 0: unbounded
	heartbeat  time.Duration
	log        *slog.Logger

	mux         *http.ServeMux
	done        chan struct{} // closed by Close
	closeOnce   sync.Once
	stopCommits func()         // ends the store's OnCommit subscription
	streams     sync.WaitGroup // live stream handlers

	mu struct {
		sync.Mutex
		closed bool
		wake   map[string]chan struct{} // per namespace, closed by a commit
		// use counts the streams and round trips in progress per token
		// (by its SHA-256: the map keeps no secret); entries at zero go.
		use map[[sha256.Size]byte]*tokenUse
		// open are the live streams being served, for Revalidate.
		open map[*liveEntry]struct{}
	}
}

// liveEntry is a live stream being served: its token and namespace, and
// how to end it.
type liveEntry struct {
	token string
	ns    string
	end   context.CancelFunc
}

// tokenUse is what one token has in progress.
type tokenUse struct{ streams, syncs int }

// NewServer returns a server for opts. It fails if Store or Auth is nil.
// It subscribes to the store's commits; [Server.Close] ends that.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("httptransport: new server: Store is required")
	}
	if opts.Auth == nil {
		return nil, errors.New("httptransport: new server: Auth is required (refusing to serve without an authorizer)")
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.Limits.MaxOps <= 0 {
		opts.Limits.MaxOps = 1000
	}
	if opts.Limits.MaxBytes <= 0 {
		opts.Limits.MaxBytes = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	orDefault := func(v, def int) int {
		if v == 0 {
			return def
		}
		return v
	}
	s := &Server{
		store:      opts.Store,
		onApply:    opts.OnApply,
		auth:       opts.Auth,
		limits:     opts.Limits,
		maxBody:    opts.MaxBody,
		maxOps:     orDefault(opts.MaxOpsPerRequest, DefaultMaxOpsPerRequest),
		maxStreams: orDefault(opts.MaxStreamsPerToken, DefaultMaxStreamsPerToken),
		maxSyncs:   orDefault(opts.MaxSyncsPerToken, DefaultMaxSyncsPerToken),
		heartbeat:  opts.HeartbeatInterval,
		log:        opts.Logger.With("component", "httptransport.server"),
		done:       make(chan struct{}),
	}
	s.mu.wake = map[string]chan struct{}{}
	s.mu.use = map[[sha256.Size]byte]*tokenUse{}
	s.mu.open = map[*liveEntry]struct{}{}
	s.mux = s.routes()
	s.stopCommits = opts.Store.OnCommit(s.committed)
	return s, nil
}

// committed is the store's commit hook: the live streams of ns look for
// new ops. It never blocks.
func (s *Server) committed(ns string) {
	s.mu.Lock()
	if ch, ok := s.mu.wake[ns]; ok {
		close(ch)
		delete(s.mu.wake, ns)
	}
	s.mu.Unlock()
}

// wakeup returns the channel the next commit to ns closes.
func (s *Server) wakeup(ns string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.mu.wake[ns]
	if !ok {
		ch = make(chan struct{})
		s.mu.wake[ns] = ch
	}
	return ch
}

// Close ends the live streams and the subscription to the store's
// commits, and waits for the stream handlers to return. Requests after
// Close are answered 503.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.stopCommits()
		s.mu.Lock()
		s.mu.closed = true
		s.mu.Unlock()
		close(s.done)
	})
	s.streams.Wait()
}

func (s *Server) closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.closed
}

// addStream registers a stream handler, unless the server is closed.
func (s *Server) addStream() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return false
	}
	s.streams.Add(1)
	return true
}

// acquire takes a stream or round-trip slot of token (stream says which),
// unless the token holds its limit of them: then it returns how many it
// holds, and false. Call release once, when the stream or round trip ends.
func (s *Server) acquire(token string, stream bool) (release func(), held int, ok bool) {
	key := sha256.Sum256([]byte(token))
	limit := s.maxSyncs
	if stream {
		limit = s.maxStreams
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.mu.use[key]
	if u == nil {
		u = &tokenUse{}
	}
	n := &u.syncs
	if stream {
		n = &u.streams
	}
	if limit > 0 && *n >= limit {
		return nil, *n, false
	}
	*n++
	s.mu.use[key] = u
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		*n--
		if u.streams == 0 && u.syncs == 0 {
			delete(s.mu.use, key)
		}
	}, 0, true
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, escapeDotNamespace(r))
}

// routes returns the server's mux: the routes of the package doc, each
// answering 405 and the method it allows to any other method.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", s.serveHealth)
	mux.HandleFunc("POST /v1/sync/{ns}", s.namespaced(s.holdingSlot(s.serveSync)))
	mux.HandleFunc("POST /v1/snapshot/{ns}", s.namespaced(s.holdingSlot(s.serveSnapshot)))
	mux.HandleFunc("GET /v1/stream/{ns}", s.namespaced(s.serveStream))
	for _, route := range []struct{ path, method string }{
		{"/v1/health", http.MethodGet},
		{"/v1/sync/{ns}", http.MethodPost},
		{"/v1/snapshot/{ns}", http.MethodPost},
		{"/v1/stream/{ns}", http.MethodGet},
	} {
		mux.HandleFunc(route.path, s.methodNotAllowed(route.method))
		if route.method == http.MethodGet {
			// A GET pattern also matches HEAD, which no route answers.
			mux.HandleFunc(http.MethodHead+" "+route.path, s.methodNotAllowed(route.method))
		}
	}
	return mux
}

// escapeDotNamespace returns r with a namespace of "." or ".." escaped
// in its path (%2E): ServeMux would clean such a segment away (and
// redirect), though the namespace is valid. Clients escape it
// themselves (escapeNamespace); earlier ones sent it as it is.
func escapeDotNamespace(r *http.Request) *http.Request {
	dir, last := path.Split(r.URL.EscapedPath())
	if last != "." && last != ".." || dir != "/v1/sync/" && dir != "/v1/snapshot/" && dir != "/v1/stream/" {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = dir+last, dir+escapeNamespace(last)
	r2.URL = &u
	return r2
}

// methodNotAllowed answers 405, naming the method the route allows.
func (s *Server) methodNotAllowed(allowed string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allowed)
		s.refuse(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed, use %s", r.Method, allowed))
	}
}

// serveHealth answers "ok" while the server is open. It needs no token.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if s.closed() {
		s.refuse(w, r, http.StatusServiceUnavailable, "closing")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok") // a failed write is the client's loss
}

// nsHandler serves a request of namespace ns, with the token's grant.
type nsHandler func(w http.ResponseWriter, r *http.Request, ns string, grant Grant)

// namespaced checks the namespace of the URL (its {ns}, unescaped), that
// the server is open, and that the token's grant holds the namespace,
// then serves.
func (s *Server) namespaced(serve nsHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(RequestIDHeader); transport.ValidRequestID(id) {
			r = r.WithContext(transport.WithRequestID(r.Context(), id))
		}
		ns := r.PathValue("ns")
		if len(ns) > crdt.MaxNameLen {
			s.refuse(w, r, http.StatusBadRequest, fmt.Sprintf("namespace of %d bytes, limit %d", len(ns), crdt.MaxNameLen))
			return
		}
		if s.closed() {
			w.Header().Set("Retry-After", "1")
			s.refuse(w, r, http.StatusServiceUnavailable, "server closing")
			return
		}
		grant, ok := s.authorize(w, r, ns)
		if !ok {
			return
		}
		serve(w, r, ns, grant)
	}
}

// holdingSlot serves while holding one of the token's round-trip slots
// (MaxSyncsPerToken), which round trips and snapshot pages share.
func (s *Server) holdingSlot(serve nsHandler) nsHandler {
	return func(w http.ResponseWriter, r *http.Request, ns string, grant Grant) {
		release, held, ok := s.acquire(bearerToken(r), false)
		if !ok {
			w.Header().Set("Retry-After", retryAfterSync)
			s.refuse(w, r, http.StatusTooManyRequests, fmt.Sprintf("too many round trips in progress with this token: %d, limit %d (ServerOptions.MaxSyncsPerToken); retry later", held, s.maxSyncs))
			return
		}
		defer release()
		serve(w, r, ns, grant)
	}
}

// refuse answers an error status with a text body saying why.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	log := s.log.With(transport.LogAttrs(r.Context())...)
	if code >= 500 && code != http.StatusServiceUnavailable {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", msg)
	} else if code == http.StatusTooManyRequests {
		log.Info("request over a limit", "method", r.Method, "path", r.URL.Path, "status", code, "reason", msg, "remote", r.RemoteAddr)
	} else {
		log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", code, "reason", msg, "remote", r.RemoteAddr)
	}
	http.Error(w, msg, code)
}

// authorize checks the bearer token's grant for ns, and answers 401, 403
// or 500 if it does not hold.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, ns string) (Grant, bool) {
	token := bearerToken(r)
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="converge"`)
		s.refuse(w, r, http.StatusUnauthorized, "missing bearer token")
		return Grant{}, false
	}
	g, err := s.auth.Authorize(r.Context(), token)
	switch {
	case errors.Is(err, ErrUnauthorized):
		w.Header().Set("WWW-Authenticate", `Bearer realm="converge", error="invalid_token"`)
		s.refuse(w, r, http.StatusUnauthorized, "invalid bearer token")
		return Grant{}, false
	case err != nil:
		s.refuse(w, r, http.StatusInternalServerError, "authorizer: "+err.Error())
		return Grant{}, false
	case !g.Allows(ns):
		s.refuse(w, r, http.StatusForbidden, fmt.Sprintf("namespace %q is not granted to this token", ns))
		return Grant{}, false
	}
	return g, true
}

func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// readBody reads the request body, decompressing it, within s.maxBody. It
// answers the error itself and returns false.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > s.maxBody {
		s.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes, limit %d", r.ContentLength, s.maxBody))
		return nil, false
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body beyond %d bytes", s.maxBody))
		} else {
			s.refuse(w, r, http.StatusBadRequest, "reading body: "+err.Error())
		}
		return nil, false
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return raw, true
	case "gzip":
		body, err := gunzip(raw, s.maxBody+1)
		if err != nil {
			s.refuse(w, r, http.StatusBadRequest, "gzip body: "+err.Error())
			return nil, false
		}
		if int64(len(body)) > s.maxBody {
			s.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("decompressed body beyond %d bytes", s.maxBody))
			return nil, false
		}
		return body, true
	default:
		s.refuse(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("content encoding %q not supported, use gzip or none", enc))
		return nil, false
	}
}

// serveSync answers one round trip of ns.
func (s *Server) serveSync(w http.ResponseWriter, r *http.Request, ns string, grant Grant) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	req, err := transport.DecodeRequest(body)
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if req.Namespace != ns {
		s.refuse(w, r, http.StatusBadRequest, fmt.Sprintf("request is of namespace %q, URL of %q", req.Namespace, ns))
		return
	}
	if s.maxOps > 0 && len(req.Ops) > s.maxOps {
		s.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request pushes %d ops, limit %d per request (ServerOptions.MaxOpsPerRequest): send smaller pages; nothing applied", len(req.Ops), s.maxOps))
		return
	}
	chk, err := s.checkPushed(r.Context(), ns, grant, req)
	switch {
	case err != nil:
		s.refuse(w, r, http.StatusInternalServerError, err.Error())
		return
	case chk.forbidden != "":
		s.refuse(w, r, http.StatusForbidden, chk.forbidden)
		return
	}
	pushed := len(req.Ops) + chk.held
	if chk.malformed != nil {
		req.Ops = nil
	}
	resp, err := transport.Serve(r.Context(), s.store, req, s.limits)
	if err != nil {
		if errors.Is(err, transport.ErrBadMessage) {
			s.refuse(w, r, http.StatusBadRequest, err.Error())
		} else {
			s.refuse(w, r, http.StatusInternalServerError, err.Error())
		}
		return
	}
	switch {
	case chk.malformed != nil:
		resp.Applied = transport.Applied{Refused: pushed, Reason: fmt.Sprintf("batch of %d ops refused: %v", pushed, chk.malformed)}
	case pushed > 0:
		resp.Applied.Duplicates += chk.held
		if s.onApply != nil {
			s.onApply(ns, resp.Applied)
		}
	}
	s.log.Debug("sync served", append([]any{"ns", ns, "pushed", pushed, "applied", resp.Applied.Applied, "sent", len(resp.Ops)},
		transport.LogAttrs(r.Context())...)...)
	s.reply(w, r, transport.AppendResponse(nil, resp))
}

// pushCheck is what the server made of the ops a request pushes.
type pushCheck struct {
	// malformed is the first op that does not decode: the batch is
	// refused (inside a 200, as the conformance suite expects).
	malformed error
	// forbidden says why the request is a 403, nothing applied; "" if not.
	forbidden string
	// held counts the ops the store held already that are of an origin
	// the token may not write as: duplicates, dropped from the request.
	held int
}

// checkPushed checks every op req pushes before the store sees any. One
// op of another namespace, or a new op of an origin the grant may not
// write as, makes the request a 403. An op the store holds already (its
// dot within the store's vector) is a duplicate whatever its origin: a
// writer re-pushes what it received from others, which forges nothing,
// since the store keeps the op it holds. Such ops are dropped from
// req.Ops and counted in held, never refused.
func (s *Server) checkPushed(ctx context.Context, ns string, grant Grant, req *transport.Request) (pushCheck, error) {
	var chk pushCheck
	var held crdt.VersionVector // the store's vector, read at the first op of another origin
	read := false
	kept := make([][]byte, 0, len(req.Ops))
	for i, raw := range req.Ops {
		op, err := crdt.DecodeOp(raw)
		if err != nil {
			if chk.malformed == nil {
				chk.malformed = fmt.Errorf("op %d: %w", i, err)
			}
			kept = append(kept, raw)
			continue
		}
		if op.Namespace != ns {
			chk.forbidden = fmt.Sprintf("op %d is of namespace %q, not %q: nothing applied", i, op.Namespace, ns)
			return chk, nil
		}
		if !grant.WritesAs(op.Dot.Origin) {
			if !read {
				if held, err = s.store.Vector(ctx, ns); err != nil {
					return chk, fmt.Errorf("reading the vector of %q: %w", ns, err)
				}
				read = true
			}
			if !held.Contains(op.Dot) {
				chk.forbidden = fmt.Sprintf("op %d claims origin %v, which this token may not write as, and is not held here: nothing applied", i, op.Dot.Origin)
				return chk, nil
			}
			chk.held++
			continue
		}
		kept = append(kept, raw)
	}
	req.Ops = kept
	return chk, nil
}

// reply writes an encoded message as a 200, gzip'd when the client
// accepts it and that pays.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, out []byte) {
	h := w.Header()
	h.Set("Content-Type", contentTypeMsg)
	h.Add("Vary", "Accept-Encoding")
	if len(out) >= gzipMinSize && acceptsGzip(r) {
		if z, ok := gzipped(out); ok {
			out = z
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.Write(out) // a failed write is the client's: it retries
}

// serveSnapshot answers one snapshot page of ns, within the server's
// Limits (MaxOps counts records).
func (s *Server) serveSnapshot(w http.ResponseWriter, r *http.Request, ns string, _ Grant) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	req, err := transport.DecodeSnapshotRequest(body)
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if req.Namespace != ns {
		s.refuse(w, r, http.StatusBadRequest, fmt.Sprintf("snapshot request is of namespace %q, URL of %q", req.Namespace, ns))
		return
	}
	resp, err := transport.ServeSnapshot(r.Context(), s.store, req, s.limits)
	switch {
	case errors.Is(err, transport.ErrBadMessage):
		s.refuse(w, r, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, errors.ErrUnsupported):
		s.refuse(w, r, http.StatusNotImplemented, err.Error())
		return
	case err != nil:
		s.refuse(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	s.reply(w, r, transport.AppendSnapshotResponse(nil, resp))
}

// acceptsGzip reports whether r's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// serveStream pushes pages of the ops of ns the client lacks, as they
// come, until the client goes, the server closes or a write fails.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, ns string, _ Grant) {
	have, err := decodeVectorParam(r.URL.Query().Get("v"))
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, err.Error())
		return
	}
	release, ok := s.admitStream(w, r)
	if !ok {
		return
	}
	defer release()
	ctx, unregister := s.register(r.Context(), bearerToken(r), ns)
	defer unregister()
	st := &liveStream{s: s, w: w, ctx: ctx, ns: ns, have: have, log: s.log.With("ns", ns, "remote", r.RemoteAddr)}
	if !st.open(r) {
		return
	}
	st.log.Debug("stream opened", "vector", have)
	defer st.log.Debug("stream closed")
	st.heartbeat = time.NewTimer(s.heartbeat)
	defer st.heartbeat.Stop()
	for st.send() && st.await() && st.read() {
	}
}

// register records a live stream of token and ns for Revalidate; the
// stream runs in ctx, which Revalidate cancels if the token is revoked.
// unregister forgets it.
func (s *Server) register(parent context.Context, token, ns string) (ctx context.Context, unregister func()) {
	ctx, cancel := context.WithCancel(parent)
	o := &liveEntry{token: token, ns: ns, end: cancel}
	s.mu.Lock()
	s.mu.open[o] = struct{}{}
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		delete(s.mu.open, o)
		s.mu.Unlock()
		cancel()
	}
}

// Revalidate asks the authorizer again about the token of every live
// stream open, and ends the streams whose token it no longer knows
// (ErrUnauthorized: revoked, expired) or whose namespace the token no
// longer grants. Call it after the authorizer's tokens changed (a token
// file reloaded): a revoked token's streams would otherwise go on until
// the client leaves. A stream ended this way finishes like one the server
// closes; the client's reconnect is then refused. Another authorizer
// error leaves the stream open. It returns how many streams it ended.
func (s *Server) Revalidate(ctx context.Context) int {
	s.mu.Lock()
	open := make([]*liveEntry, 0, len(s.mu.open))
	for o := range s.mu.open {
		open = append(open, o)
	}
	s.mu.Unlock()
	type verdict struct {
		grant Grant
		err   error
	}
	seen := map[[sha256.Size]byte]verdict{} // one question per token
	ended := 0
	for _, o := range open {
		key := sha256.Sum256([]byte(o.token))
		v, ok := seen[key]
		if !ok {
			v.grant, v.err = s.auth.Authorize(ctx, o.token)
			seen[key] = v
		}
		revoked := errors.Is(v.err, ErrUnauthorized) || v.err == nil && !v.grant.Allows(o.ns)
		if v.err != nil && !revoked {
			s.log.Warn("revalidating a stream's token", "ns", o.ns, "err", v.err)
		}
		if revoked {
			s.log.Info("ending a live stream: its token is revoked or no longer grants the namespace", "ns", o.ns)
			o.end()
			ended++
		}
	}
	return ended
}

// admitStream takes one of the token's stream slots
// (MaxStreamsPerToken) and registers the stream with the server, unless
// it is closing; release undoes both. It answers the refusal itself.
func (s *Server) admitStream(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	releaseSlot, held, ok := s.acquire(bearerToken(r), true)
	if !ok {
		w.Header().Set("Retry-After", retryAfterStream)
		s.refuse(w, r, http.StatusTooManyRequests, fmt.Sprintf("too many live streams open with this token: %d, limit %d (ServerOptions.MaxStreamsPerToken); close one or retry later", held, s.maxStreams))
		return nil, false
	}
	if !s.addStream() {
		releaseSlot()
		w.Header().Set("Retry-After", "1")
		s.refuse(w, r, http.StatusServiceUnavailable, "server closing")
		return nil, false
	}
	return func() {
		s.streams.Done()
		releaseSlot()
	}, true
}

// liveStream is one live stream being served: the page to send next, and
// what the client holds once it has the pages sent.
type liveStream struct {
	s    *Server
	w    http.ResponseWriter
	rc   *http.ResponseController
	ctx  context.Context
	ns   string
	have crdt.VersionVector
	log  *slog.Logger

	wake      <-chan struct{} // closed by the next commit to ns after the page was read
	ops       [][]byte        // the page
	more      bool            // more ops follow the page
	heartbeat *time.Timer
	beat      bool // the heartbeat is due
}

// next reads the next page, after subscribing to the next commit: no
// commit is missed.
func (st *liveStream) next() error {
	st.wake = st.s.wakeup(st.ns)
	var err error
	st.ops, st.more, err = st.s.store.Missing(st.ctx, st.ns, st.have, st.s.limits)
	return err
}

// open reads the first page, before the answer's status, so that a client
// below the compaction horizon gets a 409 (it syncs, bootstrapping from a
// snapshot, before it streams again); then it sends the status and the
// headers of a stream.
func (st *liveStream) open(r *http.Request) bool {
	s := st.s
	err := st.next()
	if errors.Is(err, transport.ErrSnapshotNeeded) {
		s.refuse(st.w, r, http.StatusConflict, fmt.Sprintf("snapshot needed: the vector is below the server's compaction horizon; sync (POST /v1/sync) to bootstrap from a snapshot, then stream again: %v", err))
		return false
	}
	if err != nil {
		if st.ctx.Err() == nil {
			s.refuse(st.w, r, http.StatusInternalServerError, "reading ops: "+err.Error())
		}
		return false
	}
	st.rc = http.NewResponseController(st.w)
	// A stream outlives any write timeout of the http.Server; a writer
	// that cannot lift it is still served.
	_ = st.rc.SetWriteDeadline(time.Time{})
	h := st.w.Header()
	h.Set("Content-Type", contentTypeStream)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	st.w.WriteHeader(http.StatusOK)
	if err := st.rc.Flush(); err != nil {
		st.log.Error("stream: cannot flush", "err", err)
		return false
	}
	return true
}

// send sends the page as a frame, if it holds ops or the heartbeat is
// due. It reports whether the stream goes on.
func (st *liveStream) send() bool {
	if len(st.ops) == 0 && !st.beat {
		return true
	}
	vec, err := st.s.store.Vector(st.ctx, st.ns)
	if err != nil {
		if st.ctx.Err() == nil {
			st.log.Error("stream: reading vector", "err", err)
		}
		return false
	}
	// Checked before sending: only ops of ns ever leave.
	if err := advance(st.have, st.ns, st.ops); err != nil {
		st.log.Error("stream: page", "err", err)
		return false
	}
	frame := appendFrame(nil, &transport.Response{Vector: vec, Ops: st.ops, More: st.more})
	if _, err := st.w.Write(frame); err != nil {
		st.log.Debug("stream: write", "err", err)
		return false
	}
	if err := st.rc.Flush(); err != nil {
		st.log.Debug("stream: flush", "err", err)
		return false
	}
	st.beat = false
	st.heartbeat.Reset(st.s.heartbeat)
	return true
}

// await waits for a reason to read again: more ops (no wait), a commit,
// or the heartbeat. It reports whether the stream goes on: not once the
// client went or the server closes.
func (st *liveStream) await() bool {
	if st.more {
		select {
		case <-st.ctx.Done():
			return false
		case <-st.s.done:
			return false
		default:
			return true
		}
	}
	select {
	case <-st.wake:
	case <-st.heartbeat.C:
		st.beat = true
	case <-st.ctx.Done():
		return false
	case <-st.s.done:
		return false
	}
	return true
}

// read reads the next page. It reports whether the stream goes on: not
// once the server compacted past what the stream sent (the client
// syncs), nor after an error.
func (st *liveStream) read() bool {
	err := st.next()
	if errors.Is(err, transport.ErrSnapshotNeeded) {
		st.log.Info("stream: the client fell below the compaction horizon; ending the stream", "err", err)
		return false
	}
	if err != nil {
		if st.ctx.Err() == nil {
			st.log.Error("stream: reading ops", "err", err)
		}
		return false
	}
	return true
}

// advance adds the dots of ops, to send on a stream of ns, to have. It fails
// if an op is not of ns or does not move have, which would loop.
func advance(have crdt.VersionVector, ns string, ops [][]byte) error {
	moved := false
	for i, raw := range ops {
		op, err := crdt.DecodeOp(raw)
		if err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
		if op.Namespace != ns {
			return fmt.Errorf("op %d is of namespace %q, not %q", i, op.Namespace, ns)
		}
		if d := op.Dot; d.Seq > have[d.Origin] {
			have[d.Origin] = d.Seq
			moved = true
		}
	}
	if len(ops) > 0 && !moved {
		return fmt.Errorf("%d ops sent that the vector already covered", len(ops))
	}
	return nil
}
