// Package hub is a Converge hub as a library: what `converge serve`
// runs, for embedding in a Go program. A hub is a replica with its own
// store that
//
//   - answers the sync protocol over HTTP (package transport/http) for
//     the bearer tokens of a token file, which it reloads when it changes,
//     and/or of JSON Web Tokens signed with a configured key; a revoked
//     token's live streams are closed;
//   - replicates namespaces over NATS (package transport/nats), and
//     bridges them with HTTP: what HTTP clients write reaches the NATS
//     replicas at once, and what those write reaches the HTTP clients'
//     live streams;
//   - serves /healthz, Prometheus /metrics (client_golang, in a registry
//     of its own) and an authenticated admin endpoint that shows each
//     namespace's vector, state hash, peers and quarantine;
//   - compacts its log in the background.
//
// Usage:
//
//	h, err := hub.New(hub.Config{Dir: "/var/lib/converge", TokenFile: "/etc/converge/tokens"})
//	if err != nil { ... }
//	ln, err := net.Listen("tcp", hub.DefaultListen)
//	if err != nil { ... }
//	err = h.Serve(ctx, ln) // until ctx ends; then a graceful shutdown
//
// Or mount [Hub.Handler] in an http.Server of your own (with
// [Hub.CloseStreams] registered by RegisterOnShutdown), run [Hub.Run]
// beside it, and call [Hub.Close] after the server's Shutdown.
//
// docs/OPERATIONS.md describes running, securing and monitoring a hub.
package hub
