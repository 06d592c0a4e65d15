package converge

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/convergedb/converge/materialize"
)

// FeedHead returns the position of the last change in the change feed of
// ns (0 if none): a consumer that wants only future changes starts there.
func (db *DB) FeedHead(ctx context.Context, ns string) (uint64, error) {
	h, err := db.log.FeedHead(ctx, ns)
	if err != nil {
		return 0, storeErr(fmt.Errorf("converge: feed head %q: %w", ns, err))
	}
	return h, nil
}

// Feed yields the changes of namespace ns (of one collection, if collection
// is not empty) committed after position after: first those already
// stored, then each new one as it commits, local or from sync, until ctx
// ends (Feed then returns without yielding it) or the DB closes (it yields
// ErrClosed). Each Change carries its position, Seq: a consumer that stores
// the Seq of the last change it handled and passes it as after when it
// starts again resumes exactly there, across restarts, missing and repeating
// nothing. The feed is durable: changes are stored in the batch that
// commits them.
func (db *DB) Feed(ctx context.Context, ns, collection string, after uint64) iter.Seq2[Change, error] {
	return func(yield func(Change, error) bool) {
		// Subscribe first, so no commit falls between reading the stored
		// feed and waiting for new changes.
		sub := db.Subscribe(ns)
		defer sub.Close()
		for {
			for c, err := range db.log.Feed(ctx, ns, after) {
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					yield(Change{}, storeErr(fmt.Errorf("converge: feed %q: %w", ns, err)))
					return
				}
				after = c.Seq
				if collection != "" && c.Collection != collection {
					continue
				}
				if !yield(changeOf(&c), nil) {
					return
				}
			}
			// Wait for a commit; its content is read from the feed.
			if _, err := sub.Next(ctx); err != nil && !errors.Is(err, ErrLagged) {
				if ctx.Err() == nil {
					yield(Change{}, err)
				}
				return
			}
		}
	}
}

func changeOf(c *materialize.Change) Change {
	return Change{
		Namespace:  c.Namespace,
		Collection: c.Collection,
		ID:         c.Key,
		Kind:       c.Kind,
		Fields:     c.Fields,
		Origin:     c.Dot.Origin.String(),
		HLC:        c.HLC,
		Local:      c.Local,
		Seq:        c.Seq,
	}
}
