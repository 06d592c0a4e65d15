// Package deptest checks that dependencies point inward: the pure core
// (hlc, crdt, crdt/seq, materialize, query, and internal/sortedmerge,
// which crdt and materialize use) reaches no storage, network or
// edge package.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

func TestPureCoreDependencies(t *testing.T) {
	forbidden := []string{
		"github.com/convergedb/converge/oplog",
		"github.com/convergedb/converge/transport",
		"github.com/cockroachdb/pebble",
		"github.com/nats-io",
		"net/http",
	}
	// Imported directly, these would give the core I/O, goroutine
	// plumbing, logging or ambient randomness.
	forbiddenImports := []string{"os", "net", "net/http", "log", "log/slog", "context", "math/rand", "math/rand/v2", "sync"}
	for _, pkg := range []string{"hlc", "crdt", "crdt/seq", "materialize", "query", "internal/sortedmerge"} {
		path := "github.com/convergedb/converge/" + pkg
		out, err := exec.Command("go", "list", "-deps", path).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s depends on %s: the core must stay pure", pkg, dep)
				}
			}
		}
		out, err = exec.Command("go", "list", "-f", `{{join .Imports " "}}`, path).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, imp := range strings.Fields(string(out)) {
			for _, f := range forbiddenImports {
				if imp == f {
					t.Errorf("%s imports %s: the core must stay pure", pkg, imp)
				}
			}
		}
	}
}

func TestTransportDoesNotReachStorage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/convergedb/converge/transport").Output()
	if err != nil {
		t.Fatalf("go list -deps transport: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/cockroachdb/pebble") || dep == "github.com/convergedb/converge/oplog" {
			t.Errorf("transport depends on %s: it must talk to stores through transport.Store", dep)
		}
	}
}
