package httptransport

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/convergedb/converge/crdt"
)

// JWTOptions configure a [JWTAuthorizer].
type JWTOptions struct {
	// Key verifies the tokens' signatures, and decides the algorithms
	// accepted: an *ecdsa.PublicKey (ES256, ES384, ES512), an
	// *rsa.PublicKey (RS256/384/512, PS256/384/512), an ed25519.PublicKey
	// (EdDSA), or a []byte HMAC secret of at least 32 bytes (HS256/384/512).
	// [LoadJWTKey] reads one from a file. Required.
	Key any
	// Issuer, if set, must be the tokens' "iss" claim.
	Issuer string
	// Audience, if set, must be one of the tokens' "aud" claim.
	Audience string
	// Leeway is the clock skew tolerated on "exp" and "nbf". Zero means
	// none.
	Leeway time.Duration
	// Now returns the time tokens are checked at. Nil means time.Now.
	Now func() time.Time
}

// JWTClaims are the claims a [JWTAuthorizer] reads beside the registered
// ones ("exp" is required; "nbf", "iss" and "aud" are checked when
// present or configured).
type JWTClaims struct {
	// Namespaces are the namespaces and patterns granted ([Grant]).
	// Required: a token granting nothing is refused.
	Namespaces []string `json:"ns"`
	// Origins are the replica ids the holder may write as
	// ([Grant].Origins); empty means any.
	Origins []string `json:"origins,omitempty"`
	jwt.RegisteredClaims
}

// JWTAuthorizer is an [Authorizer] of JSON Web Tokens (RFC 7519) signed
// with a configured key: a token's "ns" claim lists the namespaces it
// grants and its "origins" claim the replica ids it may write as
// ([JWTClaims]). Tokens must expire ("exp"); an expired, not yet valid,
// badly signed or malformed token, or one signed with another algorithm
// than the key's, is ErrUnauthorized. It is immutable and safe for
// concurrent use.
type JWTAuthorizer struct {
	key    any
	parser *jwt.Parser
}

// NewJWTAuthorizer returns the authorizer of opts. It fails if the key
// is missing or of an unsupported kind.
func NewJWTAuthorizer(opts JWTOptions) (*JWTAuthorizer, error) {
	methods, err := jwtMethods(opts.Key)
	if err != nil {
		return nil, fmt.Errorf("httptransport: JWT authorizer: %w", err)
	}
	popts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithExpirationRequired(), jwt.WithLeeway(opts.Leeway)}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	if opts.Now != nil {
		popts = append(popts, jwt.WithTimeFunc(opts.Now))
	}
	return &JWTAuthorizer{key: opts.Key, parser: jwt.NewParser(popts...)}, nil
}

// jwtMethods are the algorithms a key verifies.
func jwtMethods(key any) ([]string, error) {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return []string{"ES256", "ES384", "ES512"}, nil
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	case []byte:
		if len(k) < 32 {
			return nil, fmt.Errorf("HMAC secret of %d bytes, want at least 32", len(k))
		}
		return []string{"HS256", "HS384", "HS512"}, nil
	case nil:
		return nil, errors.New("a key is required (JWTOptions.Key)")
	}
	return nil, fmt.Errorf("key of type %T not supported (want an ECDSA, RSA or Ed25519 public key, or an HMAC secret)", key)
}

// Authorize implements [Authorizer]: the grant of a valid token's
// claims, or an error wrapping ErrUnauthorized.
func (a *JWTAuthorizer) Authorize(_ context.Context, token string) (Grant, error) {
	var claims JWTClaims
	if _, err := a.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return a.key, nil }); err != nil {
		return Grant{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	g, err := claims.grant()
	if err != nil {
		return Grant{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	return g, nil
}

// grant checks the claims and returns their grant.
func (c *JWTClaims) grant() (Grant, error) {
	if len(c.Namespaces) == 0 {
		return Grant{}, errors.New("token grants no namespace (claim \"ns\")")
	}
	var g Grant
	for _, p := range c.Namespaces {
		if err := validPattern(p); err != nil {
			return Grant{}, fmt.Errorf("claim \"ns\": %w", err)
		}
		g.Namespaces = append(g.Namespaces, p)
	}
	for _, id := range c.Origins {
		r, err := crdt.ParseReplicaID(id)
		if err != nil {
			return Grant{}, fmt.Errorf("claim \"origins\": %w", err)
		}
		g.Origins = append(g.Origins, r)
	}
	return g, nil
}

// LoadJWTKey reads a key for [JWTOptions].Key from a file: a PEM public
// key ("PUBLIC KEY", PKIX: ECDSA, RSA or Ed25519), or else the file's
// bytes, surrounding whitespace trimmed, as an HMAC secret.
func LoadJWTKey(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("httptransport: JWT key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		if strings.Contains(string(b), "-----BEGIN") {
			return nil, fmt.Errorf("httptransport: JWT key %s: malformed PEM", path)
		}
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("httptransport: JWT key %s: PEM block %q, want \"PUBLIC KEY\" (never a private key)", path, block.Type)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("httptransport: JWT key %s: %w", path, err)
	}
	return key, nil
}

// Authorizers returns an [Authorizer] that asks each of auths in turn and
// returns the first answer that is not ErrUnauthorized: a token file and
// a [JWTAuthorizer] side by side, say. Nil entries are skipped.
func Authorizers(auths ...Authorizer) Authorizer { return chain(auths) }

type chain []Authorizer

func (c chain) Authorize(ctx context.Context, token string) (Grant, error) {
	err := ErrUnauthorized
	for _, a := range c {
		if a == nil {
			continue
		}
		var g Grant
		if g, err = a.Authorize(ctx, token); !errors.Is(err, ErrUnauthorized) {
			return g, err
		}
	}
	return Grant{}, err
}
