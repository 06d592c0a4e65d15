package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

const inspectUsage = `usage:
  converge inspect [-verify=false] DIR           namespaces, vectors, op and record counts,
                                                 conflicts, quarantine, disk use; verify
  converge inspect DIR verify                    rebuild each namespace's state from its
                                                 log and compare state hashes
  converge inspect DIR conflicts NS              the conflict log of NS
  converge inspect DIR records NS [COLLECTION]   the records of NS as JSON lines
  converge inspect DIR peers NS                  the replicas this one synced NS with, what
                                                 each held, and the stable vector
  converge inspect DIR peers NS forget REPLICA   forget a replica removed from the fleet
  converge inspect DIR compact NS [all]          compact NS: fold the ops every known peer
                                                 holds (all: every op) into base states,
                                                 drop them, and show the store before and
                                                 after
  converge inspect DIR quarantine NS             ops of NS refused as invalid or beyond
                                                 the clock bound, with the reason
  converge inspect DIR quarantine NS retry       offer them to the store again
  converge inspect DIR quarantine NS discard ORIGIN SEQ
                                                 drop one without applying it
  converge inspect -hub URL [-token T] [NS]      a running hub (its admin endpoint): each
                                                 namespace's vector, state hash, peers and
                                                 quarantine; with NS, the namespace's detail
                                                 as JSON. The token may come from
                                                 CONVERGE_TOKEN; -ca FILE trusts a private CA

Run it on a store no process has open (stop the replica or converge serve
first): a Pebble store has one owner. It opens existing stores only: a
missing directory, or one that holds no Converge store, is an error.
`

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("inspect", stderr)
	verify := fset.Bool("verify", true, "with the overview: rebuild each namespace's state from its log and compare state hashes")
	hubURL := fset.String("hub", "", "inspect a running hub at `URL` (its admin endpoint) instead of a store directory")
	token := fset.String("token", "", "bearer `token` for -hub (default $CONVERGE_TOKEN)")
	caFile := fset.String("ca", "", "CA certificates `file` (PEM) that verify the hub's TLS certificate, for -hub")
	fset.Usage = func() {
		fmt.Fprint(stderr, inspectUsage)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return err
	}
	if *hubURL != "" {
		if *token == "" {
			*token = os.Getenv("CONVERGE_TOKEN")
		}
		return inspectHub(ctx, *hubURL, *token, *caFile, fset.Args(), stdout)
	}
	if fset.NArg() < 1 {
		fset.Usage()
		return errors.New("inspect: want a store directory")
	}
	dir, rest := fset.Arg(0), fset.Args()[1:]
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	check := func(want int, what string) error {
		if len(rest) != want {
			fset.Usage()
			return fmt.Errorf("inspect %s: want %d arguments after the directory, got %d", what, want-1, len(rest)-1)
		}
		return nil
	}
	var run func(l *oplog.Log) error
	switch {
	case len(rest) == 0:
		run = func(l *oplog.Log) error { return inspectOverview(ctx, l, dir, *verify, stdout, stderr) }
	case rest[0] == "verify":
		if err := check(1, "verify"); err != nil {
			return err
		}
		run = func(l *oplog.Log) error { return inspectVerify(ctx, l, nil, stdout, stderr) }
	case rest[0] == "conflicts":
		if err := check(2, "conflicts"); err != nil {
			return err
		}
		run = func(l *oplog.Log) error { return inspectConflicts(ctx, l, rest[1], stdout) }
	case rest[0] == "records":
		if len(rest) != 2 && len(rest) != 3 {
			fset.Usage()
			return errors.New("inspect records: want NS [COLLECTION]")
		}
		coll := ""
		if len(rest) == 3 {
			coll = rest[2]
		}
		run = func(l *oplog.Log) error { return inspectRecords(ctx, l, rest[1], coll, stdout, stderr) }
	case rest[0] == "peers":
		if len(rest) != 2 && !(len(rest) == 4 && rest[2] == "forget") {
			fset.Usage()
			return errors.New("inspect peers: want NS, or NS forget REPLICA")
		}
		run = func(l *oplog.Log) error { return inspectPeers(ctx, l, rest[1], rest[2:], stdout) }
	case rest[0] == "compact":
		if len(rest) != 2 && !(len(rest) == 3 && rest[2] == "all") {
			fset.Usage()
			return errors.New("inspect compact: want NS, or NS all")
		}
		run = func(l *oplog.Log) error { return inspectCompact(ctx, l, dir, rest[1], len(rest) == 3, stdout) }
	case rest[0] == "quarantine":
		if len(rest) < 2 {
			fset.Usage()
			return errors.New("inspect quarantine: want NS")
		}
		run = func(l *oplog.Log) error { return inspectQuarantine(ctx, l, rest[1], rest[2:], stdout) }
	default:
		fset.Usage()
		return fmt.Errorf("inspect: unknown subcommand %q", rest[0])
	}
	// Only an existing store: inspect never creates one.
	l, err := oplog.Open(dir, oplog.Options{Logger: logger, ExistingOnly: true})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("inspect: %s does not exist: give the directory of an existing store", dir)
	case errors.Is(err, oplog.ErrNotStore):
		return fmt.Errorf("inspect: %s is not a Converge store (%w): give the directory a replica was opened on", dir, err)
	case err != nil:
		return fmt.Errorf("inspect: %w", err)
	}
	defer l.Close()
	return run(l)
}

// inspectOverview prints what the store holds, namespace by namespace.
func inspectOverview(ctx context.Context, l *oplog.Log, dir string, verify bool, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "replica %v\n", l.ReplicaID())
	size, files, err := diskUse(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "disk: %s in %d files\n", humanBytes(size), files)
	nss, err := l.Namespaces(ctx)
	if err != nil {
		return err
	}
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
			if total%100_000 == 0 {
				fmt.Fprintf(stderr, "  %s: %d records counted...\n", ns, total)
			}
		}
		conflicts, err := l.ConflictCount(ctx, ns)
		if err != nil {
			return err
		}
		quarantined, err := l.QuarantineStats(ns)
		if err != nil {
			return err
		}
		peers, err := l.Peers(ctx, ns)
		if err != nil {
			return err
		}
		stable, err := l.StableVector(ctx, ns)
		if err != nil {
			return err
		}
		h, err := l.Horizon(ctx, ns)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "namespace %q: %d ops, %d records (%d live, %d deleted), %d conflicts, %d quarantined (%d ops waiting behind them)\n  vector %v\n  %d known peers; %d of the ops are stable (every known replica holds them)\n  %d ops compacted into base states, %d in the log; horizon %v\n",
			ns, vv.Sum(), total, live, total-live, conflicts, quarantined.Ops, quarantined.Waiting, vv, len(peers), stable.Sum(), h.Sum(), vv.Sum()-h.Sum(), h)
	}
	if !verify {
		return nil
	}
	return inspectVerify(ctx, l, nss, stdout, stderr)
}

// inspectVerify rebuilds each namespace's state from its log and compares.
func inspectVerify(ctx context.Context, l *oplog.Log, nss []string, stdout, stderr io.Writer) error {
	if nss == nil {
		var err error
		if nss, err = l.Namespaces(ctx); err != nil {
			return err
		}
	}
	bad := 0
	for i, ns := range nss {
		fmt.Fprintf(stderr, "verifying %q (%d of %d)...\n", ns, i+1, len(nss))
		v, err := l.Verify(ctx, ns)
		if err != nil {
			return err
		}
		status := "ok"
		if !v.OK() {
			status = "MISMATCH"
			bad++
		}
		fmt.Fprintf(stdout, "namespace %q: verify %s: stored %s (%d records, deleted ones included), from log %s (%d records)\n", ns, status, v.StoredHash[:16], v.StoredCount, v.LogHash[:16], v.LogCount)
	}
	if bad > 0 {
		return fmt.Errorf("inspect: %d namespaces' stored state differs from their log: rebuild it, or resync from a peer (docs/OPERATIONS.md)", bad)
	}
	return nil
}

// inspectConflicts prints the conflict log of ns, oldest first.
func inspectConflicts(ctx context.Context, l *oplog.Log, ns string, stdout io.Writer) error {
	cs, err := l.Conflicts(ctx, ns)
	if err != nil {
		return err
	}
	for _, c := range cs {
		fmt.Fprintf(stdout, "%s/%s.%s: won %s (%s), lost %s (%s)\n", c.Collection, c.Key, c.Field,
			valueText(c.Winner.Value), versionText(c.Winner.Version), valueText(c.Loser.Value), versionText(c.Loser.Version))
	}
	fmt.Fprintf(stdout, "%d conflicts\n", len(cs))
	return nil
}

func versionText(v crdt.Version) string {
	return fmt.Sprintf("CL %d, HLC %s, replica %v", v.CL, v.HLC.Time().Format("2006-01-02T15:04:05.000Z"), v.Replica)
}

// valueText renders a msgpack value as JSON, or "unset".
func valueText(b []byte) string {
	if len(b) == 0 {
		return "unset"
	}
	var v any
	if err := msgpack.Unmarshal(b, &v); err != nil {
		return fmt.Sprintf("%x", b)
	}
	j, err := json.Marshal(jsonable(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(j)
}

// jsonable turns msgpack's decoded maps with non-string keys into ones
// encoding/json accepts.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	}
	return v
}

// inspectRecords prints the existing records of ns (of coll, if given) as
// JSON lines: the visible fields, with _collection, _id and _meta.
func inspectRecords(ctx context.Context, l *oplog.Log, ns, coll string, stdout, stderr io.Writer) error {
	enc := json.NewEncoder(stdout)
	n := 0
	for e, err := range l.Records(ctx, ns, coll) {
		if err != nil {
			return err
		}
		if !e.State.Exists() {
			continue
		}
		rec := map[string]any{
			"_collection": e.Collection,
			"_id":         e.Key,
			"_meta": map[string]any{
				"cl":      e.State.CL,
				"created": e.State.Created.HLC.Time(),
				"updated": e.State.Updated.HLC.Time(),
				"by":      e.State.Updated.Replica.String(),
			},
		}
		for _, f := range e.State.Visible() {
			var v any
			if err := msgpack.Unmarshal(f.Value, &v); err != nil {
				v = fmt.Sprintf("%x", f.Value)
			}
			rec[f.Name] = jsonable(v)
		}
		if err := enc.Encode(rec); err != nil {
			return err
		}
		n++
		if n%100_000 == 0 {
			fmt.Fprintf(stderr, "%d records...\n", n)
		}
	}
	return nil
}

// inspectQuarantine lists, retries or discards quarantined ops.
func inspectQuarantine(ctx context.Context, l *oplog.Log, ns string, args []string, stdout io.Writer) error {
	switch {
	case len(args) == 0:
		qs, err := l.Quarantine(ctx, ns)
		if err != nil {
			return err
		}
		for _, q := range qs {
			what := ""
			if op, err := crdt.DecodeOpUnchecked(q.Op); err == nil {
				what = fmt.Sprintf(" %s/%s", op.Collection, op.Key)
			}
			fmt.Fprintf(stdout, "%v %d%s: %s since %s: %s\n", q.Dot.Origin, q.Dot.Seq, what, q.Kind, q.At.UTC().Format("2006-01-02T15:04:05Z"), q.Reason)
			if q.Waiting > 0 {
				fmt.Fprintf(stdout, "  %d later ops of %v wait behind it (known peers hold them)\n", q.Waiting, q.Dot.Origin)
			}
		}
		fmt.Fprintf(stdout, "%d quarantined\n", len(qs))
		return nil
	case len(args) == 1 && args[0] == "retry":
		res, err := l.RetryQuarantine(ctx, ns)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "applied %d, still refused %d\n", res.Applied, len(res.Refused))
		return nil
	case len(args) == 3 && args[0] == "discard":
		origin, err := crdt.ParseReplicaID(args[1])
		if err != nil {
			return err
		}
		seq, err := strconv.ParseUint(args[2], 10, 64)
		if err != nil {
			return fmt.Errorf("inspect quarantine discard: seq %q: %w", args[2], err)
		}
		if err := l.DiscardQuarantined(ctx, ns, crdt.Dot{Origin: origin, Seq: seq}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "discarded %v %d\n", origin, seq)
		return nil
	}
	return errors.New("inspect quarantine: want NS, NS retry, or NS discard ORIGIN SEQ")
}

// diskUse sums the sizes of the files under dir.
func diskUse(dir string) (size int64, files int, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // Pebble deleted an obsolete file meanwhile
		}
		if err != nil {
			return err
		}
		size += info.Size()
		files++
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("inspect: disk use of %s: %w", dir, err)
	}
	return size, files, nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// inspectPeers lists the known peers of ns, or forgets one.
func inspectPeers(ctx context.Context, l *oplog.Log, ns string, args []string, stdout io.Writer) error {
	if len(args) == 2 {
		id, err := crdt.ParseReplicaID(args[1])
		if err != nil {
			return err
		}
		if err := l.ForgetPeer(ctx, ns, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "forgot %v\n", id)
		return nil
	}
	ps, err := l.Peers(ctx, ns)
	if err != nil {
		return err
	}
	mine, err := l.Vector(ctx, ns)
	if err != nil {
		return err
	}
	ids := make([]crdt.ReplicaID, 0, len(ps))
	for id := range ps {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, crdt.ReplicaID.Compare)
	for _, id := range ids {
		var behind uint64
		for o, seq := range mine {
			if seq > ps[id][o] {
				behind += seq - ps[id][o]
			}
		}
		fmt.Fprintf(stdout, "%v holds %v (%d ops behind this replica)\n", id, ps[id], behind)
	}
	stable, err := l.StableVector(ctx, ns)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d peers; stable %v\n", len(ps), stable)
	return nil
}

// inspectCompact compacts ns and prints what it holds before and after.
func inspectCompact(ctx context.Context, l *oplog.Log, dir, ns string, all bool, stdout io.Writer) error {
	show := func(when string) error {
		st, err := l.Stats(ctx, ns)
		if err != nil {
			return err
		}
		size, files, err := diskUse(dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: log %d ops (%s), states %d (%s), base states %d (%s), feed %d changes (%s); disk %s in %d files; horizon %v\n",
			when, st.LogOps, humanBytes(st.LogBytes), st.States, humanBytes(st.StateBytes), st.Bases, humanBytes(st.BaseBytes),
			st.FeedChanges, humanBytes(st.FeedBytes), humanBytes(size), files, st.Horizon)
		return nil
	}
	if err := show("before"); err != nil {
		return err
	}
	opts := oplog.CompactOptions{Reclaim: true}
	if all {
		vv, err := l.Vector(ctx, ns)
		if err != nil {
			return err
		}
		opts.Horizon = vv
	}
	st, err := l.Compact(ctx, ns, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "compacted %d ops into %d base states in %d batches; trimmed %d feed changes\n", st.Ops, st.Records, st.Batches, st.FeedTrimmed)
	if st.Ops == 0 && !all {
		fmt.Fprintln(stdout, "(nothing is stable: no known peer holds ops beyond the horizon; see inspect DIR peers NS)")
	}
	if err := l.Close(); err != nil { // flush, so the disk figure is what stays
		return err
	}
	l2, err := oplog.Open(dir, oplog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer l2.Close()
	l = l2
	return show("after")
}
