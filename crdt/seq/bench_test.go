package seq

import (
	"strings"
	"testing"
)

// Benchmarks of text-apply: every sequential editing trace replayed into
// a Text in memory, beside the same edits on a gap buffer of code points
// (no CRDT), in the same run. Compare the two with benchstat or by the
// ratio of their ns/op; the crdt benchmark also reports the state's
// encoded size against the final text's.
//
//	go test -run '^$' -bench 'BenchmarkTextApply' -benchmem ./crdt/seq/

// edit is a trace patch with its insert as code points.
type edit struct {
	pos, del int
	ins      []rune
}

func edits(tr *trace) []edit {
	var out []edit
	for _, txn := range tr.Txns {
		for _, p := range txn.Patches {
			out = append(out, edit{p.pos, p.del, []rune(p.ins)})
		}
	}
	return out
}

func BenchmarkTextApply(b *testing.B) {
	for _, tr := range loadTraces(b, "sequential") {
		es := edits(tr)
		name := strings.TrimSuffix(tr.Name, ".json.gz")
		b.Run(name+"/crdt", func(b *testing.B) {
			b.ReportAllocs()
			var doc *Text
			for b.Loop() {
				doc = &Text{}
				for _, e := range es {
					if e.del > 0 {
						if _, err := doc.Delete(e.pos, e.del); err != nil {
							b.Fatal(err)
						}
					}
					if len(e.ins) > 0 {
						if _, err := doc.Insert(traceReplica, e.pos, e.ins); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			if doc.String() != tr.EndContent {
				b.Fatal("final text differs")
			}
			b.ReportMetric(float64(len(doc.AppendBinary(nil))), "state-bytes")
			b.ReportMetric(float64(len(tr.EndContent)), "text-bytes")
			b.ReportMetric(float64(len(es)), "edits")
		})
		b.Run(name+"/gapbuffer", func(b *testing.B) {
			b.ReportAllocs()
			var g *gapBuffer
			for b.Loop() {
				g = &gapBuffer{}
				for _, e := range es {
					if e.del > 0 {
						g.delete(e.pos, e.del)
					}
					if len(e.ins) > 0 {
						g.insert(e.pos, e.ins)
					}
				}
			}
			if g.String() != tr.EndContent {
				b.Fatal("final text differs")
			}
			b.ReportMetric(float64(len(es)), "edits")
		})
	}
}

// gapBuffer is the baseline: an editor's plain text buffer, code points
// with a gap at the last edit.
type gapBuffer struct {
	buf           []rune
	start, gapEnd int // the gap is buf[start:gapEnd]
}

func (g *gapBuffer) moveGap(pos int) {
	switch {
	case pos < g.start:
		n := g.start - pos
		copy(g.buf[g.gapEnd-n:g.gapEnd], g.buf[pos:g.start])
		g.start, g.gapEnd = pos, g.gapEnd-n
	case pos > g.start:
		n := pos - g.start
		copy(g.buf[g.start:g.start+n], g.buf[g.gapEnd:g.gapEnd+n])
		g.start, g.gapEnd = pos, g.gapEnd+n
	}
}

func (g *gapBuffer) insert(pos int, s []rune) {
	g.moveGap(pos)
	if g.gapEnd-g.start < len(s) {
		size := max(2*len(g.buf), len(g.buf)+len(s)+64)
		nb := make([]rune, size)
		copy(nb, g.buf[:g.start])
		tail := len(g.buf) - g.gapEnd
		copy(nb[size-tail:], g.buf[g.gapEnd:])
		g.buf, g.gapEnd = nb, size-tail
	}
	copy(g.buf[g.start:], s)
	g.start += len(s)
}

func (g *gapBuffer) delete(pos, n int) {
	g.moveGap(pos)
	g.gapEnd += n
}

func (g *gapBuffer) String() string {
	return string(g.buf[:g.start]) + string(g.buf[g.gapEnd:])
}

// BenchmarkTextRemoteApply replays the ops of each sequential trace, as
// another replica receives them (ApplyInsert, ApplyDelete: integration by
// id), beside the local replay that produced them.
//
//	go test -run '^$' -bench 'BenchmarkTextRemoteApply' -benchmem ./crdt/seq/
func BenchmarkTextRemoteApply(b *testing.B) {
	for _, tr := range loadTraces(b, "sequential") {
		var ops []textOp
		src := &Text{}
		for _, e := range edits(tr) {
			if e.del > 0 {
				spans, _ := src.Delete(e.pos, e.del)
				ops = append(ops, textOp{del: spans})
			}
			if len(e.ins) > 0 {
				ins, _ := src.Insert(traceReplica, e.pos, e.ins)
				ops = append(ops, textOp{ins: &ins})
			}
		}
		name := strings.TrimSuffix(tr.Name, ".json.gz")
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var doc *Text
			for b.Loop() {
				doc = &Text{}
				for _, op := range ops {
					var err error
					if op.ins != nil {
						err = doc.ApplyInsert(*op.ins)
					} else {
						err = doc.ApplyDelete(op.del)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			if doc.String() != tr.EndContent {
				b.Fatal("final text differs")
			}
			b.ReportMetric(float64(len(ops)), "ops")
		})
	}
}
