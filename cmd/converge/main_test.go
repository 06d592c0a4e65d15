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

func convergedLine(n int) *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf(`^converged: %d replicas, \d+ records, state [0-9a-f]{64}$`, n))
}

func TestDemo(t *testing.T) {
	t.Parallel()
	out, errOut, err := runCmd(t, "demo")
	if err != nil {
		t.Fatalf("run(demo) = %v, want nil; stderr:\n%s\nstdout:\n%s", err, errOut, out)
	}
	if got, want := lastLine(out), convergedLine(3); !want.MatchString(got) {
		t.Errorf("last line = %q, want match for %s", got, want)
	}
	for _, want := range []string{
		"1 conflict detected",                    // the heal reports the conflict
		"tasks/task-1.title: bob's",              // the conflict log lists it
		"task-2  deleted",                        // the delete wins
		`task-1  "README: rewrite from scratch"`, // the winning title is what readers see
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output does not mention %q; output:\n%s", want, out)
		}
	}
	if strings.Contains(out, "   none") {
		t.Errorf("demo output says no conflicts were detected; output:\n%s", out)
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
			if got, want := lastLine(out), convergedLine(n); !want.MatchString(got) {
				t.Errorf("last line = %q, want match for %s", got, want)
			}
		})
	}
}

func TestDemoBadReplicas(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"1", "0", "27", "x"} {
		out, _, err := runCmd(t, "demo", "-replicas", arg)
		if err == nil {
			t.Errorf("run(demo -replicas %s) = nil, want an error", arg)
		}
		if strings.Contains(out, "converged:") {
			t.Errorf("run(demo -replicas %s) printed %q", arg, lastLine(out))
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
	if got, want := lastLine(out), convergedLine(3); !want.MatchString(got) {
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
	if strings.Contains(out, "MISMATCH") {
		t.Errorf("inspect output reports a mismatch:\n%s", out)
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
