//go:build !race

package oplog_test

// raceEnabled: the race detector is on; heavy tests shrink.
const raceEnabled = false
