package natstransport

import (
	"errors"
	"fmt"
	"strings"
)

// ErrSubject reports a namespace or prefix that cannot be mapped onto a
// NATS subject.
var ErrSubject = errors.New("natstransport: not representable as a subject")

// Subject kinds: the last tokens of every subject the transport uses.
const (
	kindOps  = "ops"  // live ops and vector announcements, to every replica
	kindSync = "sync" // anti-entropy requests, to one replica of a queue group
)

// EncodeNamespace maps a namespace onto subject tokens: the namespace's
// dots separate tokens, so `acme.store-17.till-2` becomes three tokens and
// permissions such as `converge.acme.store-17.>` grant exactly a site's
// namespaces. Bytes outside [A-Za-z0-9_-] (spaces, '*', '>', '%', control
// and non-ASCII bytes) are written as %XX. A namespace with an empty token
// (a leading, trailing or doubled dot) has no subject: ErrSubject.
func EncodeNamespace(ns string) (string, error) {
	if ns == "" {
		return "", fmt.Errorf("%w: empty namespace", ErrSubject)
	}
	var b strings.Builder
	b.Grow(len(ns))
	tokenStart := true
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		switch {
		case c == '.':
			if tokenStart {
				return "", fmt.Errorf("%w: namespace %q has an empty token", ErrSubject, ns)
			}
			b.WriteByte('.')
			tokenStart = true
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
		tokenStart = false
	}
	if tokenStart {
		return "", fmt.Errorf("%w: namespace %q has an empty token", ErrSubject, ns)
	}
	return b.String(), nil
}

// DecodeNamespace inverts EncodeNamespace.
func DecodeNamespace(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%w: truncated escape in %q", ErrSubject, s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: bad escape in %q", ErrSubject, s)
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// checkPrefix validates a subject prefix: one or more non-empty tokens of
// printable ASCII without wildcards.
func checkPrefix(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty prefix", ErrSubject)
	}
	for tok := range strings.SplitSeq(p, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return fmt.Errorf("%w: prefix %q", ErrSubject, p)
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				return fmt.Errorf("%w: prefix %q", ErrSubject, p)
			}
		}
	}
	return nil
}

// subjects are the subjects of one namespace under a prefix:
//
//	<prefix>.<ns tokens>.ops          live ops and announcements (every replica)
//	<prefix>.<ns tokens>.sync         anti-entropy requests (one replica of the queue group)
//	<prefix>.<ns tokens>.sync.<id>    anti-entropy requests to one transport
//
// Transport ids never equal "ops" or "sync", so no two namespaces share a
// subject.
type subjects struct {
	ops, sync string
}

func subjectsFor(prefix, ns string) (subjects, error) {
	enc, err := EncodeNamespace(ns)
	if err != nil {
		return subjects{}, err
	}
	base := prefix + "." + enc + "."
	return subjects{ops: base + kindOps, sync: base + kindSync}, nil
}

// direct is the subject that reaches the transport with the given id.
func (s subjects) direct(id string) string { return s.sync + "." + id }
