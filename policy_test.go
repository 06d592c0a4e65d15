package converge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/proptest"
	"github.com/convergedb/converge/transport"
	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

type Doc struct {
	ID   string `msgpack:"-" converge:"id"`
	V    string `msgpack:"v"`
	Meta converge.Meta
}

func mustMsgpack(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func unmsgpack(b []byte) string {
	var s string
	if len(b) > 0 {
		if err := msgpack.Unmarshal(b, &s); err != nil {
			panic(err)
		}
	}
	return s
}

// resolutionOps counts the ops of ns in db's log written by a policy.
func resolutionOps(t interface {
	Helper()
	Fatal(...any)
}, db *converge.DB, ns string) (res, all int) {
	t.Helper()
	for e, err := range db.Admin().Log().Missing(context.Background(), ns, nil) {
		if err != nil {
			t.Fatal(err)
		}
		all++
		if e.Op.Resolution {
			res++
		}
	}
	return res, all
}

// syncQuiet syncs a and b until a sync moves no op (resolutions written
// during a sync need another round).
func syncQuiet(t *testing.T, a, b *converge.DB, ns string) {
	t.Helper()
	for range 10 {
		res := syncPair(t, a, b, ns)
		if res.Sent == 0 && res.Received == 0 {
			return
		}
	}
	t.Fatal("replicas still exchange ops after 10 syncs")
}

// missing returns the encoded ops of ns that from holds and to lacks.
func missing(t *testing.T, from, to *converge.DB) [][]byte {
	t.Helper()
	vv, err := to.SyncStore().Vector(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	raw, more, err := from.SyncStore().Missing(t.Context(), "ns", vv, transport.Limits{})
	if err != nil || more {
		t.Fatalf("Missing: %v (more %v)", err, more)
	}
	return raw
}

func apply(t *testing.T, to *converge.DB, raw [][]byte) {
	t.Helper()
	a, err := to.SyncStore().Apply(t.Context(), "ns", raw)
	if err != nil || a.Applied != len(raw) {
		t.Fatalf("Apply: %+v, %v", a, err)
	}
}

// concurrentWrites creates record "d" on a, syncs it to b, then has a
// write va and b write vb concurrently, b's write later (so it wins the
// merge), and syncs them until quiet.
func concurrentWrites(t *testing.T, pa, pb converge.ConflictPolicy, va, vb string) (a, b *converge.DB) {
	t.Helper()
	ctx := t.Context()
	ca, cb := proptest.NewManualClock(1_000_000), proptest.NewManualClock(1_000_000)
	a = open(t, converge.Options{Clock: ca.Now, ConflictPolicy: pa})
	b = open(t, converge.Options{Clock: cb.Now, ConflictPolicy: pb})
	da, db := coll[Doc](t, a, "docs"), coll[Doc](t, b, "docs")
	if _, err := da.Put(ctx, "ns", &Doc{ID: "d", V: "init"}); err != nil {
		t.Fatal(err)
	}
	syncQuiet(t, a, b, "ns")
	ca.Set(1_002_000)
	cb.Set(1_003_000)
	if err := da.Update(ctx, "ns", "d", converge.Set("v", va)); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, "ns", "d", converge.Set("v", vb)); err != nil {
		t.Fatal(err)
	}
	// Cross the writes first, so that each replica's policy sees the
	// conflict before any resolution of the other's arrives.
	ra, rb := missing(t, a, b), missing(t, b, a)
	apply(t, b, ra)
	apply(t, a, rb)
	syncQuiet(t, a, b, "ns")
	if err := proptest.CheckConverged(ctx, "ns", a, b); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func valueOn(t *testing.T, db *converge.DB) string {
	t.Helper()
	d, err := coll[Doc](t, db, "docs").Get(t.Context(), "ns", "d")
	if err != nil {
		t.Fatal(err)
	}
	return d.V
}

func TestConflictPolicies(t *testing.T) {
	// b's write ("b") wins the merge; the loser is a's ("a").
	concat := converge.Resolve(func(c converge.Conflict, local, remote []byte) ([]byte, bool) {
		l, r := unmsgpack(local), unmsgpack(remote)
		if r < l {
			l, r = r, l
		}
		return mustMsgpack(l + "+" + r), true
	})
	never := converge.Resolve(func(converge.Conflict, []byte, []byte) ([]byte, bool) { return nil, false })
	for _, tt := range []struct {
		name   string
		pa, pb converge.ConflictPolicy
		want   string
		res    int // resolution ops written
	}{
		{"last write wins", converge.LastWriteWins, converge.LastWriteWins, "b", 0},
		{"prefer local", converge.PreferLocal, converge.PreferLocal, "a", 1},           // a re-writes its value
		{"prefer remote", converge.PreferRemote, converge.PreferRemote, "a", 1},        // b writes a's value
		{"opposing, both yield", converge.PreferRemote, converge.PreferLocal, "b", 0},  // neither side acts
		{"opposing, both insist", converge.PreferLocal, converge.PreferRemote, "a", 2}, // both write "a"
		{"custom", concat, concat, "a+b", 2},                                           // both write "a+b"
		{"custom declines", never, never, "b", 0},
		{"custom vs last write wins", concat, converge.LastWriteWins, "a+b", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := concurrentWrites(t, tt.pa, tt.pb, "a", "b")
			for i, db := range []*converge.DB{a, b} {
				if got := valueOn(t, db); got != tt.want {
					t.Errorf("replica %d: v = %q, want %q", i, got, tt.want)
				}
			}
			if res, _ := resolutionOps(t, a, "ns"); res != tt.res {
				t.Errorf("%d resolution ops, want %d", res, tt.res)
			}
			// The conflict feed reports the original conflict on both.
			for i, db := range []*converge.DB{a, b} {
				cs, err := db.Conflicts(t.Context(), "ns")
				if err != nil {
					t.Fatal(err)
				}
				if len(cs) == 0 || unmsgpack(cs[0].Winner.Value) != "b" || unmsgpack(cs[0].Loser.Value) != "a" {
					t.Errorf("replica %d: conflicts %+v, want b over a first", i, cs)
				}
			}
		})
	}
}

// Resolutions that disagree conflict with each other; those conflicts are
// reported but never resolved, and the replicas converge.
func TestResolutionNeverTriggersResolution(t *testing.T) {
	insist := converge.Resolve(func(c converge.Conflict, local, remote []byte) ([]byte, bool) {
		return mustMsgpack(unmsgpack(local) + "!"), true
	})
	a, b := concurrentWrites(t, insist, insist, "a", "b")
	if res, _ := resolutionOps(t, a, "ns"); res != 2 {
		t.Errorf("%d resolution ops, want 2 (one per replica)", res)
	}
	if va, vb := valueOn(t, a), valueOn(t, b); va != vb || (va != "a!" && va != "b!") {
		t.Errorf("values %q and %q, want equal, a! or b!", va, vb)
	}
	for i, db := range []*converge.DB{a, b} {
		cs, err := db.Conflicts(t.Context(), "ns")
		if err != nil {
			t.Fatal(err)
		}
		// The original conflict, then the one between the resolutions.
		if len(cs) != 2 {
			t.Fatalf("replica %d: %d conflicts, want 2: %+v", i, len(cs), cs)
		}
	}
	// Nothing more happens on further syncs.
	syncQuiet(t, a, b, "ns")
	if res, _ := resolutionOps(t, b, "ns"); res != 2 {
		t.Errorf("after more syncs: %d resolution ops, want 2", res)
	}
}

// Resolution writes reach the change feed as ordinary local changes.
func TestResolutionInChangeFeed(t *testing.T) {
	a, _ := concurrentWrites(t, converge.PreferLocal, converge.LastWriteWins, "a", "b")
	var res []crdt.Op
	for e, err := range a.Admin().Log().Missing(t.Context(), "ns", nil) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Op.Resolution {
			if e.Op.Dot.Origin.String() != a.ReplicaID() {
				t.Errorf("resolution op of %v, want ours", e.Op.Dot.Origin)
			}
			res = append(res, e.Op)
		}
	}
	if len(res) != 1 {
		t.Fatalf("%d resolution ops, want 1", len(res))
	}
	var found bool
	for c, err := range a.Admin().Log().Feed(t.Context(), "ns", 0) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Dot == res[0].Dot {
			found = true
			if !c.Local || len(c.Fields) != 1 || c.Fields[0] != "v" {
				t.Errorf("resolution change %+v, want a local change of v", c)
			}
		}
	}
	if !found {
		t.Error("resolution not in the change feed")
	}
}

// A resolution whose record was deleted meanwhile is skipped.
func TestResolutionSkipsDeleted(t *testing.T) {
	ctx := t.Context()
	ca, cb := proptest.NewManualClock(1_000_000), proptest.NewManualClock(1_000_000)
	a := open(t, converge.Options{Clock: ca.Now, ConflictPolicy: converge.PreferRemote})
	b := open(t, converge.Options{Clock: cb.Now})
	da, db := coll[Doc](t, a, "docs"), coll[Doc](t, b, "docs")
	if _, err := da.Put(ctx, "ns", &Doc{ID: "d", V: "init"}); err != nil {
		t.Fatal(err)
	}
	syncQuiet(t, a, b, "ns")
	ca.Set(1_003_000)
	cb.Set(1_002_000)
	if err := da.Update(ctx, "ns", "d", converge.Set("v", "a")); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, "ns", "d", converge.Set("v", "b")); err != nil {
		t.Fatal(err)
	}
	// b's write and b's later delete arrive together: the conflict is
	// detected, but the record is gone when the policy acts.
	cb.Set(1_004_000)
	if err := db.Delete(ctx, "ns", "d"); err != nil {
		t.Fatal(err)
	}
	syncQuiet(t, a, b, "ns")
	if n, err := a.ConflictCount(ctx, "ns"); err != nil || n != 1 {
		t.Fatalf("ConflictCount = %d, %v; want 1", n, err)
	}
	if res, _ := resolutionOps(t, a, "ns"); res != 0 {
		t.Errorf("%d resolution ops, want 0", res)
	}
	if _, err := da.Get(ctx, "ns", "d"); !errors.Is(err, converge.ErrNotFound) {
		t.Errorf("Get: %v, want ErrNotFound", err)
	}
	if err := proptest.CheckConverged(ctx, "ns", a, b); err != nil {
		t.Fatal(err)
	}
}

// Replicas with random, possibly opposing policies converge, and the
// policies write a bounded number of resolution ops: each is caused by a
// remote write arriving at a replica, at most one per arrival.
func TestPolicyConvergence(t *testing.T) {
	policies := []struct {
		name string
		p    converge.ConflictPolicy
	}{
		{"lww", converge.LastWriteWins},
		{"local", converge.PreferLocal},
		{"remote", converge.PreferRemote},
		{"max", converge.Resolve(func(_ converge.Conflict, l, r []byte) ([]byte, bool) {
			if bytes.Compare(l, r) > 0 {
				return l, true
			}
			return r, true
		})},
		{"insist", converge.Resolve(func(_ converge.Conflict, l, _ []byte) ([]byte, bool) {
			return mustMsgpack(unmsgpack(l) + "!"), true
		})},
		{"unset", converge.Resolve(func(converge.Conflict, []byte, []byte) ([]byte, bool) { return nil, true })},
	}
	var resolutions, conflicts int
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		n := rapid.IntRange(2, 3).Draw(rt, "replicas")
		dir, err := os.MkdirTemp("", "policy-prop")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		clocks := make([]*proptest.ManualClock, n)
		dbs := make([]*converge.DB, n)
		docs := make([]*converge.Collection[Doc], n)
		for i := range n {
			pi := rapid.IntRange(0, len(policies)-1).Draw(rt, fmt.Sprintf("policy%d", i))
			clocks[i] = proptest.NewManualClock(proptest.Epoch)
			db, err := converge.Open(fmt.Sprintf("%s/r%d", dir, i), converge.Options{
				Durability: converge.NoSync, Clock: clocks[i].Now, ConflictPolicy: policies[pi].p, CacheSize: 1 << 20,
			})
			if err != nil {
				rt.Fatal(err)
			}
			defer db.Close()
			dbs[i] = db
			if docs[i], err = converge.NewCollection[Doc](db, "docs"); err != nil {
				rt.Fatal(err)
			}
		}
		sync := func(i, j int) {
			if _, err := dbs[i].SyncWith(ctx, transport.NewMemPeer(dbs[j].SyncStore(), transport.Limits{}), "ns"); err != nil {
				rt.Fatalf("sync %d→%d: %v", i, j, err)
			}
		}
		keys := []string{"k0", "k1", "k2"}
		steps := rapid.IntRange(1, 40).Draw(rt, "steps")
		for range steps {
			i := rapid.IntRange(0, n-1).Draw(rt, "replica")
			switch rapid.IntRange(0, 9).Draw(rt, "action") {
			case 0, 1, 2, 3, 4:
				v := rapid.SampledFrom([]string{"x", "y", "z", ""}).Draw(rt, "value")
				d := &Doc{ID: rapid.SampledFrom(keys).Draw(rt, "key"), V: v}
				if _, err := docs[i].Put(ctx, "ns", d); err != nil {
					rt.Fatal(err)
				}
			case 5:
				err := docs[i].Delete(ctx, "ns", rapid.SampledFrom(keys).Draw(rt, "key"))
				if err != nil && !errors.Is(err, converge.ErrNotFound) {
					rt.Fatal(err)
				}
			case 6, 7, 8:
				j := rapid.IntRange(0, n-1).Draw(rt, "peer")
				if i != j {
					sync(i, j)
				}
			case 9:
				clocks[i].Set(clocks[i].Now() + int64(rapid.IntRange(0, 20).Draw(rt, "tick")))
			}
		}
		// Sync everything until quiet: resolutions written during a
		// round need the next one.
		quiet := false
		for round := 0; round < 10 && !quiet; round++ {
			before := make([]int, n)
			for i := range n {
				_, before[i] = resolutionOps(rt, dbs[i], "ns")
			}
			for i := range n {
				for j := i + 1; j < n; j++ {
					sync(i, j)
				}
			}
			quiet = true
			for i := range n {
				if _, all := resolutionOps(rt, dbs[i], "ns"); all != before[i] {
					quiet = false
				}
			}
		}
		if !quiet {
			rt.Fatal("replicas still write ops after 10 rounds of syncs")
		}
		if err := proptest.CheckConverged(ctx, "ns", dbs...); err != nil {
			rt.Fatal(err)
		}
		res, all := resolutionOps(rt, dbs[0], "ns")
		if ordinary := all - res; res > ordinary*(n-1) {
			rt.Fatalf("%d resolution ops for %d ordinary ops on %d replicas", res, ordinary, n)
		}
		resolutions += res
		for _, db := range dbs {
			c, err := db.ConflictCount(ctx, "ns")
			if err != nil {
				rt.Fatal(err)
			}
			conflicts += int(c)
		}
	})
	t.Logf("%d conflicts detected, %d resolution ops written", conflicts, resolutions)
	if resolutions == 0 {
		t.Error("no run wrote a resolution: the property tests nothing")
	}
}
