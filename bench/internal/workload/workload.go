// Package workload holds the record shapes the benchmark harness writes:
// the 5-field task record of its put, ingest and replicate scenarios, its
// keys, and its plain key-value encoding. The harness (bench) and the peers
// module (bench/peers) both write these, so that Converge and the systems
// it is compared with handle the same records.
package workload

import (
	"fmt"

	"github.com/convergedb/converge"
	"github.com/vmihailenco/msgpack/v5"
)

// The namespace and collection the records go to.
const (
	NS         = "bench"
	Collection = "tasks"
)

// Task is the 5-field record of the write and replication workloads.
type Task struct {
	ID       string  `msgpack:"-" converge:"id"`
	Title    string  `msgpack:"title"`
	Priority int     `msgpack:"priority"`
	Done     bool    `msgpack:"done"`
	Owner    string  `msgpack:"owner"`
	Score    float64 `msgpack:"score"`
	// Meta is what Converge fills on reads; the plain encodings leave it out.
	Meta converge.Meta `msgpack:"-"`
}

// Key is the id of the i-th record of a workload whose ids start with
// prefix.
func Key(prefix string, i int) string { return fmt.Sprintf("%s-%07d", prefix, i) }

// MakeTask returns the i-th record of a workload, with id key.
func MakeTask(key string, i int) Task {
	return Task{
		ID:       key,
		Title:    fmt.Sprintf("write the report %04d", i%10000),
		Priority: i % 5,
		Done:     i%2 == 0,
		Owner:    "alice@example.com",
		Score:    float64(i) * 0.25,
	}
}

// Encode is the record as a user of a plain key-value store would store
// it: msgpack of the struct (the id is the key).
func Encode(t *Task) ([]byte, error) {
	b, err := msgpack.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encoding a task: %w", err)
	}
	return b, nil
}
