package oplog_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
	"pgregory.net/rapid"
)

// modelOp is what the model expects of one logged op.
type modelOp struct {
	intent crdt.Intent
	key    string
	delete bool
	value  string
	txEnd  bool
}

// TestModel runs random transactions, failed transactions, reopens, scans
// and verifications against a store and a naive model: a slice of the ops
// logged and a map of the records' values.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		fs := vfs.NewMem()
		opts := oplog.Options{FS: fs, Durability: oplog.NoSync, Logger: quietLogger, CacheSize: 1 << 20}
		l, err := oplog.Open("db", opts)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() {
			if l != nil {
				l.Close()
			}
		}()
		id := l.ReplicaID()
		var log []modelOp
		records := make(map[string]string) // existing records' field f

		ctx := t.Context()
		keyGen := rapid.Custom(func(t *rapid.T) string { return fmt.Sprintf("k%d", rapid.IntRange(0, 5).Draw(t, "key")) })
		rt.Repeat(map[string]func(*rapid.T){
			"write": func(rt *rapid.T) {
				n := rapid.IntRange(1, 4).Draw(rt, "ops")
				fail := rapid.IntRange(0, 5).Draw(rt, "fail") == 0
				staged := make(map[string]*string)
				lookup := func(k string) (string, bool) {
					if v, ok := staged[k]; ok {
						if v == nil {
							return "", false
						}
						return *v, true
					}
					v, ok := records[k]
					return v, ok
				}
				var ops []modelOp
				wantNotFound := false
				for range n {
					k := keyGen.Draw(rt, "key")
					v := fmt.Sprint(rapid.IntRange(0, 99).Draw(rt, "value"))
					intent := rapid.SampledFrom([]crdt.Intent{crdt.IntentPut, crdt.IntentUpdate, crdt.IntentDelete}).Draw(rt, "intent")
					_, exists := lookup(k)
					if intent != crdt.IntentPut && !exists {
						wantNotFound = true
					}
					ops = append(ops, modelOp{intent: intent, key: k, delete: intent == crdt.IntentDelete, value: v})
					if wantNotFound {
						break
					}
					if intent == crdt.IntentDelete {
						staged[k] = nil
					} else {
						staged[k] = &v
					}
				}
				boom := errors.New("boom")
				_, err := l.Write(ctx, "ns", func(tx *oplog.Tx) error {
					for _, op := range ops {
						var changes []crdt.Change
						if !op.delete {
							changes = []crdt.Change{setStr("f", op.value)}
						}
						if _, err := tx.Mutate("c", op.key, op.intent, changes); err != nil {
							return err
						}
					}
					if fail {
						return boom
					}
					return nil
				})
				switch {
				case wantNotFound:
					if !errors.Is(err, oplog.ErrNotFound) {
						rt.Fatalf("Write = %v, want ErrNotFound", err)
					}
					return
				case fail:
					if !errors.Is(err, boom) {
						rt.Fatalf("Write = %v, want %v", err, boom)
					}
					return
				case err != nil:
					rt.Fatalf("Write: %v", err)
				}
				ops[len(ops)-1].txEnd = true
				log = append(log, ops...)
				for k, v := range staged {
					if v == nil {
						delete(records, k)
					} else {
						records[k] = *v
					}
				}
			},
			"reopen": func(rt *rapid.T) {
				if err := l.Close(); err != nil {
					rt.Fatal(err)
				}
				if l, err = oplog.Open("db", opts); err != nil {
					rt.Fatal(err)
				}
				if l.ReplicaID() != id {
					rt.Fatal("replica id changed")
				}
			},
			"scan": func(rt *rapid.T) {
				from := rapid.IntRange(0, len(log)).Draw(rt, "from")
				have := crdt.VersionVector{id: uint64(from)}
				i := from
				for e, err := range l.Missing(ctx, "ns", have) {
					if err != nil {
						rt.Fatal(err)
					}
					if i >= len(log) {
						rt.Fatalf("Missing yields more than the %d ops logged", len(log))
					}
					want, op := log[i], e.Op
					if op.Dot != (crdt.Dot{Origin: id, Seq: uint64(i + 1)}) || op.Key != want.key || op.IsDelete() != want.delete || op.TxEnd != want.txEnd {
						rt.Fatalf("op %d: %v %s delete=%v txEnd=%v, want seq %d %+v", i, op.Dot, op.Key, op.IsDelete(), op.TxEnd, i+1, want)
					}
					if want.intent == crdt.IntentUpdate && op.CL%2 != 1 {
						rt.Fatalf("op %d: update with CL %d", i, op.CL)
					}
					if !want.delete && string(op.Fields[0].Value) != string(crdt.EncodeString(want.value)) {
						rt.Fatalf("op %d writes %x, want %q", i, op.Fields[0].Value, want.value)
					}
					i++
				}
				if i != len(log) {
					rt.Fatalf("Missing from %d yields up to %d, want %d", from, i, len(log))
				}
			},
			"verify": func(rt *rapid.T) {
				v, err := l.Verify(ctx, "ns")
				if err != nil || !v.OK() {
					rt.Fatalf("Verify = %+v, %v", v, err)
				}
			},
			"": func(rt *rapid.T) {
				vv, err := l.Vector(ctx, "ns")
				if err != nil {
					rt.Fatal(err)
				}
				if vv[id] != uint64(len(log)) {
					rt.Fatalf("vector %d, model logged %d ops", vv[id], len(log))
				}
				for k := range 6 {
					key := fmt.Sprintf("k%d", k)
					r, err := l.Get(ctx, "ns", "c", key)
					if err != nil {
						rt.Fatal(err)
					}
					want, ok := records[key]
					if r.Exists() != ok {
						rt.Fatalf("%s exists = %v, want %v", key, r.Exists(), ok)
					}
					if v, _ := r.Get("f"); ok && string(v.Value) != string(crdt.EncodeString(want)) {
						rt.Fatalf("%s.f = %x, want %q", key, v.Value, want)
					}
				}
			},
		})
	})
}
