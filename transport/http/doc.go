// Package httptransport carries the sync protocol of package transport over
// HTTP: a [Server] (an http.Handler, mountable in any mux) that answers
// round trips and pushes live ops, and a [Client] that implements
// transport.Peer with retries, compression and a live stream.
//
// # Routes
//
//	POST /v1/sync/{ns}            body: a transport request (transport.AppendRequest),
//	                              optionally Content-Encoding: gzip;
//	                              answer: a transport response, gzip'd when the
//	                              client accepts it and the body is large enough.
//	POST /v1/snapshot/{ns}        body: a snapshot page request
//	                              (transport.AppendSnapshotRequest), as for sync;
//	                              answer: a snapshot page (transport.AppendSnapshotResponse),
//	                              gzip'd as for sync. A client below the server's
//	                              compaction horizon bootstraps from these pages.
//	GET  /v1/stream/{ns}?v=<vec>  a chunked stream of frames (below), each holding
//	                              the next page of the ops the client lacks.
//	GET  /v1/health               200 "ok", no token needed.
//
// The routes are net/http.ServeMux patterns. {ns} is one path segment,
// path-escaped (url.PathEscape; the namespaces "." and ".." as %2E and
// %2E%2E, which the server also takes unescaped). Every route but health
// needs an "Authorization: Bearer <token>" header; an [Authorizer] maps
// the token to a [Grant] of namespaces.
//
// # Statuses
//
//	401  missing or unknown token (WWW-Authenticate: Bearer)
//	403  namespace outside the token's grant, a pushed op of another namespace,
//	     or a new op of an origin the token may not write as (Grant.Origins;
//	     an op the server holds already is a duplicate, whatever its origin)
//	413  request body beyond ServerOptions.MaxBody (compressed or not), or
//	     more pushed ops than MaxOpsPerRequest (default 10000)
//	429  the token holds MaxStreamsPerToken live streams (default 16;
//	     Retry-After: 5) or MaxSyncsPerToken round trips in progress
//	     (default 32; Retry-After: 1); the body names the limit
//	400  malformed request (the body says why)
//	404, 405  unknown route; wrong method (Allow: the route's method)
//	307  a path not in canonical form (an empty, "." or ".." segment):
//	     ServeMux redirects to the cleaned path
//	409  a stream asked for below the compaction horizon: sync first (the
//	     client's error matches transport.ErrSnapshotNeeded)
//	500  store or authorizer error (the body says why)
//	501  snapshot asked of a store that cannot make snapshots
//	503  the server is closing (Retry-After: 1)
//
// Nothing is applied for a refused request. Pushed ops are checked before
// the store sees them: each must decode (crdt.DecodeOp) and be of the URL's
// namespace. One op of another namespace makes the request a 403. Malformed
// op bytes refuse the whole batch too, but inside a 200 response: every op
// is counted in Applied.Refused with the reason, as transport.Serve and the
// conformance suite (transporttest) expect, and none is applied.
//
// # Limits
//
// Every limit has a default; see [ServerOptions]:
//
//	MaxBody             8 MiB   a request body, compressed and decompressed (413)
//	MaxOpsPerRequest    10000   ops pushed in one round trip, one store batch (413)
//	MaxStreamsPerToken  16      live streams open at once with one token (429)
//	MaxSyncsPerToken    32      round trips and snapshot pages in progress at once
//	                            with one token (429)
//	Limits              1000 ops, 1 MiB: a page answered or streamed; for
//	                    snapshot pages, 1000 records, 1 MiB
//
// Within them, the decoders bound every op (crdt.MaxOpSize, 4 MiB; values
// crdt.MaxValueLen, 1 MiB; names crdt.MaxNameLen) and message
// (transport.MaxMessageSize, 64 MiB).
//
// # Stream encoding
//
//	v:      base64url (unpadded) of the vector encoding of the transport
//	        messages: [origin bin(16), seq uint, ...] sorted by origin
//	frame:  length uint32 big-endian | transport response encoding
//
// The server remembers what it sent on a stream and sends the next page as
// soon as there is one; when the client is caught up it waits for the
// next commit of the namespace to the served store (the server subscribes
// to the store's commits, transport.Store.OnCommit: nothing to wire), and
// sends an empty frame (a heartbeat) every HeartbeatInterval of silence.
package httptransport
