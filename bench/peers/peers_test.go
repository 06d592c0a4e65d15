package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/automerge/automerge-go"
	"github.com/convergedb/converge"
	"github.com/convergedb/converge/bench/internal/workload"
	crdt "github.com/ipfs/go-ds-crdt"
)

// These tests check correctness only: that every scenario runs and its
// sides' checks pass, and that those checks catch a replica that missed
// or changed a record. No figure is asserted.

func testEnv(t *testing.T) *env {
	t.Helper()
	e, err := newEnv(quickConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// TestQuick runs every scenario at -quick's sizes, as CI does, and checks
// that each comparison is reported, with both medians and a ratio: every
// side verified its work (a failed check is an error row and exit 1).
func TestQuick(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-quick", "-json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	var got []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r Row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if r.Status != "" || r.Value == nil || r.PeerValue == nil || r.Ratio == nil || *r.Value <= 0 || *r.PeerValue <= 0 {
			t.Errorf("row not measured: %s", sc.Text())
		}
		if r.Goal > 0 && r.Met == nil {
			t.Errorf("row with a goal says nothing of it: %s", sc.Text())
		}
		got = append(got, r.Scenario+": "+r.Converge+" / "+r.Peer)
	}
	var want []string
	for _, s := range scenarios() {
		tr, err := s.Prepare(context.Background(), testEnv(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range tr.Compare {
			want = append(want, s.Name+": "+c.Ours+" / "+c.Peer)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDSReplicaHolds checks the go-ds-crdt checks: the count of committed
// values sees each put, and a replica missing a record, or holding another
// value, fails the final check.
func TestDSReplicaHolds(t *testing.T) {
	ctx := t.Context()
	e := testEnv(t)
	recs := putRecords(10)
	r, err := openDSReplica(e, dsMemory, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close(e)
	if err := r.put(ctx, recs[:9]); err != nil {
		t.Fatal(err)
	}
	if n, err := r.applied.state(); n != 9 || err != nil {
		t.Errorf("counted %d values committed after 9 puts (%v)", n, err)
	}
	if err := r.holds(ctx, recs); err == nil {
		t.Error("a replica missing a record passed the check")
	}
	changed := recs[9]
	changed.Title = "other"
	if err := r.put(ctx, []workload.Task{changed}); err != nil {
		t.Fatal(err)
	}
	if err := r.holds(ctx, recs); err == nil {
		t.Error("a replica holding another value passed the check")
	}
	if err := r.put(ctx, recs[9:]); err != nil {
		t.Fatal(err)
	}
	if err := r.holds(ctx, recs); err != nil {
		t.Errorf("a replica holding the records failed the check: %v", err)
	}
}

// TestDSReceiveOnPebble runs the go-ds-crdt receiver on go-ds-pebble with
// fsync, the one configuration the scenarios do not run in receive.
func TestDSReceiveOnPebble(t *testing.T) {
	if _, err := dsReceive(t.Context(), testEnv(t), dsPebbleFsync, putRecords(50)); err != nil {
		t.Fatal(err)
	}
}

// TestInboxHolds checks the in-process broadcaster: a held inbox delivers
// nothing until released, then delivers in order.
func TestInboxHolds(t *testing.T) {
	b := newInbox(true)
	b.push([]byte("1"))
	b.push([]byte("2"))
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.next(done); !errors.Is(err, crdt.ErrNoMoreBroadcast) {
		t.Fatalf("held inbox delivered, or failed with %v", err)
	}
	b.release()
	for _, want := range []string{"1", "2"} {
		got, err := b.next(t.Context())
		if err != nil || string(got) != want {
			t.Fatalf("next = %q, %v; want %q", got, err, want)
		}
	}
	if b.len() != 2 {
		t.Errorf("len = %d, want 2", b.len())
	}
}

// TestAutomergeSame checks the automerge check: documents merged one way
// only differ.
func TestAutomergeSame(t *testing.T) {
	a, b := mergeRecords(20)
	da, db := automerge.New(), automerge.New()
	if err := amPut(da, a, amMap); err != nil {
		t.Fatal(err)
	}
	if err := amPut(db, b, amMap); err != nil {
		t.Fatal(err)
	}
	if _, err := da.Merge(db); err != nil {
		t.Fatal(err)
	}
	if err := amSame(da, db, len(a)+len(b)); err == nil {
		t.Error("documents merged one way passed the check")
	}
	if _, err := db.Merge(da); err != nil {
		t.Fatal(err)
	}
	if err := amSame(da, db, len(a)+len(b)); err != nil {
		t.Errorf("merged documents failed the check: %v", err)
	}
}

// TestConvergeSameState checks the Converge check: replicas with
// different records differ.
func TestConvergeSameState(t *testing.T) {
	ctx := t.Context()
	rs, closeAll, err := openConvergeReplicas(testEnv(t), converge.NoSync, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	a, b := mergeRecords(10)
	if err := rs[0].put(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := rs[1].put(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := sameState(ctx, rs[0], rs[1]); err == nil {
		t.Error("replicas with different records passed the check")
	}
}

// TestMergeRecords checks the merge workload's overlap: n/2 keys written
// on both replicas, with different values.
func TestMergeRecords(t *testing.T) {
	a, b := mergeRecords(10)
	keys := map[string]string{}
	for _, r := range a {
		keys[r.ID] = r.Title
	}
	shared := 0
	for _, r := range b {
		if title, ok := keys[r.ID]; ok {
			shared++
			if title == r.Title {
				t.Errorf("%s has the same title on both replicas", r.ID)
			}
		}
		keys[r.ID] = r.Title
	}
	if shared != 5 || len(keys) != 15 {
		t.Errorf("%d keys shared, %d in all; want 5 and 15", shared, len(keys))
	}
}

// TestCompareRows checks the ratios' orientation and the goals.
func TestCompareRows(t *testing.T) {
	s := &scenario{Name: "s", Size: func(config) string { return "n" }}
	tr := &trial{
		Sides:   []side{{Name: "ours"}, {Name: "peer"}},
		Metrics: []metric{{Name: "rate", HigherIsBetter: true}, {Name: "time"}},
		Compare: []comparison{{"rate", "ours", "peer", 2}, {"time", "ours", "peer", 0}},
	}
	got := []map[string][]float64{
		{"rate": {30, 10, 20}, "time": {1, 3, 2}},
		{"rate": {12, 8}, "time": {6}},
	}
	rows := compareRows(config{Runs: 3}, s, tr, got)
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	rate, tm := rows[0], rows[1]
	if *rate.Value != 20 || *rate.PeerValue != 10 || *rate.Ratio != 2 || rate.Met == nil || !*rate.Met {
		t.Errorf("rate row: %+v", rate)
	}
	if *tm.Ratio != 3 || tm.Met != nil {
		t.Errorf("time row (peer/ours for times, no goal): %+v", tm)
	}
}

// TestParseFlags checks -quick's sizes and that explicit flags win.
func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"-quick", "-n", "300"})
	if err != nil {
		t.Fatal(err)
	}
	if c.N != 300 || c.SyncN != quickConfig().SyncN || c.Runs != 1 {
		t.Errorf("config %+v", c)
	}
	if _, err := parseFlags([]string{"-n", "1"}); err == nil {
		t.Error("-n 1 accepted")
	}
	if _, err := selectScenarios(scenarios(), "put,nope"); err == nil {
		t.Error("unknown scenario accepted")
	}
}
