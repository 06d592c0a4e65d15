package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
)

// TestCompactionAndSnapshot runs the compaction and snapshot scenarios at
// a tiny size and checks that every metric has both figures and a ratio.
func TestCompactionAndSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real stores and loopback servers")
	}
	var stdout, stderr bytes.Buffer
	args := []string{"-quick", "-json", "-scenario", "compaction,snapshot",
		"-compaction-updates", "3000", "-compaction-records", "200", "-snapshot-records", "1500"}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	got := map[string]jsonRow{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var r jsonRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		got[r.Scenario+"/"+r.Metric] = r
	}
	for _, m := range []string{
		"compaction/" + metricSizeBefore, "compaction/" + metricSizeAfter,
		"compaction/" + metricStartupBefore, "compaction/" + metricStartupAfter, "compaction/" + metricCompactTime,
		"snapshot/" + metricSnapshotTimeHTTP, "snapshot/" + metricSnapshotBytesHTTP,
		"snapshot/" + metricSnapshotTimeNATS, "snapshot/" + metricSnapshotBytesNATS,
	} {
		r, ok := got[m]
		if !ok {
			t.Errorf("no %s row; stdout:\n%s", m, stdout.String())
			continue
		}
		if r.Value == nil || *r.Value <= 0 || r.BaselineValue == nil || *r.BaselineValue <= 0 || r.Ratio == nil || r.Status != "" {
			t.Errorf("%s: %+v", m, r)
		}
	}
	// Compaction shrinks the store; the snapshot moves every record.
	if b, a := got["compaction/"+metricSizeBefore], got["compaction/"+metricSizeAfter]; b.Value != nil && a.Value != nil && *a.Value >= *b.Value {
		t.Errorf("store size after compaction %v, before %v", *a.Value, *b.Value)
	}
	if r := got["snapshot/"+metricSnapshotBytesNATS]; r.Value != nil && r.BaselineValue != nil && *r.Value < *r.BaselineValue/2 {
		t.Errorf("the NATS bootstrap moved %v bytes for records of %v bytes", *r.Value, *r.BaselineValue)
	}
}
