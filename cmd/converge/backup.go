package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"

	"github.com/convergedb/converge/oplog"
)

const backupUsage = `usage: converge backup DIR DEST

Writes a consistent copy of the store in DIR to DEST, a directory that must
not exist (a Pebble checkpoint: hard links where it can). DIR must not be
open in another process: a running hub backs up through the library call
(converge.Admin.Backup) while it serves.

To restore, stop the replica, move its store away, move DEST to DIR and
start it. The restored replica continues under a new replica id, so it
never reuses an op identity it handed out after the backup; its peers send
it back the ops it lacks. See docs/OPERATIONS.md, "Backup and restore".
`

// runBackup is the backup command.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("backup", stderr)
	fset.Usage = func() { fmt.Fprint(stderr, backupUsage) }
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() != 2 {
		fset.Usage()
		return fmt.Errorf("backup: want DIR and DEST, got %d arguments", fset.NArg())
	}
	dir, dest := fset.Arg(0), fset.Arg(1)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := oplog.Open(dir, oplog.Options{Logger: logger, ExistingOnly: true})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("backup: %s does not exist: give the directory of an existing store", dir)
	case errors.Is(err, oplog.ErrNotStore):
		return fmt.Errorf("backup: %s is not a Converge store (%w)", dir, err)
	case err != nil:
		// Pebble's lock error differs by platform and by whether this
		// process holds the lock: name the likely cause for any.
		return fmt.Errorf("backup: %w (if a running hub or app holds the store, it is in use: back it up through that process, converge.Admin.Backup)", err)
	}
	defer l.Close()
	if err := l.Checkpoint(ctx, dest); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backed up %s (replica %v) to %s\n", dir, l.ReplicaID(), dest)
	return nil
}
