package seq

import (
	"os"
	"strings"
	"testing"
)

func TestProfLoop(t *testing.T) {
	name := os.Getenv("PROFTRACE")
	if name == "" {
		t.Skip()
	}
	for _, tr := range loadTraces(t, "sequential") {
		if !strings.HasPrefix(tr.Name, name) {
			continue
		}
		es := edits(tr)
		for it := 0; it < 300; it++ {
			doc := &Text{}
			for _, e := range es {
				if e.del > 0 {
					doc.Delete(e.pos, e.del)
				}
				if len(e.ins) > 0 {
					doc.Insert(traceReplica, e.pos, e.ins)
				}
			}
		}
	}
}
