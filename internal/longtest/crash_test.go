//go:build unix

package longtest_test

// Crash safety under SIGKILL. A test re-executes its own binary as a child
// (TestCrashHelper, selected by CONVERGE_CRASH_CHILD) that writes to, or
// ingests remote batches into, a store on disk and prints one line per
// acknowledged write. The parent reads those lines (the only
// synchronization), kills the child with SIGKILL at a random moment, and
// checks the store it left: nothing acknowledged is missing, a write in
// flight is there whole or not at all, the version vector is exactly what
// the log holds, and the state is the state the log rebuilds. Then it
// restarts the child on the same store, many times.
//
// In most lives the child also compacts its log as it goes (a goroutine
// beside the writers or the ingesting loop, woken by each acknowledgement),
// to its vector, in small batches, so kills land inside compactions too.
// The log then holds, per origin, exactly the ops above the horizon, and the
// stored state is the base states merged with the log: the checks read the
// horizon and the base states along with the log, and a horizon that a
// later synced write made durable must survive the kill.
//
// Kill timing and compaction are the only randomness; the seed is logged
// and can be set with CONVERGE_CRASH_SEED. CONVERGE_CRASH_ITERATIONS sets
// the number of kills per scenario (default 30, 5 with -short).

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
	"github.com/convergedb/converge/transport"
)

const (
	crashEnvChild  = "CONVERGE_CRASH_CHILD"  // the child's role: "writer" or "ingest"
	crashEnvDir    = "CONVERGE_CRASH_DIR"    // the store the child opens
	crashEnvConfig = "CONVERGE_CRASH_CONFIG" // a crashConfig, as JSON

	crashNS     = "crash"
	crashPrefix = "CRASH " // marks the child's protocol lines on stdout

	crashMaxWrites = 1 << 20 // a writer child's bound, should nobody kill it
)

// crashConfig is what the parent tells a child.
type crashConfig struct {
	Seed       uint64
	Iter       int
	Durability converge.Durability
	Writers    int    // writer: concurrent writer goroutines, each with its own ids
	OpsFile    string // ingest: the source's ops, in delivery order
	MaxBatch   int    // ingest: ops per Apply, at most
	Compact    bool   // compact the log while writing or ingesting
}

// crashLine is one protocol line of a child. Kinds: "open" (about to open
// the store), "ready" (opened), "try" (a write is about to be made; Writes
// is the state of every record it touches once it is made), "ack" (the
// write N of writer W returned nil), "done" (ingest: everything applied),
// "compact" (compaction N to horizon Vector, Ops per batch, begins),
// "compacted" (it returned: Ops dropped in Batches, the horizon is now
// Vector), "fail" (the child failed outside its test goroutine, with Err).
// An ingest "ack" carries the vector the store reached.
type crashLine struct {
	Kind    string            `json:"k"`
	W       int               `json:"w,omitempty"`
	N       int               `json:"n,omitempty"`
	Op      string            `json:"op,omitempty"`
	Writes  []crashWrite      `json:"writes,omitempty"`
	Ops     int               `json:"ops,omitempty"`
	Applied int               `json:"applied,omitempty"`
	Batches int               `json:"b,omitempty"`
	Vector  map[string]uint64 `json:"vv,omitempty"`
	Err     string            `json:"err,omitempty"`
}

// crashWrite is a record's state after a write: its fields (P is the
// length of the padding), or deleted.
type crashWrite struct {
	ID  string `json:"id"`
	V   string `json:"v,omitempty"`
	N   int64  `json:"n,omitempty"`
	P   int    `json:"p,omitempty"`
	Del bool   `json:"del,omitempty"`
}

// crashRec is the writer scenario's record. P is padding, some KiB at
// times, so that memtables fill and kills land around flushes too.
type crashRec struct {
	ID   string `msgpack:"-" converge:"id"`
	V    string `msgpack:"v"`
	N    int64  `msgpack:"n" converge:"counter"`
	P    string `msgpack:"p"`
	Meta converge.Meta
}

func (r crashRec) String() string {
	return fmt.Sprintf("{v:%s n:%d p:%d bytes}", r.V, r.N, len(r.P))
}

func (w crashWrite) rec() crashRec {
	return crashRec{ID: w.ID, V: w.V, N: w.N, P: strings.Repeat("p", w.P)}
}

// crashSrcRec and crashLedger are the ingest scenario's records: each
// transaction creates K records tagged with its id, points the first record
// of its origin's previous transaction at itself, and adds K to its
// origin's ledger, so a half-applied transaction shows.
type crashSrcRec struct {
	ID   string `msgpack:"-" converge:"id"`
	Tx   string `msgpack:"tx"`
	K    int64  `msgpack:"k"`
	V    string `msgpack:"v"`
	Meta converge.Meta
}

type crashLedger struct {
	ID   string `msgpack:"-" converge:"id"`
	N    int64  `msgpack:"n" converge:"counter"`
	Last string `msgpack:"last"`
	Meta converge.Meta
}

func crashLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func crashIterations(t *testing.T) int {
	if s := os.Getenv("CONVERGE_CRASH_ITERATIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CONVERGE_CRASH_ITERATIONS=%q: want a positive integer", s)
		}
		return n
	}
	if testing.Short() {
		return 5
	}
	return 30
}

func crashSeed(t *testing.T) uint64 {
	seed := rand.Uint64()
	if s := os.Getenv("CONVERGE_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CONVERGE_CRASH_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (rerun with CONVERGE_CRASH_SEED=%d)", seed, seed)
	return seed
}

// ---- the child ----

// TestCrashHelper is the child process of the crash tests; it does nothing
// unless CONVERGE_CRASH_CHILD is set.
func TestCrashHelper(t *testing.T) {
	role := os.Getenv(crashEnvChild)
	if role == "" {
		t.Skip("the child of TestCrashWriterSIGKILL and TestCrashIngestSIGKILL; runs only when " + crashEnvChild + " is set")
	}
	dir := os.Getenv(crashEnvDir)
	var cfg crashConfig
	if err := json.Unmarshal([]byte(os.Getenv(crashEnvConfig)), &cfg); err != nil {
		t.Fatalf("%s: %v", crashEnvConfig, err)
	}
	out := &crashOut{w: os.Stdout}
	switch role {
	case "writer":
		crashWriterChild(t, dir, cfg, out)
	case "ingest":
		crashIngestChild(t, dir, cfg, out)
	default:
		t.Fatalf("%s=%q: unknown role", crashEnvChild, role)
	}
}

// crashOut writes protocol lines to the parent, each in one write(2) of
// less than PIPE_BUF bytes: a line is read whole or not at all.
type crashOut struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *crashOut) emit(l crashLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	b = append(append([]byte(crashPrefix), b...), '\n')
	if len(b) > 4096 {
		return fmt.Errorf("protocol line of %d bytes: beyond PIPE_BUF", len(b))
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err = o.w.Write(b)
	return err
}

// fail reports an error of a goroutine that is not the test's: the parent
// fails the test on it (t.Errorf would be lost when the parent kills the
// child).
func (o *crashOut) fail(err error) {
	msg := err.Error()
	if len(msg) > 2048 {
		msg = msg[:2048] + "..."
	}
	o.emit(crashLine{Kind: "fail", Err: msg})
}

// crashVV returns vv keyed by replica id strings, as protocol lines carry
// it.
func crashVV(vv crdt.VersionVector) map[string]uint64 {
	out := make(map[string]uint64, len(vv))
	for o, seq := range vv {
		if seq > 0 {
			out[o.String()] = seq
		}
	}
	return out
}

// crashCompactor compacts the child's log: to its vector, or a little
// below it at times (so the log keeps a tail), in batches of 1 to 50 ops,
// sometimes asking Pebble to reclaim the space at once. The child has no
// peers: the horizon is given explicitly.
type crashCompactor struct {
	db  *converge.DB
	out *crashOut
	rng *rand.Rand
	n   int
}

// round runs one compaction, between a "compact" and a "compacted" line,
// if the log holds ops it may fold.
func (c *crashCompactor) round(ctx context.Context) error {
	l := c.db.Admin().Log()
	vv, err := l.Vector(ctx, crashNS)
	if err != nil {
		return err
	}
	h, err := l.Horizon(ctx, crashNS) // only this compactor moves it
	if err != nil {
		return err
	}
	var lag uint64
	if c.rng.IntN(3) == 0 {
		lag = uint64(c.rng.IntN(40))
	}
	opts := oplog.CompactOptions{Horizon: crdt.VersionVector{}, BatchOps: 1 + c.rng.IntN(50), Reclaim: c.rng.IntN(10) == 0}
	work := false
	for o, seq := range vv {
		if seq > lag {
			opts.Horizon[o] = seq - lag
			work = work || seq-lag > h[o]
		}
	}
	if !work {
		return nil
	}
	c.n++
	if err := c.out.emit(crashLine{Kind: "compact", N: c.n, Ops: opts.BatchOps, Vector: crashVV(opts.Horizon)}); err != nil {
		return err
	}
	st, err := l.Compact(ctx, crashNS, opts)
	if err != nil {
		return fmt.Errorf("compaction %d to %v in batches of %d: %w", c.n, opts.Horizon, opts.BatchOps, err)
	}
	return c.out.emit(crashLine{Kind: "compacted", N: c.n, Ops: st.Ops, Batches: st.Batches, Vector: crashVV(st.After)})
}

// start runs the compactor in a goroutine: a round at once (the ops of
// earlier lives), then one after each kick, so that compactions are under
// way when kills come, which is just after an acknowledgement. kick never
// blocks; stop ends the goroutine and waits for it (once; later calls do
// nothing).
func (c *crashCompactor) start(ctx context.Context) (kick, stop func()) {
	kicks, done := make(chan struct{}, 1), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if err := c.round(ctx); err != nil {
				c.out.fail(err)
				return
			}
			select {
			case <-kicks:
			case <-done:
				return
			}
		}
	})
	kick = func() {
		select {
		case kicks <- struct{}{}:
		default: // a round is pending already
		}
	}
	return kick, sync.OnceFunc(func() { close(done); wg.Wait() })
}

// crashWriterOf returns the writer goroutine that owns record id ("w<n>-...").
func crashWriterOf(id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, "w")
	if !ok {
		return 0, false
	}
	n, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	w, err := strconv.Atoi(n)
	return w, err == nil
}

func crashWriterChild(t *testing.T, dir string, cfg crashConfig, out *crashOut) {
	ctx := t.Context()
	if err := out.emit(crashLine{Kind: "open"}); err != nil {
		t.Fatal(err)
	}
	db, err := converge.Open(dir, converge.Options{Durability: cfg.Durability, Logger: crashLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	recs, err := converge.NewCollection[crashRec](db, "recs")
	if err != nil {
		t.Fatal(err)
	}
	ws := make([]*crashWriter, cfg.Writers)
	for w := range ws {
		ws[w] = &crashWriter{w: w, cfg: cfg, out: out, db: db, recs: recs,
			rng: rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.Iter)<<8|uint64(w))), live: map[string]crashRec{}}
	}
	owner := func(id string) *crashWriter {
		w, ok := crashWriterOf(id)
		if !ok || w >= len(ws) {
			t.Fatalf("record %q belongs to no writer", id)
		}
		return ws[w]
	}
	for r, err := range recs.All(ctx, crashNS) {
		if err != nil {
			t.Fatal(err)
		}
		s := owner(r.ID)
		s.live[r.ID] = r
		s.keys = append(s.keys, r.ID)
	}
	for e, err := range db.Admin().Log().Records(ctx, crashNS, "recs") {
		if err != nil {
			t.Fatal(err)
		}
		if !e.State.Exists() {
			s := owner(e.Key)
			s.deleted = append(s.deleted, e.Key)
		}
	}
	if err := out.emit(crashLine{Kind: "ready"}); err != nil {
		t.Fatal(err)
	}
	stop := func() {}
	if cfg.Compact {
		c := &crashCompactor{db: db, out: out, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.Iter)<<8|0xff))}
		var kick func()
		kick, stop = c.start(ctx)
		for _, s := range ws {
			s.kick = kick
		}
	}
	var wg sync.WaitGroup
	for _, s := range ws {
		wg.Go(func() {
			if err := s.run(t); err != nil {
				out.fail(fmt.Errorf("writer %d: %w", s.w, err))
				t.Errorf("writer %d: %v", s.w, err)
			}
		})
	}
	wg.Wait()
	stop()
}

// crashWriter is one writer goroutine of the child, the only writer of the
// records whose ids start with "w<w>-".
type crashWriter struct {
	w    int
	cfg  crashConfig
	out  *crashOut
	db   *converge.DB
	recs *converge.Collection[crashRec]
	rng  *rand.Rand
	kick func() // wakes the compactor; nil if there is none

	live    map[string]crashRec
	keys    []string // the ids in live
	deleted []string // ids of deleted records, for re-creation
}

// pickLive returns a random live id not in used, or "".
func (s *crashWriter) pickLive(used map[string]bool) string {
	for range 8 {
		if len(s.keys) == 0 {
			return ""
		}
		if id := s.keys[s.rng.IntN(len(s.keys))]; !used[id] {
			return id
		}
	}
	return ""
}

// pickNew returns an id that is not live: sometimes a deleted one.
func (s *crashWriter) pickNew(n, j int, used map[string]bool) string {
	if len(s.deleted) > 0 && s.rng.IntN(3) == 0 {
		if id := s.deleted[s.rng.IntN(len(s.deleted))]; !used[id] {
			return id
		}
	}
	return fmt.Sprintf("w%d-%d-%d-%d", s.w, s.cfg.Iter, n, j)
}

func (s *crashWriter) apply(ws []crashWrite) {
	for _, w := range ws {
		_, existed := s.live[w.ID]
		if w.Del {
			delete(s.live, w.ID)
			s.keys = slices.DeleteFunc(s.keys, func(k string) bool { return k == w.ID })
			s.deleted = append(s.deleted, w.ID)
			continue
		}
		if !existed {
			s.keys = append(s.keys, w.ID)
			s.deleted = slices.DeleteFunc(s.deleted, func(k string) bool { return k == w.ID })
		}
		s.live[w.ID] = w.rec()
	}
}

// padLen returns the length of a written record's padding.
func (s *crashWriter) padLen() int {
	if s.rng.IntN(3) == 0 {
		return (1 + s.rng.IntN(24)) << 10
	}
	return 0
}

func (s *crashWriter) run(t *testing.T) error {
	ctx := t.Context()
	for n := 1; n <= crashMaxWrites; n++ {
		val := fmt.Sprintf("i%d.w%d.n%d", s.cfg.Iter, s.w, n)
		line := crashLine{Kind: "try", W: s.w, N: n}
		var do func() error
		r := s.rng.IntN(100)
		switch {
		case len(s.keys) == 0 || r < 25:
			p := s.padLen()
			rec := crashRec{ID: s.pickNew(n, 0, nil), V: val, P: strings.Repeat("p", p)}
			line.Op, line.Writes = "put-new", []crashWrite{{ID: rec.ID, V: val, P: p}}
			do = func() error { _, err := s.recs.Put(ctx, crashNS, &rec); return err }
		case r < 45:
			cur := s.live[s.pickLive(nil)]
			p := s.padLen()
			rec := crashRec{ID: cur.ID, V: val, N: cur.N, P: strings.Repeat("p", p)}
			line.Op, line.Writes = "put", []crashWrite{{ID: rec.ID, V: val, N: cur.N, P: p}}
			do = func() error { _, err := s.recs.Put(ctx, crashNS, &rec); return err }
		case r < 65:
			cur := s.live[s.pickLive(nil)]
			d := int64(1 + s.rng.IntN(5))
			line.Op, line.Writes = "update", []crashWrite{{ID: cur.ID, V: val, N: cur.N + d, P: len(cur.P)}}
			do = func() error {
				return s.recs.Update(ctx, crashNS, cur.ID, converge.Set("v", val), converge.Increment("n", d))
			}
		case r < 77 || len(s.keys) > 150 && r < 90:
			id := s.pickLive(nil)
			line.Op, line.Writes = "delete", []crashWrite{{ID: id, Del: true}}
			do = func() error { return s.recs.Delete(ctx, crashNS, id) }
		default:
			line.Op = "tx"
			type step struct {
				kind string
				rec  crashRec
				d    int64
			}
			var steps []step
			used := map[string]bool{}
			for j := range 2 + s.rng.IntN(4) {
				v := fmt.Sprintf("%s.%d", val, j)
				st := step{kind: "put-new"}
				switch q := s.rng.IntN(10); {
				case q < 4:
					if id := s.pickLive(used); id != "" {
						cur := s.live[id]
						st = step{kind: "update", rec: crashRec{ID: id, V: v, N: cur.N, P: cur.P}, d: int64(1 + s.rng.IntN(5))}
						st.rec.N += st.d
					}
				case q < 6:
					if id := s.pickLive(used); id != "" {
						st = step{kind: "delete", rec: crashRec{ID: id}}
					}
				}
				if st.kind == "put-new" {
					st.rec = crashRec{ID: s.pickNew(n, j, used), V: v, P: strings.Repeat("p", s.padLen())}
				}
				used[st.rec.ID] = true
				steps = append(steps, st)
				line.Writes = append(line.Writes, crashWrite{ID: st.rec.ID, V: st.rec.V, N: st.rec.N, P: len(st.rec.P), Del: st.kind == "delete"})
			}
			do = func() error {
				return s.db.Update(ctx, crashNS, func(tx *converge.Tx) error {
					rt := s.recs.Tx(tx)
					for _, st := range steps {
						var err error
						switch st.kind {
						case "put-new":
							rec := st.rec
							_, err = rt.Put(&rec)
						case "update":
							err = rt.Update(st.rec.ID, converge.Set("v", st.rec.V), converge.Increment("n", st.d))
						case "delete":
							err = rt.Delete(st.rec.ID)
						}
						if err != nil {
							return fmt.Errorf("%s %s: %w", st.kind, st.rec.ID, err)
						}
					}
					return nil
				})
			}
		}
		if err := s.out.emit(line); err != nil {
			return err
		}
		if err := do(); err != nil {
			return fmt.Errorf("write %d (%s): %w", n, line.Op, err)
		}
		if err := s.out.emit(crashLine{Kind: "ack", W: s.w, N: n}); err != nil {
			return err
		}
		s.apply(line.Writes)
		if s.kick != nil {
			s.kick()
		}
	}
	return nil
}

func crashIngestChild(t *testing.T, dir string, cfg crashConfig, out *crashOut) {
	ctx := t.Context()
	raws := crashReadOps(t, cfg.OpsFile)
	dots := make([]crdt.Dot, len(raws))
	for i, b := range raws {
		op, err := crdt.DecodeOp(b)
		if err != nil {
			t.Fatalf("op %d of %s: %v", i, cfg.OpsFile, err)
		}
		dots[i] = op.Dot
	}
	if err := out.emit(crashLine{Kind: "open"}); err != nil {
		t.Fatal(err)
	}
	db, err := converge.Open(dir, converge.Options{Durability: converge.SyncEveryCommit, Logger: crashLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if err := out.emit(crashLine{Kind: "ready"}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.Iter)))
	// The compactor runs beside the Apply calls: ops re-sent below the
	// horizon must still be taken for duplicates.
	kick, stop := func() {}, func() {}
	if cfg.Compact {
		c := &crashCompactor{db: db, out: out, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.Iter)|1<<63))}
		kick, stop = c.start(ctx)
	}
	defer stop() // before the deferred Close
	store := db.SyncStore()
	minOps := 1
	for n := 1; ; n++ {
		vv, err := db.Admin().Vector(ctx, crashNS)
		if err != nil {
			t.Fatal(err)
		}
		var missing, held [][]byte
		for i, d := range dots {
			if d.Seq > vv[d.Origin.String()] {
				missing = append(missing, raws[i])
			} else {
				held = append(held, raws[i])
			}
		}
		if len(missing) == 0 {
			stop()
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := out.emit(crashLine{Kind: "done"}); err != nil {
				t.Fatal(err)
			}
			return
		}
		// The next ops in delivery order: the batch may end inside a
		// transaction (Ingest holds that one back), and sometimes carries
		// ops the store holds already.
		k := min(max(1+rng.IntN(cfg.MaxBatch), minOps), len(missing))
		batch := slices.Clone(missing[:k])
		if len(held) > 0 && rng.IntN(5) == 0 {
			for range 1 + rng.IntN(3) {
				batch = append(batch, held[rng.IntN(len(held))])
			}
		}
		a, err := store.Apply(ctx, crashNS, batch)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if a.Err != nil {
			t.Fatalf("Apply refused an op: %v", a.Err)
		}
		minOps = 1
		if a.Applied == 0 {
			minOps = k + 1 // the batch ended inside its first transaction
		}
		vv, err = db.Admin().Vector(ctx, crashNS)
		if err != nil {
			t.Fatal(err)
		}
		if err := out.emit(crashLine{Kind: "ack", N: n, Ops: len(batch), Applied: a.Applied, Vector: vv}); err != nil {
			t.Fatal(err)
		}
		kick()
	}
}

func crashWriteOps(t *testing.T, path string, raws [][]byte) {
	var b []byte
	for _, r := range raws {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func crashReadOps(t *testing.T, path string) [][]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			t.Fatalf("%s: malformed", path)
		}
		out = append(out, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	return out
}

// ---- the parent ----

// crashChild is a running child process.
type crashChild struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan crashLine
	stderr bytes.Buffer // written by exec until Wait returns

	mu    sync.Mutex
	other []string // stdout lines that are not protocol lines
}

func startCrashChild(t *testing.T, role, dir string, cfg crashConfig) *crashChild {
	t.Helper()
	cj, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &crashChild{t: t, lines: make(chan crashLine, 1<<16)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1", "-test.timeout=10m")
	c.cmd.Env = append(os.Environ(), crashEnvChild+"="+role, crashEnvDir+"="+dir, crashEnvConfig+"="+string(cj))
	c.cmd.Stderr = &c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil { // the test failed with the child running
			c.cmd.Process.Kill()
			for range c.lines {
			}
			c.cmd.Wait()
		}
	})
	go func() {
		defer close(c.lines)
		br := bufio.NewReaderSize(stdout, 64<<10)
		for {
			s, err := br.ReadString('\n')
			if err != nil {
				if s != "" {
					c.note("(partial line) " + s)
				}
				return
			}
			s = strings.TrimSuffix(s, "\n")
			rest, ok := strings.CutPrefix(s, crashPrefix)
			if !ok {
				c.note(s)
				continue
			}
			var l crashLine
			if err := json.Unmarshal([]byte(rest), &l); err != nil {
				c.note("(malformed) " + s)
				continue
			}
			c.lines <- l
		}
	}()
	return c
}

func (c *crashChild) note(s string) {
	c.mu.Lock()
	c.other = append(c.other, s)
	c.mu.Unlock()
}

// crashPlan is when to kill: Delay after the Acks-th "ack" line, or after
// the "open" line if Acks is 0 (a kill during open and recovery, or soon
// after).
type crashPlan struct {
	Acks  int
	Delay time.Duration
}

func randomPlan(rng *rand.Rand, maxAcks int, maxDelay time.Duration) crashPlan {
	if rng.IntN(8) == 0 {
		return crashPlan{Delay: time.Duration(rng.Int64N(int64(10 * time.Millisecond)))}
	}
	return crashPlan{Acks: 1 + rng.IntN(maxAcks), Delay: time.Duration(rng.Int64N(int64(maxDelay)))}
}

// run feeds the child's lines to onLine until the plan's moment, kills the
// child with SIGKILL, feeds the lines it wrote before it died, and waits
// for it. It reports whether the kill ended the child; false means the
// child exited successfully before it.
func (c *crashChild) run(plan crashPlan, onLine func(crashLine)) (killed bool) {
	t := c.t
	t.Helper()
	watchdog := time.NewTimer(2 * time.Minute)
	defer watchdog.Stop()
	acks := 0
	for fire := false; !fire; {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return c.wait(false)
			}
			c.failed(l)
			onLine(l)
			switch l.Kind {
			case "open":
				fire = plan.Acks == 0
			case "ack":
				acks++
				fire = plan.Acks > 0 && acks >= plan.Acks
			}
		case <-watchdog.C:
			c.cmd.Process.Kill()
			c.wait(true)
			t.Fatalf("child still running after 2 minutes without reaching the moment of its kill\n%s", c.output())
		}
	}
	time.Sleep(plan.Delay) // the moment of the crash: the thing under test
	kerr := c.cmd.Process.Kill()
	for l := range c.lines {
		c.failed(l)
		onLine(l)
	}
	return c.wait(kerr == nil)
}

// failed fails the test on a "fail" line.
func (c *crashChild) failed(l crashLine) {
	if l.Kind != "fail" {
		return
	}
	c.t.Helper()
	c.cmd.Process.Kill()
	for range c.lines {
	}
	c.cmd.Wait()
	c.t.Fatalf("child: %s\n%s", l.Err, c.output())
}

func (c *crashChild) wait(killSent bool) bool {
	t := c.t
	t.Helper()
	for range c.lines { // EOF first: Wait closes the pipe
	}
	err := c.cmd.Wait()
	if bytes.Contains(c.stderr.Bytes(), []byte("WARNING: DATA RACE")) {
		// A killed child never gets to fail its test for it.
		t.Fatalf("data race in the child\n%s", c.output())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return false
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL && killSent {
			return true
		}
	}
	t.Fatalf("child failed: %v\n%s", err, c.output())
	return false
}

func (c *crashChild) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("child stdout:\n%s\nchild stderr:\n%s", strings.Join(c.other, "\n"), c.stderr.String())
}

// crashOpen opens a store the parent inspects.
func crashOpen(t *testing.T, dir string) *converge.DB {
	t.Helper()
	db, err := converge.Open(dir, converge.Options{Logger: crashLogger()})
	if err != nil {
		t.Fatalf("Open after SIGKILL: %v", err)
	}
	return db
}

// crashVerify checks that the stored state of ns is the state its base
// states and log rebuild, and that StateHash reports it.
func crashVerify(t *testing.T, db *converge.DB, when string) {
	t.Helper()
	v, err := db.Admin().Verify(t.Context(), crashNS)
	if err != nil {
		t.Fatalf("%s: Verify: %v", when, err)
	}
	if !v.OK() {
		t.Fatalf("%s: stored state differs from the state rebuilt from the base states and the log: stored %s (%d records), rebuilt %s (%d records)",
			when, v.StoredHash, v.StoredCount, v.LogHash, v.LogCount)
	}
	h, err := db.Admin().StateHash(t.Context(), crashNS)
	if err != nil {
		t.Fatal(err)
	}
	if h != v.StoredHash {
		t.Fatalf("%s: StateHash %s, Verify's stored hash %s", when, h, v.StoredHash)
	}
}

// crashRebuild rebuilds the stored state from the base states and the log
// and checks that the state hash did not change.
func crashRebuild(t *testing.T, db *converge.DB, when string) string {
	t.Helper()
	before, err := db.Admin().StateHash(t.Context(), crashNS)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Admin().Log().Rebuild(t.Context(), crashNS); err != nil {
		t.Fatalf("%s: Rebuild: %v", when, err)
	}
	after, err := db.Admin().StateHash(t.Context(), crashNS)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("%s: state hash %s before Rebuild, %s after", when, before, after)
	}
	crashVerify(t, db, when+", after Rebuild")
	return after
}

type crashRawEntry struct {
	op  crdt.Op
	raw []byte
}

// crashRaw is what crashRawScan read of a namespace.
type crashRaw struct {
	vv, horizon crdt.VersionVector
	logs        map[crdt.ReplicaID][]crashRawEntry // per origin, the ops above the horizon, in seq order
	bases       int                                // base states: the folded ops' records
}

// crashRawScan reads the op log, the vector, the compaction horizon and the
// base states of ns straight from Pebble (read-only, the store closed) and
// checks that they agree: each origin's log holds exactly the seqs in
// (horizon, vector], each under its own dot, and ends with the end of a
// transaction; no horizon passes the vector; ops were folded only if base
// states hold them.
func crashRawScan(t *testing.T, dir, ns, when string) crashRaw {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, Logger: crashPebbleLogger{}})
	if err != nil {
		t.Fatalf("%s: open Pebble read-only: %v", when, err)
	}
	defer db.Close()
	var enc []byte // the key encoding of a string (oplog/keys.go)
	for i := 0; i < len(ns); i++ {
		if ns[i] == 0 {
			enc = append(enc, 0, 0xff)
		} else {
			enc = append(enc, ns[i])
		}
	}
	enc = append(enc, 0, 1)
	scan := func(tag byte, fn func(k, v []byte)) {
		lo := append([]byte{tag}, enc...)
		hi := append([]byte{tag}, enc...)
		hi[len(hi)-1]++ // the terminator's last byte is 1
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			t.Fatal(err)
		}
		for it.First(); it.Valid(); it.Next() {
			fn(it.Key()[len(lo):], it.Value())
		}
		if err := it.Close(); err != nil {
			t.Fatalf("%s: scan: %v", when, err)
		}
	}
	r := crashRaw{vv: crdt.VersionVector{}, horizon: crdt.VersionVector{}, logs: map[crdt.ReplicaID][]crashRawEntry{}}
	scan('L', func(k, v []byte) {
		if len(k) != 24 {
			t.Fatalf("%s: log key %x: want origin and seq", when, k)
		}
		d := crdt.Dot{Origin: crdt.ReplicaID(k[:16]), Seq: binary.BigEndian.Uint64(k[16:])}
		raw := bytes.Clone(v)
		op, err := crdt.DecodeOp(raw)
		if err != nil {
			t.Fatalf("%s: log entry %v: %v", when, d, err)
		}
		if op.Dot != d || op.Namespace != ns {
			t.Fatalf("%s: op %v of %q stored under %v of %q", when, op.Dot, op.Namespace, d, ns)
		}
		r.logs[d.Origin] = append(r.logs[d.Origin], crashRawEntry{op: op, raw: raw})
	})
	scan('V', func(k, v []byte) {
		if len(k) != 16 || len(v) != 8 {
			t.Fatalf("%s: vector entry %x = %x", when, k, v)
		}
		r.vv[crdt.ReplicaID(k)] = binary.BigEndian.Uint64(v)
	})
	scan('H', func(k, v []byte) {
		if len(k) != 16 || len(v) != 8 {
			t.Fatalf("%s: horizon entry %x = %x", when, k, v)
		}
		r.horizon[crdt.ReplicaID(k)] = binary.BigEndian.Uint64(v)
	})
	scan('B', func(k, v []byte) {
		if _, err := crdt.DecodeRecord(v); err != nil {
			t.Fatalf("%s: base state %q: %v", when, k, err)
		}
		r.bases++
	})
	origins := map[crdt.ReplicaID]bool{}
	for _, m := range []crdt.VersionVector{r.vv, r.horizon} {
		for o := range m {
			origins[o] = true
		}
	}
	for o := range r.logs {
		origins[o] = true
	}
	for origin := range origins {
		h, top, es := r.horizon[origin], r.vv[origin], r.logs[origin]
		if h > top {
			t.Fatalf("%s: horizon of %v at %d, beyond the vector's %d", when, origin, h, top)
		}
		for i, e := range es {
			if e.op.Dot.Seq != h+uint64(i+1) {
				t.Fatalf("%s: log of %v holds seq %d at position %d above the horizon %d: not dense, or ops at or below the horizon left in it",
					when, origin, e.op.Dot.Seq, i+1, h)
			}
		}
		if uint64(len(es)) != top-h {
			t.Fatalf("%s: log of %v holds %d ops above the horizon %d, the vector says %d (want seqs %d..%d)", when, origin, len(es), h, top, h+1, top)
		}
		if len(es) > 0 && !es[len(es)-1].op.TxEnd {
			t.Fatalf("%s: log of %v ends at seq %d inside a transaction", when, origin, top)
		}
	}
	if r.horizon.Sum() > 0 && r.bases == 0 {
		t.Fatalf("%s: horizon %v: ops folded, but no base states", when, r.horizon)
	}
	return r
}

type crashPebbleLogger struct{}

func (crashPebbleLogger) Infof(string, ...any) {}
func (crashPebbleLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (crashPebbleLogger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// ---- the writer scenario ----

func TestCrashWriterSIGKILL(t *testing.T) {
	iters := crashIterations(t)
	seed := crashSeed(t)
	for _, mode := range []struct {
		name       string
		durability converge.Durability
		writers    int
	}{
		{"SyncEveryCommit", converge.SyncEveryCommit, 1},
		{"GroupCommit", converge.GroupCommit, 3}, // it fsyncs before it acknowledges: acked writes survive too
	} {
		t.Run(mode.name, func(t *testing.T) {
			crashWriterScenario(t, seed, iters, mode.durability, mode.writers)
		})
	}
}

// crashModel is what the parent knows of the writer child's records: the
// acknowledged state of each writer's records, and each writer's write in
// flight (tried, not acknowledged).
//
// And what it knows of the compaction horizon. A compaction commits without
// fsync; a write tried after it returned commits after it, in the same
// write-ahead log, so once that write is in the store (acknowledged, or
// found there after the kill) the compaction is durable too: the horizon
// the store shows after the kill is at least the durable one.
type crashModel struct {
	live       []map[string]crashRec
	pending    []*crashLine
	ops        uint64          // ops of the writes known to be in the store
	replicas   map[string]bool // the ids the replica had
	identities int             // new ids taken after a kill

	compacting bool                // a "compact" line without its "compacted"
	compacted  map[string]uint64   // the horizon the last compaction reached
	tryHorizon []map[string]uint64 // per writer: compacted when its write in flight was tried
	durable    map[string]uint64   // the horizon made durable by writes after it

	acked, inflightKept, inflightLost, verified int
	compactions, opsCompacted                   int
	// Checks: of a compacted store; that found the horizon risen since
	// the last; whose durable horizon had risen (the check had teeth).
	checksCompacted, horizonRose, durableRose int
	horizon                                   uint64 // ops below the horizon at the last check
}

func (m *crashModel) observe(t *testing.T, l crashLine) {
	t.Helper()
	switch l.Kind {
	case "try":
		if m.pending[l.W] != nil {
			t.Fatalf("writer %d tried write %d before write %d was acknowledged", l.W, l.N, m.pending[l.W].N)
		}
		m.pending[l.W] = &l
		m.tryHorizon[l.W] = m.compacted
	case "ack":
		p := m.pending[l.W]
		if p == nil || p.N != l.N {
			t.Fatalf("writer %d acknowledged write %d, not the one in flight (%v)", l.W, l.N, p)
		}
		m.apply(l.W, p.Writes)
		m.pending[l.W] = nil
		m.acked++
		crashRaise(m.durable, m.tryHorizon[l.W])
	case "compact":
		m.compacting = true
	case "compacted":
		if !crashCovers(l.Vector, m.compacted) {
			t.Fatalf("compaction %d left the horizon at %v, below the %v reached before", l.N, l.Vector, m.compacted)
		}
		m.compacting = false
		m.compacted = l.Vector
		m.compactions++
		m.opsCompacted += l.Ops
	}
}

func crashCount(b bool) int {
	if b {
		return 1
	}
	return 0
}

func crashSum(vv map[string]uint64) (n uint64) {
	for _, seq := range vv {
		n += seq
	}
	return n
}

// crashRaise raises vv to the pointwise maximum of vv and o.
func crashRaise(vv, o map[string]uint64) {
	for k, seq := range o {
		vv[k] = max(vv[k], seq)
	}
}

// crashCovers reports whether vv is at least o everywhere.
func crashCovers(vv, o map[string]uint64) bool {
	for k, seq := range o {
		if vv[k] < seq {
			return false
		}
	}
	return true
}

func (m *crashModel) apply(w int, ws []crashWrite) {
	for _, x := range ws {
		if x.Del {
			delete(m.live[w], x.ID)
		} else {
			m.live[w][x.ID] = x.rec()
		}
	}
	m.ops += uint64(len(ws)) // each record written is one op
}

// diff describes how got differs from want.
func crashDiff(want, got map[string]crashRec) string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[id]
		switch {
		case !ok:
			fmt.Fprintf(&b, "\n  %s: want %+v, missing", id, want[id])
		case g != want[id]:
			fmt.Fprintf(&b, "\n  %s: want %+v, got %+v", id, want[id], g)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[id]; !ok {
			fmt.Fprintf(&b, "\n  %s: want absent, got %+v", id, got[id])
		}
	}
	return b.String()
}

// check opens the store the killed child left and checks it against the
// model; it settles each write in flight as made or not.
func (m *crashModel) check(t *testing.T, dir string, it int) {
	t.Helper()
	when := fmt.Sprintf("after SIGKILL %d", it)
	ctx := t.Context()
	db := crashOpen(t, dir)
	recs, err := converge.NewCollection[crashRec](db, "recs")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]map[string]crashRec, len(m.live))
	for w := range got {
		got[w] = map[string]crashRec{}
	}
	for r, err := range recs.All(ctx, crashNS) {
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		w, ok := crashWriterOf(r.ID)
		if !ok || w >= len(got) {
			t.Fatalf("%s: record %q belongs to no writer", when, r.ID)
		}
		r.Meta = converge.Meta{} // compared as values, without the version read
		got[w][r.ID] = r
	}
	for w := range m.live {
		if maps.Equal(got[w], m.live[w]) {
			if m.pending[w] != nil {
				m.inflightLost++
			}
			m.pending[w] = nil
			continue
		}
		p := m.pending[w]
		if p != nil {
			with := maps.Clone(m.live[w])
			for _, x := range p.Writes {
				if x.Del {
					delete(with, x.ID)
				} else {
					with[x.ID] = x.rec()
				}
			}
			if maps.Equal(got[w], with) {
				m.apply(w, p.Writes)
				m.pending[w] = nil
				m.inflightKept++
				crashRaise(m.durable, m.tryHorizon[w])
				continue
			}
			t.Fatalf("%s: writer %d's records are neither its acknowledged writes nor them plus its write in flight "+
				"(write %d, %s of %d records: a partial transaction?).\nAgainst the acknowledged writes:%s\nAgainst them plus the write in flight:%s",
				when, w, p.N, p.Op, len(p.Writes), crashDiff(m.live[w], got[w]), crashDiff(with, got[w]))
		}
		t.Fatalf("%s: writer %d's records differ from its acknowledged writes (no write in flight):%s", when, w, crashDiff(m.live[w], got[w]))
	}
	m.verified += m.acked
	vv, err := db.Admin().Vector(ctx, crashNS)
	if err != nil {
		t.Fatal(err)
	}
	// A store that may have lost ops it handed out (a kill in GroupCommit
	// or NoSync mode) continues under a new replica id: the vector sums
	// the ops of every id the replica had.
	if m.replicas == nil {
		m.replicas = map[string]bool{}
	}
	m.replicas[db.ReplicaID()] = true
	if c := db.Admin().IdentityChange(); c != nil {
		m.replicas[c.Old.String()] = true
		m.identities++
	}
	if m.ops > 0 {
		if got := crashSum(vv); got != m.ops {
			t.Fatalf("%s: vector %v sums to %d, want %d (the ops of the writes in the store)", when, vv, got, m.ops)
		}
		for origin := range vv {
			if !m.replicas[origin] {
				t.Fatalf("%s: vector %v has origin %s, never this replica's id", when, vv, origin)
			}
		}
	} else if len(vv) != 0 {
		t.Fatalf("%s: vector %v, want empty", when, vv)
	}
	h, err := db.Admin().Log().Horizon(ctx, crashNS)
	if err != nil {
		t.Fatal(err)
	}
	crashVerify(t, db, when) // base states ⊔ log = stored state; Rebuild runs at the end
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if m.ops == 0 {
		return
	}
	raw := crashRawScan(t, dir, crashNS, when)
	horizon := crashVV(raw.horizon)
	if !maps.Equal(horizon, crashVV(h)) {
		t.Fatalf("%s: Pebble holds horizon %v, the log reported %v", when, raw.horizon, h)
	}
	if !crashCovers(horizon, m.durable) {
		t.Fatalf("%s: horizon %v, below the %v that compactions reached before writes that are in the store", when, horizon, m.durable)
	}
	m.checksCompacted += crashCount(raw.horizon.Sum() > 0)
	m.horizonRose += crashCount(raw.horizon.Sum() > m.horizon)
	m.durableRose += crashCount(crashSum(m.durable) > m.horizon)
	m.compacted, m.durable, m.horizon = horizon, maps.Clone(horizon), raw.horizon.Sum()
	for origin, seq := range raw.vv {
		if vv[origin.String()] != seq {
			t.Fatalf("%s: Pebble holds vector %v, the DB reported %v", when, raw.vv, vv)
		}
		es := raw.logs[origin]
		for i := 1; i < len(es); i++ {
			if es[i].op.HLC <= es[i-1].op.HLC {
				t.Fatalf("%s: HLC went backwards: op %v at %v after op %v at %v", when, es[i].op.Dot, es[i].op.HLC, es[i-1].op.Dot, es[i-1].op.HLC)
			}
		}
	}
}

func crashWriterScenario(t *testing.T, seed uint64, iters int, durability converge.Durability, writers int) {
	start := time.Now()
	rng := rand.New(rand.NewPCG(seed, uint64(durability)))
	crng := rand.New(rand.NewPCG(seed, uint64(durability)|1<<32)) // compaction on or off, apart from rng
	dir := t.TempDir()
	m := &crashModel{live: make([]map[string]crashRec, writers), pending: make([]*crashLine, writers),
		tryHorizon: make([]map[string]uint64, writers), compacted: map[string]uint64{}, durable: map[string]uint64{}}
	for w := range m.live {
		m.live[w] = map[string]crashRec{}
	}
	killsBeforeReady, compacting, killsCompacting := 0, 0, 0
	for it := range iters {
		plan := randomPlan(rng, 30, 2*time.Millisecond)
		compact := crng.IntN(4) != 0
		if compact {
			compacting++
		}
		c := startCrashChild(t, "writer", dir, crashConfig{Seed: seed, Iter: it, Durability: durability, Writers: writers, Compact: compact})
		ready := false
		m.compacting = false
		killed := c.run(plan, func(l crashLine) {
			ready = ready || l.Kind == "ready"
			m.observe(t, l)
		})
		if !killed {
			t.Fatalf("iteration %d: the writer exited by itself\n%s", it, c.output())
		}
		if !ready {
			killsBeforeReady++
		}
		if m.compacting {
			killsCompacting++
		}
		m.check(t, dir, it)
	}
	db := crashOpen(t, dir)
	crashRebuild(t, db, "at the end")
	db.Close()
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	t.Logf("%v, %d writers: %d SIGKILLs (%d while opening the store, %d during a compaction), %d acknowledged writes (%d write checks after kills), "+
		"writes in flight at the kill: %d made it, %d did not; %d ops written, %d of them compacted at the end; "+
		"%d lives compacting: %d compactions returned (%d ops); after %d kills the store was compacted, its horizon risen after %d, "+
		"a horizon made durable to check after %d; %d sstables; %d new replica ids; %v",
		durability, writers, iters, killsBeforeReady, killsCompacting, m.acked, m.verified, m.inflightKept, m.inflightLost, m.ops, m.horizon,
		compacting, m.compactions, m.opsCompacted, m.checksCompacted, m.horizonRose, m.durableRose, len(ssts), m.identities, time.Since(start).Round(time.Millisecond))
}

// ---- the ingest scenario ----

// crashSource is the remote replica whose ops the child ingests.
type crashSource struct {
	db      *converge.DB
	origins map[string]int       // replica id -> origin index
	txs     [][]crashSrcTx       // per origin, in order
	ops     map[crdt.Dot]crdt.Op // every op of the source
	raw     map[crdt.Dot][]byte  // and its encoding
	ends    map[string][]uint64  // per origin: the seq ending each transaction
	file    string               // the ops, in delivery order
	hash    string               // the source's state hash
	vector  map[string]uint64    // and its vector
}

type crashSrcTx struct {
	id   string
	recs []string
	prev string // the record of the previous transaction it updates, or ""
}

func crashLedgerID(o int) string { return fmt.Sprintf("ledger-o%d", o) }

// crashBuildSource writes the source: origins write interleaved
// transactions, and a hub collects them all.
func crashBuildSource(t *testing.T, txsPerOrigin int) *crashSource {
	t.Helper()
	ctx := t.Context()
	const origins = 4
	hub := open(t, converge.Options{})
	src := &crashSource{db: hub, origins: map[string]int{}, txs: make([][]crashSrcTx, origins),
		ops: map[crdt.Dot]crdt.Op{}, raw: map[crdt.Dot][]byte{}, ends: map[string][]uint64{}}
	dbs := make([]*converge.DB, origins)
	for o := range dbs {
		dbs[o] = open(t, converge.Options{})
		src.origins[dbs[o].ReplicaID()] = o
	}
	for j := range txsPerOrigin {
		for o, db := range dbs {
			recs := coll[crashSrcRec](t, db, "recs")
			ledger := coll[crashLedger](t, db, "ledger")
			k := 1 + (j+o)%4
			st := crashSrcTx{id: fmt.Sprintf("o%d-t%03d", o, j)}
			for r := range k {
				st.recs = append(st.recs, fmt.Sprintf("%s-r%d", st.id, r))
			}
			if j > 0 {
				st.prev = src.txs[o][j-1].recs[0]
			}
			err := db.Update(ctx, crashNS, func(tx *converge.Tx) error {
				rt, lt := recs.Tx(tx), ledger.Tx(tx)
				for _, id := range st.recs {
					if _, err := rt.Put(&crashSrcRec{ID: id, Tx: st.id, K: int64(k), V: "init"}); err != nil {
						return err
					}
				}
				if st.prev != "" {
					if err := rt.Update(st.prev, converge.Set("v", st.id)); err != nil {
						return err
					}
				}
				if j == 0 {
					_, err := lt.Put(&crashLedger{ID: crashLedgerID(o), N: int64(k), Last: st.id})
					return err
				}
				return lt.Update(crashLedgerID(o), converge.Increment("n", int64(k)), converge.Set("last", st.id))
			})
			if err != nil {
				t.Fatalf("source transaction %s: %v", st.id, err)
			}
			src.txs[o] = append(src.txs[o], st)
		}
	}
	for _, db := range dbs {
		syncPair(t, hub, db, crashNS)
	}
	var es []crashRawEntry
	for e, err := range hub.Admin().Log().Missing(ctx, crashNS, nil) {
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, crashRawEntry{op: e.Op, raw: e.Raw})
		src.ops[e.Op.Dot] = e.Op
		src.raw[e.Op.Dot] = e.Raw
		if e.Op.TxEnd {
			o := e.Op.Dot.Origin.String()
			src.ends[o] = append(src.ends[o], e.Op.Dot.Seq)
		}
	}
	for id, o := range src.origins {
		if len(src.ends[id]) != txsPerOrigin {
			t.Fatalf("source: origin %d has %d transactions, want %d", o, len(src.ends[id]), txsPerOrigin)
		}
	}
	if len(src.ends) != origins {
		t.Fatalf("source: ops of %d origins, want %d", len(src.ends), origins)
	}
	// Delivery order: by HLC, so the origins' transactions interleave
	// (each origin's ops stay in seq order).
	slices.SortStableFunc(es, func(a, b crashRawEntry) int {
		return cmp.Or(cmp.Compare(a.op.HLC, b.op.HLC), a.op.Dot.Compare(b.op.Dot))
	})
	raws := make([][]byte, len(es))
	for i, e := range es {
		raws[i] = e.raw
	}
	src.file = filepath.Join(t.TempDir(), "ops")
	crashWriteOps(t, src.file, raws)
	var err error
	if src.hash, err = hub.Admin().StateHash(ctx, crashNS); err != nil {
		t.Fatal(err)
	}
	if src.vector, err = hub.Admin().Vector(ctx, crashNS); err != nil {
		t.Fatal(err)
	}
	return src
}

// expected returns the records and ledgers a replica holding vector vv must
// show, or fails if vv is not at transaction boundaries.
func (src *crashSource) expected(t *testing.T, vv map[string]uint64, when string) (map[string]crashSrcRec, map[string]crashLedger) {
	t.Helper()
	recs, ledgers := map[string]crashSrcRec{}, map[string]crashLedger{}
	for id, seq := range vv {
		o, ok := src.origins[id]
		if !ok {
			t.Fatalf("%s: vector has ops of %s, which the source never wrote", when, id)
		}
		n, found := slices.BinarySearch(src.ends[id], seq)
		if seq > 0 && !found {
			t.Fatalf("%s: vector holds %d ops of origin %d: inside a transaction (transactions end at %v)", when, seq, o, src.ends[id])
		}
		if found {
			n++ // transactions 0..n-1 are held
		}
		for j, tx := range src.txs[o][:n] {
			for _, r := range tx.recs {
				recs[r] = crashSrcRec{ID: r, Tx: tx.id, K: int64(len(tx.recs)), V: "init"}
			}
			if tx.prev != "" {
				p := recs[tx.prev]
				p.V = tx.id
				recs[tx.prev] = p
			}
			l := ledgers[crashLedgerID(o)]
			ledgers[crashLedgerID(o)] = crashLedger{ID: crashLedgerID(o), N: l.N + int64(len(tx.recs)), Last: src.txs[o][j].id}
		}
	}
	return recs, ledgers
}

// crashTarget is one life of the ingesting replica's store: from empty to
// holding all of the source.
type crashTarget struct {
	dir   string
	acked map[string]uint64 // the pointwise max of the acknowledged vectors
	// The horizon the last compaction reached; what it was when the
	// last Apply began (at the previous "ack": compactions run beside);
	// and the horizon made durable by an Apply that committed ops after
	// it (see crashModel).
	compacted, beforeApply, durable map[string]uint64
	horizon                         uint64 // ops below the horizon at the last check
	horizonRose, durableRose        bool   // at the last check (see crashModel)
}

// check opens the target the killed child left and checks it.
func (src *crashSource) check(t *testing.T, tg *crashTarget, when string) (vv map[string]uint64) {
	t.Helper()
	ctx := t.Context()
	db := crashOpen(t, tg.dir)
	vv, err := db.Admin().Vector(ctx, crashNS)
	if err != nil {
		t.Fatal(err)
	}
	for o, seq := range tg.acked {
		if vv[o] < seq {
			t.Fatalf("%s: acknowledged ingest lost: vector %v, but the child acknowledged %v", when, vv, tg.acked)
		}
	}
	wantRecs, wantLedgers := src.expected(t, vv, when)
	gotRecs, gotLedgers := map[string]crashSrcRec{}, map[string]crashLedger{}
	for r, err := range coll[crashSrcRec](t, db, "recs").All(ctx, crashNS) {
		if err != nil {
			t.Fatal(err)
		}
		r.Meta = converge.Meta{} // compared as values, without the version read
		gotRecs[r.ID] = r
	}
	for r, err := range coll[crashLedger](t, db, "ledger").All(ctx, crashNS) {
		if err != nil {
			t.Fatal(err)
		}
		r.Meta = converge.Meta{}
		gotLedgers[r.ID] = r
	}
	// A transaction is all there or not at all: its K records, with K
	// added to its origin's ledger.
	byTx := map[string]int{}
	for _, r := range gotRecs {
		byTx[r.Tx]++
	}
	for tx, n := range byTx {
		if k := gotRecs[tx+"-r0"].K; int64(n) != k {
			t.Fatalf("%s: transaction %s half applied: %d of its %d records", when, tx, n, k)
		}
	}
	if !maps.Equal(gotRecs, wantRecs) {
		t.Fatalf("%s: records differ from the source's transactions up to vector %v (%d records, want %d)", when, vv, len(gotRecs), len(wantRecs))
	}
	if !maps.Equal(gotLedgers, wantLedgers) {
		t.Fatalf("%s: ledgers %v, want %v (vector %v)", when, gotLedgers, wantLedgers, vv)
	}
	for o, s := range vv {
		if s > tg.acked[o] { // the Apply in flight at the kill committed ops
			crashRaise(tg.durable, tg.beforeApply)
			break
		}
	}
	h, err := db.Admin().Log().Horizon(ctx, crashNS)
	if err != nil {
		t.Fatal(err)
	}
	crashVerify(t, db, when) // base states ⊔ log = stored state; Rebuild runs at the end
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if len(vv) == 0 {
		return vv
	}
	raw := crashRawScan(t, tg.dir, crashNS, when)
	horizon := crashVV(raw.horizon)
	if !maps.Equal(horizon, crashVV(h)) {
		t.Fatalf("%s: Pebble holds horizon %v, the log reported %v", when, raw.horizon, h)
	}
	if !crashCovers(horizon, tg.durable) {
		t.Fatalf("%s: horizon %v, below the %v that compactions reached before Apply batches that are in the store", when, horizon, tg.durable)
	}
	tg.horizonRose, tg.durableRose = raw.horizon.Sum() > tg.horizon, crashSum(tg.durable) > tg.horizon
	tg.compacted, tg.beforeApply, tg.durable, tg.horizon = horizon, horizon, maps.Clone(horizon), raw.horizon.Sum()
	for origin, seq := range raw.vv {
		if vv[origin.String()] != seq {
			t.Fatalf("%s: Pebble holds vector %v, the DB reported %v", when, raw.vv, vv)
		}
		// The log holds the ops above the horizon: the source's, byte
		// for byte. Those below it are checked through the state.
		for _, e := range raw.logs[origin] {
			if !bytes.Equal(e.raw, src.raw[e.op.Dot]) {
				t.Fatalf("%s: op %v in the log differs from the source's", when, e.op.Dot)
			}
		}
	}
	return vv
}

// finish syncs the target with the source to completion and checks that
// they are equal.
func (src *crashSource) finish(t *testing.T, tg *crashTarget, when string) {
	t.Helper()
	db := crashOpen(t, tg.dir)
	defer db.Close()
	if _, err := db.SyncWith(t.Context(), transport.NewMemPeer(src.db.SyncStore(), transport.Limits{MaxOps: 64}), crashNS); err != nil {
		t.Fatalf("%s: sync to completion: %v", when, err)
	}
	vv, err := db.Admin().Vector(t.Context(), crashNS)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(vv, src.vector) {
		t.Fatalf("%s: after the sync the vector is %v, the source's %v", when, vv, src.vector)
	}
	crashVerify(t, db, when)
	if h := crashRebuild(t, db, when); h != src.hash {
		t.Fatalf("%s: after the sync the state hash is %s, the source's %s", when, h, src.hash)
	}
}

func TestCrashIngestSIGKILL(t *testing.T) {
	iters := crashIterations(t)
	seed := crashSeed(t)
	start := time.Now()
	rng := rand.New(rand.NewPCG(seed, 1000))
	crng := rand.New(rand.NewPCG(seed, 1001)) // compaction on or off, apart from rng
	src := crashBuildSource(t, 40)
	t.Logf("source: %d ops of %d origins in %d transactions", len(src.ops), len(src.origins), 40*len(src.origins))
	var (
		tg                                                     *crashTarget
		lives, kills, killsAtOpen, killsIngest, killsAfterDone int
		acks, inflightKept, completedUnkilled                  int
		lastAck                                                map[string]uint64
		compactingLives, compactions, opsCompacted             int
		killsCompacting, checksCompacted                       int
		horizonRose, durableRose                               int
	)
	for it := range iters {
		if tg == nil {
			tg = &crashTarget{dir: filepath.Join(t.TempDir(), "target"), acked: map[string]uint64{},
				compacted: map[string]uint64{}, beforeApply: map[string]uint64{}, durable: map[string]uint64{}}
			lives++
		}
		plan := randomPlan(rng, 12, 3*time.Millisecond)
		compact := crng.IntN(4) != 0
		if compact {
			compactingLives++
		}
		ready, done, compacting := false, false, false
		lastAck = nil
		c := startCrashChild(t, "ingest", tg.dir, crashConfig{Seed: seed, Iter: it, OpsFile: src.file, MaxBatch: 40, Compact: compact})
		killed := c.run(plan, func(l crashLine) {
			switch l.Kind {
			case "ready":
				ready = true
			case "done":
				done = true
			case "compact":
				compacting = true
			case "compacted":
				if !crashCovers(l.Vector, tg.compacted) {
					t.Fatalf("iteration %d: compaction %d left the horizon at %v, below the %v reached before", it, l.N, l.Vector, tg.compacted)
				}
				compacting = false
				tg.compacted = l.Vector
				compactions++
				opsCompacted += l.Ops
			case "ack":
				acks++
				if l.Applied > 0 { // committed, with fsync, after the compactions before it began
					crashRaise(tg.durable, tg.beforeApply)
				}
				tg.beforeApply = tg.compacted
				for o, s := range lastAck {
					if l.Vector[o] < s {
						t.Fatalf("iteration %d: acknowledged vectors went backwards: %v after %v", it, l.Vector, lastAck)
					}
				}
				lastAck = l.Vector
				for o, s := range l.Vector {
					tg.acked[o] = max(tg.acked[o], s)
				}
			}
		})
		when := fmt.Sprintf("after SIGKILL %d", it)
		switch {
		case killed:
			kills++
			switch {
			case !ready:
				killsAtOpen++
			case !done:
				killsIngest++
			default:
				killsAfterDone++ // while closing or exiting
			}
			if compacting {
				killsCompacting++
			}
		case !done:
			t.Fatalf("iteration %d: the child exited before it was done\n%s", it, c.output())
		default:
			when = fmt.Sprintf("after run %d (done, not killed)", it)
			completedUnkilled++
		}
		tg.horizonRose, tg.durableRose = false, false
		vv := src.check(t, tg, when)
		checksCompacted += crashCount(tg.horizon > 0)
		horizonRose += crashCount(tg.horizonRose)
		durableRose += crashCount(tg.durableRose)
		for o, s := range vv {
			if s > tg.acked[o] {
				inflightKept++ // the batch in flight at the kill made it
				break
			}
		}
		if done {
			src.finish(t, tg, when)
			tg = nil
		}
	}
	if tg != nil {
		src.finish(t, tg, "at the end")
	}
	t.Logf("%d SIGKILLs: %d during ingest, %d while opening the store, %d after the last batch, %d during a compaction; %d runs completed before the kill; "+
		"%d acknowledged Apply batches; %d kills found the batch in flight applied; %d runs compacting: %d compactions returned (%d ops); "+
		"after %d runs the store was compacted, its horizon risen after %d, a horizon made durable to check after %d; "+
		"%d target lives (each synced to completion and equal to the source); %v",
		kills, killsIngest, killsAtOpen, killsAfterDone, killsCompacting, completedUnkilled, acks, inflightKept,
		compactingLives, compactions, opsCompacted, checksCompacted, horizonRose, durableRose, lives, time.Since(start).Round(time.Millisecond))
}
