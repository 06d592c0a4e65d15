// Package funclen checks that library functions read as a list of steps:
// no function of the module outside cmd/, bench/ and examples/ (and
// outside tests) has a body of more than MaxLines lines.
package funclen

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// MaxLines is the most lines a function's body may take, between its
// braces.
const MaxLines = 80

// skipped are the module's top directories whose code is not library code.
var skipped = []string{"cmd", "bench", "examples"}

// TestFunctionLength fails with the list of library functions whose body
// is longer than MaxLines lines.
func TestFunctionLength(t *testing.T) {
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	long, err := longFunctions(root, MaxLines)
	if err != nil {
		t.Fatal(err)
	}
	if len(long) > 0 {
		t.Errorf("%d library functions have bodies over %d lines; split them into named steps:\n%s",
			len(long), MaxLines, strings.Join(long, "\n"))
	}
}

// longFunctions lists the functions of the non-test Go files under root
// (outside the skipped directories, testdata and other modules) whose
// bodies are longer than max lines, as "path:line: name: n lines",
// longest first.
func longFunctions(root string, max int) ([]string, error) {
	type long struct {
		where string
		lines int
	}
	var found []long
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && skipDir(rel, path) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			n := fset.Position(fn.Body.Rbrace).Line - fset.Position(fn.Body.Lbrace).Line - 1
			if n > max {
				pos := fset.Position(fn.Pos())
				found = append(found, long{fmt.Sprintf("%s:%d: %s: %d lines", filepath.ToSlash(rel), pos.Line, funcName(fn), n), n})
			}
		}
		return nil
	})
	slices.SortFunc(found, func(a, b long) int { return b.lines - a.lines })
	out := make([]string, len(found))
	for i, l := range found {
		out[i] = l.where
	}
	return out, err
}

// skipDir reports whether the directory rel (path from the root) holds no
// library code of this module.
func skipDir(rel, path string) bool {
	base := filepath.Base(rel)
	if slices.Contains(skipped, filepath.ToSlash(rel)) || base == "testdata" || strings.HasPrefix(base, ".") || strings.HasPrefix(base, "_") {
		return true
	}
	_, err := os.Stat(filepath.Join(path, "go.mod")) // another module
	return err == nil
}

// funcName is fn's name, with its receiver type for a method.
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	t := fn.Recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
			continue
		case *ast.IndexExpr:
			t = x.X
			continue
		case *ast.IndexListExpr:
			t = x.X
			continue
		case *ast.Ident:
			return x.Name + "." + fn.Name.Name
		}
		return fn.Name.Name
	}
}
