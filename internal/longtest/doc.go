// Package longtest holds the long tests that exercise a whole replica from
// outside: the crash tests, which SIGKILL child processes writing to and
// ingesting into a store and check what survives (crash_test.go), and the
// soak tests, which run replicas through a hub for a while and check they
// converge with steady resources (soak_test.go). They live apart from the
// root package so that `go test .` stays fast; `go test ./...` and CI run
// them. CONVERGE_CRASH_ITERATIONS, CONVERGE_CRASH_SEED and
// CONVERGE_SOAK_DURATION lengthen or replay them.
package longtest
