package oplog_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

const nosyncEnvChild = "CONVERGE_NOSYNC_CHILD"

// TestNoSyncKillChild is the child of TestNoSyncKillLoss: it writes small
// records with NoSync and prints each acknowledged one.
func TestNoSyncKillChild(t *testing.T) {
	spec := os.Getenv(nosyncEnvChild)
	if spec == "" {
		t.Skip("runs as a child of TestNoSyncKillLoss")
	}
	dir, interval, _ := strings.Cut(spec, ",")
	d, _ := time.ParseDuration(interval)
	l, err := oplog.Open(dir, oplog.Options{Durability: oplog.NoSync, SyncInterval: d, Logger: quietLogger})
	if err != nil {
		fmt.Println("open-error", err)
		return
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		_, err := l.Write(context.Background(), "ns", func(tx *oplog.Tx) error {
			_, err := tx.Mutate("c", fmt.Sprintf("k%07d", i), crdt.IntentPut, []crdt.Change{setStr("v", strings.Repeat("x", 100))})
			return err
		})
		if err != nil {
			fmt.Fprintln(w, "error", err)
			w.Flush()
			return
		}
		fmt.Fprintln(w, "ack", i)
		w.Flush()
	}
}

// TestNoSyncKillLoss kills a NoSync writer with SIGKILL after some
// acknowledged writes and counts the acknowledged writes the reopened
// store lacks: at most what Pebble's 32 KiB in-process WAL buffer holds
// (about 32 KiB / 190 bytes per write). With SyncInterval a kill loses
// more (commits queue in memory during each fsync); the test logs both.
func TestNoSyncKillLoss(t *testing.T) {
	if os.Getenv(nosyncEnvChild) != "" {
		t.Skip("in a child")
	}
	kills := 3
	if longFaults() {
		kills = 20
	}
	for _, interval := range []time.Duration{0, 5 * time.Millisecond} {
		worst := 0
		for k := range kills {
			lost, acked := nosyncKill(t, interval, 500+k*373)
			worst = max(worst, lost)
			if interval == 0 && lost > 400 {
				t.Errorf("SyncInterval 0: kill %d lost %d of %d acknowledged writes, beyond the 32 KiB buffer's ~170", k, lost, acked)
			}
		}
		t.Logf("NoSync, SyncInterval %v: worst loss over %d SIGKILLs: %d acknowledged writes (~190 bytes of WAL each)", interval, kills, worst)
	}
}

// nosyncKill runs a child, kills it after n acknowledged writes, and
// returns how many acknowledged writes the store lacks.
func nosyncKill(t *testing.T, interval time.Duration, n int) (lost, acked int) {
	dir := filepath.Join(t.TempDir(), "db")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNoSyncKillChild$")
	cmd.Env = append(os.Environ(), nosyncEnvChild+"="+dir+","+interval.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	last := -1
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "ack" {
			last, _ = strconv.Atoi(f[1])
			if last+1 >= n {
				break
			}
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait() // killed
	l := openLog(t, dir, oplog.Options{Durability: oplog.NoSync})
	defer l.Close()
	for i := last; i >= 0; i-- {
		r, err := l.Get(t.Context(), "ns", "c", fmt.Sprintf("k%07d", i))
		if err != nil {
			t.Fatal(err)
		}
		if r.Exists() {
			break
		}
		lost++
	}
	return lost, last + 1
}
