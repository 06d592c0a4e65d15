package hub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
)

// openStream opens a live stream of testNS with token and returns a
// channel closed when its body ends.
func openStream(t *testing.T, url, token string) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/stream/"+testNS, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream with %s: %d", token, resp.StatusCode)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body) // until the stream ends; the error is the end
	}()
	return ended
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(failBound):
		t.Fatalf("%s is still open", what)
	}
}

// replaceFile writes content to path the way an operator should: a new
// file renamed into place.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tokens.new")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// The hub notices a changed token file by itself (TokenCheckInterval),
// reloads it, and closes the live streams of the token it no longer
// holds; the other streams go on. A malformed file revokes nothing.
func TestTokenFileReloadClosesRevokedStreams(t *testing.T) {
	t.Parallel()
	tokens := writeTokens(t, "tok-a team-1", "tok-b team-1")
	h := startHub(t, Config{Dir: t.TempDir(), TokenFile: tokens, TokenCheckInterval: 5 * time.Millisecond})
	a, b := openStream(t, h.url, "tok-a"), openStream(t, h.url, "tok-b")

	replaceFile(t, tokens, "tok-b team-1\n")
	waitClosed(t, a, "the revoked token's stream")
	select {
	case <-b:
		t.Fatal("the stream of a token still in the file ended")
	default:
	}
	if code, _ := get(t, nil, h.url+"/v1/stream/"+testNS, "tok-a"); code != http.StatusUnauthorized {
		t.Errorf("a stream with the revoked token = %d, want 401", code)
	}

	// A malformed file: ReloadTokens says so, the tokens stay.
	replaceFile(t, tokens, "tok-b\n")
	if err := h.ReloadTokens(t.Context()); err == nil {
		t.Error("ReloadTokens of a malformed file = nil, want an error")
	}
	if code, _ := get(t, nil, h.url+"/v1/admin/namespaces", "tok-b"); code != http.StatusOK {
		t.Errorf("tok-b after a malformed reload = %d, want 200 (the tokens before stay)", code)
	}
	select {
	case <-b:
		t.Fatal("a malformed token file ended a stream")
	default:
	}
	// Fixed, the new token works without a restart.
	replaceFile(t, tokens, "tok-b team-1\ntok-c team-1\n")
	if err := h.ReloadTokens(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, nil, h.url+"/v1/admin/namespaces", "tok-c"); code != http.StatusOK {
		t.Errorf("a token added to the file = %d, want 200", code)
	}
}

// A hub configured with a JWT key serves clients holding a JWT signed
// with it, within the namespaces of its claims, beside the token file.
func TestHubJWT(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t, Config{Dir: t.TempDir(), TokenFile: writeTokens(t, "static team-1"),
		JWT: &httptransport.JWTOptions{Key: &key.PublicKey, Issuer: "ops"}})
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, &httptransport.JWTClaims{Namespaces: []string{testNS},
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "ops", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	viaJWT, viaFile := httpReplica(t, h.url, tok), httpReplica(t, h.url, "static")
	viaJWT.put(t, "j", "with a JWT")
	viaFile.waitHas(t, "j")
	if _, err := viaJWT.db.SyncWith(t.Context(), mustClient(t, h.url, tok), "other"); err == nil {
		t.Error("a JWT synced a namespace outside its claims")
	}
}

// The admin endpoint shows the namespaces a token grants: vectors, state
// hashes, peers, quarantine, matching what the replicas hold.
func TestAdminEndpoint(t *testing.T) {
	t.Parallel()
	h := startHub(t, Config{Dir: t.TempDir(), TokenFile: writeTokens(t, "tok team-1", "other other-ns", "all >")})
	r := httpReplica(t, h.url, "tok")
	r.put(t, "t1", "x")
	r.waitStatus(t, "nothing pending", func(st converge.Status) bool { return st.Pending == 0 })
	// Another namespace, that tok does not see; and a quarantined op.
	if _, err := collection(t, h.DB()).Put(t.Context(), "other-ns", &Task{ID: "o"}); err != nil {
		t.Fatal(err)
	}
	quarantine(t, h.DB(), r.db)

	var list []NamespaceInfo
	getJSON(t, h.url+"/v1/admin/namespaces", "tok", &list)
	if len(list) != 1 || list[0].Namespace != testNS {
		t.Fatalf("tok's namespaces: %+v, want team-1 only", list)
	}
	wantHash, err := r.db.Admin().StateHash(t.Context(), testNS)
	if err != nil {
		t.Fatal(err)
	}
	if got := list[0]; got.StateHash != wantHash || got.Vector[r.db.ReplicaID()] != 1 || got.Peers != 1 || got.Quarantined != 1 {
		t.Errorf("team-1: %+v; want the client's state hash %s, its op, it as peer, one quarantined", got, wantHash)
	}
	getJSON(t, h.url+"/v1/admin/namespaces", "all", &list)
	if len(list) != 2 {
		t.Errorf("a token granted > sees %d namespaces, want 2", len(list))
	}

	var d NamespaceDetail
	getJSON(t, h.url+"/v1/admin/ns/"+testNS, "tok", &d)
	if len(d.PeerStates) != 1 || d.PeerStates[0].Replica != r.db.ReplicaID() || len(d.Quarantine) != 1 || d.Quarantine[0].Kind != "invalid" {
		t.Errorf("team-1 detail: %+v", d)
	}
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/v1/admin/namespaces", "", http.StatusUnauthorized},
		{"/v1/admin/namespaces", "nope", http.StatusUnauthorized},
		{"/v1/admin/ns/" + testNS, "other", http.StatusForbidden},
	} {
		if code, body := get(t, nil, h.url+tt.path, tt.token); code != tt.want {
			t.Errorf("GET %s with %q = %d %s, want %d", tt.path, tt.token, code, body, tt.want)
		}
	}
}

func getJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	code, body := get(t, nil, url, token)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
}

// quarantine makes db refuse an op of from's: well-formed, invalid.
func quarantine(t *testing.T, db, from *converge.DB) {
	t.Helper()
	if _, err := collection(t, from).Put(t.Context(), "ns-q", &Task{ID: "p"}); err != nil {
		t.Fatal(err)
	}
	ops, _, err := from.SyncStore().Missing(t.Context(), "ns-q", crdt.VersionVector{}, transport.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	op, err := crdt.DecodeOp(ops[0])
	if err != nil {
		t.Fatal(err)
	}
	op.Namespace, op.CL = testNS, 0 // well-formed, invalid
	op.Dot.Seq = 2
	if _, err := db.SyncStore().Apply(t.Context(), testNS, [][]byte{crdt.AppendOp(nil, &op)}); err != nil {
		t.Fatal(err)
	}
	q, err := db.Admin().Quarantine(t.Context(), testNS)
	if err != nil || len(q) != 1 {
		t.Fatalf("quarantine: %+v, %v; want one op", q, err)
	}
}
