package longtest_test

import (
	"context"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
)

// Task is the record the soak tests write, as the root package's tests
// declare it.
type Task struct {
	ID    string   `msgpack:"-" converge:"id"`
	Title string   `msgpack:"title"`
	Done  bool     `msgpack:"done"`
	Tags  []string `msgpack:"tags" converge:"set"`
	Votes int64    `msgpack:"votes" converge:"counter"`
	Meta  converge.Meta
}

func coll[T any](t *testing.T, db *converge.DB, name string) *converge.Collection[T] {
	t.Helper()
	c, err := converge.NewCollection[T](db, name)
	if err != nil {
		t.Fatalf("NewCollection: %v", err)
	}
	return c
}

// open opens a replica in a temp dir (NoSync unless opts say otherwise),
// closed at the end of the test.
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

func syncPair(t *testing.T, a, b *converge.DB, ns string) transport.Result {
	t.Helper()
	res, err := a.SyncWith(t.Context(), transport.NewMemPeer(b.SyncStore(), transport.Limits{}), ns)
	if err != nil {
		t.Fatalf("SyncWith: %v", err)
	}
	return res
}

// grantAll authorizes one token for the namespaces given.
type grantAll struct {
	token string
	ns    []string
}

func (g grantAll) Authorize(ctx context.Context, token string) (httptransport.Grant, error) {
	if token != g.token {
		return httptransport.Grant{}, httptransport.ErrUnauthorized
	}
	return httptransport.Grant{Namespaces: g.ns}, nil
}
