// Command converge runs Converge's demo, hub and operator tools.
//
//	converge demo      replicas, a partition, conflicting writes, the heal
//	converge serve     a hub: HTTP sync endpoint and/or NATS replication, health, metrics
//	converge inspect   namespaces, vectors, record counts and a log check of a store
//	converge backup    a consistent copy of a store
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one gets the default behaviour: exit.
	context.AfterFunc(ctx, stop)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "converge:", err)
		os.Exit(1)
	}
}

const usage = `usage: converge <command> [flags]

commands:
  demo      run replicas in one process through a partition and a heal
  serve     run a hub: HTTP sync endpoint and/or NATS replication, /healthz, /metrics
  inspect   show what a store holds and check its state against its log
  backup    write a consistent copy of a store (restore: see docs/OPERATIONS.md)

Run 'converge <command> -h' for a command's flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command")
	}
	var err error
	switch args[0] {
	case "demo":
		err = runDemo(ctx, args[1:], stdout, stderr)
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "inspect":
		err = runInspect(ctx, args[1:], stdout, stderr)
	case "backup":
		err = runBackup(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil // the command printed its usage, as asked
	}
	return err
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
