package main

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/convergedb/converge"
	httptransport "github.com/convergedb/converge/transport/http"
)

// repoRoot is the repository's root, from this package's directory.
const repoRoot = "../.."

// goBlocks returns the ```go blocks of a Markdown file, without their
// fences.
func goBlocks(md string) []string {
	re := regexp.MustCompile("(?ms)^```go\n(.*?)^```\\s*$")
	var out []string
	for _, m := range re.FindAllStringSubmatch(md, -1) {
		out = append(out, m[1])
	}
	return out
}

// regions returns the README regions of the Go source src: the lines
// between a "// README:begin" line and a "// README:end" line.
func regions(src string) []string {
	re := regexp.MustCompile("(?ms)^// README:begin\n(.*?)^// README:end$")
	var out []string
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		out = append(out, strings.TrimRight(m[1], "\n")+"\n")
	}
	return out
}

// TestREADMEBlocksAreCompiled: every Go block of every README.md of the
// repository is a region of this package's source, verbatim, so what the
// READMEs show compiles (and runs, below).
func TestREADMEBlocksAreCompiled(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	compiled := regions(string(src))
	if len(compiled) == 0 {
		t.Fatal("main.go has no README region")
	}
	var readmes []string
	err = filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "README.md" {
			readmes = append(readmes, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for _, path := range readmes {
		md, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range goBlocks(string(md)) {
			blocks++
			found := false
			for _, r := range compiled {
				found = found || r == b
			}
			if !found {
				t.Errorf("%s: Go block %d is not a README region of examples/readme/main.go, verbatim:\n%s", path, i+1, b)
			}
		}
	}
	if blocks == 0 {
		t.Errorf("no Go block found in %d README files: the extraction is broken", len(readmes))
	}
}

// grantAll is a one-token authorizer.
type grantAll struct{ token string }

func (g grantAll) Authorize(_ context.Context, token string) (httptransport.Grant, error) {
	if token != g.token {
		return httptransport.Grant{}, httptransport.ErrUnauthorized
	}
	return httptransport.Grant{Namespaces: []string{">"}}, nil
}

// TestRun runs the README's code against a hub in this process: the
// task it writes reaches the hub, and nothing is left pending.
func TestRun(t *testing.T) {
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	hub, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	srv, err := httptransport.NewServer(httptransport.ServerOptions{Store: hub.SyncStore(), Auth: grantAll{"s3cret"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Close()
	slog.SetDefault(quiet) // run logs through the default logger
	if err := run(ctx, t.TempDir(), ts.URL, "s3cret"); err != nil {
		t.Fatalf("run = %v", err)
	}
	tasks, err := converge.NewCollection[Task](hub, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	var got []Task
	for task, err := range tasks.All(ctx, "team-1") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, task)
	}
	if len(got) != 1 || got[0].Title != "ship it" || !got[0].Done || got[0].Votes != 1 || !slices.Equal(got[0].Tags, []string{"q4", "release"}) || got[0].Meta.ID != got[0].ID {
		t.Errorf("the hub holds %+v, want the one task the README writes, done, tagged q4 and release, with 1 vote", got)
	}
}
