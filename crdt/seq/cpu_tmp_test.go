package seq

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestCPURatio(t *testing.T) {
	if os.Getenv("CPURATIO") == "" {
		t.Skip()
	}
	for _, tr := range loadTraces(t, "sequential") {
		es := edits(tr)
		best := [2]time.Duration{1 << 62, 1 << 62}
		for rep := 0; rep < 15; rep++ {
			for k := 0; k < 2; k++ {
				start := cpuTime()
				for it := 0; it < 5; it++ {
					if k == 0 {
						doc := &Text{}
						for _, e := range es {
							if e.del > 0 {
								doc.Delete(e.pos, e.del)
							}
							if len(e.ins) > 0 {
								doc.Insert(traceReplica, e.pos, e.ins)
							}
						}
					} else {
						g := &gapBuffer{}
						for _, e := range es {
							if e.del > 0 {
								g.delete(e.pos, e.del)
							}
							if len(e.ins) > 0 {
								g.insert(e.pos, e.ins)
							}
						}
					}
				}
				if d := (cpuTime() - start) / 5; d < best[k] {
					best[k] = d
				}
			}
		}
		fmt.Printf("%-28s crdt %8v gap %8v ratio %.2f\n", tr.Name, best[0], best[1], float64(best[0])/float64(best[1]))
	}
}
