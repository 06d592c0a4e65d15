// Package natstransport carries Converge's sync protocol over NATS, for
// fleets of edge sites: core NATS only (no JetStream), request/reply for
// anti-entropy and plain subjects for live ops, so hubs, clusters, leaf
// nodes and NATS's own permissions do the routing and the confinement.
//
// # Subjects
//
// A namespace maps onto the subject path under a configurable prefix
// (default "converge"): namespace `acme.store-17.till-2` uses
//
//	converge.acme.store-17.till-2.ops        live ops and vector announcements
//	converge.acme.store-17.till-2.sync       anti-entropy requests (queue group: one replica answers)
//	converge.acme.store-17.till-2.sync.<id>  anti-entropy requests to one transport
//
// so the permission `converge.acme.store-17.>` grants exactly that site's
// namespaces. Bytes that are not valid in subject tokens are written as
// %XX (see [EncodeNamespace]). Replies travel on the connection's inbox
// prefix: give each site its own with nats.CustomInboxPrefix and grant it
// subscribe permission on that prefix only, or another site could read
// replies meant for it.
//
// # Protocol
//
// While a [Transport] streams a namespace ([Transport.Stream], which the
// converge replicator runs), it
//
//   - answers anti-entropy requests for it from its store ([transport.Serve]),
//     and snapshot page requests, which travel on the same subjects
//     ([transport.ServeSnapshot], dispatched by the message's kind);
//   - publishes the replica's own new ops, in batches, on the ops subject
//     as its store commits them (the store's OnCommit), each batch
//     carrying the publisher's version vector;
//   - announces its vector on the ops subject periodically (a heartbeat),
//     at start and after a reconnect;
//   - applies the ops others publish, and when a batch or announcement
//     shows that the publisher holds ops this replica lacks (a gap in an
//     origin's sequence, or a replica that was cut off), fetches them from
//     that publisher directly instead of applying out of order; if the
//     publisher answers that this replica is below its compaction horizon,
//     syncs with it (transport.Sync), bootstrapping from its snapshot.
//
// [Transport.RoundTrip] is the requester's side of [transport.Sync]: the
// first request goes to the queue group (whichever replica or hub is
// reachable answers) and later ones to the transport that answered, until
// it stops answering. [Transport.Snapshot] asks for snapshot pages the
// same way, each within the max payload.
//
// Every message on our subjects is decoded with bounds checks; a malformed
// one is counted ([Stats].Malformed), logged and dropped, never applied.
//
// # Connections
//
// [Connect] dials with any nats.Option (user and password, token, NKeys,
// creds files, TLS) and adds nats.NoEcho, which the transport needs (it must
// not answer its own requests); [New] wraps a connection the caller made
// with NoEcho. Connect does not need a server to be up: a device that
// boots offline gets a transport that connects in the background, reports
// [ErrNotConnected] from [Transport.Health] until then, and tells the
// replicator when it connects.
package natstransport
