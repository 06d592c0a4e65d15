package converge_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/convergedb/converge"
)

// Benchmarks of the watch and page additions, each beside its baseline in
// the same run: a Get (which now looks for a WatchFunc's read set in its
// ctx), a numbered page against the same page by offset, and a watch
// across two relations against a watch of one record.

// wbOpen opens a DB of 1,000 tasks, each owned by one of 10 users, each
// with a profile.
func wbOpen(b *testing.B) *chain {
	b.Helper()
	db, err := converge.Open(b.TempDir(), converge.Options{Logger: slog.New(slog.DiscardHandler), Durability: converge.NoSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	c := &chain{db: db}
	c.tasks, _ = converge.NewCollection[wTask](db, "tasks")
	c.users, _ = converge.NewCollection[wUser](db, "users")
	c.profiles, _ = converge.NewCollection[wProfile](db, "profiles")
	c.owner, _ = converge.NewBelongsTo(c.tasks, "owner", c.users)
	c.profile, _ = converge.NewBelongsTo(c.users, "profile", c.profiles)
	err = db.Update(b.Context(), "ns", func(tx *converge.Tx) error {
		for i := range 10 {
			if _, err := c.profiles.Tx(tx).Put(&wProfile{ID: fmt.Sprint("p", i), Bio: "bio"}); err != nil {
				return err
			}
			if _, err := c.users.Tx(tx).Put(&wUser{ID: fmt.Sprint("u", i), Name: "name", Profile: fmt.Sprint("p", i)}); err != nil {
				return err
			}
		}
		for i := range 1000 {
			if _, err := c.tasks.Tx(tx).Put(&wTask{ID: fmt.Sprintf("t%04d", i), Title: "task", Owner: fmt.Sprint("u", i%10)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkGet is one Get, outside any watch.
func BenchmarkGet(b *testing.B) {
	c := wbOpen(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.tasks.Get(ctx, "ns", "t0500"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPageAt is page 5 of 20 tasks ordered by id, by number (with the
// totals: every task is read) and by offset (the baseline: the first 100
// are read).
func BenchmarkPageAt(b *testing.B) {
	c := wbOpen(b)
	ctx := b.Context()
	q := converge.Query{}.OrderBy(converge.IDField)
	b.Run("offset", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.tasks.Find(ctx, "ns", q.Offset(80).Limit(20)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("numbered", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.tasks.PageAt(ctx, "ns", q, converge.PageNumber{Number: 5, Size: 20}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWatchAcross is the time from a write to the result of a watch:
// of one record ("record", the baseline: the write is to the task), and of
// a task with its owner and the owner's profile through WatchFunc
// ("chain": the write is to the profile, two relations away).
func BenchmarkWatchAcross(b *testing.B) {
	c := wbOpen(b)
	ctx := b.Context()
	run := func(b *testing.B, seq func(context.Context) func(func(string, error) bool), write func(i int) error) {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		results := make(chan string)
		go func() {
			for v, err := range seq(wctx) {
				if err != nil {
					b.Error(err)
					return
				}
				select {
				case results <- v:
				case <-wctx.Done():
					return
				}
			}
		}()
		<-results
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if err := write(i); err != nil {
				b.Fatal(err)
			}
			<-results
		}
	}
	b.Run("record", func(b *testing.B) {
		run(b, func(ctx context.Context) func(func(string, error) bool) {
			return func(yield func(string, error) bool) {
				for w, err := range c.tasks.WatchRecord(ctx, "ns", "t0005") {
					if !yield(w.Value.Title, err) {
						return
					}
				}
			}
		}, func(i int) error { return c.tasks.Update(ctx, "ns", "t0005", converge.Set("title", fmt.Sprint(i))) })
	})
	b.Run("chain", func(b *testing.B) {
		run(b, func(ctx context.Context) func(func(string, error) bool) {
			return func(yield func(string, error) bool) {
				for w, err := range converge.WatchFunc(ctx, c.db, func(ctx context.Context) (taskView, error) { return c.view(ctx, "t0005") }) {
					if !yield(w.Value.Bio, err) {
						return
					}
				}
			}
		}, func(i int) error { return c.profiles.Update(ctx, "ns", "p5", converge.Set("bio", fmt.Sprint(i))) })
	})
}
