// Package proptest holds Converge's multi-replica convergence tests and the
// tools they are built from, exported so that an application can run the
// same tests against its own collections:
//
//   - [Network], a simulated network of real replicas (Pebble stores in
//     directories of their own) in one process, which moves ops between
//     them by full anti-entropy ([Network.Sync], [Network.SyncAll]) or like
//     an unreliable network would, losing, duplicating and reordering them
//     ([Network.Deliver]); with partitions ([Network.Partition],
//     [Network.Heal]), restarts ([Network.Reopen]) and a deterministic
//     physical clock per replica ([ManualClock]);
//   - [CheckConverged], which checks that replicas hold the same ops and
//     the same state (version vectors and state hashes);
//   - [Model], a deliberately naive reference implementation of the merge
//     semantics, computed from the union of a set of ops, to compare a
//     replica's visible records with ([Model.Check]).
//
// The property: whatever the writes, and whatever subset, order and
// duplication of ops each replica received along the way, once every
// replica has every op they all show the same state, and that state is the
// one the rules give. The package's own tests check it with
// pgregory.net/rapid state machines (go test ./proptest/; more cases with
// -rapid.checks=N or CONVERGE_PROPTEST_CHECKS=N).
//
// # Usage
//
// A test of an application's collection, as a rapid property:
//
//	func TestTasksConverge(t *testing.T) {
//		rapid.Check(t, func(rt *rapid.T) {
//			ctx := t.Context()
//			net, err := proptest.Open(t.TempDir(), 3, converge.Options{})
//			if err != nil {
//				rt.Fatal(err)
//			}
//			defer net.Close()
//			rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(rt, "seed"), 0))
//			for range rapid.IntRange(1, 50).Draw(rt, "steps") {
//				i := rapid.IntRange(0, 2).Draw(rt, "replica")
//				tasks, _ := converge.NewCollection[Task](net.Replica(i), "tasks")
//				// ... write through tasks: Put, Update, Delete, db.Update ...
//				j := rapid.IntRange(0, 2).Draw(rt, "peer")
//				if _, err := net.Deliver(ctx, i, j, "team", rng, proptest.LossyDelivery); err != nil {
//					rt.Fatal(err)
//				}
//			}
//			if err := net.SyncAll(ctx, "team"); err != nil {
//				rt.Fatal(err)
//			}
//			if err := net.CheckConverged(ctx, "team"); err != nil {
//				rt.Fatal(err)
//			}
//			m := proptest.NewModel()
//			_ = m.AddLog(ctx, net.Replica(0), "team")
//			if err := m.Check(ctx, net.Replica(0), "team"); err != nil {
//				rt.Fatal(err)
//			}
//		})
//	}
//
// Replicas get a [ManualClock] each unless converge.Options.Clock is set;
// keep the clocks within the replicas' drift bound (one minute by default)
// of each other, or ops from a replica whose clock runs ahead are refused
// until the others catch up, as they would be in production.
package proptest
