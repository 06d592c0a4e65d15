package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/convergedb/converge/oplog"
)

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect", stderr)
	verify := fs.Bool("verify", true, "rebuild each namespace's state from its log and compare state hashes")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: converge inspect [-verify=false] DIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("inspect: want one store directory")
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := oplog.Open(fs.Arg(0), oplog.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Fprintf(stdout, "replica %v\n", l.ReplicaID())
	nss, err := l.Namespaces(ctx)
	if err != nil {
		return err
	}
	bad := 0
	for _, ns := range nss {
		vv, err := l.Vector(ctx, ns)
		if err != nil {
			return err
		}
		live, total := 0, 0
		for e, err := range l.Records(ctx, ns, "") {
			if err != nil {
				return err
			}
			total++
			if e.State.Exists() {
				live++
			}
		}
		conflicts, err := l.ConflictCount(ctx, ns)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "namespace %q: %d ops, %d records (%d deleted), %d conflicts\n  vector %v\n", ns, vv.Sum(), live, total-live, conflicts, vv)
		if *verify {
			v, err := l.Verify(ctx, ns)
			if err != nil {
				return err
			}
			status := "ok"
			if !v.OK() {
				status = "MISMATCH"
				bad++
			}
			fmt.Fprintf(stdout, "  verify %s: stored %s (%d records), from log %s (%d records)\n", status, v.StoredHash[:16], v.StoredCount, v.LogHash[:16], v.LogCount)
		}
	}
	if bad > 0 {
		return fmt.Errorf("inspect: %d namespaces' stored state differs from their log: run oplog Rebuild, or resync from a peer", bad)
	}
	return nil
}
