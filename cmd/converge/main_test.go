package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runCmd runs the command line args and returns its stdout and stderr.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// convergedLine matches the demo's last line for a run with n replicas
// (-replicas n): the late joiner counts too, and the hub over HTTP.
func convergedLine(n int, transport string) *regexp.Regexp {
	hub := ""
	if transport == "http" {
		hub = " and the hub"
	}
	return regexp.MustCompile(fmt.Sprintf(`^converged: %d replicas%s, 3 records, state [0-9a-f]{64}$`, n+1, hub))
}

// checkCompactionText checks what step 7 says of each log: either that
// it is empty, or how many ops it keeps, a positive number. With every
// replica knowing what the others hold, every log is empty.
func checkCompactionText(t *testing.T, out string, replicas int) {
	t.Helper()
	folded := regexp.MustCompile(`(?m)^   \S+: +folded \d+ ops? into base states and dropped them; (.*)$`).FindAllStringSubmatch(out, -1)
	if len(folded) != replicas {
		t.Errorf("%d compaction lines, want %d; output:\n%s", len(folded), replicas, out)
	}
	for _, m := range folded {
		if m[1] != "its log is empty: every replica it knows holds every op" {
			t.Errorf("compaction line says %q, want the log empty (the demo waits until every replica knows what the others hold)", m[1])
		}
	}
	if strings.Contains(out, "keeps 0 ops") {
		t.Errorf("the demo says a log keeps 0 ops; output:\n%s", out)
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	for _, tr := range []string{"nats", "http"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			out, errOut, err := runCmd(t, "demo", "-transport", tr)
			if err != nil {
				t.Fatalf("run(demo -transport %s) = %v, want nil; stderr:\n%s\nstdout:\n%s", tr, err, errOut, out)
			}
			if got, want := lastLine(out), convergedLine(3, tr); !want.MatchString(got) {
				t.Errorf("last line = %q, want match for %s", got, want)
			}
			checkCompactionText(t, out, map[string]int{"nats": 3, "http": 4}[tr])
			for _, want := range []string{
				map[string]string{"nats": "over NATS", "http": "over HTTP"}[tr], // the transport it used
				"dave joins late",                          // the fourth replica the last line counts
				"alice's replicator reports 6 pending ops", // the offline queue: 4 scripted writes and 2 votes
				"alice received 9 ops (bob's 4, carol's 5), detected 2 conflicts",
				"bob   received 6 ops (alice's 6), detected 2 conflicts",
				"reports 0 pending ops",                  // the queue drained
				`task-1  "README: rewrite from scratch"`, // the winning title is what readers see
				"task-2  deleted",                        // the delete wins
				"tags=[offsite q4] votes=6",              // add wins over a concurrent remove; counters add up
				"tasks/task-1.title",                     // the conflicts, with why each write won
				"won:  bob's",
				"lost: alice's",
				"bob's HLC is later (09:01:01.000 > 09:01:00.000)",
				"tasks/task-3.status",
				"the higher replica id breaks the tie",
				"task-1.title (bob over alice)", // the conflict feed
				"{alice:9 bob:4 carol:5}",       // the version vectors
			} {
				if !strings.Contains(out, want) {
					t.Errorf("demo output does not mention %q; output:\n%s", want, out)
				}
			}
			if tr == "http" && !strings.Contains(out, "hub   received 6 ops (alice's 6), detected 2 conflicts") {
				t.Errorf("the HTTP demo does not report the hub; output:\n%s", out)
			}
			// Every replica's conflict feed lists both conflicts.
			if n := strings.Count(out, "task-1.title (bob over alice), task-3.status ("); n != map[string]int{"nats": 3, "http": 4}[tr] {
				t.Errorf("%d conflict feeds list both conflicts; output:\n%s", n, out)
			}
		})
	}
}

func TestDemoReplicas(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			out, errOut, err := runCmd(t, "demo", "-replicas", fmt.Sprint(n))
			if err != nil {
				t.Fatalf("run(demo -replicas %d) = %v, want nil; stderr:\n%s\nstdout:\n%s", n, err, errOut, out)
			}
			if got, want := lastLine(out), convergedLine(n, "nats"); !want.MatchString(got) {
				t.Errorf("last line = %q, want match for %s", got, want)
			}
			if want := fmt.Sprintf("votes=%d", 2*n); !strings.Contains(out, want) {
				t.Errorf("demo output does not show %s; output:\n%s", want, out)
			}
		})
	}
}

func TestDemoOps(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ops, votes int
		transport  string
	}{{0, 0, "http"}, {25, 75, "nats"}} {
		t.Run(fmt.Sprint(tt.ops), func(t *testing.T) {
			t.Parallel()
			out, errOut, err := runCmd(t, "demo", "-ops", fmt.Sprint(tt.ops), "-transport", tt.transport, "-v")
			if err != nil {
				t.Fatalf("run(demo -ops %d) = %v, want nil; stderr:\n%s\nstdout:\n%s", tt.ops, err, errOut, out)
			}
			if got, want := lastLine(out), convergedLine(3, tt.transport); !want.MatchString(got) {
				t.Errorf("last line = %q, want match for %s", got, want)
			}
			for _, want := range []string{
				fmt.Sprintf("tags=[offsite q4] votes=%d", tt.votes),
				fmt.Sprintf("reports %d pending ops: her writes wait", 4+tt.ops),
				"The change feed of each replica during the heal", // -v
				"Transport counters:",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("demo -ops %d output does not mention %q; output:\n%s", tt.ops, want, out)
				}
			}
		})
	}
}

func TestDemoBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-replicas", "1"}, {"-replicas", "0"}, {"-replicas", "27"}, {"-replicas", "x"},
		{"-ops", "-1"}, {"-transport", "pigeon"}, {"extra"},
	} {
		out, _, err := runCmd(t, append([]string{"demo"}, args...)...)
		if err == nil {
			t.Errorf("run(demo %q) = nil, want an error", args)
		}
		if strings.Contains(out, "converged:") {
			t.Errorf("run(demo %q) printed %q", args, lastLine(out))
		}
	}
}

func TestDemoDirThenInspect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, errOut, err := runCmd(t, "demo", "-dir", dir)
	if err != nil {
		t.Fatalf("run(demo -dir) = %v, want nil; stderr:\n%s\nstdout:\n%s", err, errOut, out)
	}
	if got, want := lastLine(out), convergedLine(3, "nats"); !want.MatchString(got) {
		t.Errorf("last line = %q, want match for %s", got, want)
	}
	if !strings.Contains(out, dir) {
		t.Errorf("demo output does not name the store directory %s", dir)
	}

	out, errOut, err = runCmd(t, "inspect", filepath.Join(dir, "alice"))
	if err != nil {
		t.Fatalf("run(inspect) = %v, want nil; stderr:\n%s\nstdout:\n%s", err, errOut, out)
	}
	for _, want := range []string{"replica ", `namespace "team-rocket"`, "verify ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output does not contain %q; output:\n%s", want, out)
		}
	}
	// The overview and verify count the same records; the live ones are
	// the demo's 3.
	counts := regexp.MustCompile(`namespace "team-rocket": \d+ ops, (\d+) records \((\d+) live, (\d+) deleted\)`).FindStringSubmatch(out)
	verified := regexp.MustCompile(`verify ok: stored \S+ \((\d+) records, deleted ones included\), from log \S+ \((\d+) records\)`).FindStringSubmatch(out)
	if counts == nil || verified == nil {
		t.Fatalf("inspect output lacks the record counts; output:\n%s", out)
	}
	if counts[1] != verified[1] || counts[1] != verified[2] || counts[2] != "3" || counts[3] != "1" {
		t.Errorf("inspect counts %s records (%s live, %s deleted), verify %s stored and %s from the log; want the same total, 3 live, 1 deleted",
			counts[1], counts[2], counts[3], verified[1], verified[2])
	}
	if strings.Contains(out, "MISMATCH") {
		t.Errorf("inspect output reports a mismatch:\n%s", out)
	}

	// The stores are kept: a second run refuses to start from them.
	if _, _, err := runCmd(t, "demo", "-dir", dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("run(demo -dir) on a used directory = %v, want a not-empty error", err)
	}
}

func TestInspectArgs(t *testing.T) {
	t.Parallel()
	if _, _, err := runCmd(t, "inspect"); err == nil {
		t.Errorf("run(inspect) with no directory = nil, want an error")
	}
	if _, _, err := runCmd(t, "inspect", "a", "b"); err == nil {
		t.Errorf("run(inspect a b) = nil, want an error")
	}
}

func TestCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		// wantOut is a substring of stdout, wantErrOut of stderr.
		wantOut, wantErrOut string
	}{
		{name: "no command", args: nil, wantErr: true, wantErrOut: "usage: converge"},
		{name: "unknown command", args: []string{"frobnicate"}, wantErr: true, wantErrOut: "usage: converge"},
		{name: "help", args: []string{"help"}, wantOut: "usage: converge"},
		{name: "-h", args: []string{"-h"}, wantOut: "usage: converge"},
		{name: "demo bad flag", args: []string{"demo", "-nope"}, wantErr: true},
		{name: "demo -h", args: []string{"demo", "-h"}, wantErrOut: "-transport"},
		{name: "serve -h", args: []string{"serve", "-h"}, wantErrOut: "CONVERGE_NATS_URL"},
		{name: "serve without dir", args: []string{"serve", "-tokens", "x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := runCmd(t, tt.args...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("run(%q) error = %v, want error: %v", tt.args, err, tt.wantErr)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("run(%q) stdout = %q, want it to contain %q", tt.args, out, tt.wantOut)
			}
			if !strings.Contains(errOut, tt.wantErrOut) {
				t.Errorf("run(%q) stderr = %q, want it to contain %q", tt.args, errOut, tt.wantErrOut)
			}
		})
	}
	if _, _, err := runCmd(t, "frobnicate"); err == nil || !strings.Contains(err.Error(), `"frobnicate"`) {
		t.Errorf("run(frobnicate) error = %v, want one naming the command", err)
	}
}
