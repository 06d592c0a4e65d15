package converge_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
)

func open(t *testing.T, opts converge.Options) *converge.DB {
	t.Helper()
	if opts.Durability == 0 {
		opts.Durability = converge.NoSync
	}
	db, err := converge.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func coll[T any](t *testing.T, db *converge.DB, name string) *converge.Collection[T] {
	t.Helper()
	c, err := converge.NewCollection[T](db, name)
	if err != nil {
		t.Fatalf("NewCollection: %v", err)
	}
	return c
}

func syncPair(t *testing.T, a, b *converge.DB, ns string) transport.Result {
	t.Helper()
	res, err := a.SyncWith(t.Context(), transport.NewMemPeer(b.SyncStore(), transport.Limits{}), ns)
	if err != nil {
		t.Fatalf("SyncWith: %v", err)
	}
	return res
}

// ops returns the ops of ns in db's log, in (origin, seq) order.
func ops(t *testing.T, db *converge.DB, ns string) []crdt.Op {
	t.Helper()
	var out []crdt.Op
	for e, err := range db.Admin().Log().Missing(t.Context(), ns, nil) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Op)
	}
	return out
}

func TestSchemaErrors(t *testing.T) {
	db := open(t, converge.Options{})
	type noID struct {
		Name string
		Meta converge.Meta
	}
	type intID struct {
		ID   int
		Meta converge.Meta
	}
	type badTag struct {
		ID   string
		X    int `converge:"sett"`
		Meta converge.Meta
	}
	type badCounter struct {
		ID   string
		X    string `converge:"counter"`
		Meta converge.Meta
	}
	type badSet struct {
		ID   string
		X    string `converge:"set"`
		Meta converge.Meta
	}
	for name, err := range map[string]error{
		"no id":       func() error { _, err := converge.NewCollection[noID](db, "c"); return err }(),
		"int id":      func() error { _, err := converge.NewCollection[intID](db, "c"); return err }(),
		"bad tag":     func() error { _, err := converge.NewCollection[badTag](db, "c"); return err }(),
		"bad counter": func() error { _, err := converge.NewCollection[badCounter](db, "c"); return err }(),
		"bad set":     func() error { _, err := converge.NewCollection[badSet](db, "c"); return err }(),
		"not struct":  func() error { _, err := converge.NewCollection[int](db, "c"); return err }(),
	} {
		if !errors.Is(err, converge.ErrSchema) {
			t.Errorf("%s: err = %v, want ErrSchema", name, err)
		}
	}
	if _, err := converge.NewCollection[Task](db, ""); !errors.Is(err, converge.ErrInvalid) {
		t.Errorf("empty collection name: %v, want ErrInvalid", err)
	}
}

func TestNotFoundAndInvalid(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	tasks := coll[Task](t, db, "tasks")
	if _, err := tasks.Get(ctx, "ns", "nope"); !errors.Is(err, converge.ErrNotFound) {
		t.Errorf("Get missing: %v, want ErrNotFound", err)
	}
	if err := tasks.Update(ctx, "ns", "nope", converge.Set("title", "x")); !errors.Is(err, converge.ErrNotFound) {
		t.Errorf("Update missing: %v, want ErrNotFound", err)
	}
	if err := tasks.Delete(ctx, "ns", "nope"); !errors.Is(err, converge.ErrNotFound) {
		t.Errorf("Delete missing: %v, want ErrNotFound", err)
	}
	if _, err := tasks.Put(ctx, "", &Task{}); !errors.Is(err, converge.ErrInvalid) {
		t.Errorf("Put with empty namespace: %v, want ErrInvalid", err)
	}
	id, err := tasks.Put(ctx, "ns", &Task{Title: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for name, u := range map[string]converge.FieldUpdate{
		"increment a register": converge.Increment("title", 1),
		"add to a register":    converge.AddToSet("title", "x"),
		"unset a set":          converge.Unset("tags"),
		"set a bool to int":    converge.Set("done", 3),
	} {
		if err := tasks.Update(ctx, "ns", id, u); !errors.Is(err, converge.ErrSchema) {
			t.Errorf("%s: %v, want ErrSchema", name, err)
		}
	}
	if n := len(ops(t, db, "ns")); n != 1 {
		t.Errorf("refused updates wrote ops: log holds %d, want 1", n)
	}
}

func TestClosed(t *testing.T) {
	ctx := t.Context()
	db, err := converge.Open(t.TempDir(), converge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tasks := coll[Task](t, db, "tasks")
	sub := db.Subscribe("ns")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Put(ctx, "ns", &Task{}); !errors.Is(err, converge.ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}
	if _, err := tasks.Get(ctx, "ns", "x"); !errors.Is(err, converge.ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if _, err := sub.Next(ctx); !errors.Is(err, converge.ErrClosed) {
		t.Errorf("Subscription.Next after Close: %v, want ErrClosed", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestPutWritesOnlyChangedFields(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	tasks := coll[Task](t, db, "tasks")
	task := &Task{Title: "a", Tags: []string{"x", "y"}, Votes: 5}
	if _, err := tasks.Put(ctx, "ns", task); err != nil {
		t.Fatal(err)
	}
	task.Title = "b"
	task.Tags = []string{"y", "z"}
	task.Votes = 3
	if _, err := tasks.Put(ctx, "ns", task); err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Put(ctx, "ns", task); err != nil { // unchanged: no op
		t.Fatal(err)
	}
	log := ops(t, db, "ns")
	if len(log) != 2 {
		t.Fatalf("log holds %d ops, want 2 (create, update; the unchanged Put writes none)", len(log))
	}
	var got []string
	for _, f := range log[1].Fields {
		got = append(got, fmt.Sprintf("%s %v", f.Name, f.Type))
	}
	slices.Sort(got)
	want := []string{"tags add", "tags remove", "title assign", "votes count"}
	if !slices.Equal(got, want) {
		t.Errorf("update op fields = %v, want %v", got, want)
	}
	back, err := tasks.Get(ctx, "ns", task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if back.Title != "b" || !slices.Equal(back.Tags, []string{"y", "z"}) || back.Votes != 3 {
		t.Errorf("Get = %+v", back)
	}
}

// Schema evolution: an app version whose struct lacks a field that a newer
// version writes leaves that field untouched; a field added to a struct
// reads as its zero value on old records.
type taskV1 struct {
	ID    string `msgpack:"-" converge:"id"`
	Title string `msgpack:"title"`
	Meta  converge.Meta
}

type taskV2 struct {
	ID       string `msgpack:"-" converge:"id"`
	Title    string `msgpack:"title"`
	Priority int    `msgpack:"priority"`
	Meta     converge.Meta
}

func TestSchemaEvolution(t *testing.T) {
	ctx := t.Context()
	oldApp, newApp := open(t, converge.Options{}), open(t, converge.Options{})
	v1 := coll[taskV1](t, oldApp, "tasks")
	v2 := coll[taskV2](t, newApp, "tasks")

	if _, err := v1.Put(ctx, "ns", &taskV1{ID: "old", Title: "from v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Put(ctx, "ns", &taskV2{ID: "new", Title: "from v2", Priority: 7}); err != nil {
		t.Fatal(err)
	}
	syncPair(t, oldApp, newApp, "ns")

	// v1 edits the v2 record through its narrower struct.
	rec, err := v1.Get(ctx, "ns", "new")
	if err != nil {
		t.Fatal(err)
	}
	rec.Title = "edited by v1"
	if _, err := v1.Put(ctx, "ns", &rec); err != nil {
		t.Fatal(err)
	}
	syncPair(t, oldApp, newApp, "ns")

	got, err := v2.Get(ctx, "ns", "new")
	if err != nil {
		t.Fatal(err)
	}
	if got.Title != "edited by v1" || got.Priority != 7 {
		t.Errorf("after v1's edit, v2 reads %+v; want the new title and priority 7 kept", got)
	}
	old, err := v2.Get(ctx, "ns", "old")
	if err != nil {
		t.Fatal(err)
	}
	if old.Priority != 0 || old.Title != "from v1" {
		t.Errorf("v2 reads the v1 record as %+v, want priority 0", old)
	}
	h1, _ := oldApp.Admin().StateHash(ctx, "ns")
	h2, _ := newApp.Admin().StateHash(ctx, "ns")
	if h1 != h2 {
		t.Error("mixed-version replicas did not converge")
	}
}

func TestRecordThatDoesNotFitStruct(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	type asString struct {
		ID   string
		N    string `msgpack:"n"`
		Meta converge.Meta
	}
	type asInt struct {
		ID   string
		N    int `msgpack:"n"`
		Meta converge.Meta
	}
	s := coll[asString](t, db, "things")
	if _, err := s.Put(ctx, "ns", &asString{ID: "x", N: "not a number"}); err != nil {
		t.Fatal(err)
	}
	i := coll[asInt](t, db, "things")
	if _, err := i.Get(ctx, "ns", "x"); !errors.Is(err, converge.ErrSchema) {
		t.Errorf("Get into a mismatched struct: %v, want ErrSchema", err)
	}
	if got, err := s.Get(ctx, "ns", "x"); err != nil || got.N != "not a number" {
		t.Errorf("the record itself is intact: %+v, %v", got, err)
	}
}

func TestTransactionRollback(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	tasks := coll[Task](t, db, "tasks")
	boom := errors.New("boom")
	err := db.Update(ctx, "ns", func(tx *converge.Tx) error {
		if _, err := tasks.Tx(tx).Put(&Task{ID: "a"}); err != nil {
			return err
		}
		// Reads inside the transaction see its writes.
		if _, err := tasks.Tx(tx).Get("a"); err != nil {
			return fmt.Errorf("read own write: %w", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if _, err := tasks.Get(ctx, "ns", "a"); !errors.Is(err, converge.ErrNotFound) {
		t.Errorf("rolled-back record: %v, want ErrNotFound", err)
	}
	if n := len(ops(t, db, "ns")); n != 0 {
		t.Errorf("rolled-back transaction left %d ops", n)
	}
	// The next transaction's ops still start at seq 1.
	if _, err := tasks.Put(ctx, "ns", &Task{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	if o := ops(t, db, "ns"); len(o) != 1 || o[0].Dot.Seq != 1 || !o[0].TxEnd {
		t.Errorf("ops after rollback = %+v, want one op with seq 1 and TxEnd", o)
	}
}

func TestDeleteAndRecreate(t *testing.T) {
	ctx := t.Context()
	a, b := open(t, converge.Options{}), open(t, converge.Options{})
	ta, tb := coll[Task](t, a, "tasks"), coll[Task](t, b, "tasks")
	if _, err := ta.Put(ctx, "ns", &Task{ID: "t", Title: "v1", Tags: []string{"x"}, Votes: 4}); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, b, "ns")
	// Concurrently: a deletes, b updates. The delete wins.
	if err := ta.Delete(ctx, "ns", "t"); err != nil {
		t.Fatal(err)
	}
	if err := tb.Update(ctx, "ns", "t", converge.Set("title", "edited"), converge.Increment("votes", 1)); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, b, "ns")
	for _, c := range []*converge.Collection[Task]{ta, tb} {
		if _, err := c.Get(ctx, "ns", "t"); !errors.Is(err, converge.ErrNotFound) {
			t.Errorf("after delete ‖ update: %v, want ErrNotFound", err)
		}
	}
	// Re-created, it starts empty but for what is written into it.
	if _, err := tb.Put(ctx, "ns", &Task{ID: "t", Title: "v2"}); err != nil {
		t.Fatal(err)
	}
	syncPair(t, a, b, "ns")
	got, err := ta.Get(ctx, "ns", "t")
	if err != nil {
		t.Fatal(err)
	}
	if got.Title != "v2" || len(got.Tags) != 0 || got.Votes != 0 {
		t.Errorf("re-created record = %+v, want only title v2", got)
	}
}

func TestSubscriptionRemoteAndLagged(t *testing.T) {
	ctx := t.Context()
	a := open(t, converge.Options{})
	b := open(t, converge.Options{ChangeBuffer: 2})
	ta := coll[Task](t, a, "tasks")
	sub := b.Subscribe("ns")
	defer sub.Close()
	other := b.Subscribe("other-ns")
	defer other.Close()
	for i := range 5 {
		if _, err := ta.Put(ctx, "ns", &Task{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	syncPair(t, b, a, "ns")
	// b's subscriber holds 2 changes; 3 were dropped.
	if _, err := sub.Next(ctx); !errors.Is(err, converge.ErrLagged) {
		t.Fatalf("first Next = %v, want ErrLagged", err)
	}
	for _, want := range []string{"3", "4"} {
		c, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.ID != want || c.Local || c.Kind != converge.Created || c.Origin != a.ReplicaID() {
			t.Errorf("change = %+v, want remote creation of %s by %s", c, want, a.ReplicaID())
		}
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := other.Next(short); !errors.Is(err, context.Canceled) {
		t.Errorf("subscriber of another namespace got %v, want no change (context.Canceled)", err)
	}
}

func TestReadYourWritesConcurrent(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{Durability: converge.GroupCommit})
	tasks := coll[Task](t, db, "tasks")
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			for i := range 25 {
				id := fmt.Sprintf("w%d-%d", w, i)
				if _, err := tasks.Put(ctx, "ns", &Task{ID: id, Title: id}); err != nil {
					errs <- err
					return
				}
				if err := tasks.Update(ctx, "ns", "shared", converge.Increment("votes", 1)); err != nil && !errors.Is(err, converge.ErrNotFound) {
					errs <- err
					return
				}
				got, err := tasks.Get(ctx, "ns", id)
				if err != nil || got.Title != id {
					errs <- fmt.Errorf("read own write %s: %+v, %v", id, got, err)
					return
				}
			}
			errs <- nil
		}()
	}
	if _, err := tasks.Put(ctx, "ns", &Task{ID: "shared"}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	v, err := db.Admin().Verify(ctx, "ns")
	if err != nil || !v.OK() {
		t.Fatalf("Verify = %+v, %v", v, err)
	}
}

func TestUpdateSameFieldTwice(t *testing.T) {
	ctx := t.Context()
	db := open(t, converge.Options{})
	tasks := coll[Task](t, db, "tasks")
	id, err := tasks.Put(ctx, "ns", &Task{Title: "a", Tags: []string{"keep"}})
	if err != nil {
		t.Fatal(err)
	}
	err = tasks.Update(ctx, "ns", id,
		converge.Set("title", "b"), converge.Set("title", "c"),
		converge.Increment("votes", 2), converge.Increment("votes", 3),
		converge.AddToSet("tags", "x", "y"), converge.RemoveFromSet("tags", "x", "keep"))
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	got, err := tasks.Get(ctx, "ns", id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Title != "c" || got.Votes != 5 || !slices.Equal(got.Tags, []string{"y"}) {
		t.Errorf("after combined updates: %+v, want title c, votes 5, tags [y]", got)
	}
	if err := tasks.Update(ctx, "ns", id, converge.Set("votes", int64(1)), converge.Increment("votes", 1)); err != nil {
		t.Errorf("Set and Increment of a counter are one kind: %v", err)
	}
	if err := tasks.Update(ctx, "ns", id, converge.Set("votes", int64(1)), converge.AddToSet("votes", 1)); err == nil {
		t.Errorf("a counter as counter and set in one update: no error")
	}
	if err := tasks.Update(ctx, "ns", id, converge.Set("extra", "x")); !errors.Is(err, converge.ErrField) {
		t.Errorf("an update of an undeclared field: %v, want ErrField", err)
	}
	if err := tasks.Update(ctx, "ns", id, converge.Undeclared(converge.Set("extra", "x")), converge.Undeclared(converge.Increment("extra", 1))); !errors.Is(err, converge.ErrInvalid) {
		t.Errorf("an undeclared field as register and counter in one update: %v, want ErrInvalid", err)
	}
}

// A peer whose clock runs beyond the drift bound has its ops refused, with
// an error callers can test, and accepted once our clock catches up.
func TestSyncRefusesDriftedPeer(t *testing.T) {
	ctx := t.Context()
	now := int64(1_800_000_000_000)
	ours := func() int64 { return now }
	future := func() int64 { return now + 10*60*1000 } // ten minutes ahead
	a := open(t, converge.Options{Clock: ours})
	b := open(t, converge.Options{Clock: future})
	if _, err := coll[Task](t, b, "tasks").Put(ctx, "ns", &Task{ID: "x", Title: "from the future"}); err != nil {
		t.Fatal(err)
	}
	_, err := a.SyncWith(ctx, transport.NewMemPeer(b.SyncStore(), transport.Limits{}), "ns")
	if !errors.Is(err, converge.ErrClockDrift) || !errors.Is(err, transport.ErrNoProgress) {
		t.Fatalf("sync with a drifted peer: %v, want ErrClockDrift and ErrNoProgress", err)
	}
	if _, err := coll[Task](t, a, "tasks").Get(ctx, "ns", "x"); !errors.Is(err, converge.ErrNotFound) {
		t.Errorf("the refused op was applied: %v", err)
	}
	next := a.Admin().Log().Now()
	if next.Wall() > now+1 {
		t.Errorf("our HLC jumped to %v because of the refused op", next)
	}
	now += 10 * 60 * 1000 // our clock catches up
	if _, err := a.SyncWith(ctx, transport.NewMemPeer(b.SyncStore(), transport.Limits{}), "ns"); err != nil {
		t.Fatalf("sync once within the bound: %v", err)
	}
	if got, err := coll[Task](t, a, "tasks").Get(ctx, "ns", "x"); err != nil || got.Title != "from the future" {
		t.Errorf("after catching up: %+v, %v", got, err)
	}
}
