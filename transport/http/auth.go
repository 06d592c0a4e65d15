package httptransport

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/convergedb/converge/crdt"
)

// ErrUnauthorized is returned by an [Authorizer] for an unknown token, and
// matches (errors.Is) a [*StatusError] of status 401.
var ErrUnauthorized = errors.New("httptransport: unauthorized")

// ErrForbidden matches a [*StatusError] of status 403: the namespace is
// outside the token's grant, or an op of another namespace was pushed, or
// a new op of an origin the token may not write as ([Grant].Origins).
var ErrForbidden = errors.New("httptransport: forbidden")

// ErrTooLarge matches a [*StatusError] of status 413: the body is beyond
// ServerOptions.MaxBody, or it pushes more than MaxOpsPerRequest ops.
var ErrTooLarge = errors.New("httptransport: request too large")

// ErrTooManyRequests matches a [*StatusError] of status 429: the token
// holds as many live streams (ServerOptions.MaxStreamsPerToken) or round
// trips in progress (MaxSyncsPerToken) as the server allows. The error's
// RetryAfter says when to try again.
var ErrTooManyRequests = errors.New("httptransport: too many requests")

// Grant is what a token may read and write.
type Grant struct {
	// Namespaces are exact names, or prefix patterns ending in ".>":
	// "acme.>" grants "acme.x" and "acme.x.y" but not "acme" (as NATS
	// subjects do). ">" alone grants every namespace.
	Namespaces []string
	// Origins, when not empty, are the replica ids the token may write as:
	// a pushed op of any other origin that the server does not hold yet
	// makes the request a 403, nothing applied. Ops the server holds are
	// duplicates whatever their origin (a writer re-pushes what it
	// received from others; the server keeps the op it has). Use it when
	// each writer has its own token, so one writer cannot forge another's
	// ops (docs/SECURITY.md). Empty means any origin: a token shared by
	// many replicas, or a relay.
	Origins []crdt.ReplicaID
}

// WritesAs reports whether g lets its holder push ops of origin.
func (g Grant) WritesAs(origin crdt.ReplicaID) bool {
	return len(g.Origins) == 0 || slices.Contains(g.Origins, origin)
}

// Allows reports whether g grants namespace ns.
func (g Grant) Allows(ns string) bool {
	if ns == "" {
		return false
	}
	for _, p := range g.Namespaces {
		if p == ns || p == ">" {
			return true
		}
		if prefix, ok := strings.CutSuffix(p, ">"); ok && strings.HasSuffix(prefix, ".") &&
			len(ns) > len(prefix) && strings.HasPrefix(ns, prefix) {
			return true
		}
	}
	return false
}

// validPattern checks one namespace or pattern of a grant.
func validPattern(p string) error {
	if p == "" || len(p) > crdt.MaxNameLen {
		return fmt.Errorf("namespace must be 1 to %d bytes", crdt.MaxNameLen)
	}
	if p == ">" {
		return nil
	}
	if i := strings.IndexByte(p, '>'); i >= 0 && (i != len(p)-1 || len(p) < 3 || p[len(p)-2] != '.') {
		return fmt.Errorf("pattern %q: '>' may only end a pattern, after a '.'", p)
	}
	return nil
}

// Authorizer maps a bearer token to its grant. It returns ErrUnauthorized
// (or an error wrapping it) for an unknown token; any other error is the
// server's (a 500, which clients retry). It must be safe for concurrent use.
type Authorizer interface {
	Authorize(ctx context.Context, token string) (Grant, error)
}

// TokenFile is an [Authorizer] read from a file of lines
//
//	<token> <ns>[,<ns>...] [origins=<replica id>[,<replica id>...]]
//
// where each ns is a name or a pattern (see [Grant]), and origins, if
// given, are the replica ids the token may write as ([Grant.Origins]). Blank lines and lines
// starting with '#' are ignored. Tokens are compared in constant time. It
// is immutable and safe for concurrent use.
type TokenFile struct {
	entries []tokenEntry
}

type tokenEntry struct {
	hash  [sha256.Size]byte
	grant Grant
}

// LoadTokenFile reads a [TokenFile]. A malformed line, a duplicate token or
// an invalid pattern is an error naming the line.
func LoadTokenFile(path string) (*TokenFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("httptransport: token file: %w", err)
	}
	defer f.Close() // read-only: a close error loses nothing
	tf, err := parseTokenFile(bufio.NewScanner(f))
	if err != nil {
		return nil, fmt.Errorf("httptransport: token file %s: %w", path, err)
	}
	return tf, nil
}

func parseTokenFile(sc *bufio.Scanner) (*TokenFile, error) {
	tf := &TokenFile{}
	seen := map[[sha256.Size]byte]int{}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 && len(fields) != 3 {
			return nil, fmt.Errorf("line %d: want \"<token> <ns>[,<ns>...] [origins=<replica id>,...]\", got %d fields", n, len(fields))
		}
		var g Grant
		for _, p := range strings.Split(fields[1], ",") {
			if err := validPattern(p); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			g.Namespaces = append(g.Namespaces, p)
		}
		if len(fields) == 3 {
			ids, ok := strings.CutPrefix(fields[2], "origins=")
			if !ok || ids == "" {
				return nil, fmt.Errorf("line %d: third field %q: want origins=<replica id>[,<replica id>...]", n, fields[2])
			}
			for id := range strings.SplitSeq(ids, ",") {
				r, err := crdt.ParseReplicaID(id)
				if err != nil {
					return nil, fmt.Errorf("line %d: %w", n, err)
				}
				g.Origins = append(g.Origins, r)
			}
		}
		h := sha256.Sum256([]byte(fields[0]))
		if prev, ok := seen[h]; ok {
			return nil, fmt.Errorf("line %d: token already given on line %d", n, prev)
		}
		seen[h] = n
		tf.entries = append(tf.entries, tokenEntry{hash: h, grant: g})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return tf, nil
}

// Authorize implements [Authorizer]. It returns ErrUnauthorized for an
// empty or unknown token. Every entry is compared, in constant time, so the
// time taken does not depend on which token matched or how much of it.
func (f *TokenFile) Authorize(ctx context.Context, token string) (Grant, error) {
	if token == "" {
		return Grant{}, ErrUnauthorized
	}
	h := sha256.Sum256([]byte(token))
	found := -1
	for i := range f.entries {
		if subtle.ConstantTimeCompare(h[:], f.entries[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Grant{}, ErrUnauthorized
	}
	g := f.entries[found].grant
	return Grant{Namespaces: slices.Clone(g.Namespaces), Origins: slices.Clone(g.Origins)}, nil
}
