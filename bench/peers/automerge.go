package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/automerge/automerge-go"
	"github.com/convergedb/converge/bench/internal/stats"
	"github.com/convergedb/converge/bench/internal/workload"
)

// automerge-go (automerge/automerge-go): Go bindings (cgo) of automerge-rs,
// a JSON-like CRDT document held in memory. A record is a map under its id
// in the document's root map, with the record's five fields (merged per
// field, as Converge does); a put is setting it and committing the change
// (one change per record, as one commit per Put on the other sides). The
// put scenario also runs it with the record as one msgpack bytes value
// under its id, as go-ds-crdt stores it (no per-field merge; fewer calls).
// Nothing is written to disk: a user persists a document with Save or
// SaveIncremental, which is not timed.

// amRecord is a record as an automerge map value: its five fields.
func amRecord(t *workload.Task) map[string]any {
	return map[string]any{
		"title":    t.Title,
		"priority": int64(t.Priority),
		"done":     t.Done,
		"owner":    t.Owner,
		"score":    t.Score,
	}
}

// amShape says how a record is stored in an automerge document.
type amShape int

const (
	amMap   amShape = iota // a map of its five fields
	amBytes                // its msgpack encoding, one bytes value
)

// value returns the record in the shape.
func (s amShape) value(t *workload.Task) (any, error) {
	if s == amBytes {
		return workload.Encode(t)
	}
	return amRecord(t), nil
}

// amPut sets each record in doc's root map, in shape, and commits it.
func amPut(doc *automerge.Doc, recs []workload.Task, shape amShape) error {
	root := doc.RootMap()
	for i := range recs {
		v, err := shape.value(&recs[i])
		if err != nil {
			return err
		}
		if err := root.Set(recs[i].ID, v); err != nil {
			return fmt.Errorf("automerge: set %s: %w", recs[i].ID, err)
		}
		if _, err := doc.Commit(""); err != nil {
			return fmt.Errorf("automerge: commit %s: %w", recs[i].ID, err)
		}
	}
	return nil
}

// amChanges returns how many changes doc holds.
func amChanges(doc *automerge.Doc) (int, error) {
	chs, err := doc.Changes()
	if err != nil {
		return 0, fmt.Errorf("automerge: changes: %w", err)
	}
	return len(chs), nil
}

// automergePut makes recs' changes in a new document, in shape, and reports
// the rate. It checks that the document holds one change and one key per
// record.
func automergePut(_ context.Context, recs []workload.Task, shape amShape) (Values, error) {
	doc := automerge.New()
	start := time.Now()
	if err := amPut(doc, recs, shape); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	changes, err := amChanges(doc)
	if err != nil {
		return nil, err
	}
	if keys := doc.RootMap().Len(); changes != len(recs) || keys != len(recs) {
		return nil, fmt.Errorf("automerge document holds %d changes and %d records after %d puts", changes, keys, len(recs))
	}
	return Values{"throughput": stats.PerSecond(len(recs), elapsed)}, nil
}

// automergeMerge makes a's changes in one document and b's in another
// (each with its own actor), then times merging each into the other. It
// checks that both end with the same heads, every change, and the same
// record titles under the same keys.
func automergeMerge(_ context.Context, a, b []workload.Task) (Values, error) {
	da, db := automerge.New(), automerge.New()
	if err := amPut(da, a, amMap); err != nil {
		return nil, err
	}
	if err := amPut(db, b, amMap); err != nil {
		return nil, err
	}
	start := time.Now()
	if _, err := da.Merge(db); err != nil {
		return nil, fmt.Errorf("automerge: merge b into a: %w", err)
	}
	if _, err := db.Merge(da); err != nil {
		return nil, fmt.Errorf("automerge: merge a into b: %w", err)
	}
	elapsed := time.Since(start)
	if err := amSame(da, db, len(a)+len(b)); err != nil {
		return nil, err
	}
	return mergeValues(elapsed), nil
}

// amSame fails unless a and b have the same heads, changes in all, and
// the same title under every key.
func amSame(a, b *automerge.Doc, changes int) error {
	ha, hb := a.Heads(), b.Heads()
	key := func(h automerge.ChangeHash) string { return h.String() }
	if !slices.Equal(sortedBy(ha, key), sortedBy(hb, key)) {
		return fmt.Errorf("automerge documents differ after merging: heads %v and %v", ha, hb)
	}
	for _, d := range []*automerge.Doc{a, b} {
		if n, err := amChanges(d); err != nil || n != changes {
			return fmt.Errorf("automerge document holds %d changes after merging, want %d (%v)", n, changes, err)
		}
	}
	ta, err := amTitles(a)
	if err != nil {
		return err
	}
	tb, err := amTitles(b)
	if err != nil {
		return err
	}
	if len(ta) != len(tb) {
		return fmt.Errorf("automerge documents hold %d and %d records after merging", len(ta), len(tb))
	}
	for k, v := range ta {
		if tb[k] != v {
			return fmt.Errorf("automerge documents differ on %s: %q and %q", k, v, tb[k])
		}
	}
	return nil
}

// amTitles returns each record's title by key.
func amTitles(d *automerge.Doc) (map[string]string, error) {
	keys, err := d.RootMap().Keys()
	if err != nil {
		return nil, fmt.Errorf("automerge: keys: %w", err)
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		title, err := automerge.As[string](d.Path(k, "title").Get())
		if err != nil {
			return nil, fmt.Errorf("automerge: title of %s: %w", k, err)
		}
		out[k] = title
	}
	return out, nil
}

// sortedBy returns xs's keys sorted.
func sortedBy[T any](xs []T, key func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = key(x)
	}
	slices.Sort(out)
	return out
}
