package transport

import (
	"context"
	"log/slog"
)

// Labels name what a context is doing, for logs: a request id that
// travels with the requests a sync makes (HTTP sends it as the header
// X-Converge-Request-Id, NATS as Converge-Request-Id; the responder logs
// it), and a chain of labels, each operation's under its parent's:
// "sync/tasks#3 > round 2". The replicator labels each sync; [Sync]
// labels its rounds and snapshot pages; transports log with them.

type labelsKey struct{}

// labels is what a context carries: the request id and the label chain.
type labels struct {
	id, chain string
}

// MaxRequestIDLen bounds a request id a responder accepts from the wire
// (longer ones, or ones with bytes outside printable ASCII, are dropped).
const MaxRequestIDLen = 128

// WithRequestID returns a copy of ctx carrying the request id id.
func WithRequestID(ctx context.Context, id string) context.Context {
	l, _ := ctx.Value(labelsKey{}).(labels)
	l.id = id
	return context.WithValue(ctx, labelsKey{}, l)
}

// RequestID returns the request id ctx carries, or "".
func RequestID(ctx context.Context) string {
	l, _ := ctx.Value(labelsKey{}).(labels)
	return l.id
}

// WithLabel returns a copy of ctx whose label chain ends with label,
// under the chain ctx carries: "parent > label".
func WithLabel(ctx context.Context, label string) context.Context {
	l, _ := ctx.Value(labelsKey{}).(labels)
	if l.chain == "" {
		l.chain = label
	} else {
		l.chain += " > " + label
	}
	return context.WithValue(ctx, labelsKey{}, l)
}

// Label returns the label chain ctx carries, or "".
func Label(ctx context.Context) string {
	l, _ := ctx.Value(labelsKey{}).(labels)
	return l.chain
}

// LogAttrs returns the request id and label chain of ctx as log
// attributes ("request_id", "label"), leaving out those that are empty:
// logger.Debug("msg", transport.LogAttrs(ctx)...).
func LogAttrs(ctx context.Context) []any {
	l, _ := ctx.Value(labelsKey{}).(labels)
	var out []any
	if l.id != "" {
		out = append(out, slog.String("request_id", l.id))
	}
	if l.chain != "" {
		out = append(out, slog.String("label", l.chain))
	}
	return out
}

// ValidRequestID reports whether id may be logged as a request id read
// from the wire: 1 to MaxRequestIDLen bytes of printable ASCII.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}
