package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/hub"
	httptransport "github.com/convergedb/converge/transport/http"
)

// The hub itself is tested in package hub; these tests cover the command:
// flags and environment onto hub.Config, and serve's lifecycle and SIGHUP.

// failBound bounds every wait of these tests: a failure bound, not a way
// to synchronize.
const failBound = 30 * time.Second

func quietLogger() *slog.Logger {
	if os.Getenv("CONVERGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func noEnv(string) (string, bool) { return "", false }

func writeTokens(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func status(t *testing.T, url, token string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body) // the status is what counts
	resp.Body.Close()
	return resp.StatusCode
}

// serve runs from flags, reloads its token file on SIGHUP (a value on the
// reload channel, as runServe's signal.Notify sends), and shuts down
// cleanly when its context ends.
func TestServeFlagsAndSIGHUP(t *testing.T) {
	t.Parallel()
	tokens := writeTokens(t, "tok-a team-1")
	cfg, err := parseServeConfig([]string{"-dir", t.TempDir(), "-tokens", tokens, "-token-check-interval", "-1s"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	url := "http://" + cfg.listener.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reload := make(chan os.Signal)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, quietLogger(), reload) }()

	admin := url + "/v1/admin/namespaces"
	if code := status(t, admin, "tok-a"); code != http.StatusOK {
		t.Fatalf("admin with tok-a = %d, want 200", code)
	}
	if err := os.WriteFile(tokens, []byte("tok-b team-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- syscall.SIGHUP // unbuffered: serve took it
	deadline := time.Now().Add(failBound)
	for status(t, admin, "tok-a") != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("tok-a is still accepted after SIGHUP reloaded a token file without it")
		}
		<-time.After(time.Millisecond) // polling a condition, not synchronizing by time
	}
	if code := status(t, admin, "tok-b"); code != http.StatusOK {
		t.Errorf("admin with tok-b after the reload = %d, want 200", code)
	}

	// converge inspect -hub reads the admin endpoint of the running hub.
	db, err := converge.Open(t.TempDir(), converge.Options{Durability: converge.NoSync, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tasks, err := converge.NewCollection[Task](db, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Put(t.Context(), "team-1", &Task{ID: "t1"}); err != nil {
		t.Fatal(err)
	}
	c, err := httptransport.NewClient(httptransport.ClientOptions{BaseURL: url, Token: "tok-b", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SyncWith(t.Context(), c, "team-1"); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := runInspect(t.Context(), []string{"-hub", url, "-token", "tok-b"}, &out, io.Discard); err != nil ||
		!strings.Contains(out.String(), `namespace "team-1": 1 ops, state `) || !strings.Contains(out.String(), db.ReplicaID()+": 1") {
		t.Errorf("inspect -hub: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := runInspect(t.Context(), []string{"-hub", url, "-token", "tok-b", "team-1"}, &out, io.Discard); err != nil ||
		!strings.Contains(out.String(), `"peer_states"`) {
		t.Errorf("inspect -hub NS: %v\n%s", err, out.String())
	}
	if err := runInspect(t.Context(), []string{"-hub", url, "-token", "tok-a"}, &out, io.Discard); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("inspect -hub with a revoked token = %v, want a 401", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve = %v after its context ended, want nil", err)
		}
	case <-time.After(failBound):
		t.Fatal("serve did not return after its context ended")
	}
}

func TestServeConfig(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	cfg, err := parseServeConfig([]string{"-namespaces", "a, b.c", "-tls-cert", "c.pem"}, env(map[string]string{
		"CONVERGE_DIR": "/data", "CONVERGE_TOKENS": "/etc/tokens", "CONVERGE_TLS_KEY": "k.pem", "CONVERGE_TLS_CLIENT_CA": "ca.pem",
		"CONVERGE_SHUTDOWN_TIMEOUT": "5s", "CONVERGE_NATS_URL": "nats://x:4222", "CONVERGE_NATS_PASSWORD": "pw", "CONVERGE_NATS_USER": "u",
		"CONVERGE_JWT_KEY": "jwt.pem", "CONVERGE_JWT_ISSUER": "ops", "CONVERGE_METRICS_MAX_PEERS": "5", "CONVERGE_FAILURE_LOG_INTERVAL": "1m",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Hub
	if h.Dir != "/data" || h.TokenFile != "/etc/tokens" || cfg.Listen != hub.DefaultListen || h.ShutdownTimeout != 5*time.Second ||
		h.NATS.User != "u" || h.NATS.Password != "pw" || strings.Join(h.NATS.Namespaces, "|") != "a|b.c" || cfg.Durability != "sync" ||
		h.TLSCertFile != "c.pem" || h.TLSKeyFile != "k.pem" || h.TLSClientCAFile != "ca.pem" || cfg.JWTKey != "jwt.pem" || cfg.JWTIssuer != "ops" ||
		h.MaxPeerSeries != 5 || h.FailureLogInterval != time.Minute || h.CompactInterval != 10*time.Minute {
		t.Errorf("config from the environment and flags: %+v", cfg)
	}
	if cfg.Listen != "127.0.0.1:8080" {
		t.Errorf("default listen address %q, want loopback 127.0.0.1:8080", cfg.Listen)
	}
	if cfg, err := parseServeConfig([]string{"-dir", "d", "-tokens", "t", "-compact-interval", "0"}, noEnv, io.Discard); err != nil || cfg.Hub.CompactInterval >= 0 {
		t.Errorf("-compact-interval 0: %v, %v; want compaction off (negative)", cfg.Hub.CompactInterval, err)
	}

	for _, tt := range []struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		{nil, nil, "-dir"},
		{[]string{"-dir", "d"}, nil, "nothing to serve"},
		{[]string{"-dir", "d", "-nats-url", "nats://x"}, nil, "-namespaces"},
		{[]string{"-dir", "d", "-tokens", "t", "-namespaces", "a"}, nil, "-nats-url"},
		{[]string{"-dir", "d", "-tokens", "t", "-durability", "maybe"}, nil, "-durability"},
		{[]string{"-dir", "d", "-tokens", "t", "-log-level", "loud"}, nil, "-log-level"},
		{[]string{"-dir", "d", "-nats-url", "nats://x", "-namespaces", "a", "-nats-password", "p"}, nil, "-nats-user"},
		{[]string{"-dir", "d", "-nats-url", "nats://x", "-namespaces", "a", "-nats-tls-cert", "c"}, nil, "-nats-tls-key"},
		{[]string{"-dir", "d", "-tokens", "t", "-tls-cert", "c"}, nil, "-tls-key"},
		{[]string{"-dir", "d", "-tokens", "t", "-tls-client-ca", "ca"}, nil, "-tls-client-ca"},
		{[]string{"-dir", "d", "-tokens", "t", "-jwt-issuer", "x"}, nil, "-jwt-key"},
		{[]string{"-tokens", "t"}, map[string]string{"CONVERGE_DIR": "d", "CONVERGE_SHUTDOWN_TIMEOUT": "soon"}, "CONVERGE_SHUTDOWN_TIMEOUT"},
		{[]string{"-dir", "d", "-tokens", "t", "stray"}, nil, "unexpected argument"},
	} {
		_, err := parseServeConfig(tt.args, env(tt.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("parseServeConfig(%q, %v) = %v, want an error mentioning %q", tt.args, tt.env, err, tt.wantErr)
		}
	}

	// What the hub refuses is an error of serve, and the listener is closed.
	cfg, err = parseServeConfig([]string{"-dir", t.TempDir(), "-nats-url", "nats://x", "-namespaces", "a", "-nats-token", "t", "-nats-user", "u"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := serve(t.Context(), cfg, quietLogger(), nil); !errors.Is(err, hub.ErrInvalidConfig) {
		t.Errorf("serve with two NATS authentications = %v, want hub.ErrInvalidConfig", err)
	}
	if _, err := cfg.listener.Accept(); err == nil {
		t.Error("the listener is still open after a failed start")
	}
}
