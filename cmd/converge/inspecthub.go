package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/convergedb/converge/hub"
)

// inspectHub shows what a running hub holds, through its admin endpoint:
// an overview of the namespaces its token grants, or with one argument,
// that namespace's detail as JSON.
func inspectHub(ctx context.Context, base, token, caFile string, args []string, stdout io.Writer) error {
	if len(args) > 1 {
		return errors.New("inspect -hub: want at most a namespace")
	}
	client, err := hubClient(caFile)
	if err != nil {
		return err
	}
	base = strings.TrimRight(base, "/")
	if len(args) == 1 {
		body, err := hubGet(ctx, client, base+"/v1/admin/ns/"+url.PathEscape(args[0]), token)
		if err != nil {
			return err
		}
		_, err = stdout.Write(body)
		return err
	}
	body, err := hubGet(ctx, client, base+"/v1/admin/namespaces", token)
	if err != nil {
		return err
	}
	var list []hub.NamespaceInfo
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("inspect -hub: the hub's answer: %w", err)
	}
	fmt.Fprintf(stdout, "hub %s: %d namespaces\n", base, len(list))
	for _, ns := range list {
		fmt.Fprintf(stdout, "namespace %q: %d ops, state %s, %d peers, %d quarantined\n", ns.Namespace, ns.Ops, ns.StateHash, ns.Peers, ns.Quarantined)
		for _, origin := range slices.Sorted(maps.Keys(ns.Vector)) {
			fmt.Fprintf(stdout, "  %s: %d\n", origin, ns.Vector[origin])
		}
	}
	return nil
}

// hubClient is the HTTP client of inspect -hub, trusting caFile if given.
func hubClient(caFile string) (*http.Client, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	if caFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("inspect -hub: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("inspect -hub: %s holds no PEM certificate", caFile)
	}
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return c, nil
}

// hubGet GETs url with token, and returns the body of a 200.
func hubGet(ctx context.Context, client *http.Client, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("inspect -hub: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("inspect -hub: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("inspect -hub: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("inspect -hub: GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}
