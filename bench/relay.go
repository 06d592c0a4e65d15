package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The raw HTTP relay is the baseline of the HTTP scenarios: what a team
// would hand-roll to move the same op bytes between the same replicas
// without Converge. A bare net/http hub stores each op's bytes in raw
// Pebble and fans them out on chunked streams; the writer and the
// receivers store them in their own raw Pebble. No vectors, no states, no
// merge, no auth, no gzip, no retries: a lower bound for moving and storing
// the same bytes over the same loopback HTTP.
//
// Wire format: a body or stream frame is ops, each a uvarint length and
// the op's bytes. Stream frames are preceded by a 4-byte big-endian length.
// Ops are numbered from 0 in the order the hub stored them; the hub's
// Pebble keys are 'L' + the number (8 bytes big-endian).

const (
	relayPageOps   = 1000    // ops per POST or page, at most (Converge's page size)
	relayPageBytes = 1 << 20 // bytes per POST or page, about
)

// appendOps appends ops in the relay's wire format.
func appendOps(b []byte, ops [][]byte) []byte {
	for _, op := range ops {
		b = binary.AppendUvarint(b, uint64(len(op)))
		b = append(b, op...)
	}
	return b
}

// decodeOps splits a body in the relay's wire format into ops (aliasing b).
func decodeOps(b []byte) ([][]byte, error) {
	var ops [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errors.New("relay: malformed ops")
		}
		ops = append(ops, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	return ops, nil
}

// relayKey is the key of op number n.
func relayKey(b []byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b[:0], 'L'), n)
}

// relayStore is a raw Pebble holding ops by number.
type relayStore struct {
	*rawStore
	wo *pebble.WriteOptions
}

// put stores ops as numbers from, from+1, ... in one batch.
func (s *relayStore) put(from uint64, ops [][]byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	var k []byte
	for i, op := range ops {
		k = relayKey(k, from+uint64(i))
		if err := b.Set(k, op, nil); err != nil {
			return fmt.Errorf("relay batch: %w", err)
		}
	}
	if err := b.Commit(s.wo); err != nil {
		return fmt.Errorf("relay commit: %w", err)
	}
	return nil
}

// page reads the ops numbered from (inclusive) to (exclusive), at most
// relayPageOps of them and about maxBytes, in the wire format, and returns
// how many it read.
func (s *relayStore) page(from, to uint64, maxBytes int) ([]byte, int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: relayKey(nil, from), UpperBound: relayKey(nil, to)})
	if err != nil {
		return nil, 0, fmt.Errorf("relay page: %w", err)
	}
	var out []byte
	n := 0
	for ok := it.First(); ok && n < relayPageOps; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, 0, fmt.Errorf("relay page: %w", err)
		}
		if n > 0 && len(out)+len(v)+binary.MaxVarintLen64 > maxBytes {
			break
		}
		out = binary.AppendUvarint(out, uint64(len(v)))
		out = append(out, v...)
		n++
	}
	if err := it.Close(); err != nil {
		return nil, 0, fmt.Errorf("relay page: %w", err)
	}
	return out, n, nil
}

// relayHub is the relay's hub: POST /publish[?at=n] stores ops and fans
// them out, GET /stream streams every op published from then on, GET
// /ops?from=a&to=b answers a page of the stored ops.
type relayHub struct {
	store  *relayStore
	http   *http.Server
	url    string
	served chan error
	done   chan struct{}

	mu     sync.Mutex // serializes publishes: storage and fan-out order
	next   uint64     // number of the next op published without ?at
	subs   map[chan []byte]struct{}
	closed bool
}

// startRelayHub opens the hub's raw Pebble in dir and serves it on a free
// loopback port.
func startRelayHub(dir string, sync bool) (*relayHub, error) {
	rs, err := openRawPebble(dir)
	if err != nil {
		return nil, fmt.Errorf("relay hub: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rs.Close()
		return nil, fmt.Errorf("relay hub: listen: %w", err)
	}
	h := &relayHub{
		store: &relayStore{rawStore: rs, wo: writeOptions(sync)},
		url:   "http://" + ln.Addr().String(), served: make(chan error, 1), done: make(chan struct{}),
		subs: map[chan []byte]struct{}{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /publish", h.publish)
	mux.HandleFunc("GET /stream", h.stream)
	mux.HandleFunc("GET /ops", h.ops)
	h.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { h.served <- h.http.Serve(ln) }()
	return h, nil
}

// load stores ops directly, as numbers from, from+1, ... (setup, untimed).
func (h *relayHub) load(from uint64, ops [][]byte) error {
	for i := 0; i < len(ops); i += relayPageOps {
		if err := h.store.put(from+uint64(i), ops[i:min(i+relayPageOps, len(ops))]); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.next = max(h.next, from+uint64(len(ops)))
	h.mu.Unlock()
	return nil
}

func (h *relayHub) publish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ops, err := decodeOps(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	at := h.next
	if s := r.URL.Query().Get("at"); s != "" {
		if at, err = strconv.ParseUint(s, 10, 64); err != nil {
			http.Error(w, "bad at", http.StatusBadRequest)
			return
		}
	} else {
		h.next += uint64(len(ops))
	}
	if err := h.store.put(at, ops); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for ch := range h.subs {
		select {
		case ch <- body:
		case <-h.done:
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *relayHub) stream(w http.ResponseWriter, r *http.Request) {
	ch := make(chan []byte, 4096)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		http.Error(w, "closing", http.StatusServiceUnavailable)
		return
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	var hdr [4]byte
	for {
		select {
		case body := <-ch:
			// Write what is queued, then flush once.
			for more := true; more; {
				binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
				if _, err := w.Write(hdr[:]); err != nil {
					return
				}
				if _, err := w.Write(body); err != nil {
					return
				}
				select {
				case body = <-ch:
				default:
					more = false
				}
			}
			if err := rc.Flush(); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		}
	}
}

func (h *relayHub) ops(w http.ResponseWriter, r *http.Request) {
	from, err1 := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
	to, err2 := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
	if err1 != nil || err2 != nil || to < from {
		http.Error(w, "bad range", http.StatusBadRequest)
		return
	}
	body, n, err := h.store.page(from, to, relayPageBytes)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("X-Ops", strconv.Itoa(n))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body) // a failed write is the client's
}

// Close stops the hub and closes its store.
func (h *relayHub) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	close(h.done)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := h.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, h.http.Close())
	}
	if serr := <-h.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, h.store.Close())
}

// relayClient talks to a relay hub and counts the body bytes it moves.
type relayClient struct {
	url   string
	hc    *http.Client
	bytes int64 // request and response bodies; guarded by mu
	mu    sync.Mutex
}

func newRelayClient(url string) *relayClient {
	return &relayClient{url: url, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}}}
}

func (c *relayClient) count(n int) {
	c.mu.Lock()
	c.bytes += int64(n)
	c.mu.Unlock()
}

// wireBytes returns the body bytes moved so far.
func (c *relayClient) wireBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// close releases the client's idle connections.
func (c *relayClient) close() { c.hc.CloseIdleConnections() }

// publish POSTs ops (at most a page) to the hub; at >= 0 numbers them from at.
func (c *relayClient) publish(ctx context.Context, ops [][]byte, at int64) error {
	u := c.url + "/publish"
	if at >= 0 {
		u += "?at=" + strconv.FormatInt(at, 10)
	}
	body := appendOps(nil, ops)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("relay publish: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("relay publish: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body) // to reuse the connection
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("relay publish: %s", resp.Status)
	}
	c.count(len(body))
	return nil
}

// fetch GETs the ops numbered from..to-1, page by page, calling each with
// every page.
func (c *relayClient) fetch(ctx context.Context, from, to uint64, each func(ops [][]byte) error) error {
	for from < to {
		u := fmt.Sprintf("%s/ops?from=%d&to=%d", c.url, from, to)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return fmt.Errorf("relay fetch: %w", err)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return fmt.Errorf("relay fetch: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("relay fetch: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("relay fetch: %s: %s", resp.Status, bytes.TrimSpace(body))
		}
		c.count(len(body))
		ops, err := decodeOps(body)
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			return fmt.Errorf("relay fetch: no ops from %d (want up to %d)", from, to)
		}
		if err := each(ops); err != nil {
			return err
		}
		from += uint64(len(ops))
	}
	return nil
}

// subscribe opens the hub's stream and calls each with the ops of every
// frame until ctx ends (nil) or the stream fails. ready is called once the
// hub has registered the stream.
func (c *relayClient) subscribe(ctx context.Context, ready func(), each func(ops [][]byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/stream", nil)
	if err != nil {
		return fmt.Errorf("relay stream: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("relay stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("relay stream: %s", resp.Status)
	}
	ready()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay stream: %w", err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(br, body); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay stream: %w", err)
		}
		c.count(4 + len(body))
		ops, err := decodeOps(body)
		if err != nil {
			return err
		}
		if err := each(ops); err != nil {
			return err
		}
	}
}
