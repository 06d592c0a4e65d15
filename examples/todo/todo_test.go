package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// bound bounds every wait of the test: a failure bound, not a way to
// synchronize.
const bound = 20 * time.Second

const token = "s3cret"

// TestTodoSyncsThroughServe runs what README.md shows, as separate
// processes: `converge serve`, alice's `todo watch`, and bob's and carol's
// `todo add`, `todo done` and `todo list`, each with its own store. What bob
// adds and carol marks done shows up live in alice's watch.
func TestTodoSyncsThroughServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the programs")
	}
	bin := buildPrograms(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.txt")
	if err := os.WriteFile(tokens, []byte(token+" todo.>\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The hub, on a port of its choosing: it logs the address it listens on.
	hub := start(t, "converge serve", filepath.Join(bin, "converge"), "serve",
		"-dir", filepath.Join(dir, "hub"), "-tokens", tokens, "-listen", "127.0.0.1:0", "-log-format", "json")
	var addr string
	hub.waitLine(t, hub.stderr, func(line string) bool {
		var entry struct{ Msg, Listen string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving" {
			addr = entry.Listen
			return true
		}
		return false
	})
	hubURL := "http://" + addr
	waitHealthy(t, hubURL+"/healthz")

	todo := func(who string, args ...string) []string {
		return append([]string{filepath.Join(bin, "todo"), "-dir", filepath.Join(dir, who), "-hub", hubURL, "-token", token}, args...)
	}
	run := func(who string, args ...string) string {
		t.Helper()
		argv := todo(who, args...)
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		t.Logf("%s$ todo %s\n%s", who, strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("%s: todo %s: %v", who, strings.Join(args, " "), err)
		}
		return string(out)
	}

	// Alice watches the list; it starts empty.
	argv := todo("alice", "watch")
	watch := start(t, "todo watch", argv[0], argv[1:]...)
	watch.waitLine(t, watch.stdout, equals("== todo.shopping: 0 todos, 0 done"))

	// Bob adds an item: it shows up in alice's watch.
	out := run("bob", "add", "buy milk")
	m := regexp.MustCompile(`added (\S+) "buy milk"`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "synced with the hub") {
		t.Fatalf("todo add printed %q", out)
	}
	id := m[1]
	short := id[len(id)-shortID:]
	watch.waitLine(t, watch.stdout, equals("[ ] "+short+"  buy milk"))

	// Carol, who has never synced, marks it done by its short id: done
	// fetches the list first. Alice sees it done.
	out = run("carol", "done", short)
	if !strings.Contains(out, "done "+id) || !strings.Contains(out, "synced with the hub") {
		t.Fatalf("todo done printed %q", out)
	}
	watch.waitLine(t, watch.stdout, equals("[x] "+short+"  buy milk"))

	// Bob's copy gets it too.
	out = run("bob", "list")
	if !strings.Contains(out, "== todo.shopping: 1 todos, 1 done\n[x] "+short+"  buy milk\n") {
		t.Fatalf("todo list printed %q", out)
	}

	// Interrupted, both stop cleanly.
	watch.interrupt(t)
	hub.interrupt(t)
	if !strings.Contains(hub.stderrText(), `"msg":"stopped"`) {
		t.Errorf("converge serve did not log a clean stop:\n%s", hub.stderrText())
	}
}

// buildPrograms builds `converge` and `todo` into a temp dir and returns
// it.
func buildPrograms(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./cmd/converge", "./examples/todo")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a running program whose stdout is read line by line and whose
// stderr is read line by line and kept.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout chan string // closed at EOF
	stderr chan string // closed at EOF
	exited chan struct{}
	err    error // Wait's, after exited is closed

	mu     sync.Mutex
	errBuf bytes.Buffer
}

// start starts a program. It is interrupted, then killed, when the test
// ends, if still running.
func start(t *testing.T, name, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(path, args...), stdout: make(chan string, 1000), stderr: make(chan string, 1000), exited: make(chan struct{})}
	var readers sync.WaitGroup
	pipe := func(lines chan string, keep bool) *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		readers.Go(func() {
			defer r.Close()
			defer close(lines)
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				if keep {
					p.mu.Lock()
					p.errBuf.WriteString(sc.Text() + "\n")
					p.mu.Unlock()
				}
				select {
				case lines <- sc.Text():
				default: // nobody reads it: kept in errBuf if it matters
				}
			}
		})
		return w
	}
	outW, errW := pipe(p.stdout, false), pipe(p.stderr, true)
	p.cmd.Stdout, p.cmd.Stderr = outW, errW
	err := p.cmd.Start()
	outW.Close() // the child holds its own copies
	errW.Close()
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		readers.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		p.signal()
		select {
		case <-p.exited:
		case <-time.After(bound):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// signal asks the program to stop, as Ctrl-C does.
func (p *proc) signal() {
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		_ = p.cmd.Process.Kill() // no SIGINT on this system
	}
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errBuf.String()
}

// waitLine reads lines from one of p's outputs until match accepts one.
func (p *proc) waitLine(t *testing.T, lines <-chan string, match func(string) bool) {
	t.Helper()
	timeout := time.After(bound)
	var seen []string
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				<-p.exited
				t.Fatalf("%s exited (%v) before printing the line awaited; it printed:\n%s\nstderr:\n%s", p.name, p.err, strings.Join(seen, "\n"), p.stderrText())
			}
			seen = append(seen, line)
			if match(line) {
				return
			}
		case <-timeout:
			t.Fatalf("%s did not print the line awaited in %v; it printed:\n%s\nstderr:\n%s", p.name, bound, strings.Join(seen, "\n"), p.stderrText())
		}
	}
}

// interrupt stops p as Ctrl-C does and checks that it exits cleanly.
func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	p.signal()
	select {
	case <-p.exited:
	case <-time.After(bound):
		t.Fatalf("%s did not exit within %v of an interrupt", p.name, bound)
	}
	if p.err != nil && runtime.GOOS != "windows" { // killed there: no SIGINT
		t.Errorf("%s: %v\nstderr:\n%s", p.name, p.err, p.stderrText())
	}
}

func equals(want string) func(string) bool {
	return func(line string) bool { return line == want }
}

// waitHealthy polls url until it answers 200.
func waitHealthy(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("%s never answered 200: %v", url, errors.Join(last, ctx.Err()))
		case <-time.After(20 * time.Millisecond): // polling a condition
		}
	}
}
