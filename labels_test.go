package converge_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/transport"
	httptransport "github.com/convergedb/converge/transport/http"
)

// logCapture is a slog handler keeping every record's message and
// attributes (its own and the logger's), for tests that read logs.
type logCapture struct {
	mu    *sync.Mutex
	lines *[]map[string]string
	attrs []slog.Attr
}

func newLogCapture() logCapture {
	return logCapture{mu: new(sync.Mutex), lines: new([]map[string]string)}
}

func (h logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h logCapture) Handle(_ context.Context, r slog.Record) error {
	line := map[string]string{"msg": r.Message}
	for _, a := range h.attrs {
		line[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { line[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	*h.lines = append(*h.lines, line)
	h.mu.Unlock()
	return nil
}

func (h logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return h
}

func (h logCapture) WithGroup(string) slog.Handler { return h }

// find returns the records with message msg whose attribute key is val.
func (h logCapture) find(msg, key, val string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, l := range *h.lines {
		if l["msg"] == msg && l[key] == val {
			out = append(out, l)
		}
	}
	return out
}

// TestRequestIDReachesTheHubsLog: a sync's request id is logged by the
// client (the replicator's line, under its label, and the HTTP client's
// round trips, labelled under it) and, through X-Converge-Request-Id, by
// the hub's server.
func TestRequestIDReachesTheHubsLog(t *testing.T) {
	ctx := t.Context()
	hubLog, appLog := newLogCapture(), newLogCapture()
	hubDB := open(t, converge.Options{Logger: slog.New(slog.DiscardHandler)})
	srv, err := httptransport.NewServer(httptransport.ServerOptions{Store: hubDB.SyncStore(), Auth: grantAll{"secret", []string{"ns"}}, Logger: slog.New(hubLog)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); ts.Close() })
	app := open(t, converge.Options{Logger: slog.New(appLog)})
	c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: ts.URL, Token: "secret", Logger: slog.New(appLog)})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := app.OpenReplicator(c, converge.ReplicatorOptions{Namespaces: []string{"ns"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close(ctx)
	if _, err := coll[Task](t, app, "tasks").Put(ctx, "ns", &Task{ID: "t1"}); err != nil {
		t.Fatal(err)
	}
	res, err := rep.SyncNow(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.RequestID, app.ReplicaID()+"-") {
		t.Fatalf("request id %q, want <replica>-<n>", res.RequestID)
	}
	if got := hubLog.find("sync served", "request_id", res.RequestID); len(got) == 0 {
		t.Errorf("the hub logged no round trip with request id %q", res.RequestID)
	}
	synced := appLog.find("synced", "request_id", res.RequestID)
	if len(synced) != 1 || !strings.HasPrefix(synced[0]["label"], "sync/ns#") {
		t.Fatalf("the replicator's lines of the sync: %v, want one labelled sync/ns#n", synced)
	}
	rounds := appLog.find("sync", "request_id", res.RequestID)
	if len(rounds) == 0 || rounds[0]["label"] != synced[0]["label"]+" > round 1" {
		t.Errorf("the HTTP client's round trips: %v, want labelled %q", rounds, synced[0]["label"]+" > round 1")
	}

	// A request id of the caller's context is kept.
	res, err = rep.SyncNow(transport.WithRequestID(ctx, "app-req-7"), "ns")
	if err != nil || res.RequestID != "app-req-7" {
		t.Fatalf("SyncNow with the caller's id: %q, %v", res.RequestID, err)
	}
	if got := hubLog.find("sync served", "request_id", "app-req-7"); len(got) == 0 {
		t.Error("the hub logged no round trip with the caller's request id")
	}
}
