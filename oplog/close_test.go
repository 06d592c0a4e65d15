package oplog_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/oplog"
)

// Reads running while Close runs either finish or get ErrClosed; none may
// reach a closed Pebble DB (which panics).
func TestReadsRacingClose(t *testing.T) {
	for round := range 20 {
		l, err := oplog.Open(t.TempDir(), oplog.Options{Durability: oplog.NoSync})
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		for i := range 20 {
			_, err := l.Write(ctx, "ns", func(tx *oplog.Tx) error {
				_, err := tx.Mutate("c", string(rune('a'+i)), crdt.IntentPut, []crdt.Change{{Name: "f", Type: crdt.Set, Value: crdt.EncodeInt(int64(i))}})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, 64)
		check := func(err error) {
			if err != nil && !errors.Is(err, oplog.ErrClosed) {
				errs <- err
			}
		}
		for range 4 {
			wg.Go(func() {
				<-start
				for range 50 {
					_, err := l.Get(ctx, "ns", "c", "a")
					check(err)
					for _, err := range l.Records(ctx, "ns", "") {
						check(err)
					}
					for _, err := range l.Missing(ctx, "ns", nil) {
						check(err)
					}
					_, _, err = l.StateHash(ctx, "ns")
					check(err)
					_, err = l.Verify(ctx, "ns")
					check(err)
				}
			})
		}
		close(start)
		if err := l.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: read during Close: %v, want success or ErrClosed", round, err)
		}
		if _, err := l.Get(ctx, "ns", "c", "a"); !errors.Is(err, oplog.ErrClosed) {
			t.Fatalf("Get after Close: %v, want ErrClosed", err)
		}
	}
}
