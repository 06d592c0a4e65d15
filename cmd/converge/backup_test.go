package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convergedb/converge"
)

func TestBackupCommand(t *testing.T) {
	ctx := context.Background()
	dir, _ := storeWithQuarantine(t)
	dest := filepath.Join(t.TempDir(), "copy")
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"backup", dir, dest}, &out, &errOut); err != nil {
		t.Fatalf("backup: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "backed up") {
		t.Errorf("output = %q", out.String())
	}
	src, err := converge.Open(dir, converge.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cp, err := converge.Open(dest, converge.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	h1, _ := src.Admin().StateHash(ctx, "ns")
	h2, _ := cp.Admin().StateHash(ctx, "ns")
	if h1 != h2 {
		t.Errorf("copy's state hash %s, the store's %s", h2, h1)
	}
	if cp.ReplicaID() == src.ReplicaID() {
		t.Errorf("the copy opened with the store's replica id %s", src.ReplicaID())
	}
	// The store is open here: the command refuses, saying why.
	err = run(ctx, []string{"backup", dir, filepath.Join(t.TempDir(), "again")}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("backup of a store in use = %v, want an error saying it is in use", err)
	}
	if err := run(ctx, []string{"backup", dir}, &out, &errOut); err == nil {
		t.Error("backup with one argument succeeded")
	}
}
