// Command todo is a collaborative todo list: every copy of it keeps the
// list in its own local store and syncs it with a Converge hub
// (`converge serve`) over HTTP, so two people, each running todo with their
// own -dir, share one list. A change made by one shows up live in the
// other's `todo watch`. Without the hub, todo keeps working on its local
// copy and syncs the next time it reaches the hub.
//
// Usage:
//
//	todo [flags] add "title"   add a todo
//	todo [flags] done ID       mark a todo done (ID: its id, or a unique end of it)
//	todo [flags] list          print the list
//	todo [flags] watch         print the list now and again after every change, until interrupted
//
// Flags:
//
//	-dir DIR     this copy's store (default ./todo-data); one process at a time per dir
//	-hub URL     the hub's address (default http://127.0.0.1:8080)
//	-token T     the bearer token the hub knows (default $TODO_TOKEN)
//	-ns NAME     the list: a namespace the token grants (default todo.shopping)
//	-timeout D   how long add, done and list try to reach the hub (default 10s)
//	-v           log sync events to stderr
//
// See README.md in this directory for a walk-through with two terminals
// and a hub.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/convergedb/converge"
	httptransport "github.com/convergedb/converge/transport/http"
)

// Todo is one item of the list. Its id is a ULID, so the list's id order
// is the order the items were added in.
type Todo struct {
	ID    string `msgpack:"-" converge:"id"`
	Title string `msgpack:"title"`
	Done  bool   `msgpack:"done"`
	Meta  converge.Meta
}

// todoDone names Todo's Done field in updates: a selector the compiler
// checks, rather than its msgpack name in a string.
var todoDone = converge.FieldOf(func(t *Todo) *bool { return &t.Done })

// shortID is how many characters of the end of an id the list shows: the
// random part of the ULID, so it tells items apart.
const shortID = 6

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "todo:", err)
		stop()
		os.Exit(1)
	}
}

const usage = `usage: todo [flags] <command>

commands:
  add "title"   add a todo
  done ID       mark a todo done (ID: its id, or a unique end of it, as list shows)
  list          print the list
  watch         print the list now and again after every change, until interrupted

flags:
`

type config struct {
	dir, hub, token, ns string
	timeout             time.Duration
	verbose             bool
}

// run parses args and runs one command.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("todo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.dir, "dir", "todo-data", "this copy's store `directory` (one process at a time)")
	fs.StringVar(&cfg.hub, "hub", "http://127.0.0.1:8080", "the hub's `URL` (converge serve)")
	fs.StringVar(&cfg.token, "token", "", "the bearer `token` the hub knows (default $TODO_TOKEN)")
	fs.StringVar(&cfg.ns, "ns", "todo.shopping", "the list: a `namespace` the token grants")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "how long add, done and list try to reach the hub")
	fs.BoolVar(&cfg.verbose, "v", false, "log sync events to stderr")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.token == "" {
		cfg.token = os.Getenv("TODO_TOKEN") // not the flag's default: help would show it
	}
	cmd, rest := fs.Arg(0), fs.Args()
	if len(rest) > 0 {
		rest = rest[1:]
	}
	want := map[string]int{"add": 1, "done": 1, "list": 0, "watch": 0}
	n, ok := want[cmd]
	if !ok || len(rest) != n {
		fs.Usage()
		if cmd == "" {
			return errors.New("no command")
		}
		return fmt.Errorf("%s: wrong command or arguments", strings.Join(fs.Args(), " "))
	}

	a, err := open(cfg, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	switch cmd {
	case "add":
		return a.add(ctx, stdout, rest[0])
	case "done":
		return a.done(ctx, stdout, rest[0])
	case "list":
		a.pull(ctx, stdout)
		return a.print(ctx, stdout)
	default:
		return a.watch(ctx, stdout)
	}
}

// app is an open copy of the list: the store, the collection and the
// replicator that syncs the list with the hub.
type app struct {
	cfg   config
	db    *converge.DB
	todos *converge.Collection[Todo]
	rep   *converge.Replicator
}

func open(cfg config, stderr io.Writer) (*app, error) {
	level := slog.LevelError + 1 // quiet: the commands report what matters
	if cfg.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	db, err := converge.Open(cfg.dir, converge.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("%w (is another todo running with -dir %s?)", err, cfg.dir)
	}
	todos, err := converge.NewCollection[Todo](db, "todos")
	if err != nil {
		db.Close()
		return nil, err
	}
	peer, err := httptransport.NewClient(httptransport.ClientOptions{
		BaseURL: cfg.hub, Token: cfg.token, MaxBackoff: time.Second, Logger: logger,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	// The replicator syncs the list with the hub in the background: at
	// once, after every local write, and, since the client is a live
	// stream, whenever the hub gets a change from another copy.
	rep, err := db.OpenReplicator(peer, converge.ReplicatorOptions{
		Namespaces: []string{cfg.ns},
		Interval:   5 * time.Second, // so watch notices soon that the hub is out of reach
		MaxBackoff: 5 * time.Second, // and reconnects soon after it is back
		Logger:     logger,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &app{cfg: cfg, db: db, todos: todos, rep: rep}, nil
}

func (a *app) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.rep.Close(ctx) // only waits for its goroutines
	_ = a.db.Close()
}

// sync syncs the list with the hub once, within the timeout. It returns
// nil, or why it could not.
func (a *app) sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.timeout)
	defer cancel()
	_, err := a.rep.SyncNow(ctx, a.cfg.ns)
	switch {
	case errors.Is(err, httptransport.ErrUnauthorized):
		return errors.New("the hub refused the token (-token or $TODO_TOKEN)")
	case errors.Is(err, httptransport.ErrForbidden):
		return fmt.Errorf("the token does not grant the list %q (-ns)", a.cfg.ns)
	case err != nil && !a.cfg.verbose:
		return fmt.Errorf("cannot reach the hub at %s: %w", a.cfg.hub, innermost(err))
	}
	return err
}

// innermost returns the innermost cause of err ("connection refused"),
// which says enough for a person; -v logs the whole chain.
func innermost(err error) error {
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		err = u
	}
	return err
}

// pull fetches what the hub has that this copy lacks, or says why it
// could not.
func (a *app) pull(ctx context.Context, stdout io.Writer) {
	if err := a.sync(ctx); err != nil {
		fmt.Fprintf(stdout, "(not synced with the hub: %v; showing this copy's list)\n", err)
	}
}

// push sends this copy's writes to the hub, or says that they wait in the
// local log (the offline queue) for the next time.
func (a *app) push(ctx context.Context, stdout io.Writer) {
	err := a.sync(ctx)
	if err == nil {
		fmt.Fprintln(stdout, "synced with the hub")
		return
	}
	fmt.Fprintf(stdout, "saved locally, not synced: %v\nthe change waits in this copy's log and syncs the next time todo reaches the hub\n", err)
}

func (a *app) add(ctx context.Context, stdout io.Writer, title string) error {
	if strings.TrimSpace(title) == "" {
		return errors.New("add: the title is empty")
	}
	t := Todo{Title: title}
	id, err := a.todos.Put(ctx, a.cfg.ns, &t)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %s %q to %s\n", id, title, a.cfg.ns)
	a.push(ctx, stdout)
	return nil
}

func (a *app) done(ctx context.Context, stdout io.Writer, ref string) error {
	a.pull(ctx, stdout) // the item may have been added by another copy
	t, err := a.find(ctx, ref)
	if err != nil {
		return err
	}
	if t.Done {
		fmt.Fprintf(stdout, "%s %q was done already\n", t.ID, t.Title)
		return nil
	}
	if err := a.todos.Update(ctx, a.cfg.ns, t.ID, todoDone.Set(true)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "done %s %q\n", t.ID, t.Title)
	a.push(ctx, stdout)
	return nil
}

// find returns the todo whose id is ref or ends with ref (case does not
// matter), if exactly one does.
func (a *app) find(ctx context.Context, ref string) (Todo, error) {
	ref = strings.ToUpper(ref)
	var found []Todo
	for t, err := range a.todos.All(ctx, a.cfg.ns) {
		if err != nil {
			return Todo{}, err
		}
		if t.ID == ref {
			return t, nil
		}
		if strings.HasSuffix(t.ID, ref) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return Todo{}, fmt.Errorf("no todo %q in %s", ref, a.cfg.ns)
	case 1:
		return found[0], nil
	}
	return Todo{}, fmt.Errorf("%d todos end with %q: give more of the id", len(found), ref)
}

func (a *app) print(ctx context.Context, stdout io.Writer) error {
	var list []Todo
	for t, err := range a.todos.All(ctx, a.cfg.ns) {
		if err != nil {
			return err
		}
		list = append(list, t)
	}
	printList(stdout, a.cfg.ns, list, "")
	return nil
}

// printList prints a list: a header line (ending with note), then a line
// per todo.
func printList(w io.Writer, ns string, list []Todo, note string) {
	done := 0
	for _, t := range list {
		if t.Done {
			done++
		}
	}
	fmt.Fprintf(w, "== %s: %d todos, %d done%s\n", ns, len(list), done, note)
	for _, t := range list {
		mark := " "
		if t.Done {
			mark = "x"
		}
		fmt.Fprintf(w, "[%s] %s  %s\n", mark, t.ID[max(0, len(t.ID)-shortID):], t.Title)
	}
}

// watch prints the list, then again after every change, local or synced,
// and whenever its sync state changes, until ctx ends. The header says
// when this copy has not synced with the hub yet (the list may be
// incomplete) and when the hub is out of reach.
func (a *app) watch(ctx context.Context, stdout io.Writer) error {
	for res, err := range a.todos.Watch(ctx, a.cfg.ns, converge.Query{}) {
		if err != nil {
			return err
		}
		note := ""
		switch {
		case res.SyncErr != nil:
			note = fmt.Sprintf(" (hub out of reach: %v; retrying)", innermost(res.SyncErr))
		case !res.Synced:
			note = " (not synced with the hub yet)"
		}
		printList(stdout, a.cfg.ns, res.Value, note)
	}
	return nil // interrupted
}
