package oplog_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/convergedb/converge/oplog"
)

// longFaults reports whether the long versions of the fault tests run
// (CONVERGE_LONG_FAULTS=1); CI runs the short ones.
func longFaults() bool { return os.Getenv("CONVERGE_LONG_FAULTS") != "" }

// lastRecord returns the offset and length of the payload of the last
// record in a Pebble record file (MANIFEST, WAL): 32 KiB blocks of chunks,
// each with a 7-byte header (checksum 4, length 2, type 1), or -1.
func lastRecord(b []byte) (off, n int) {
	const block, header = 32 << 10, 7
	off, n = -1, 0
	for pos := 0; pos+header <= len(b); {
		if block-pos%block < header {
			pos += block - pos%block
			continue
		}
		length := int(binary.LittleEndian.Uint16(b[pos+4:]))
		typ := b[pos+6]
		if typ == 0 && length == 0 || pos+header+length > len(b) {
			break
		}
		if typ == 1 || typ == 2 { // full or first chunk: a record starts
			off, n = pos+header, length
		}
		pos += header + length
	}
	return off, n
}

// TestOpenCheckManifestLastRecord is the first reproduction: a
// flipped bit in the last record of the current MANIFEST of a cleanly
// closed store made Pebble fall back to an older version, and the store
// opened short of 300 acknowledged records. Open must refuse it.
func TestOpenCheckManifestLastRecord(t *testing.T) {
	s := buildFileStore(t)
	// Opening replays the WAL into an SSTable: the MANIFEST's last record
	// is that flush, and the WAL it replaced is deleted.
	l := openLog(t, s.dir, oplog.Options{Durability: oplog.NoSync})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	manifests := storeFiles(t, s.dir, "MANIFEST-*")
	name := manifests[len(manifests)-1]
	dir := s.copyStore(t)
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	off, n := lastRecord(b)
	if off < 0 {
		t.Fatalf("%s holds no record", name)
	}
	b[off+n/2] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	o := readDamaged(t, s, dir)
	checkDamaged(t, s, o, 0)
	if o.openErr == nil && len(o.errs) == 0 && o.image != len(s.images)-1 {
		t.Errorf("flipped bit in the last MANIFEST record: store opened short of acknowledged data (%v)", o)
	}
}

// TestOpenCheckWALTail is the second reproduction: a flipped bit
// in the newest WAL's last 32 KiB block dropped every fsynced commit from
// that point without an error.
func TestOpenCheckWALTail(t *testing.T) {
	s := buildFileStore(t)
	logs := storeFiles(t, s.dir, "*.log")
	name := logs[len(logs)-1]
	size := fileSize(t, filepath.Join(s.dir, name))
	if size == 0 {
		t.Fatal("empty WAL")
	}
	for _, off := range []int64{size - size%(32<<10) + 10, size / 2, size - 20} {
		if off >= size {
			continue
		}
		t.Run(strconv.FormatInt(off, 10), func(t *testing.T) {
			dir := s.copyStore(t)
			flip(t, filepath.Join(dir, name), off, 1)
			checkDamaged(t, s, readDamaged(t, s, dir), 0)
		})
	}
}

// sweepStore is the shape of the small store the bit-flip sweep damages.
var sweepStore = storeShape{records: 40, updateFrom: 30, updateExtra: 10, pad: 300, walWrites: 4}

// TestBitFlipSweep flips one bit at a time over the files of a small
// closed store: each flip must give an Open (or read) error that says the
// store is corrupt, or the very data written; never a store that opens
// and reads cleanly short of acknowledged writes. CI flips a few offsets
// per file; CONVERGE_LONG_FAULTS=1 flips one bit of every byte.
func TestBitFlipSweep(t *testing.T) {
	s := buildShapedStore(t, sweepStore)
	des, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	perFile := int64(6)
	if testing.Short() {
		perFile = 3
	}
	for _, d := range des {
		name := d.Name()
		size := fileSize(t, filepath.Join(s.dir, name))
		if d.IsDir() || size == 0 || name == "LOCK" {
			continue
		}
		step := max(1, size/perFile)
		if longFaults() {
			step = 1
		}
		for off := step / 2; off < size; off += step {
			bit := byte(1) << (off % 8)
			t.Run(name+"/"+strconv.FormatInt(off, 10), func(t *testing.T) {
				dir := s.copyStore(t)
				p := filepath.Join(dir, name)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[off] ^= bit
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				checkDamaged(t, s, readDamaged(t, s, dir), 0)
			})
		}
	}
}
