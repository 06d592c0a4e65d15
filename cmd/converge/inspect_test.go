package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

type inspectTask struct {
	ID    string   `msgpack:"-" converge:"id"`
	Title string   `msgpack:"title"`
	Tags  []string `msgpack:"tags" converge:"set"`
	Meta  converge.Meta
}

// storeWithQuarantine makes a store holding two tasks, one of them
// deleted, and one quarantined op from another replica.
func storeWithQuarantine(t *testing.T) (dir, origin string) {
	t.Helper()
	ctx := context.Background()
	quiet := converge.Options{Logger: slog.New(slog.DiscardHandler)}
	dir = filepath.Join(t.TempDir(), "store")
	db, err := converge.Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tasks, err := converge.NewCollection[inspectTask](db, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range []inspectTask{{ID: "a", Title: "keep", Tags: []string{"x"}}, {ID: "b", Title: "gone"}} {
		if _, err := tasks.Put(ctx, "ns", &it); err != nil {
			t.Fatal(err)
		}
	}
	if err := tasks.Delete(ctx, "ns", "b"); err != nil {
		t.Fatal(err)
	}
	other, err := converge.Open(filepath.Join(t.TempDir(), "other"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherTasks, _ := converge.NewCollection[inspectTask](other, "tasks")
	if _, err := otherTasks.Put(ctx, "ns", &inspectTask{ID: "p", Title: "poison"}); err != nil {
		t.Fatal(err)
	}
	ops, _, err := other.SyncStore().Missing(ctx, "ns", crdt.VersionVector{}, transport.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	op, err := crdt.DecodeOp(ops[0])
	if err != nil {
		t.Fatal(err)
	}
	op.CL = 0 // well-formed, invalid
	if _, err := db.SyncStore().Apply(ctx, "ns", [][]byte{crdt.AppendOp(nil, &op)}); err != nil {
		t.Fatal(err)
	}
	return dir, other.ReplicaID()
}

func TestInspectSubcommands(t *testing.T) {
	t.Parallel()
	dir, origin := storeWithQuarantine(t)

	out, errOut, err := runCmd(t, "inspect", dir)
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, errOut)
	}
	for _, want := range []string{"replica ", "disk: ", `namespace "ns": 3 ops, 2 records (1 live, 1 deleted), 0 conflicts, 1 quarantined (0 ops waiting behind them)`,
		"verify ok: stored ", "(2 records, deleted ones included), from log "} {
		if !strings.Contains(out, want) {
			t.Errorf("overview lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "verifying") {
		t.Errorf("no progress on stderr: %q", errOut)
	}

	out, _, err = runCmd(t, "inspect", dir, "records", "ns", "tasks")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("records: %d lines, want 1 (the deleted record is not listed):\n%s", len(lines), out)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("records line is not JSON: %v: %s", err, lines[0])
	}
	if rec["_id"] != "a" || rec["title"] != "keep" || rec["_collection"] != "tasks" {
		t.Errorf("record = %v", rec)
	}
	if tags, _ := rec["tags"].([]any); len(tags) != 1 || tags[0] != "x" {
		t.Errorf("tags = %v", rec["tags"])
	}

	out, _, err = runCmd(t, "inspect", dir, "quarantine", "ns")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, origin+" 1 tasks/p: invalid") || !strings.Contains(out, "1 quarantined") {
		t.Errorf("quarantine listing:\n%s", out)
	}
	out, _, err = runCmd(t, "inspect", dir, "quarantine", "ns", "retry")
	if err != nil || !strings.Contains(out, "applied 0, still refused 1") {
		t.Errorf("retry: %v\n%s", err, out)
	}
	if _, _, err = runCmd(t, "inspect", dir, "quarantine", "ns", "discard", origin, "1"); err != nil {
		t.Fatal(err)
	}
	out, _, _ = runCmd(t, "inspect", dir, "quarantine", "ns")
	if !strings.Contains(out, "0 quarantined") {
		t.Errorf("after discard:\n%s", out)
	}
	if out, _, err = runCmd(t, "inspect", dir, "conflicts", "ns"); err != nil || !strings.Contains(out, "0 conflicts") {
		t.Errorf("conflicts: %v\n%s", err, out)
	}
	// The store applied other's op through sync: it knows no peer by id
	// (Apply alone says nothing of the sender).
	if out, _, err = runCmd(t, "inspect", dir, "peers", "ns"); err != nil || !strings.Contains(out, "0 peers; stable") {
		t.Errorf("peers: %v\n%s", err, out)
	}
	if _, _, err = runCmd(t, "inspect", dir, "peers", "ns", "forget", origin); err == nil {
		t.Errorf("forgetting an unknown peer: no error")
	}
	// No known peer: nothing is stable, compact drops nothing; "all" drops
	// every op, and the store still verifies.
	if out, _, err = runCmd(t, "inspect", dir, "compact", "ns"); err != nil || !strings.Contains(out, "compacted 0 ops") || !strings.Contains(out, "nothing is stable") {
		t.Errorf("compact: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, "inspect", dir, "compact", "ns", "all")
	if err != nil || !strings.Contains(out, "before: log 3 ops") || !strings.Contains(out, "compacted 3 ops") || !strings.Contains(out, "after: log 0 ops") {
		t.Errorf("compact all: %v\n%s", err, out)
	}
	if out, _, err = runCmd(t, "inspect", dir); err != nil || !strings.Contains(out, "3 ops compacted into base states, 0 in the log") {
		t.Errorf("overview after compaction: %v\n%s", err, out)
	}
	if out, _, err = runCmd(t, "inspect", dir, "verify"); err != nil || !strings.Contains(out, "verify ok") {
		t.Errorf("verify: %v\n%s", err, out)
	}
	for _, bad := range [][]string{{"inspect", dir, "nope"}, {"inspect", dir, "records"}, {"inspect", dir, "quarantine", "ns", "discard", origin}, {"inspect", dir, "quarantine", "ns", "discard", "not-an-id", "1"}} {
		if _, _, err := runCmd(t, bad...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// TestInspectRefusesWhatIsNotAStore: inspect opens existing stores only.
// A missing directory, an empty one, one of other files, or a Pebble store
// that is not Converge's is an error naming the directory, and inspect
// leaves it as it found it: nothing is created.
func TestInspectRefusesWhatIsNotAStore(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	missing := filepath.Join(root, "missing")
	empty := filepath.Join(root, "empty")
	other := filepath.Join(root, "other")
	foreign := filepath.Join(root, "foreign")
	for _, d := range []string{empty, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	pdb, err := pebble.Open(foreign, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pdb.Set([]byte("k"), []byte("v"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := pdb.Close(); err != nil {
		t.Fatal(err)
	}
	listing := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	for _, tt := range []struct {
		name, dir, want string
	}{
		{"missing", missing, "does not exist"},
		{"empty", empty, "is not a Converge store"},
		{"other files", other, "is not a Converge store"},
		{"another program's Pebble store", foreign, "is not a Converge store"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := listing(tt.dir)
			for _, args := range [][]string{{"inspect", tt.dir}, {"inspect", tt.dir, "peers", "ns"}, {"inspect", tt.dir, "compact", "ns"}} {
				_, _, err := runCmd(t, args...)
				if err == nil || !strings.Contains(err.Error(), tt.dir) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("run(%q) = %v, want an error naming the directory and saying it %s", args, err, tt.want)
				}
			}
			if tt.dir != foreign && !slices.Equal(listing(tt.dir), before) {
				t.Errorf("inspect changed %s: %v, was %v", tt.dir, listing(tt.dir), before)
			}
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("inspect created the missing directory: %v", err)
	}
}
