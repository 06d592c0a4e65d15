package natstransport_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/transport"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// The fleet of these tests: two sites of tenant acme, each a NATS user
// confined to its own namespaces.
const (
	nsTill17 = "acme.store-17.till-1"
	nsRoot17 = "acme.store-17" // the site's root namespace: the wildcard grants it too
	nsTill18 = "acme.store-18.till-1"
)

// sitePassword is the password of every site user of these tests.
const sitePassword = "pw"

// sitePermissions confines a site to its namespaces' subjects: it may
// publish and subscribe only under converge.acme.<site>.>, and subscribe to
// its own inbox prefix, where the replies to its requests arrive.
//
// The inbox prefix matters: a request's reply travels on the requester's
// inbox subject and carries ops of the requester's namespace. With the
// default prefix every site would need subscribe permission on "_INBOX.>"
// and could read every other site's replies. Each site therefore connects
// with nats.CustomInboxPrefix("_INBOX_<site>") and is granted that prefix
// only.
//
// Responders must publish their answers to the requesters' inboxes, which
// their publish permission does not cover: allow_responses (Response)
// lets a client publish one reply to the reply subject of each request it
// received, within a minute, and nothing else there.
func sitePermissions(site string) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"converge.acme." + site + ".>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"converge.acme." + site + ".>", "_INBOX_" + site + ".>"}},
		Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}
}

// siteOpts are the connection options of a site: its credentials and its
// own inbox prefix. Tokens, NKeys, creds files and TLS are nats.Options as
// well, passed through by natstransport.Connect unchanged (see
// TestSecurityTokenAuth).
func siteOpts(site string) []nats.Option {
	return []nats.Option{nats.UserInfo(site, sitePassword), nats.CustomInboxPrefix("_INBOX_" + site)}
}

// startSecuredServer starts a server whose only users are the sites
// store-17 and store-18.
func startSecuredServer(t testing.TB) *embednats.Node {
	t.Helper()
	o := embednats.Options()
	o.Users = []*server.User{
		{Username: "store-17", Password: sitePassword, Permissions: sitePermissions("store-17")},
		{Username: "store-18", Password: sitePassword, Permissions: sitePermissions("store-18")},
	}
	s, err := embednats.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// asyncErrors collects a connection's asynchronous errors.
type asyncErrors chan error

func (c asyncErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	select {
	case c <- err:
	default: // a test reading none of them must not block the connection
	}
}

// next returns the next asynchronous error, failing the test after failBound.
func (c asyncErrors) next(t testing.TB) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(failBound):
		t.Fatalf("no asynchronous error from the server in %v", failBound)
		return nil
	}
}

// expectDenied waits for the server's permission violations naming each
// of the wanted fragments (in any order).
func (c asyncErrors) expectDenied(t testing.TB, wants ...string) {
	t.Helper()
	pending := append([]string(nil), wants...)
	for len(pending) > 0 {
		err := c.next(t)
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("asynchronous error %v, want a permissions violation", err)
		}
		found := false
		for i, w := range pending {
			if strings.Contains(err.Error(), w) {
				pending = append(pending[:i], pending[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("unexpected permissions violation %q; still waiting for %q", err, pending)
		}
	}
}

// connectSite makes a raw connection as site, reporting its asynchronous
// errors on the returned channel.
func connectSite(t testing.TB, s *embednats.Node, site string) (*nats.Conn, asyncErrors) {
	t.Helper()
	errs := make(asyncErrors, 16)
	nc, err := nats.Connect(s.ClientURL(), append(siteOpts(site), nats.Name("raw-"+site), nats.ErrorHandler(errs.handler))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// scratchOps writes items into ns of a new DB and returns their encoded
// ops and the DB's replica id: valid ops of ns from an origin nobody else
// has.
func scratchOps(t testing.TB, ns string, ids ...string) ([][]byte, crdt.ReplicaID) {
	t.Helper()
	ctx := context.Background()
	db, items := openDB(t, t.TempDir(), converge.Options{})
	defer db.Close()
	for _, id := range ids {
		if _, err := items.Put(ctx, ns, &Item{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	ops, more, err := db.SyncStore().Missing(ctx, ns, crdt.VersionVector{}, transport.Limits{})
	if err != nil || more || len(ops) == 0 {
		t.Fatalf("scratch ops of %s: %d ops, more %v, %v", ns, len(ops), more, err)
	}
	vv, err := db.SyncStore().Vector(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	origins := vv.Origins()
	if len(origins) != 1 {
		t.Fatalf("scratch DB has origins %v, want one", origins)
	}
	return ops, origins[0]
}

// batch is a well-formed live batch of ns, as a transport publishes it.
func batch(ns string, ops [][]byte) []byte {
	return transport.AppendRequest(nil, &transport.Request{Namespace: ns, Vector: crdt.VersionVector{}, Ops: ops})
}

func has(t testing.TB, r *replica, ns, id string) bool {
	t.Helper()
	_, err := r.items.Get(context.Background(), ns, id)
	if errors.Is(err, converge.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatalf("%s: get %s: %v", r.name, id, err)
	}
	return true
}

func mustCount(t testing.TB, r *replica, ns string, want int) {
	t.Helper()
	if n := count(t, r, ns); n != want {
		t.Errorf("%s holds %d items in %s, want %d", r.name, n, ns, want)
	}
}

// TestSecuritySitesReplicateUnderPermissions: replicas confined to their
// site's subjects replicate with their own site (live ops, anti-entropy
// request/reply, targeted fetches) without a single permission violation,
// for every namespace under the site's wildcard; a replica that tries to
// stream another site's namespace is refused by the server, which ends
// that stream only, counts as Denied and shows in Health.
func TestSecuritySitesReplicateUnderPermissions(t *testing.T) {
	s := startSecuredServer(t)
	ctx := t.Context()
	site := func(name, site string, ns ...string) *replica {
		return startReplica(t, name, replicaConfig{url: s.ClientURL(), ns: ns, natsOpts: siteOpts(site)})
	}
	a1 := site("a1", "store-17", nsTill17, nsRoot17)
	a2 := site("a2", "store-17", nsTill17, nsRoot17)
	b1 := site("b1", "store-18", nsTill18)
	b2 := site("b2", "store-18", nsTill18)

	a1.put(t, nsTill17, Item{ID: "a1-till", Site: "17"})
	a1.put(t, nsRoot17, Item{ID: "a1-root", Site: "17"})
	a2.put(t, nsTill17, Item{ID: "a2-till", Site: "17"})
	b1.put(t, nsTill18, Item{ID: "b1-till", Site: "18"})
	b2.put(t, nsTill18, Item{ID: "b2-till", Site: "18"})
	waitConverged(t, nsTill17, a1, a2)
	waitConverged(t, nsRoot17, a1, a2)
	waitConverged(t, nsTill18, b1, b2)

	// Anti-entropy's request/reply works under the permissions: the reply
	// reaches the requester's own inbox through allow_responses.
	for _, c := range []struct {
		r  *replica
		ns string
	}{{a2, nsTill17}, {a1, nsRoot17}, {b1, nsTill18}} {
		res, err := c.r.rep.SyncNow(ctx, c.ns)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			t.Fatalf("%s: sync %s: %v", c.r.name, c.ns, err)
		}
	}
	for _, r := range []*replica{a1, a2} {
		mustCount(t, r, nsTill17, 2)
		mustCount(t, r, nsRoot17, 1)
	}
	for _, r := range []*replica{b1, b2} {
		mustCount(t, r, nsTill18, 2)
	}
	for _, r := range []*replica{a1, a2, b1, b2} {
		// Live batches flow too: each replica receives its peer's
		// (heartbeats at least).
		poll(t, r.name+" to receive live batches", func() bool { return r.tr.Stats().Received > 0 })
		st := r.tr.Stats()
		if st.Denied != 0 {
			t.Errorf("%s: %d permission violations while replicating its own site", r.name, st.Denied)
		}
		if st.Served+st.Requests == 0 {
			t.Errorf("%s: request/reply unused: %+v", r.name, st)
		}
		if err := r.tr.Health(ctx); err != nil {
			t.Errorf("%s: health: %v", r.name, err)
		}
	}

	// a1 tries to stream store-18's namespace on its own transport: the
	// server denies the subscriptions and Stream returns the violation
	// (not the end of its context, which would be nil).
	streamCtx, cancel := context.WithTimeout(ctx, failBound)
	defer cancel()
	var applied atomic.Int64
	err := a1.tr.Stream(streamCtx, nsTill18, func() crdt.VersionVector { return crdt.VersionVector{} }, func(ops [][]byte) error {
		applied.Add(int64(len(ops)))
		return nil
	})
	if !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("a1 streaming %s: %v, want a permissions violation", nsTill18, err)
	}
	if !strings.Contains(err.Error(), "converge.acme.store-18.till-1.") {
		t.Errorf("a1 streaming %s: %v does not name the denied subject", nsTill18, err)
	}
	// Three subscriptions were denied (queue, direct, ops); their
	// violations are reported one by one.
	poll(t, "a1 to count its three denied subscriptions", func() bool { return a1.tr.Stats().Denied >= 3 })
	if err := a1.tr.Health(ctx); !errors.Is(err, nats.ErrPermissionViolation) {
		t.Errorf("a1 health after the denial: %v, want a permissions violation", err)
	}
	if n := applied.Load(); n != 0 {
		t.Errorf("a1 was handed %d ops of %s", n, nsTill18)
	}
	for _, r := range []*replica{a2, b1, b2} {
		if d := r.tr.Stats().Denied; d != 0 {
			t.Errorf("%s: %d permission violations from a1's attempt", r.name, d)
		}
	}

	// The denial ended that stream only: a1 still replicates its site.
	before := a1.tr.Stats().ReceivedOps
	a2.put(t, nsTill17, Item{ID: "a2-after", Site: "17"})
	b1.put(t, nsTill18, Item{ID: "b1-after", Site: "18"})
	waitConverged(t, nsTill17, a1, a2)
	waitConverged(t, nsTill18, b1, b2)
	// a2 published its new op live, and a1 received it on its own stream.
	poll(t, "a1 to receive a2's op live", func() bool { return a1.tr.Stats().ReceivedOps > before })
	mustCount(t, a1, nsTill17, 3)
	for _, r := range []*replica{a1, a2} {
		mustCount(t, r, nsTill18, 0)
	}
	for _, r := range []*replica{b1, b2} {
		mustCount(t, r, nsTill17, 0)
		mustCount(t, r, nsRoot17, 0)
	}
}

// TestSecurityForgedPublishRefused: a site publishes well-formed ops of
// another site's namespace on that namespace's subjects, live and as an
// anti-entropy push. The server refuses both publishes and tells the
// forger; the other site's replica never sees them. The same bytes
// published by the right site are applied, so only the permissions kept
// them out.
func TestSecurityForgedPublishRefused(t *testing.T) {
	s := startSecuredServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), failBound) // flushes need a deadline
	defer cancel()
	b := startReplica(t, "b", replicaConfig{url: s.ClientURL(), ns: []string{nsTill18}, natsOpts: siteOpts("store-18")})
	// b's opening announcement follows the registration of its subscriptions.
	poll(t, "b to stream", func() bool { return b.tr.Stats().Published >= 1 })

	forged, forgedOrigin := scratchOps(t, nsTill18, "forged")
	marker, _ := scratchOps(t, nsTill18, "marker")

	forger, forgerErrs := connectSite(t, s, "store-17")
	if err := forger.Publish("converge.acme.store-18.till-1.ops", batch(nsTill18, forged)); err != nil {
		t.Fatal(err)
	}
	if err := forger.PublishRequest("converge.acme.store-18.till-1.sync", "_INBOX_store-17.forged", batch(nsTill18, forged)); err != nil {
		t.Fatal(err)
	}
	// The flush returns once the server has processed both publishes: had
	// it routed them, they would be ahead of anything published from now on
	// in b's connection.
	if err := forger.FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	forgerErrs.expectDenied(t,
		`Publish to "converge.acme.store-18.till-1.ops"`,
		`Publish to "converge.acme.store-18.till-1.sync"`)

	// The marker: store-18's own ops, on the same live subscription the
	// forged batch would have arrived on, then a request on the same queue
	// subscription the forged request would have arrived on.
	site18, site18Errs := connectSite(t, s, "store-18")
	if err := site18.Publish("converge.acme.store-18.till-1.ops", batch(nsTill18, marker)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, b, nsTill18, func() bool { return has(t, b, nsTill18, "marker") })
	reply, err := site18.RequestWithContext(ctx, "converge.acme.store-18.till-1.sync",
		transport.AppendRequest(nil, &transport.Request{Namespace: nsTill18, Vector: crdt.VersionVector{}}))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := transport.DecodeResponse(reply.Data)
	if err != nil {
		t.Fatalf("b's reply: %v (refusal %q)", err, reply.Header.Get("Converge-Error"))
	}
	if resp.Vector.Get(forgedOrigin) != 0 || len(resp.Ops) != len(marker) {
		t.Errorf("b answered with vector %v and %d ops, want the marker's %d ops only", resp.Vector, len(resp.Ops), len(marker))
	}
	if has(t, b, nsTill18, "forged") {
		t.Fatal("b applied the forged ops")
	}
	mustCount(t, b, nsTill18, 1)
	if st := b.tr.Stats(); st.Received != 1 || st.ReceivedOps != int64(len(marker)) || st.Malformed != 0 || st.Denied != 0 {
		t.Errorf("b's stats %+v, want the marker batch only", st)
	}

	// The same forged bytes, published by the site that owns the
	// namespace, are applied: they were well-formed, the server refused them.
	if err := site18.Publish("converge.acme.store-18.till-1.ops", batch(nsTill18, forged)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, b, nsTill18, func() bool { return has(t, b, nsTill18, "forged") })
	mustCount(t, b, nsTill18, 2)
	select {
	case err := <-site18Errs:
		t.Errorf("store-18 publishing its own namespace: %v", err)
	default:
	}
}

// TestSecuritySubscriptionConfined: a site that subscribes to another
// site's namespaces, or to its inbox, is refused by the server and
// receives nothing of the other site's live ops or replies, while another
// subscriber of that site receives them.
func TestSecuritySubscriptionConfined(t *testing.T) {
	s := startSecuredServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), failBound) // flushes need a deadline
	defer cancel()
	spy, spyErrs := connectSite(t, s, "store-17")
	own, err := spy.SubscribeSync("converge.acme.store-17.>")
	if err != nil {
		t.Fatal(err)
	}
	var foreign []*nats.Subscription
	for _, subj := range []string{"converge.acme.store-18.>", "_INBOX_store-18.>", "_INBOX.>", ">"} {
		sub, err := spy.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		foreign = append(foreign, sub)
	}
	if err := spy.FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	spyErrs.expectDenied(t,
		`Subscription to "converge.acme.store-18.>"`,
		`Subscription to "_INBOX_store-18.>"`,
		`Subscription to "_INBOX.>"`,
		`Subscription to ">"`)

	// store-18 at work: a subscriber of its own sees its live ops, and
	// anti-entropy replies flow to its inbox.
	observer, _ := connectSite(t, s, "store-18")
	seen, err := observer.SubscribeSync("converge.acme.store-18.till-1.ops")
	if err != nil {
		t.Fatal(err)
	}
	if err := observer.FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	b1 := startReplica(t, "b1", replicaConfig{url: s.ClientURL(), ns: []string{nsTill18}, natsOpts: siteOpts("store-18")})
	b2 := startReplica(t, "b2", replicaConfig{url: s.ClientURL(), ns: []string{nsTill18}, natsOpts: siteOpts("store-18")})
	b1.put(t, nsTill18, Item{ID: "secret", Name: "store-18 only"})
	waitConverged(t, nsTill18, b1, b2)
	if res, err := b2.rep.SyncNow(ctx, nsTill18); err != nil || res.Err != nil {
		t.Fatalf("b2: sync: %v, %v", err, res.Err)
	}
	for {
		m, err := seen.NextMsg(failBound)
		if err != nil {
			t.Fatalf("observer: %v", err)
		}
		if req, err := transport.DecodeRequest(m.Data); err == nil && len(req.Ops) > 0 {
			break // a live batch of ops
		}
	}

	// The marker on the spy's own subjects: had the server routed it any
	// of store-18's messages above, they would be queued before it.
	site17, _ := connectSite(t, s, "store-17")
	if err := site17.Publish("converge.acme.store-17.marker", []byte("marker")); err != nil {
		t.Fatal(err)
	}
	m, err := own.NextMsg(failBound)
	if err != nil {
		t.Fatalf("spy's own subscription: %v", err)
	}
	if m.Subject != "converge.acme.store-17.marker" {
		t.Errorf("spy's own subscription got %s before the marker", m.Subject)
	}
	for _, sub := range foreign {
		n, _, err := sub.Pending()
		if err != nil {
			t.Fatal(err)
		}
		d, err := sub.Delivered()
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 || d != 0 {
			t.Errorf("spy's subscription to %s got messages: %d pending, %d delivered", sub.Subject, n, d)
		}
	}
	select {
	case err := <-spyErrs:
		t.Errorf("spy: unexpected asynchronous error %v", err)
	default:
	}
}

// TestSecurityTokenAuth: connection options pass through Connect; a token
// is one (user and password above, NKeys, creds files and TLS are
// nats.Options just the same). A wrong or missing token fails Connect with
// the server's authorization error.
func TestSecurityTokenAuth(t *testing.T) {
	o := embednats.Options()
	o.Authorization = "s3cret-token"
	s, err := embednats.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)

	tr, err := natstransport.Connect(s.ClientURL(), natstransport.Options{Logger: quiet}, nats.Token("s3cret-token"))
	if err != nil {
		t.Fatalf("connect with the token: %v", err)
	}
	defer tr.Close()
	if err := tr.Health(t.Context()); err != nil {
		t.Fatalf("health: %v", err)
	}
	for name, opts := range map[string][]nats.Option{
		"wrong token": {nats.Token("guess")},
		"no token":    nil,
	} {
		tr, err := natstransport.Connect(s.ClientURL(), natstransport.Options{Logger: quiet}, opts...)
		if err == nil {
			tr.Close()
			t.Fatalf("connect with %s succeeded", name)
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("connect with %s: %v, want nats.ErrAuthorization", name, err)
		}
	}
}
