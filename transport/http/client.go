package httptransport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/backoff"
	"github.com/convergedb/converge/transport"
)

// Defaults of [ClientOptions].
const (
	DefaultMaxRetries = 5
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	// MaxRetryAfter caps the wait a server's Retry-After asks for.
	MaxRetryAfter = 5 * time.Minute
)

// maxErrorBody bounds the text kept of an error response.
const maxErrorBody = 4 << 10

// ClientOptions configure a [Client].
type ClientOptions struct {
	// BaseURL is the server's root, such as "https://sync.example.com" or
	// "http://host/prefix" for a server mounted under a prefix. Required.
	BaseURL string
	// Token is sent as "Authorization: Bearer <Token>". Empty sends none.
	Token string
	// HTTPClient makes the requests. Nil means a client with connect,
	// TLS and response-header timeouts and no overall timeout (streams are
	// long-lived); bound round trips with their ctx. A client's Timeout
	// also ends streams.
	HTTPClient *http.Client
	// MaxRetries bounds the retries of one round trip. Zero means
	// DefaultMaxRetries (5); negative means none.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// retries: before retry n (from 0) the client waits a uniformly random
	// duration in [0, min(MaxBackoff, MinBackoff·2ⁿ)] ("full jitter"), or
	// the server's Retry-After if longer (at most MaxRetryAfter). Zero means
	// DefaultMinBackoff (100ms) and DefaultMaxBackoff (10s).
	MinBackoff, MaxBackoff time.Duration
	// RetryStatuses are the HTTP statuses a round trip retries (Brick's
	// reattempt codes); network errors are always retried. Nil means 429
	// and every 5xx but 501 (a server that cannot serve snapshots will
	// not learn to); an empty non-nil slice retries no status.
	RetryStatuses []int
	// Rand is the jitter source; the client locks around it. Nil means
	// one seeded from the time.
	Rand *rand.Rand
	// Logger receives retries (Warn) and stream events (Debug). Nil means
	// slog.Default().
	Logger *slog.Logger
}

// ClientStats count what a [Client] did.
type ClientStats struct {
	Requests      int64 // HTTP requests made (round trip attempts and streams)
	Retries       int64 // round trip attempts that were retries
	BytesSent     int64 // request body bytes, on the wire (after compression)
	BytesReceived int64 // response body bytes, on the wire (before decompression)
}

// StatusError is an HTTP error status answered by the server. It matches
// (errors.Is) ErrUnauthorized for 401, ErrForbidden for 403, ErrTooLarge
// for 413, ErrTooManyRequests for 429 and transport.ErrSnapshotNeeded for
// 409 (a stream asked for below the server's compaction horizon).
type StatusError struct {
	Code    int
	Message string // the response body, trimmed
	// RetryAfter is the server's Retry-After (at most MaxRetryAfter), or 0.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("httptransport: %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// Is reports whether target is the sentinel of e's status.
func (e *StatusError) Is(target error) bool {
	switch e.Code {
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	case http.StatusForbidden:
		return target == ErrForbidden
	case http.StatusRequestEntityTooLarge:
		return target == ErrTooLarge
	case http.StatusTooManyRequests:
		return target == ErrTooManyRequests
	case http.StatusConflict:
		return target == transport.ErrSnapshotNeeded
	}
	return false
}

// defaultRetryStatus reports whether a status is worth retrying by
// default: 5xx but 501 (a server that cannot serve snapshots will not
// learn to), and 429.
func defaultRetryStatus(code int) bool {
	return code >= 500 && code != http.StatusNotImplemented || code == http.StatusTooManyRequests
}

// retryStatus returns the test of ClientOptions.RetryStatuses.
func retryStatus(codes []int) func(int) bool {
	if codes == nil {
		return defaultRetryStatus
	}
	set := make(map[int]bool, len(codes))
	for _, c := range codes {
		set[c] = true
	}
	return func(code int) bool { return set[code] }
}

// Client is the client side of the HTTP transport: a [transport.Peer]
// that carries round trips and snapshot pages, with a live path
// ([Client.Stream]) that does not publish (the replicator's syncs carry
// this replica's commits to the server). It is safe for concurrent use.
type Client struct {
	base       string
	token      string
	hc         *http.Client
	maxRetries int
	retryable  func(status int) bool // ClientOptions.RetryStatuses
	retryWaits *backoff.Jitter       // the waits between retries
	log        *slog.Logger

	requests, retries, sent, received atomic.Int64
}

// NewClient returns a client for opts. It fails if BaseURL is not an
// absolute http or https URL.
func NewClient(opts ClientOptions) (*Client, error) {
	u, err := url.Parse(opts.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("httptransport: new client: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("httptransport: new client: base URL %q: want http(s)://host[/prefix]", opts.BaseURL)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = defaultHTTPClient()
	}
	switch {
	case opts.MaxRetries == 0:
		opts.MaxRetries = DefaultMaxRetries
	case opts.MaxRetries < 0:
		opts.MaxRetries = 0
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Client{
		base:       strings.TrimRight(u.String(), "/"),
		token:      opts.Token,
		hc:         opts.HTTPClient,
		maxRetries: opts.MaxRetries,
		retryable:  retryStatus(opts.RetryStatuses),
		retryWaits: backoff.New(backoff.Policy{Min: opts.MinBackoff, Max: opts.MaxBackoff}, opts.Rand),
		log:        opts.Logger.With("component", "httptransport.client", "peer", u.Host),
	}, nil
}

func defaultHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // the client handles gzip itself, to count wire bytes
	}}
}

// Stats returns the counts so far.
func (c *Client) Stats() ClientStats {
	return ClientStats{
		Requests:      c.requests.Load(),
		Retries:       c.retries.Load(),
		BytesSent:     c.sent.Load(),
		BytesReceived: c.received.Load(),
	}
}

// backoff returns the jittered wait before retry n (from 0): uniformly
// random in [0, min(MaxBackoff, MinBackoff·2ⁿ)].
func (c *Client) backoff(n int) time.Duration { return c.retryWaits.Wait(n) }

// RoundTrip implements transport.Peer: it POSTs req to /v1/sync/{ns}.
// Network errors and the statuses of ClientOptions.RetryStatuses (by
// default 5xx but 501, and 429) are retried up to MaxRetries times with
// backoff; other statuses are returned at once as a *StatusError (see its
// sentinels), as are malformed responses (transport.ErrBadMessage) and the
// end of ctx.
func (c *Client) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	var resp *transport.Response
	err := c.post(ctx, "sync", req.Namespace, transport.AppendRequest(nil, req), func(b []byte) (err error) {
		resp, err = transport.DecodeResponse(b)
		return err
	})
	return resp, err
}

// PageLimits implements [transport.Peer]: no bound of the client's own.
// The server's MaxOpsPerRequest bounds what one round trip may push; keep
// the replicator's transport.Limits within it.
func (c *Client) PageLimits() transport.Limits { return transport.Limits{} }

// Health implements [transport.Peer]: it GETs /v1/health, once, and
// returns nil if the server answers 200: the server can be reached now.
// It says nothing of the token (the route needs none); the replicator
// probes with it to resume syncing as soon as the server is back
// (converge.ReplicatorOptions.ProbeInterval).
func (c *Client) Health(ctx context.Context) error {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/health", nil)
	if err != nil {
		return fmt.Errorf("httptransport: health check: %w", err)
	}
	c.requests.Add(1)
	hresp, err := c.hc.Do(hreq)
	if err != nil {
		return fmt.Errorf("httptransport: health check: %w", err)
	}
	defer hresp.Body.Close() // drained below, or abandoned: nothing to report
	if hresp.StatusCode != http.StatusOK {
		return fmt.Errorf("httptransport: health check: %w", readStatusError(hresp))
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(hresp.Body, maxErrorBody)) // drained for reuse of the connection
	c.received.Add(n)
	return nil
}

// Live implements [transport.Peer]: the live stream of [Client.Stream].
func (c *Client) Live() transport.Live { return clientLive{c} }

// clientLive is a client's live path: it streams, it does not publish,
// and it has no long-lived connection whose reconnections to report (a
// stream that ends is reopened by the replicator).
type clientLive struct{ c *Client }

func (l clientLive) Stream(ctx context.Context, ns string, have func() crdt.VersionVector, apply func(ops [][]byte) error) error {
	return l.c.Stream(ctx, ns, have, apply)
}

func (clientLive) PublishesCommits() bool { return false }

func (clientLive) OnReconnect(func()) (stop func()) { return func() {} }

// Snapshot implements [transport.Peer]: it POSTs req to
// /v1/snapshot/{ns} and returns the page, with the retries of RoundTrip.
func (c *Client) Snapshot(ctx context.Context, req *transport.SnapshotRequest) (*transport.SnapshotResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	var resp *transport.SnapshotResponse
	err := c.post(ctx, "snapshot", req.Namespace, transport.AppendSnapshotRequest(nil, req), func(b []byte) (err error) {
		resp, err = transport.DecodeSnapshotResponse(b)
		return err
	})
	return resp, err
}

// post sends body to /v1/{route}/{ns}, retrying as RoundTrip says, and
// passes the answer's body to decode.
func (c *Client) post(ctx context.Context, route, ns string, body []byte, decode func([]byte) error) error {
	encoding := ""
	if len(body) >= gzipMinSize {
		if z, ok := gzipped(body); ok {
			body, encoding = z, "gzip"
		}
	}
	u := c.base + "/v1/" + route + "/" + escapeNamespace(ns)
	for attempt := 0; ; attempt++ {
		retryAfter, err := c.try(ctx, u, body, encoding, decode)
		if err == nil {
			c.log.Debug(route, append([]any{"ns", ns, "attempts", attempt + 1}, transport.LogAttrs(ctx)...)...)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("httptransport: %s %q: %w", route, ns, ctx.Err())
		}
		var temp bool
		if se, ok := errors.AsType[*StatusError](err); ok {
			temp = c.retryable(se.Code)
		} else {
			_, temp = errors.AsType[*netError](err)
		}
		if !temp {
			return fmt.Errorf("httptransport: %s %q: %w", route, ns, err)
		}
		if attempt >= c.maxRetries {
			return fmt.Errorf("httptransport: %s %q: giving up after %d attempts: %w", route, ns, attempt+1, err)
		}
		wait := c.retryWaits.WaitAtLeast(attempt, min(retryAfter, MaxRetryAfter))
		c.retries.Add(1)
		c.log.Warn("retrying "+route, append([]any{"ns", ns, "attempt", attempt + 1, "wait", wait, "err", err}, transport.LogAttrs(ctx)...)...)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("httptransport: %s %q: %w (while retrying: %w)", route, ns, ctx.Err(), err)
		}
	}
}

// netError marks a failure to reach the server or to read its answer:
// worth a retry.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// try makes one attempt of a POST and decodes the answer's body. It
// returns the Retry-After the server asked for, if any.
func (c *Client) try(ctx context.Context, u string, body []byte, encoding string, decode func([]byte) error) (time.Duration, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	hreq.Header.Set("Content-Type", contentTypeMsg)
	hreq.Header.Set("Accept", contentTypeMsg)
	setRequestID(hreq)
	hreq.Header.Set("Accept-Encoding", "gzip")
	if encoding != "" {
		hreq.Header.Set("Content-Encoding", encoding)
	}
	c.authorize(hreq)
	c.requests.Add(1)
	c.sent.Add(int64(len(body)))
	hresp, err := c.hc.Do(hreq)
	if err != nil {
		return 0, &netError{err}
	}
	defer hresp.Body.Close() // fully read or abandoned: nothing to report
	if hresp.StatusCode != http.StatusOK {
		se := readStatusError(hresp)
		c.received.Add(int64(len(se.Message)))
		return se.RetryAfter, se
	}
	data, err := io.ReadAll(io.LimitReader(hresp.Body, transport.MaxMessageSize+1))
	c.received.Add(int64(len(data)))
	if err != nil {
		return 0, &netError{fmt.Errorf("reading response: %w", err)}
	}
	switch enc := strings.ToLower(hresp.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		if data, err = gunzip(data, transport.MaxMessageSize+1); err != nil {
			return 0, fmt.Errorf("%w: gzip response: %w", transport.ErrBadMessage, err)
		}
	default:
		return 0, fmt.Errorf("%w: response content encoding %q", transport.ErrBadMessage, enc)
	}
	return 0, decode(data)
}

// setRequestID sends the request id of r's context, if any.
func setRequestID(r *http.Request) {
	if id := transport.RequestID(r.Context()); id != "" {
		r.Header.Set(RequestIDHeader, id)
	}
}

func (c *Client) authorize(r *http.Request) {
	if c.token != "" {
		r.Header.Set("Authorization", "Bearer "+c.token)
	}
}

func readStatusError(r *http.Response) *StatusError {
	b, _ := io.ReadAll(io.LimitReader(r.Body, maxErrorBody)) // a partial message is still a message
	return &StatusError{Code: r.StatusCode, Message: strings.TrimSpace(string(b)), RetryAfter: min(retryAfter(r.Header.Get("Retry-After")), MaxRetryAfter)}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date. It
// returns 0 if absent or unparsable.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return min(time.Duration(n)*time.Second, MaxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// ErrStreamEnded is returned by [Client.Stream] when the server ended the
// stream (it closed, or restarted).
var ErrStreamEnded = errors.New("httptransport: stream ended by the server")

// Stream opens the live stream of namespace ns with the vector have
// returns (nil: from the beginning) and calls apply with the ops of each
// frame, in order, as they come; empty frames (heartbeats) are skipped.
// apply owns the ops it is given. Stream returns nil when ctx ends, and an
// error when the server refuses the stream (a *StatusError; 429, with its
// RetryAfter, when the token holds its limit of streams), the
// connection fails or ends (ErrStreamEnded) or apply fails: the caller
// reconnects, with the vector it then holds. Stream does not retry.
func (c *Client) Stream(ctx context.Context, ns string, have func() crdt.VersionVector, apply func(ops [][]byte) error) error {
	var v crdt.VersionVector
	if have != nil {
		v = have()
	}
	u := c.base + "/v1/stream/" + escapeNamespace(ns) + "?v=" + encodeVectorParam(v)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("httptransport: stream %q: %w", ns, err)
	}
	hreq.Header.Set("Accept", contentTypeStream)
	setRequestID(hreq)
	c.authorize(hreq)
	c.requests.Add(1)
	hresp, err := c.hc.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("httptransport: stream %q: %w", ns, err)
	}
	defer hresp.Body.Close() // abandoned on return: nothing to report
	if hresp.StatusCode != http.StatusOK {
		return fmt.Errorf("httptransport: stream %q: %w", ns, readStatusError(hresp))
	}
	c.log.Debug("stream opened", "ns", ns)
	for {
		fr, n, err := readFrame(hresp.Body)
		c.received.Add(int64(n))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				err = ErrStreamEnded
			}
			return fmt.Errorf("httptransport: stream %q: %w", ns, err)
		}
		if len(fr.Ops) == 0 {
			continue
		}
		if err := apply(fr.Ops); err != nil {
			return fmt.Errorf("httptransport: stream %q: apply: %w", ns, err)
		}
	}
}
