package crdt

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestReplicaID(t *testing.T) {
	const s = "01HZX3J5V8Q2W6N4M7K9T1R0YB"
	r, err := ParseReplicaID(s)
	if err != nil {
		t.Fatalf("ParseReplicaID(%q): %v", s, err)
	}
	if got := r.String(); got != s {
		t.Errorf("String() = %q, want %q", got, s)
	}
	if r.IsZero() || !(ReplicaID{}).IsZero() {
		t.Errorf("IsZero wrong")
	}
	for _, bad := range []string{"", "00000000000000000000000000", "01HZX3J5V8Q2W6N4M7K9T1R0Y", "01HZX3J5V8Q2W6N4M7K9T1R0YBB", "01HZX3J5V8Q2W6N4M7K9T1R0YU", "81HZX3J5V8Q2W6N4M7K9T1R0YB"} {
		if r, err := ParseReplicaID(bad); err == nil {
			t.Errorf("ParseReplicaID(%q) = %v, want an error", bad, r)
		}
	}
}

func TestOrders(t *testing.T) {
	if rA.Compare(rB) != -1 || rB.Compare(rA) != 1 || rA.Compare(rA) != 0 {
		t.Errorf("ReplicaID.Compare wrong")
	}
	dots := []struct {
		a, b Dot
		want int
	}{
		{Dot{rA, 1}, Dot{rA, 2}, -1},
		{Dot{rA, 9}, Dot{rB, 1}, -1},
		{Dot{rB, 1}, Dot{rA, 9}, 1},
		{Dot{rB, 3}, Dot{rB, 3}, 0},
	}
	for _, tt := range dots {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("Compare(%v, %v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	versions := []struct {
		a, b Version
		want int
	}{
		{Version{1, Stamp{ts(9), rC}}, Version{3, Stamp{ts(1), rA}}, -1}, // CL first
		{Version{3, Stamp{ts(1), rC}}, Version{3, Stamp{ts(2), rA}}, -1}, // then HLC
		{Version{3, Stamp{ts(2), rB}}, Version{3, Stamp{ts(2), rA}}, 1},  // then replica
		{Version{3, Stamp{ts(2), rB}}, Version{3, Stamp{ts(2), rB}}, 0},
	}
	for _, tt := range versions {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("Compare(%v, %v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Compare(tt.a); got != -tt.want {
			t.Errorf("Compare(%v, %v) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
	if !(Stamp{}).IsZero() || (Stamp{HLC: 1}).IsZero() {
		t.Errorf("Stamp.IsZero wrong")
	}
	if got, want := (Dot{rA, 3}).String(), rA.String()+":3"; got != want {
		t.Errorf("Dot.String() = %q, want %q", got, want)
	}
	if got, want := (Stamp{ts(2), rA}).String(), "2.0@"+rA.String(); got != want {
		t.Errorf("Stamp.String() = %q, want %q", got, want)
	}
}

func TestStateHash(t *testing.T) {
	empty := sha256.Sum256(nil)
	h := NewStateHash()
	if got := h.Sum(); got != hex.EncodeToString(empty[:]) {
		t.Errorf("empty Sum() = %s", got)
	}
	sum := func(recs ...[3]string) string {
		h := NewStateHash()
		for _, r := range recs {
			h.Add(r[0], r[1], []byte(r[2]))
		}
		if h.Records() != len(recs) {
			t.Errorf("Records() = %d, want %d", h.Records(), len(recs))
		}
		return h.Sum()
	}
	a := sum([3]string{"c", "k1", "state1"}, [3]string{"c", "k2", "state2"})
	if b := sum([3]string{"c", "k1", "state1"}, [3]string{"c", "k2", "state2"}); a != b {
		t.Errorf("equal records hash differently")
	}
	distinct := []string{
		a,
		sum([3]string{"c", "k2", "state2"}, [3]string{"c", "k1", "state1"}), // order
		sum([3]string{"c", "k1", "state1"}),
		sum([3]string{"ck", "1", "state1"}, [3]string{"c", "k2", "state2"}), // boundaries
		sum([3]string{"c", "k1s", "tate1"}, [3]string{"c", "k2", "state2"}),
		sum([3]string{"c", "k1", "state1c"}, [3]string{"", "k2", "state2"}),
	}
	seen := map[string]int{}
	for i, s := range distinct {
		if j, ok := seen[s]; ok {
			t.Errorf("hash %d equals hash %d", i, j)
		}
		seen[s] = i
	}
}
