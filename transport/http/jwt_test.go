package httptransport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/transport/transporttest"
)

var jwtEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sign signs claims with key (ES256), or with method and key when given.
func sign(t *testing.T, claims jwt.Claims, method jwt.SigningMethod, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(ns []string, origins []string, exp time.Time) *JWTClaims {
	return &JWTClaims{Namespaces: ns, Origins: origins, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: "ops", Audience: jwt.ClaimStrings{"hub"}, ExpiresAt: jwt.NewNumericDate(exp)}}
}

func TestJWTAuthorizer(t *testing.T) {
	key, other := newECKey(t), newECKey(t)
	a, err := NewJWTAuthorizer(JWTOptions{Key: &key.PublicKey, Issuer: "ops", Audience: "hub", Now: func() time.Time { return jwtEpoch }})
	if err != nil {
		t.Fatal(err)
	}
	var origin crdt.ReplicaID
	origin[0], origin[15] = 7, 9
	later := jwtEpoch.Add(time.Hour)

	g, err := a.Authorize(t.Context(), sign(t, claims([]string{"acme.>", "ns"}, []string{origin.String()}, later), jwt.SigningMethodES256, key))
	if err != nil {
		t.Fatalf("a valid token: %v", err)
	}
	if !g.Allows("acme.x") || !g.Allows("ns") || g.Allows("other") || !slices.Equal(g.Origins, []crdt.ReplicaID{origin}) {
		t.Errorf("grant %+v, want acme.> and ns, writing as %v", g, origin)
	}

	noExp := claims([]string{"ns"}, nil, later)
	noExp.ExpiresAt = nil
	wrongIss := claims([]string{"ns"}, nil, later)
	wrongIss.Issuer = "someone"
	wrongAud := claims([]string{"ns"}, nil, later)
	wrongAud.Audience = jwt.ClaimStrings{"other-hub"}
	for name, tok := range map[string]string{
		"expired":          sign(t, claims([]string{"ns"}, nil, jwtEpoch.Add(-time.Second)), jwt.SigningMethodES256, key),
		"no expiry":        sign(t, noExp, jwt.SigningMethodES256, key),
		"another key":      sign(t, claims([]string{"ns"}, nil, later), jwt.SigningMethodES256, other),
		"alg none":         sign(t, claims([]string{"ns"}, nil, later), jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType),
		"HMAC":             sign(t, claims([]string{"ns"}, nil, later), jwt.SigningMethodHS256, []byte("0123456789abcdef0123456789abcdef")),
		"no namespaces":    sign(t, claims(nil, nil, later), jwt.SigningMethodES256, key),
		"bad pattern":      sign(t, claims([]string{"a>b"}, nil, later), jwt.SigningMethodES256, key),
		"bad origin":       sign(t, claims([]string{"ns"}, []string{"not-an-id"}, later), jwt.SigningMethodES256, key),
		"another issuer":   sign(t, wrongIss, jwt.SigningMethodES256, key),
		"another audience": sign(t, wrongAud, jwt.SigningMethodES256, key),
		"garbage":          "not.a.jwt",
		"empty":            "",
	} {
		if _, err := a.Authorize(t.Context(), tok); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: Authorize = %v, want ErrUnauthorized", name, err)
		}
	}

	for _, bad := range []any{nil, "a string", []byte("short")} {
		if _, err := NewJWTAuthorizer(JWTOptions{Key: bad}); err == nil {
			t.Errorf("NewJWTAuthorizer(%T) = nil error", bad)
		}
	}
}

func TestLoadJWTKey(t *testing.T) {
	key := newECKey(t)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := LoadJWTKey(write("pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if pub, ok := got.(*ecdsa.PublicKey); err != nil || !ok || !pub.Equal(&key.PublicKey) {
		t.Errorf("LoadJWTKey(PEM) = %T, %v; want the ECDSA public key", got, err)
	}
	got, err = LoadJWTKey(write("secret", []byte("0123456789abcdef0123456789abcdef\n")))
	if b, ok := got.([]byte); err != nil || !ok || string(b) != "0123456789abcdef0123456789abcdef" {
		t.Errorf("LoadJWTKey(secret) = %q, %v; want the trimmed secret", got, err)
	}
	privDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadJWTKey(write("priv.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: privDER}))); err == nil {
		t.Error("LoadJWTKey of a private key = nil error, want a refusal")
	}
	if _, err := LoadJWTKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadJWTKey of a missing file = nil error")
	}
}

// Authorizers asks each in turn: a token file's token and a JWT both work.
func TestAuthorizersChain(t *testing.T) {
	key := newECKey(t)
	ja, err := NewJWTAuthorizer(JWTOptions{Key: &key.PublicKey, Now: func() time.Time { return jwtEpoch }})
	if err != nil {
		t.Fatal(err)
	}
	tf, err := LoadTokenFile(writeFile(t, "static ns\n"))
	if err != nil {
		t.Fatal(err)
	}
	both := Authorizers(tf, nil, ja)
	if g, err := both.Authorize(t.Context(), "static"); err != nil || !g.Allows("ns") {
		t.Errorf("the token file's token: %+v, %v", g, err)
	}
	tok := sign(t, &JWTClaims{Namespaces: []string{"jwt-ns"}, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(jwtEpoch.Add(time.Hour))}}, jwt.SigningMethodES256, key)
	if g, err := both.Authorize(t.Context(), tok); err != nil || !g.Allows("jwt-ns") {
		t.Errorf("the JWT: %+v, %v", g, err)
	}
	if _, err := both.Authorize(t.Context(), "unknown"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("an unknown token: %v, want ErrUnauthorized", err)
	}
}

// A live stream opened with a JWT ends when the server revalidates after
// the token expired.
func TestJWTStreamEndsAtExpiry(t *testing.T) {
	key := newECKey(t)
	var now atomic.Int64
	now.Store(jwtEpoch.UnixNano())
	ja, err := NewJWTAuthorizer(JWTOptions{Key: &key.PublicKey, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	hub := transporttest.OpenReplica(t)
	srv, ts := startServer(t, ServerOptions{Store: hub.DB.SyncStore(), Auth: ja, HeartbeatInterval: time.Hour})
	tok := sign(t, claims([]string{"ns"}, nil, jwtEpoch.Add(time.Minute)), jwt.SigningMethodES256, key)
	ended := openRawStream(t, ts.URL, tok, "ns")
	waitOpen(t, srv, 1)
	if n := srv.Revalidate(t.Context()); n != 0 {
		t.Fatalf("Revalidate before expiry ended %d streams", n)
	}
	now.Store(jwtEpoch.Add(2 * time.Minute).UnixNano())
	if n := srv.Revalidate(t.Context()); n != 1 {
		t.Fatalf("Revalidate after expiry ended %d streams, want 1", n)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second): // a failure bound
		t.Fatal("the stream of an expired JWT is still open")
	}
}
