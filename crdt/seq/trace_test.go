package seq

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
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

// TestConcurrentTraces replays each concurrent trace across one replica
// per agent with its real causal order: before an agent's transaction, its
// replica receives (as remote ops, in trace order) the ops of the
// transaction's causal past it lacks, and its patches are positions in
// exactly that document. At the end every replica receives every op, and
// all must show the trace's final text, with equal encodings.
func TestConcurrentTraces(t *testing.T) {
	for _, tr := range loadTraces(t, "concurrent") {
		t.Run(tr.Name, func(t *testing.T) {
			docs := replayConcurrent(t, tr)
			enc0 := docs[0].AppendBinary(nil)
			for a, d := range docs {
				if got := d.String(); got != tr.EndContent {
					t.Fatalf("agent %d's replica ends with %d bytes of text, want %d", a, len(got), len(tr.EndContent))
				}
				if !bytes.Equal(d.AppendBinary(nil), enc0) {
					t.Fatalf("agent %d's replica encodes differently from agent 0's", a)
				}
			}
			checkRoundTrip(t, docs[0])
			// Integrating the final state's runs one by one, in document
			// order (not a causal order), into an empty text gives the
			// same state.
			if !honest(&docs[0].Seq, textCodec) {
				t.Fatal("re-integrating the final state's runs gives another state")
			}
			t.Logf("%d txns, %d agents, final %d bytes, state %d bytes", len(tr.Txns), tr.NumAgents, len(tr.EndContent), len(enc0))
		})
	}
}

// txnOps are the ops one transaction of a trace produced.
type txnOps struct {
	ins  []Insert[rune]
	dels [][]Span
}

func replayConcurrent(tb testing.TB, tr *trace) []*Text {
	docs := make([]*Text, tr.NumAgents)
	held := make([][]bool, tr.NumAgents)
	for a := range docs {
		docs[a] = &Text{}
		held[a] = make([]bool, len(tr.Txns))
	}
	ops := make([]txnOps, len(tr.Txns))
	// deliver gives replica a every transaction in the causal past of
	// the parents it lacks, in trace order.
	deliver := func(a int, parents []int) {
		var need []int
		stack := slices.Clone(parents)
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if held[a][p] {
				continue
			}
			held[a][p] = true
			need = append(need, p)
			stack = append(stack, tr.Txns[p].Parents...)
		}
		slices.Sort(need)
		for _, p := range need {
			for _, ins := range ops[p].ins {
				if err := docs[a].ApplyInsert(ins); err != nil {
					tb.Fatal(err)
				}
			}
			for _, del := range ops[p].dels {
				if err := docs[a].ApplyDelete(del); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	for i, txn := range tr.Txns {
		a := txn.Agent
		deliver(a, txn.Parents)
		doc, self := docs[a], Replica{0xa0, 15: byte(a + 1)}
		for _, p := range txn.Patches {
			if p.del > 0 {
				spans, err := doc.Delete(p.pos, p.del)
				if err != nil {
					tb.Fatalf("txn %d: %v", i, err)
				}
				ops[i].dels = append(ops[i].dels, spans)
			}
			if p.ins != "" {
				ins, err := doc.InsertString(self, p.pos, p.ins)
				if err != nil {
					tb.Fatalf("txn %d: %v", i, err)
				}
				ops[i].ins = append(ops[i].ins, ins)
			}
		}
		held[a][i] = true
	}
	all := make([]int, len(tr.Txns))
	for i := range all {
		all[i] = i
	}
	for a := range docs {
		deliver(a, all)
	}
	return docs
}
