package oplog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	iofs "io/fs"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/convergedb/converge/crdt"
	"github.com/oklog/ulid/v2"
)

// # Never reusing a dot
//
// A replica's own ops are identified by (replica id, seq), seq dense per
// namespace. If the store ever lost its own latest ops after they left the
// process (a crash in NoSync or GroupCommit mode, a damaged WAL, a restored
// backup), writing again from the store's vector would give new ops the
// dots of ops that peers already hold with other content, and the replicas
// would diverge silently. So the replica keeps what it has handed out in a
// small file beside Pebble's, DotsFile, which a Pebble checkpoint does not
// copy: per namespace the highest seq reserved, raised in blocks of
// dotBlock and fsynced before a seq of a new block is used, and, written
// at a clean Close, the exact seqs and the sum of every vector.
//
// At Open the file is compared with the store. When the store holds fewer
// of its own ops than may have been handed out, the replica continues under
// a new replica id (the old id's ops stay as any origin's; peers that hold
// the lost ones send them back under the old id) and reports the range in
// [Log.IdentityChange]. A cleanly closed store whose vectors shrank lost
// acknowledged data: Open fails with ErrCorrupt unless
// Options.AcceptDataLoss.
//
// # Encoding
//
//	"CVDOTS1\n" replica(16) clean(1) durability(1) count(uvarint)
//	count × [ len(uvarint) namespace reserved(uvarint) sum(uvarint) ]
//	crc32c(4, of everything before it)

// DotsFile is the name of the file, in the store's directory, that records
// the sequence numbers the replica has handed out. Back it up with nothing:
// a store restored without it continues under a new replica id.
const DotsFile = "CONVERGE-DOTS"

// dotBlock is how many seqs of a namespace one reservation covers.
const dotBlock = 4096

var dotsMagic = []byte("CVDOTS1\n")

// metaDots marks a store that keeps a DotsFile: a store without the mark
// (made before the file existed) adopts one without changing identity.
var metaDots = []byte{tagMeta, 'd', 'o', 't', 's'}

// dotsEntry is what the file says of one namespace.
type dotsEntry struct {
	reserved uint64 // highest own seq that may have been handed out
	sum      uint64 // at a clean close: the sum of the vector's entries
}

// dotsFile is the decoded DotsFile.
type dotsFile struct {
	replica    crdt.ReplicaID
	clean      bool
	durability Durability
	ns         map[string]dotsEntry
}

func (f *dotsFile) encode() []byte {
	b := append([]byte(nil), dotsMagic...)
	b = append(b, f.replica[:]...)
	clean := byte(0)
	if f.clean {
		clean = 1
	}
	b = append(b, clean, byte(f.durability))
	b = binary.AppendUvarint(b, uint64(len(f.ns)))
	for _, ns := range slices.Sorted(mapKeys(f.ns)) {
		e := f.ns[ns]
		b = binary.AppendUvarint(b, uint64(len(ns)))
		b = append(b, ns...)
		b = binary.AppendUvarint(b, e.reserved)
		b = binary.AppendUvarint(b, e.sum)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errDotsFile = errors.New("malformed")

func decodeDots(b []byte) (*dotsFile, error) {
	if len(b) < len(dotsMagic)+16+2+1+4 || !bytes.HasPrefix(b, dotsMagic) {
		return nil, errDotsFile
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", errDotsFile)
	}
	f := &dotsFile{ns: make(map[string]dotsEntry)}
	r := body[len(dotsMagic):]
	copy(f.replica[:], r)
	f.clean, f.durability = r[16] == 1, Durability(r[17])
	r = r[18:]
	uv := func() uint64 {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			r = nil
			return 0
		}
		r = r[n:]
		return v
	}
	count := uv()
	for range count {
		n := uv()
		if r == nil || uint64(len(r)) < n {
			return nil, errDotsFile
		}
		ns := string(r[:n])
		r = r[n:]
		e := dotsEntry{reserved: uv()}
		e.sum = uv()
		if r == nil {
			return nil, errDotsFile
		}
		f.ns[ns] = e
	}
	if len(r) != 0 {
		return nil, errDotsFile
	}
	return f, nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// dots is the Log's copy of the DotsFile; guarded by Log.mu.
type dots struct {
	fs       vfs.FS
	dir      string
	reserved map[string]uint64
	change   *IdentityChange
}

// readDots reads the DotsFile of dir: nil and an error wrapping
// fs.ErrNotExist when there is none.
func readDots(fs vfs.FS, dir string) (*dotsFile, error) {
	f, err := fs.Open(fs.PathJoin(dir, DotsFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return decodeDots(b)
}

// oserrNotExist reports whether err says a file does not exist.
func oserrNotExist(err error) bool { return errors.Is(err, iofs.ErrNotExist) }

// writeDots replaces the DotsFile of dir with f, durably: a temporary
// file, fsynced, renamed over it, the directory fsynced.
func writeDots(fs vfs.FS, dir string, f *dotsFile) error {
	tmp := fs.PathJoin(dir, DotsFile+".tmp")
	w, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("write %s: %w", DotsFile, err)
	}
	_, err = w.Write(f.encode())
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, fs.PathJoin(dir, DotsFile))
	}
	if err == nil {
		err = syncDir(fs, dir)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", DotsFile, err)
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// LostRange is a range of a replica's own ops that may have been handed
// out (acknowledged, sent to peers) but that the store does not hold.
// To is 0 when the end is unknown (a store restored from a backup); then
// ops of the old id in namespaces not listed may have been handed out too.
type LostRange struct {
	Namespace string
	Origin    crdt.ReplicaID
	From, To  uint64
}

// IdentityChange reports that Open gave the replica a new id because the
// store may be missing ops it had handed out under the old one.
type IdentityChange struct {
	Old, New crdt.ReplicaID
	Reason   string
	Lost     []LostRange // sorted by namespace
}

// IdentityChange returns what made this Open give the replica a new id,
// or nil if it kept its id.
func (l *Log) IdentityChange() *IdentityChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dots.change
}

// dotVerdict is what comparing the DotsFile with the store decided.
type dotVerdict struct {
	corrupt []string // acknowledged data missing from a cleanly closed store
	rotate  string   // why the replica needs a new id; "" if it does not
	lost    []LostRange
}

// judgeDots compares the DotsFile f (nil if absent or unreadable, with
// ferr saying which) with the store's vectors, for replica.
func judgeDots(f *dotsFile, ferr error, marked bool, replica crdt.ReplicaID, vectors map[string]crdt.VersionVector) dotVerdict {
	var v dotVerdict
	own := func(ns string) uint64 { return vectors[ns][replica] }
	// Without a trustworthy file, anything may have been handed out, in
	// any namespace (a backup taken before the first write included).
	unknownTail := func(reason string) {
		v.rotate = reason
		for _, ns := range slices.Sorted(mapKeys(vectors)) {
			if s := own(ns); s > 0 {
				v.lost = append(v.lost, LostRange{Namespace: ns, Origin: replica, From: s + 1})
			}
		}
	}
	switch {
	case f == nil && oserrNotExist(ferr) && !marked:
		return v // a store made before the file existed: adopt one
	case f == nil && oserrNotExist(ferr):
		unknownTail("no " + DotsFile + " beside a store that had one (a store restored from a backup, or copied)")
		return v
	case f == nil:
		unknownTail(fmt.Sprintf("%s unreadable: %v", DotsFile, ferr))
		return v
	case f.replica != replica:
		unknownTail(fmt.Sprintf("%s belongs to replica %v", DotsFile, f.replica))
		return v
	}
	for _, ns := range slices.Sorted(mapKeys(f.ns)) {
		e, s := f.ns[ns], own(ns)
		if f.clean {
			if sum := vectorSum(vectors[ns]); sum < e.sum {
				v.corrupt = append(v.corrupt, fmt.Sprintf("namespace %q held %d ops when the store was closed and holds %d now", ns, e.sum, sum))
			}
		}
		switch {
		case s > e.reserved:
			v.rotate = fmt.Sprintf("the store holds ops of its own beyond what %s says it handed out (the file is older than the store)", DotsFile)
		case s < e.reserved && (f.clean || f.durability != SyncEveryCommit):
			v.lost = append(v.lost, LostRange{Namespace: ns, Origin: replica, From: s + 1, To: e.reserved})
		}
	}
	for ns := range vectors {
		if _, ok := f.ns[ns]; !ok && own(ns) > 0 {
			v.rotate = fmt.Sprintf("the store holds ops of its own in %q, which %s does not list", ns, DotsFile)
		}
	}
	if len(v.lost) > 0 && v.rotate == "" {
		v.rotate = fmt.Sprintf("the store holds fewer of its own ops than it may have handed out (the last run, with durability %v, did not close cleanly)", f.durability)
		if f.clean {
			v.rotate = "the store holds fewer of its own ops than it had when it was closed"
		}
	}
	return v
}

func vectorSum(vv crdt.VersionVector) uint64 {
	var n uint64
	for _, s := range vv {
		n += s
	}
	return n
}

// openDots compares the DotsFile with the store, gives the replica a new
// id if it may have handed out ops the store lacks, and writes the file
// afresh (not clean) before any write.
func (l *Log) openDots(dir string, vectors map[string]crdt.VersionVector) error {
	fs := l.opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	l.dots = dots{fs: fs, dir: dir, reserved: make(map[string]uint64)}
	_, closer, err := l.db.Get(metaDots)
	marked := err == nil
	if marked {
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("read dots mark: %w", pebbleErr(err))
	}
	f, ferr := readDots(fs, dir)
	v := judgeDots(f, ferr, marked, l.replica, vectors)
	if len(v.corrupt) > 0 && !l.opts.AcceptDataLoss {
		return fmt.Errorf("%w: %s; acknowledged writes are missing (a damaged WAL or MANIFEST); open with AcceptDataLoss to continue without them under a new replica id, or resync from a peer: %s",
			ErrCorrupt, joinProblems(v.corrupt), recoveryHint)
	}
	if v.rotate != "" {
		if err := l.rotate(v); err != nil {
			return err
		}
	}
	for ns, vv := range vectors {
		if s := vv[l.replica]; s > 0 {
			l.dots.reserved[ns] = s
		}
	}
	if !marked {
		if err := l.db.Set(metaDots, []byte{1}, pebble.Sync); err != nil {
			return fmt.Errorf("write dots mark: %w", pebbleErr(err))
		}
	}
	return l.writeDotsLocked(false, nil)
}

func joinProblems(ps []string) string {
	if len(ps) > 10 {
		ps = append(ps[:10:10], fmt.Sprintf("and %d more", len(ps)-10))
	}
	return fmt.Sprint(ps)
}

// rotate gives the replica a new id, durably, and records why.
func (l *Log) rotate(v dotVerdict) error {
	old := l.replica
	l.replica = crdt.ReplicaID(ulid.Make())
	if err := l.db.Set(metaReplica, l.replica[:], pebble.Sync); err != nil {
		return fmt.Errorf("write new replica id: %w", pebbleErr(err))
	}
	l.dots.change = &IdentityChange{Old: old, New: l.replica, Reason: v.rotate, Lost: v.lost}
	l.logger.Warn("the replica continues under a new id: it may have handed out ops the store lacks; peers holding them send them back under the old id",
		"old", old, "new", l.replica, "reason", v.rotate, "lost", v.lost)
	return nil
}

// writeDotsLocked writes the DotsFile from l.dots.reserved; clean with
// sums, the file a clean Close leaves.
func (l *Log) writeDotsLocked(clean bool, vectors map[string]crdt.VersionVector) error {
	f := &dotsFile{replica: l.replica, clean: clean, durability: l.opts.Durability, ns: make(map[string]dotsEntry)}
	for ns, r := range l.dots.reserved {
		f.ns[ns] = dotsEntry{reserved: r}
	}
	for ns, vv := range vectors {
		e := f.ns[ns]
		e.sum = vectorSum(vv)
		f.ns[ns] = e
	}
	return writeDots(l.dots.fs, l.dots.dir, f)
}

// reserveLocked makes sure seq of ns is reserved in the DotsFile before
// it is used, reserving the block it starts.
func (l *Log) reserveLocked(ns string, seq uint64) error {
	if seq <= l.dots.reserved[ns] {
		return nil
	}
	prev, had := l.dots.reserved[ns]
	l.dots.reserved[ns] = seq + dotBlock - 1
	if err := l.writeDotsLocked(false, nil); err != nil {
		if had {
			l.dots.reserved[ns] = prev
		} else {
			delete(l.dots.reserved, ns)
		}
		return fmt.Errorf("oplog: reserve seqs of %q: %w", ns, err)
	}
	return nil
}

// closeDots writes the clean DotsFile: exact seqs and vector sums.
func (l *Log) closeDots(vectors map[string]crdt.VersionVector) error {
	l.dots.reserved = make(map[string]uint64)
	for ns, vv := range vectors {
		if s := vv[l.replica]; s > 0 {
			l.dots.reserved[ns] = s
		}
	}
	return l.writeDotsLocked(true, vectors)
}
