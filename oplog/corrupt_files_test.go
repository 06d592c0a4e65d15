package oplog_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/materialize"
	"github.com/convergedb/converge/oplog"
)

// These tests damage the files of a real on-disk store (SSTables, the
// MANIFEST, the WAL) the way a failing disk or a careless operator would,
// then open it and read everything. Each read must either fail with an
// error that says the store is corrupt, or return exactly the data that
// was written: never different data.

// fileNamespaces are the namespaces of the damaged store.
var fileNamespaces = []string{"alpha", "beta"}

// nsImage is everything a namespace's reads return.
type nsImage struct {
	vector  crdt.VersionVector
	log     [][]byte          // raw log entries, in (origin, seq) order
	records map[string][]byte // "coll/key" -> canonical state encoding
	hash    string
	count   int
	feed    [][]byte // encoded changes, in feed order
}

// storeImage is what every read of a store returns.
type storeImage struct {
	namespaces []string
	ns         map[string]*nsImage
}

// imageOf reads everything from l; it fails the test on any error.
func imageOf(t *testing.T, l *oplog.Log) *storeImage {
	t.Helper()
	ctx := t.Context()
	img := &storeImage{ns: make(map[string]*nsImage)}
	var err error
	if img.namespaces, err = l.Namespaces(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ns := range fileNamespaces {
		n := &nsImage{records: make(map[string][]byte)}
		n.vector = vector(t, l, ns)
		for _, e := range entries(t, l, ns, nil) {
			n.log = append(n.log, e.Raw)
		}
		for e, err := range l.Records(ctx, ns, "") {
			if err != nil {
				t.Fatal(err)
			}
			n.records[e.Collection+"/"+e.Key] = e.State.Encode()
		}
		if n.hash, n.count, err = l.StateHash(ctx, ns); err != nil {
			t.Fatal(err)
		}
		for c, err := range l.Feed(ctx, ns, 0) {
			if err != nil {
				t.Fatal(err)
			}
			n.feed = append(n.feed, materialize.AppendChange(nil, &c))
		}
		mustVerify(t, l, ns)
		img.ns[ns] = n
	}
	return img
}

// fileStore is a store built once and copied for each damage case.
type fileStore struct {
	dir string
	// images[k] is the store after the first k writes of the last phase
	// (those whose only copy is the WAL); images[len-1] is the final one.
	images []*storeImage
	shape  storeShape
}

// storeShape sizes the three generations of a fileStore's writes.
type storeShape struct {
	records     int // generation 1: records per namespace
	updateFrom  int // generation 2 writes records updateFrom..records+updateExtra-1
	updateExtra int
	pad         int // bytes of padding per write
	walWrites   int // generation 3: fsynced writes left in the WAL
}

// bigStore is the shape of the store TestCorruptFiles damages.
var bigStore = storeShape{records: 300, updateFrom: 200, updateExtra: 50, pad: 4096, walWrites: 6}

// padding returns n pseudo-random hex bytes (incompressible enough that
// the SSTables hold many blocks).
func padding(rng *rand.Rand, n int) string {
	b := make([]byte, n/2)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return fmt.Sprintf("%x", b)
}

// buildFileStore writes three generations of data to a store in a new
// temporary directory: the first two end up in SSTables (Pebble flushes
// the WAL it replays when a store is opened again), the third only in the
// WAL.
func buildFileStore(t *testing.T) *fileStore {
	t.Helper()
	return buildShapedStore(t, bigStore)
}

// buildShapedStore is buildFileStore for a store of the given shape.
func buildShapedStore(t *testing.T, shape storeShape) *fileStore {
	t.Helper()
	s := &fileStore{dir: filepath.Join(t.TempDir(), "db"), shape: shape}
	if err := s.build(t); err != nil {
		t.Fatalf("building the store: %v", err)
	}
	return s
}

func (s *fileStore) build(t *testing.T) (err error) {
	rng := rand.New(rand.NewPCG(1, 2))
	write := func(l *oplog.Log, ns, key string, i int) error {
		_, err := l.Write(t.Context(), ns, func(tx *oplog.Tx) error {
			_, err := tx.Mutate("c", key, crdt.IntentPut, []crdt.Change{
				setStr("pad", padding(rng, s.shape.pad)), setInt("n", int64(i)), setStr("key", key),
			})
			return err
		})
		return err
	}
	opts := oplog.Options{Logger: quietLogger, Durability: oplog.NoSync}
	// Generation 1.
	l, err := oplog.Open(s.dir, opts)
	if err != nil {
		return err
	}
	for i := range s.shape.records {
		for _, ns := range fileNamespaces {
			if err := write(l, ns, fmt.Sprintf("k%03d", i), i); err != nil {
				return err
			}
		}
	}
	if err := l.Close(); err != nil {
		return err
	}
	// Generation 2: updates and new records; opening flushed generation 1.
	if l, err = oplog.Open(s.dir, opts); err != nil {
		return err
	}
	for i := s.shape.updateFrom; i < s.shape.records+s.shape.updateExtra; i++ {
		for _, ns := range fileNamespaces {
			if err := write(l, ns, fmt.Sprintf("k%03d", i), 1000+i); err != nil {
				return err
			}
		}
	}
	if err := l.Close(); err != nil {
		return err
	}
	// Generation 3, in the WAL only, each write fsynced.
	opts.Durability = oplog.SyncEveryCommit
	if l, err = oplog.Open(s.dir, opts); err != nil {
		return err
	}
	defer func() {
		if cerr := l.Close(); err == nil {
			err = cerr
		}
	}()
	s.images = append(s.images, imageOf(t, l))
	for i := range s.shape.walWrites {
		ns := fileNamespaces[i%2]
		if err := write(l, ns, fmt.Sprintf("k%03d", 10*i), 2000+i); err != nil {
			return err
		}
		s.images = append(s.images, imageOf(t, l))
	}
	return nil
}

// copyStore copies the store's directory to a new temporary one.
func (s *fileStore) copyStore(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "db")
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.dir, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// storeFiles returns the names of the files in dir whose names match
// pattern (filepath.Match), sorted.
func storeFiles(t *testing.T, dir, pattern string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range des {
		if ok, _ := filepath.Match(pattern, d.Name()); ok && !d.IsDir() {
			out = append(out, d.Name())
		}
	}
	slices.Sort(out)
	return out
}

// flip inverts n bytes of file at offset off.
func flip(t *testing.T, path string, off int64, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 || off+int64(n) > int64(len(b)) {
		t.Fatalf("flip %d bytes at %d of %s (%d bytes)", n, off, path, len(b))
	}
	for i := range int64(n) {
		b[off+i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// outcome is what a damaged store did.
type outcome struct {
	openErr error
	errs    []error // read errors
	// image is the index of the store image whose vectors the store
	// holds (the other reads are compared with that image), or -1 if
	// they match none or could not be read.
	image int
	wrong []string // reads that returned data that was never the store's
}

func (o outcome) String() string {
	var b strings.Builder
	if o.openErr != nil {
		fmt.Fprintf(&b, "open: %v", o.openErr)
		return b.String()
	}
	fmt.Fprintf(&b, "opened; %d read errors", len(o.errs))
	if len(o.errs) > 0 {
		fmt.Fprintf(&b, " (first: %v)", o.errs[0])
	}
	fmt.Fprintf(&b, "; data matches image %d", o.image)
	for _, w := range o.wrong {
		fmt.Fprintf(&b, "\n  WRONG DATA: %s", w)
	}
	return b.String()
}

// readDamaged opens the store in dir and reads everything, comparing
// what the reads return with the store's images.
func readDamaged(t *testing.T, s *fileStore, dir string) outcome {
	t.Helper()
	var o outcome
	l, err := oplog.Open(dir, oplog.Options{Logger: quietLogger, Durability: oplog.NoSync})
	if err != nil {
		o.openErr = err
		return o
	}
	defer l.Close()
	ctx := t.Context()
	fail := func(err error) { o.errs = append(o.errs, err) }

	// The vector picks the image the other reads must match: a store
	// that lost writes matches an earlier image (and says so by its
	// vector), or none.
	o.image = -1
	vvs := make(map[string]crdt.VersionVector)
	for _, ns := range fileNamespaces {
		vv, err := l.Vector(ctx, ns)
		if err != nil {
			fail(err)
			continue
		}
		vvs[ns] = vv
	}
	if len(vvs) == len(fileNamespaces) {
		for k := len(s.images) - 1; k >= 0; k-- {
			match := true
			for _, ns := range fileNamespaces {
				match = match && vvs[ns].Equal(s.images[k].ns[ns].vector)
			}
			if match {
				o.image = k
				break
			}
		}
		if o.image < 0 {
			o.wrong = append(o.wrong, fmt.Sprintf("vectors %v match no state the store was ever in", vvs))
		}
	}
	want := s.images[len(s.images)-1]
	if o.image >= 0 {
		want = s.images[o.image]
	}
	wrong := func(format string, args ...any) { o.wrong = append(o.wrong, fmt.Sprintf(format, args...)) }

	if nss, err := l.Namespaces(ctx); err != nil {
		fail(err)
	} else if !slices.Equal(nss, want.namespaces) {
		wrong("Namespaces = %q, want %q", nss, want.namespaces)
	}
	for _, ns := range fileNamespaces {
		w := want.ns[ns]
		// The log, through Missing and Page.
		var got [][]byte
		var scanErr error
		for e, err := range l.Missing(ctx, ns, nil) {
			if err != nil {
				scanErr = err
				break
			}
			got = append(got, e.Raw)
		}
		switch {
		case scanErr != nil:
			fail(scanErr)
		case !slices.EqualFunc(got, w.log, bytes.Equal):
			wrong("Missing(%s) returned %d ops, not the %d written", ns, len(got), len(w.log))
		}
		if p, err := l.Page(ctx, ns, nil, oplog.PageLimits{MaxOps: 1 << 20, MaxBytes: 1 << 30}); err != nil {
			fail(err)
		} else {
			raw := make([][]byte, len(p.Entries))
			for i, e := range p.Entries {
				raw[i] = e.Raw
			}
			if !slices.EqualFunc(raw, w.log, bytes.Equal) {
				wrong("Page(%s) returned %d ops, not the %d written", ns, len(raw), len(w.log))
			}
		}
		// The states, through Records, Get and StateHash.
		recs := make(map[string][]byte)
		var recErr error
		for e, err := range l.Records(ctx, ns, "") {
			if err != nil {
				recErr = err
				break
			}
			recs[e.Collection+"/"+e.Key] = e.State.Encode()
		}
		switch {
		case recErr != nil:
			fail(recErr)
		case !maps.EqualFunc(recs, w.records, bytes.Equal):
			wrong("Records(%s) returned %d records that differ from the %d written", ns, len(recs), len(w.records))
		}
		for _, ck := range slices.Sorted(maps.Keys(s.images[len(s.images)-1].ns[ns].records)) {
			coll, key, _ := strings.Cut(ck, "/")
			r, err := l.Get(ctx, ns, coll, key)
			if err != nil {
				fail(err)
				continue
			}
			wantRec, ok := w.records[ck]
			if !ok {
				wantRec = (&crdt.Record{}).Encode()
			}
			if !bytes.Equal(r.Encode(), wantRec) {
				wrong("Get(%s, %s) returned a state that was never written", ns, ck)
			}
		}
		if h, n, err := l.StateHash(ctx, ns); err != nil {
			fail(err)
		} else if h != w.hash || n != w.count {
			wrong("StateHash(%s) = %s (%d records), want %s (%d)", ns, h, n, w.hash, w.count)
		}
		var feed [][]byte
		var feedErr error
		for c, err := range l.Feed(ctx, ns, 0) {
			if err != nil {
				feedErr = err
				break
			}
			feed = append(feed, materialize.AppendChange(nil, &c))
		}
		switch {
		case feedErr != nil:
			fail(feedErr)
		case !slices.EqualFunc(feed, w.feed, bytes.Equal):
			wrong("Feed(%s) returned %d changes, not the %d written", ns, len(feed), len(w.feed))
		}
		if v, err := l.Verify(ctx, ns); err != nil {
			fail(err)
		} else if !v.OK() {
			wrong("Verify(%s) = %+v: stored state is not the log's", ns, v)
		}
	}
	return o
}

// storeFileName matches the name of a store file in an error message.
var storeFileName = regexp.MustCompile(`\b\d{6}\b|MANIFEST-\d+`)

// checkDamaged checks a damage outcome: no wrong data; every read error
// wraps oplog.ErrCorrupt; an open error wraps it or names the damaged
// files (Pebble's check that the files the MANIFEST lists exist with their
// sizes reports them without its corruption mark); and the store lost at
// most maxLoss acknowledged writes without saying so.
func checkDamaged(t *testing.T, s *fileStore, o outcome, maxLoss int) {
	t.Helper()
	t.Logf("outcome: %v", o)
	if len(o.wrong) > 0 {
		t.Errorf("damaged store returned wrong data silently:\n  %s", strings.Join(o.wrong, "\n  "))
	}
	for _, err := range o.errs {
		if !errors.Is(err, oplog.ErrCorrupt) {
			t.Errorf("read error does not wrap oplog.ErrCorrupt: %v", err)
		}
	}
	if err := o.openErr; err != nil && !errors.Is(err, oplog.ErrCorrupt) && !storeFileName.MatchString(err.Error()) {
		t.Errorf("open error neither wraps oplog.ErrCorrupt nor names a store file: %v", err)
	}
	if o.openErr == nil && len(o.errs) == 0 && len(o.wrong) == 0 && o.image != len(s.images)-1 {
		lost := len(s.images) - 1 - o.image
		msg := fmt.Sprintf("store opened and read without error but lost the last %d acknowledged (fsynced) writes: it holds image %d of %d", lost, o.image, len(s.images)-1)
		if lost <= maxLoss {
			t.Log(msg)
		} else {
			t.Error(msg)
		}
	}
}

func TestCorruptFiles(t *testing.T) {
	s := buildFileStore(t)
	des, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range des {
		info, _ := d.Info()
		t.Logf("%-40s %8d bytes", d.Name(), info.Size())
	}
	ssts := storeFiles(t, s.dir, "*.sst")
	if len(ssts) < 2 || len(storeFiles(t, s.dir, "*.log")) == 0 {
		t.Fatal("want a store with at least 2 SSTables and a WAL")
	}
	for _, name := range ssts {
		t.Run("flip middle of "+name, func(t *testing.T) {
			dir := s.copyStore(t)
			p := filepath.Join(dir, name)
			flip(t, p, fileSize(t, p)/2, 8)
			checkDamaged(t, s, readDamaged(t, s, dir), 0)
		})
		t.Run("flip end of "+name, func(t *testing.T) {
			dir := s.copyStore(t)
			p := filepath.Join(dir, name)
			flip(t, p, fileSize(t, p)-200, 8)
			checkDamaged(t, s, readDamaged(t, s, dir), 0)
		})
		t.Run("truncate "+name, func(t *testing.T) {
			dir := s.copyStore(t)
			p := filepath.Join(dir, name)
			if err := os.Truncate(p, fileSize(t, p)/2); err != nil {
				t.Fatal(err)
			}
			checkDamaged(t, s, readDamaged(t, s, dir), 0)
		})
		t.Run("delete "+name, func(t *testing.T) {
			dir := s.copyStore(t)
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			checkDamaged(t, s, readDamaged(t, s, dir), 0)
		})
	}
	for _, name := range storeFiles(t, s.dir, "MANIFEST-*") {
		for _, cut := range []struct {
			name string
			size func(int64) int64
		}{
			{"half", func(n int64) int64 { return n / 2 }},
			{"last byte", func(n int64) int64 { return n - 1 }},
			{"empty", func(int64) int64 { return 0 }},
		} {
			t.Run("truncate "+name+" "+cut.name, func(t *testing.T) {
				dir := s.copyStore(t)
				p := filepath.Join(dir, name)
				if err := os.Truncate(p, cut.size(fileSize(t, p))); err != nil {
					t.Fatal(err)
				}
				checkDamaged(t, s, readDamaged(t, s, dir), 0)
			})
		}
	}
	for _, name := range storeFiles(t, s.dir, "MANIFEST-*") {
		t.Run("flip middle of "+name, func(t *testing.T) {
			dir := s.copyStore(t)
			p := filepath.Join(dir, name)
			flip(t, p, fileSize(t, p)/2, 4)
			checkDamaged(t, s, readDamaged(t, s, dir), 0)
		})
	}
	for _, name := range storeFiles(t, s.dir, "*.log") {
		for _, where := range []struct {
			name string
			off  func(n int64) int64
		}{
			{"middle", func(n int64) int64 { return n / 2 }},
			{"tail", func(n int64) int64 { return n - 100 }},
		} {
			t.Run("flip "+where.name+" of "+name, func(t *testing.T) {
				dir := s.copyStore(t)
				p := filepath.Join(dir, name)
				if fileSize(t, p) == 0 {
					t.Skip("empty WAL")
				}
				flip(t, p, where.off(fileSize(t, p)), 8)
				// Damage in the last record of the last WAL looks like a
				// write torn by a crash: Pebble stops replaying there.
				// The store was closed cleanly, so the open check sees
				// the writes it lost (the DotsFile's sums).
				checkDamaged(t, s, readDamaged(t, s, dir), 0)
			})
		}
	}
}

// TestCorruptFilesIngest damages an SSTable block holding a record state,
// then ingests remote ops to that record along with ops to an intact one
// after it: the ingest must fail rather than fold the ops onto an empty
// state and overwrite the damaged one with the result.
func TestCorruptFilesIngest(t *testing.T) {
	s := buildFileStore(t)
	final := s.images[len(s.images)-1]
	dir := s.copyStore(t)
	ctx := t.Context()
	// findDamaged returns a record whose state no longer reads, and an
	// intact one after it in key order, or "" if there is none.
	findDamaged := func() (ns, damaged, intact string) {
		l := openLog(t, dir, oplog.Options{Durability: oplog.NoSync})
		defer l.Close()
		for _, n := range fileNamespaces {
			damaged = ""
			for _, ck := range slices.Sorted(maps.Keys(final.ns[n].records)) {
				_, key, _ := strings.Cut(ck, "/")
				_, err := l.Get(ctx, n, "c", key)
				if err != nil && damaged == "" {
					damaged = key
				}
				if err == nil && damaged != "" {
					return n, damaged, key
				}
			}
		}
		return "", "", ""
	}
	// Flip bytes at offsets through each SSTable until a state block is
	// hit (flipping twice restores them).
	var ns, damaged, intact string
search:
	for _, name := range storeFiles(t, dir, "*.sst") {
		p := filepath.Join(dir, name)
		for k := int64(1); k < 16; k++ {
			off := fileSize(t, p) * k / 16
			flip(t, p, off, 8)
			if ns, damaged, intact = findDamaged(); damaged != "" {
				t.Logf("flipped 8 bytes at %d of %s: the state of %s/%s no longer reads", off, name, ns, damaged)
				break search
			}
			flip(t, p, off, 8)
		}
	}
	if damaged == "" {
		t.Fatal("no flip in an SSTable damaged a record state")
	}
	l := openLog(t, dir, oplog.Options{Durability: oplog.NoSync})
	peer := openMem(t, oplog.Options{})
	put(t, peer, ns, "c", damaged, setStr("peer", "x"))
	put(t, peer, ns, "c", intact, setStr("peer", "y"))
	res, err := l.Ingest(ctx, ns, opsOf(entries(t, peer, ns, nil)))
	t.Logf("Ingest of ops to %s/%s (damaged) and %s/%s (intact) = %+v, %v", ns, damaged, ns, intact, res, err)
	if !errors.Is(err, oplog.ErrCorrupt) {
		t.Errorf("Ingest onto a damaged state = %+v, %v; want ErrCorrupt", res, err)
	}
	if r, err := l.Get(ctx, ns, "c", damaged); err == nil {
		if !bytes.Equal(r.Encode(), final.ns[ns].records["c/"+damaged]) {
			t.Errorf("the damaged record %s now reads, without an error, as a state that was never written: %+v", damaged, r)
		}
	}
	// A local write to it fails too.
	_, err = l.Write(ctx, ns, func(tx *oplog.Tx) error {
		_, err := tx.Mutate("c", damaged, crdt.IntentPut, []crdt.Change{setStr("local", "z")})
		return err
	})
	if !errors.Is(err, oplog.ErrCorrupt) {
		t.Errorf("local write to a damaged state = %v, want ErrCorrupt", err)
	}
}
