package seq

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// traceDir holds the editing traces (CC BY 4.0, see its README).
const traceDir = "/work/shared/data/editing-traces"

// patch is one edit of a trace: at pos (code points), delete del, insert ins.
type patch struct {
	pos, del int
	ins      string
}

func (p *patch) UnmarshalJSON(b []byte) error {
	var raw [3]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[0], &p.pos); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[1], &p.del); err != nil {
		return err
	}
	return json.Unmarshal(raw[2], &p.ins)
}

type traceTxn struct {
	Parents []int   `json:"parents"`
	Agent   int     `json:"agent"`
	Patches []patch `json:"patches"`
}

type trace struct {
	Name       string
	EndContent string     `json:"endContent"`
	NumAgents  int        `json:"numAgents"`
	Txns       []traceTxn `json:"txns"`
}

// loadTraces reads the traces in dir (sequential or concurrent), skipping
// the test if they are absent.
func loadTraces(tb testing.TB, dir string) []*trace {
	tb.Helper()
	paths, _ := filepath.Glob(filepath.Join(traceDir, dir, "*.json.gz"))
	if len(paths) == 0 {
		tb.Skipf("no editing traces in %s (see the issue: they are read at test time, not kept in the repo)", filepath.Join(traceDir, dir))
	}
	var out []*trace
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			tb.Fatal(err)
		}
		z, err := gzip.NewReader(f)
		if err != nil {
			tb.Fatal(err)
		}
		t := &trace{Name: filepath.Base(p)}
		if err := json.NewDecoder(z).Decode(t); err != nil {
			tb.Fatalf("%s: %v", p, err)
		}
		f.Close()
		out = append(out, t)
	}
	return out
}

var traceReplica = Replica{1, 2, 3}

func replaySequential(tb testing.TB, tr *trace) *Text {
	var doc Text
	for _, txn := range tr.Txns {
		for _, p := range txn.Patches {
			if p.del > 0 {
				if _, err := doc.Delete(p.pos, p.del); err != nil {
					tb.Fatal(err)
				}
			}
			if p.ins != "" {
				if _, err := doc.Insert(traceReplica, p.pos, []rune(p.ins)); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	return &doc
}

func TestSequentialTraces(t *testing.T) {
	for _, tr := range loadTraces(t, "sequential") {
		t.Run(tr.Name, func(t *testing.T) {
			doc := replaySequential(t, tr)
			if got := doc.String(); got != tr.EndContent {
				t.Fatalf("final text differs: %d bytes, want %d", len(got), len(tr.EndContent))
			}
			enc := doc.AppendBinary(nil)
			dec, err := DecodeText(enc)
			if err != nil {
				t.Fatal(err)
			}
			if dec.String() != tr.EndContent {
				t.Fatal("decoded text differs")
			}
			t.Logf("%d txns, final %d bytes, state %d bytes (%.2fx)", len(tr.Txns), len(tr.EndContent), len(enc), float64(len(enc))/float64(len(tr.EndContent)))
		})
	}
}
