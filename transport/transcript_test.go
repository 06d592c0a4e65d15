package transport

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A transcript is a text file of commands and their expected output, in
// the style of cockroachdb/datadriven (which raft's InteractionEnv uses):
//
//	# Comments and blank lines between commands are kept as they are.
//	command arg key=value
//	----
//	the expected output, up to the next blank line
//
// runTranscripts runs every file of dir, each through the commands of a
// new environment (newEnv), and fails where the output differs from the
// file's; with -update it rewrites the files with the output instead. A
// command's output never holds a blank line.
//
// This small runner stands in for cockroachdb/datadriven, which is in the
// module graph (through pebble) but would be a direct dependency, pulling
// in another module (go-difflib), for the few lines needed here.

var update = flag.Bool("update", false, "rewrite the expected output of the transcripts under testdata")

// command is one command of a transcript.
type command struct {
	pos  string // file:line
	name string
	args []arg
}

// arg is one argument: key=value, or a bare word (HasVal false).
type arg struct {
	Key, Val string
	HasVal   bool
}

// block is a run of lines of a transcript: kept text (comments and blank
// lines), or a command and the output expected of it.
type block struct {
	isText bool
	text   []string
	cmd    string
	want   []string
	line   int
}

func runTranscripts(t *testing.T, dir string, newEnv func(t *testing.T) func(command) string) {
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in %s: %v", dir, err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runTranscript(t, file, newEnv(t))
		})
	}
}

func runTranscript(t *testing.T, file string, do func(command) string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parseTranscript(string(data))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out strings.Builder
	for _, b := range blocks {
		if b.isText {
			for _, l := range b.text {
				out.WriteString(l + "\n")
			}
			continue
		}
		pos := fmt.Sprintf("%s:%d", file, b.line)
		c := parseCommand(pos, b.cmd)
		got := strings.TrimRight(do(c), "\n")
		if strings.Contains(got, "\n\n") {
			t.Fatalf("%s: %s: output with a blank line:\n%s", pos, b.cmd, got)
		}
		want := strings.Join(b.want, "\n")
		if !*update && got != want {
			t.Errorf("%s: %s\ngot:\n%s\nwant:\n%s", pos, b.cmd, got, want)
		}
		out.WriteString(b.cmd + "\n----\n")
		if got != "" {
			out.WriteString(got + "\n")
		}
		out.WriteString("\n")
	}
	if *update {
		if err := os.WriteFile(file, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// parseTranscript splits a transcript into blocks. The blank line that
// ends a command's output belongs to the command.
func parseTranscript(s string) ([]block, error) {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	var blocks []block
	for i := 0; i < len(lines); {
		l := lines[i]
		if l == "" || strings.HasPrefix(l, "#") {
			if len(blocks) == 0 || !blocks[len(blocks)-1].isText {
				blocks = append(blocks, block{isText: true})
			}
			tb := &blocks[len(blocks)-1]
			tb.text = append(tb.text, l)
			i++
			continue
		}
		b := block{cmd: l, line: i + 1}
		i++
		if i >= len(lines) || lines[i] != "----" {
			return nil, fmt.Errorf("line %d: %q is not followed by ----", b.line, l)
		}
		for i++; i < len(lines) && lines[i] != ""; i++ {
			b.want = append(b.want, lines[i])
		}
		i++ // the blank line that ends the output
		blocks = append(blocks, b)
	}
	return blocks, nil
}

// parseCommand splits a command line into its name and its arguments,
// separated by spaces.
func parseCommand(pos, line string) command {
	words := strings.Fields(line)
	c := command{pos: pos, name: words[0]}
	for _, w := range words[1:] {
		k, v, ok := strings.Cut(w, "=")
		c.args = append(c.args, arg{Key: k, Val: v, HasVal: ok})
	}
	return c
}

// has reports whether c has the argument key (bare or with a value).
func (c command) has(key string) bool {
	_, ok := c.lookup(key)
	return ok
}

func (c command) lookup(key string) (arg, bool) {
	for _, a := range c.args {
		if a.Key == key {
			return a, true
		}
	}
	return arg{}, false
}

// word returns the i-th bare argument, failing the test if there is none.
func (c command) word(t *testing.T, i int) string {
	t.Helper()
	n := 0
	for _, a := range c.args {
		if !a.HasVal {
			if n == i {
				return a.Key
			}
			n++
		}
	}
	t.Fatalf("%s: %s: argument %d missing", c.pos, c.name, i+1)
	return ""
}

// int returns the value of key as an int, or def if c has none.
func (c command) int(t *testing.T, key string, def int) int {
	t.Helper()
	a, ok := c.lookup(key)
	if !ok {
		return def
	}
	var n int
	if _, err := fmt.Sscanf(a.Val, "%d", &n); err != nil {
		t.Fatalf("%s: %s=%q: %v", c.pos, key, a.Val, err)
	}
	return n
}
