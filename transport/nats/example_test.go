package natstransport_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// Two replicas keep a namespace in sync over NATS: each has its own
// connection, answers the other's requests and publishes its commits
// live. Here a SyncNow makes the example deterministic; the replicator
// also syncs on its own.
func Example() {
	ctx := context.Background()
	server, err := embednats.Run() // in production: your NATS server or leaf node
	if err != nil {
		panic(err)
	}
	defer server.Stop()
	root, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(root)

	type reading struct {
		ID      string  `msgpack:"-" converge:"id"`
		Celsius float64 `msgpack:"celsius"`
		Meta    converge.Meta
	}
	var reps []*converge.Replicator
	var dbs []*converge.DB
	for _, name := range []string{"till-1", "till-2"} {
		db, err := converge.Open(filepath.Join(root, name), converge.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			panic(err)
		}
		defer db.Close()
		bus, err := natstransport.Connect(server.ClientURL(), natstransport.Options{Store: db.SyncStore(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			panic(err)
		}
		defer bus.Close()
		rep, err := db.OpenReplicator(bus, converge.ReplicatorOptions{Namespaces: []string{"acme.store-17"}})
		if err != nil {
			panic(err)
		}
		defer rep.Close(ctx)
		reps, dbs = append(reps, rep), append(dbs, db)
	}
	readings, _ := converge.NewCollection[reading](dbs[0], "readings")
	readings.Put(ctx, "acme.store-17", &reading{ID: "fridge", Celsius: 3.5})

	res, err := reps[1].SyncNow(ctx, "acme.store-17")
	if err != nil {
		panic(err)
	}
	other, _ := converge.NewCollection[reading](dbs[1], "readings")
	got, err := other.Get(ctx, "acme.store-17", "fridge")
	fmt.Println(got.Celsius, err, res.Err)
	// Output: 3.5 <nil> <nil>
}
