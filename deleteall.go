package converge

import (
	"context"
	"fmt"
)

// DeleteAll deletes every existing record of the collection in namespace
// ns, in one transaction: every replica sees all of the deletes or none
// of them. It returns how many it deleted. A record created concurrently
// on another replica survives (a delete removes what it observed), as
// with [Collection.Delete].
func (c *Collection[T]) DeleteAll(ctx context.Context, ns string) (int, error) {
	return c.DeleteAllExcept(ctx, ns)
}

// DeleteAllExcept deletes every existing record of the collection in
// namespace ns but those whose ids are in keep, in one transaction, and
// returns how many it deleted: the local cache pruned to what the app
// still holds (ids it does not hold are ignored).
func (c *Collection[T]) DeleteAllExcept(ctx context.Context, ns string, keep ...string) (int, error) {
	kept := make(map[string]bool, len(keep))
	for _, id := range keep {
		kept[id] = true
	}
	n := 0
	err := c.db.Update(ctx, ns, func(tx *Tx) error {
		n = 0
		// The scan runs under the transaction's write lock: no commit
		// comes between it and the deletes.
		for e, err := range c.db.log.Records(ctx, ns, c.name) {
			if err != nil {
				return storeErr(fmt.Errorf("converge: delete all of %s/%s: %w", ns, c.name, err))
			}
			if !e.State.Exists() || kept[e.Key] {
				continue
			}
			if err := c.Tx(tx).Delete(e.Key); err != nil {
				return fmt.Errorf("converge: delete all of %s/%s: %s: %w", ns, c.name, e.Key, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
