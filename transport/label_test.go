package transport

import (
	"context"
	"strings"
	"testing"
)

func TestLabels(t *testing.T) {
	ctx := context.Background()
	if RequestID(ctx) != "" || Label(ctx) != "" || len(LogAttrs(ctx)) != 0 {
		t.Fatal("a bare context carries labels")
	}
	ctx = WithLabel(WithRequestID(ctx, "r-1"), "fresh/ns")
	ctx = WithLabel(ctx, "sync/ns#3")
	ctx = WithLabel(ctx, "round 1")
	if got, want := Label(ctx), "fresh/ns > sync/ns#3 > round 1"; got != want {
		t.Errorf("Label = %q, want %q", got, want)
	}
	if got := RequestID(ctx); got != "r-1" {
		t.Errorf("RequestID = %q, want r-1", got)
	}
	if got := len(LogAttrs(ctx)); got != 2 {
		t.Errorf("LogAttrs has %d attributes, want 2", got)
	}
	for id, ok := range map[string]bool{"": false, "a-1": true, "with space": false, "nl\n": false,
		strings.Repeat("x", MaxRequestIDLen): true, strings.Repeat("x", MaxRequestIDLen+1): false, "é": false} {
		if ValidRequestID(id) != ok {
			t.Errorf("ValidRequestID(%q) = %v, want %v", id, !ok, ok)
		}
	}
}
