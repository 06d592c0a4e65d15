package httptransport

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	"github.com/convergedb/converge/transport/transporttest"
)

func TestGrantAllows(t *testing.T) {
	g := Grant{Namespaces: []string{"ns", "acme.>", "a.b.>"}}
	for _, tc := range []struct {
		ns   string
		want bool
	}{
		{"ns", true},
		{"ns2", false},
		{"n", false},
		{"", false},
		{"acme.x", true},
		{"acme.x.y", true},
		{"acme", false},
		{"acme.", false},
		{"acmex.y", false},
		{"a.b.c", true},
		{"a.b", false},
		{"a.c.d", false},
	} {
		if got := g.Allows(tc.ns); got != tc.want {
			t.Errorf("Allows(%q) = %v, want %v", tc.ns, got, tc.want)
		}
	}
	if !(Grant{Namespaces: []string{">"}}).Allows("anything.at.all") {
		t.Error(`">" does not grant everything`)
	}
	if (Grant{}).Allows("ns") {
		t.Error("the empty grant allows ns")
	}
}

func TestTokenFile(t *testing.T) {
	tf, err := LoadTokenFile(writeFile(t, `
# a comment
  # an indented comment
alpha ns

beta   acme.>,other,x.y.>
gamma  >
`))
	if err != nil {
		t.Fatalf("LoadTokenFile: %v", err)
	}
	for _, tc := range []struct {
		token string
		want  []string // nil: unauthorized
	}{
		{"alpha", []string{"ns"}},
		{"beta", []string{"acme.>", "other", "x.y.>"}},
		{"gamma", []string{">"}},
		{"alph", nil},
		{"alphaa", nil},
		{"", nil},
		{"#", nil},
	} {
		g, err := tf.Authorize(t.Context(), tc.token)
		if tc.want == nil {
			if !errors.Is(err, ErrUnauthorized) {
				t.Errorf("Authorize(%q) = %v, %v; want ErrUnauthorized", tc.token, g, err)
			}
			continue
		}
		if err != nil || !slices.Equal(g.Namespaces, tc.want) {
			t.Errorf("Authorize(%q) = %v, %v; want %v", tc.token, g.Namespaces, err, tc.want)
		}
	}
	g, _ := tf.Authorize(t.Context(), "beta")
	if !g.Allows("acme.x") || g.Allows("acme") || !g.Allows("other") || g.Allows("x.y") {
		t.Errorf("beta's grant %v allows the wrong namespaces", g)
	}
}

func TestTokenFileMalformed(t *testing.T) {
	for name, content := range map[string]string{
		"token only":        "alpha\n",
		"three fields":      "alpha ns other\n",
		"empty namespace":   "alpha ns,,x\n",
		"trailing comma":    "alpha ns,\n",
		"bad pattern":       "alpha acme>\n",
		"inner wildcard":    "alpha a.>.b\n",
		"bare dot wildcard": "alpha .>\n",
		"duplicate token":   "alpha ns\nalpha other\n",
	} {
		if _, err := LoadTokenFile(writeFile(t, content)); err == nil {
			t.Errorf("%s: LoadTokenFile(%q) succeeded, want an error", name, content)
		}
	}
	if _, err := LoadTokenFile(writeFile(t, "")); err != nil {
		t.Errorf("empty file: %v", err)
	}
	if _, err := LoadTokenFile("/nonexistent/tokens"); err == nil {
		t.Error("missing file: no error")
	}
}

func TestNewServerRequiresAuth(t *testing.T) {
	r := transporttest.OpenReplica(t)
	if _, err := NewServer(ServerOptions{Store: r.DB.SyncStore()}); err == nil {
		t.Error("NewServer without Auth succeeded")
	}
	if _, err := NewServer(ServerOptions{Auth: testAuth}); err == nil {
		t.Error("NewServer without Store succeeded")
	}
}

func TestAuthRefusals(t *testing.T) {
	b := transporttest.OpenReplica(t)
	putItems(t, b, "ns", 3, "b")
	putItems(t, b, "secret", 3, "s")
	_, ts := startServer(t, ServerOptions{Store: b.DB.SyncStore()})
	req := func(ns string) *transport.Request {
		return &transport.Request{Namespace: ns, Vector: crdt.VersionVector{}}
	}

	for _, tc := range []struct {
		name, token, ns string
		code            int
		sentinel        error
	}{
		{"no token", "", "ns", 401, ErrUnauthorized},
		{"unknown token", "nope", "ns", 401, ErrUnauthorized},
		{"namespace not granted", "tok", "secret", 403, ErrForbidden},
		{"prefix not granted", "acme", "acme", 403, ErrForbidden},
		{"lookalike prefix", "acme", "acmex.y", 403, ErrForbidden},
	} {
		c := newClient(t, ts.URL, tc.token)
		resp, err := c.RoundTrip(t.Context(), req(tc.ns))
		if !errors.Is(err, tc.sentinel) {
			t.Errorf("%s: RoundTrip = %v, %v; want %v", tc.name, resp, err, tc.sentinel)
			continue
		}
		se, ok := errors.AsType[*StatusError](err)
		if !ok || se.Code != tc.code || se.Message == "" {
			t.Errorf("%s: error %#v, want a *StatusError %d with a message", tc.name, err, tc.code)
		}
		if st := c.Stats(); st.Requests != 1 || st.Retries != 0 {
			t.Errorf("%s: stats %+v, want 1 request and no retry", tc.name, st)
		}
	}

	// The granted namespaces work.
	if resp, err := newClient(t, ts.URL, "tok").RoundTrip(t.Context(), req("ns")); err != nil || len(resp.Ops) != 3 {
		t.Errorf("granted round trip = %v, %v; want 3 ops", resp, err)
	}
	if _, err := newClient(t, ts.URL, "acme").RoundTrip(t.Context(), req("acme.x.y")); err != nil {
		t.Errorf("acme.> round trip of acme.x.y: %v", err)
	}

	// The 401 asks for a bearer token.
	code, _, hdr := post(t, ts.URL+"/v1/sync/ns", "", transport.AppendRequest(nil, req("ns")))
	if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d, WWW-Authenticate %q; want 401 with a challenge", code, hdr.Get("WWW-Authenticate"))
	}
	code, _, _ = post(t, ts.URL+"/v1/sync/ns", "tok", transport.AppendRequest(nil, req("ns")), "Authorization", "Basic dG9rOg==")
	if code != http.StatusUnauthorized {
		t.Errorf("basic auth: %d, want 401", code)
	}
}

func TestForgedNamespaceRefused(t *testing.T) {
	srvRep, attacker := transporttest.OpenReplica(t), transporttest.OpenReplica(t)
	putItems(t, srvRep, "ns", 2, "server")
	putItems(t, attacker, "ns", 2, "honest")
	putItems(t, attacker, "secret", 2, "forged")
	beforeNS, beforeSecret := stateHash(t, srvRep, "ns"), stateHash(t, srvRep, "secret")
	_, ts := startServer(t, ServerOptions{Store: srvRep.DB.SyncStore()})
	c := newClient(t, ts.URL, "tok")

	// Honest ops first, a forged one of "secret" last: nothing is applied.
	ops := append(opsOf(t, attacker, "ns"), opsOf(t, attacker, "secret")...)
	_, err := c.RoundTrip(t.Context(), &transport.Request{Namespace: "ns", Vector: crdt.VersionVector{}, Ops: ops})
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("forged op: %v, want ErrForbidden", err)
	}
	if got := stateHash(t, srvRep, "ns"); got != beforeNS {
		t.Error("the state of ns changed after a refused request")
	}
	if got := stateHash(t, srvRep, "secret"); got != beforeSecret {
		t.Error("the state of secret changed after a forged op")
	}

	// The request's namespace must be the URL's.
	body := transport.AppendRequest(nil, &transport.Request{Namespace: "secret", Vector: crdt.VersionVector{}})
	code, msg, _ := post(t, ts.URL+"/v1/sync/ns", "tok", body)
	if code != http.StatusBadRequest || msg == "" {
		t.Errorf("request of another namespace than the URL's: %d %q, want 400 with a reason", code, msg)
	}
}
