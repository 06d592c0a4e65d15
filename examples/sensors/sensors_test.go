package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRun runs the whole story in-process, small, and checks its last
// line: every site converged, and the control room holds every reading.
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-sites", "2", "-readings", "6"}, "converged: 2 sites, 12 readings"},
		{[]string{"-sites", "1", "-readings", "3"}, "converged: 1 sites, 3 readings"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*bound)
			defer cancel()
			var out bytes.Buffer
			start := time.Now()
			if err := run(ctx, tc.args, &out); err != nil {
				t.Fatalf("run: %v\noutput:\n%s", err, out.String())
			}
			t.Logf("ran in %v", time.Since(start).Round(time.Millisecond))
			lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			if last := lines[len(lines)-1]; last != tc.want {
				t.Fatalf("last line %q, want %q; output:\n%s", last, tc.want, out.String())
			}
			for _, want := range []string{"converge.fleet.alerts.{ops,sync}", "link to the hub is cut", "queue drained: 0 ops pending"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("the story does not tell %q:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-sites", "0"}, {"-sites", "13"}, {"-readings", "0"}, {"extra"}} {
		if err := run(t.Context(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
