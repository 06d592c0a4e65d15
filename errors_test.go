package converge_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/oplog"
)

// rootSentinels are the package's sentinel errors, by name.
var rootSentinels = map[string]error{
	"ErrNotFound":       converge.ErrNotFound,
	"ErrClosed":         converge.ErrClosed,
	"ErrSchema":         converge.ErrSchema,
	"ErrInvalid":        converge.ErrInvalid,
	"ErrCorrupt":        converge.ErrCorrupt,
	"ErrClockDrift":     converge.ErrClockDrift,
	"ErrTooLarge":       converge.ErrTooLarge,
	"ErrUnsynced":       converge.ErrUnsynced,
	"ErrCompacted":      converge.ErrCompacted,
	"ErrFeedTrimmed":    converge.ErrFeedTrimmed,
	"ErrLagged":         converge.ErrLagged,
	"ErrQuery":          converge.ErrQuery,
	"ErrField":          converge.ErrField,
	"ErrStale":          converge.ErrStale,
	"ErrDiskFault":      converge.ErrDiskFault,
	"ErrPending":        converge.ErrPending,
	"ErrResyncing":      converge.ErrResyncing,
	"ErrPaused":         converge.ErrPaused,
	"ErrUnknownPeer":    converge.ErrUnknownPeer,
	"ErrNotQuarantined": converge.ErrNotQuarantined,
}

// TestSentinelErrorsReadConverge checks that every exported Err variable
// of the package is declared in errors.go, is listed above, and reads
// "converge: ...".
func TestSentinelErrorsReadConverge(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				for _, id := range s.(*ast.ValueSpec).Names {
					if id.IsExported() && strings.HasPrefix(id.Name, "Err") {
						declared = append(declared, id.Name)
						if name != "errors.go" {
							t.Errorf("%s is declared in %s, not errors.go", id.Name, name)
						}
					}
				}
			}
		}
	}
	slices.Sort(declared)
	for _, name := range declared {
		if _, ok := rootSentinels[name]; !ok {
			t.Errorf("%s is not listed in rootSentinels", name)
		}
	}
	for name, e := range rootSentinels {
		if !slices.Contains(declared, name) {
			t.Errorf("rootSentinels lists %s, which errors.go does not declare", name)
		}
		if !strings.HasPrefix(e.Error(), "converge: ") {
			t.Errorf("%s reads %q, want \"converge: ...\"", name, e.Error())
		}
	}
}

// TestStoreErrorsTranslated checks that errors from the store below match
// the root sentinels (and still the store's), and read "converge: ...".
func TestStoreErrorsTranslated(t *testing.T) {
	ctx := context.Background()
	db, err := converge.Open(t.TempDir(), converge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := converge.NewCollection[Task](db, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, err, root, below error) {
		t.Helper()
		if !errors.Is(err, root) || below != nil && !errors.Is(err, below) {
			t.Errorf("%s: %v, want both %v and %v", what, err, root, below)
		}
		t.Logf("%s: %v", what, err)
		if msg := err.Error(); !strings.HasPrefix(msg, "converge: ") || strings.Contains(msg, "oplog:") {
			t.Errorf("%s reads %q, want \"converge: ...\" without the store's words", what, msg)
		}
	}
	_, err = tasks.Get(ctx, "ns", "missing")
	check("Get of a missing record", err, converge.ErrNotFound, nil)
	err = tasks.Delete(ctx, "ns", "missing")
	check("Delete of a missing record", err, converge.ErrNotFound, oplog.ErrNotFound)
	err = db.Update(ctx, "ns", func(tx *converge.Tx) error {
		err := tasks.Tx(tx).Delete("missing")
		check("CollectionTx.Delete of a missing record", err, converge.ErrNotFound, oplog.ErrNotFound)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Admin().ForgetPeer(ctx, "ns", db.ReplicaID())
	check("ForgetPeer of an unknown peer", err, converge.ErrUnknownPeer, oplog.ErrUnknownPeer)

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = tasks.Get(ctx, "ns", "x")
	check("Get after Close", err, converge.ErrClosed, oplog.ErrClosed)
	_, err = tasks.Put(ctx, "ns", &Task{Title: "x"})
	check("Put after Close", err, converge.ErrClosed, oplog.ErrClosed)
	_, err = db.Admin().StateHash(ctx, "ns")
	check("StateHash after Close", err, converge.ErrClosed, oplog.ErrClosed)
	for _, err := range tasks.All(ctx, "ns") {
		check("All after Close", err, converge.ErrClosed, oplog.ErrClosed)
	}
}
