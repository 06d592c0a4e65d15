package converge_test

import (
	"context"
	"fmt"
	"log"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
)

// The status stream yields a namespace's status whenever it changes: here
// the offline queue growing while replication is paused.
func ExampleReplicator_Statuses() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, doneApp := openTemp()
	defer doneApp()
	hub, doneHub := openTemp()
	defer doneHub()
	tasks, _ := converge.NewCollection[Task](app, "tasks")
	rep, err := app.OpenReplicator(transport.NewMemPeer(hub.SyncStore(), transport.Limits{}),
		converge.ReplicatorOptions{Namespaces: []string{"team-1"}})
	if err != nil {
		log.Fatal(err)
	}
	rep.Pause() // writes wait in the log until Resume
	for st := range rep.Statuses(ctx) {
		fmt.Println(st.Namespace, st.State, st.Pending, "pending")
		if st.Pending == 2 {
			break
		}
		if _, err := tasks.Put(ctx, "team-1", &Task{Title: "written offline"}); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// team-1 paused 0 pending
	// team-1 paused 1 pending
	// team-1 paused 2 pending
}
