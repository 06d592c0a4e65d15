package oplog_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// These tests inject disk faults with Pebble's errorfs as Options.FS, each
// in a child process (the test binary run again), because some faults end
// the process: Pebble's fatal path for WAL, MANIFEST and file-creation
// errors. The parent records what the writer saw and reopens the store
// without faults to see what survived.

const (
	faultEnvCase = "CONVERGE_FAULT_CASE"
	faultEnvDir  = "CONVERGE_FAULT_DIR"
)

// faultCase is one injected fault: an operation on files matching a
// pattern fails with an errno once armed.
type faultCase struct {
	name  string
	kinds []errorfs.OpKind
	match func(path string) bool
}

func suffix(s string) func(string) bool {
	return func(p string) bool { return strings.HasSuffix(p, s) }
}

func manifest(p string) bool { return strings.Contains(filepath.Base(p), "MANIFEST") }

func anyFile(string) bool { return true }

var writeKinds = []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpFileWriteAt}
var syncKinds = []errorfs.OpKind{errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo}

var faultCases = []faultCase{
	{"wal-write", writeKinds, suffix(".log")},
	{"wal-sync", syncKinds, suffix(".log")},
	{"sst-write", writeKinds, suffix(".sst")},
	{"sst-sync", syncKinds, suffix(".sst")},
	{"manifest-write", writeKinds, manifest},
	{"create", []errorfs.OpKind{errorfs.OpCreate}, anyFile},
	{"rename", []errorfs.OpKind{errorfs.OpRename}, anyFile},
}

var faultErrnos = map[string]syscall.Errno{"EIO": syscall.EIO, "ENOSPC": syscall.ENOSPC}

// faultValue is a write's value: 64 KiB, so that a few hundred writes
// fill memtables and make Pebble flush, rotate its WAL and MANIFEST.
func faultValue(i int) string { return fmt.Sprintf("%06d", i) + strings.Repeat("v", 64<<10) }

// TestDiskFaultChild is the child's body; it does nothing in a normal run.
func TestDiskFaultChild(t *testing.T) {
	spec := os.Getenv(faultEnvCase)
	if spec == "" {
		t.Skip("runs as a child of TestDiskFaults")
	}
	name, errno, _ := strings.Cut(spec, "/")
	var fc faultCase
	for _, c := range faultCases {
		if c.name == name {
			fc = c
		}
	}
	armed := false
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !armed || !fc.match(op.Path) {
			return nil
		}
		for _, k := range fc.kinds {
			if op.Kind == k {
				return faultErrnos[errno]
			}
		}
		return nil
	})
	l, err := oplog.Open(os.Getenv(faultEnvDir), oplog.Options{FS: errorfs.Wrap(vfs.Default, inj), StallTimeout: time.Second, Logger: quietLogger})
	if err != nil {
		fmt.Printf("open-error %v\n", err)
		return
	}
	write := func(i int) error {
		_, err := l.Write(context.Background(), "ns", func(tx *oplog.Tx) error {
			_, err := tx.Mutate("c", fmt.Sprintf("k%04d", i), crdt.IntentPut, []crdt.Change{setStr("v", faultValue(i))})
			return err
		})
		return err
	}
	for i := range 20 {
		if err := write(i); err != nil {
			fmt.Printf("setup-error %v\n", err)
			return
		}
		fmt.Printf("ack %d\n", i)
	}
	armed = true // the writes run on this goroutine; Pebble's own read it racily, which is fine for a test child
	errs := 0
	for i := 20; i < 400 && errs < 3; i++ {
		if err := write(i); err != nil {
			fmt.Printf("error %d %v\n", i, strings.ReplaceAll(err.Error(), "\n", " "))
			errs++
			continue
		}
		fmt.Printf("ack %d\n", i)
	}
	fmt.Printf("close %v\n", l.Close())
}

// faultOutcome is one row of the fault table.
type faultOutcome struct {
	fault, seen, after string
	lost               int
}

// runFault runs one fault case in a child and reopens its store.
func runFault(t *testing.T, fc faultCase, errno string) faultOutcome {
	dir := filepath.Join(t.TempDir(), "db")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDiskFaultChild$", "-test.v")
	cmd.Env = append(os.Environ(), faultEnvCase+"="+fc.name+"/"+errno, faultEnvDir+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	acked := map[int]bool{}
	o := faultOutcome{fault: fc.name + " " + errno}
	var seen []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "ack":
			n, _ := strconv.Atoi(f[1])
			acked[n] = true
		case len(f) > 2 && f[0] == "error":
			if len(seen) == 0 {
				seen = append(seen, "write error: "+shorten(strings.Join(f[2:], " ")))
			}
		case len(f) > 0 && (f[0] == "close" || f[0] == "open-error" || f[0] == "setup-error"):
			seen = append(seen, f[0]+": "+shorten(strings.Join(f[1:], " ")))
		}
	}
	if err != nil {
		last, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		seen = append(seen, fmt.Sprintf("process ended (%v): %s", err, shorten(last)))
	}
	o.seen = strings.Join(seen, "; ")
	l, err := oplog.Open(dir, oplog.Options{Logger: quietLogger})
	if err != nil {
		o.after = "reopen: " + shorten(err.Error())
		if !errors.Is(err, oplog.ErrCorrupt) {
			t.Errorf("%s: reopen failed without ErrCorrupt: %v", o.fault, err)
		}
		return o
	}
	defer l.Close()
	for i := range acked {
		r, err := l.Get(t.Context(), "ns", "c", fmt.Sprintf("k%04d", i))
		if err != nil || !r.Exists() {
			o.lost++
		}
	}
	vv, _ := l.Vector(t.Context(), "ns")
	o.after = fmt.Sprintf("reopened: %d acknowledged writes, %d lost, vector sum %d", len(acked), o.lost, vv.Sum())
	if c := l.IdentityChange(); c != nil {
		o.after += ", new replica id"
	}
	if v, err := l.Verify(t.Context(), "ns"); err != nil || !v.OK() {
		o.after += fmt.Sprintf(", Verify %v %v", v, err)
	}
	return o
}

func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 240 {
		return s[:240] + "…"
	}
	return s
}

// TestDiskFaults injects each fault in a child process and checks that no
// acknowledged write is lost and the store reopens (or says it is
// corrupt). CI runs three cases; CONVERGE_LONG_FAULTS=1 runs every case
// with EIO and ENOSPC and logs the table.
func TestDiskFaults(t *testing.T) {
	if os.Getenv(faultEnvCase) != "" {
		t.Skip("in a child")
	}
	type run struct {
		fc    faultCase
		errno string
	}
	var runs []run
	for _, fc := range faultCases {
		for _, e := range []string{"EIO", "ENOSPC"} {
			if longFaults() || (e == "EIO" && (fc.name == "wal-write" || fc.name == "sst-write" || fc.name == "create")) {
				runs = append(runs, run{fc, e})
			}
		}
	}
	var table []faultOutcome
	for _, r := range runs {
		o := runFault(t, r.fc, r.errno)
		table = append(table, o)
		if o.lost > 0 {
			t.Errorf("%s: %d acknowledged writes lost: %s", o.fault, o.lost, o.after)
		}
	}
	var b strings.Builder
	b.WriteString("\n| fault | what the caller sees | data after reopen |\n|---|---|---|\n")
	for _, o := range table {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", o.fault, o.seen, o.after)
	}
	t.Log(b.String())
}
