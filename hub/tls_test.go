package hub

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	httptransport "github.com/convergedb/converge/transport/http"
)

// testCA is a certificate authority made at test time.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // its certificate, PEM
	pool *x509.CertPool
}

var serial atomic.Int64 // certificate serial numbers

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, file: writePEM(t, name+".pem", "CERTIFICATE", der), pool: pool}
}

// issue signs a certificate for loopback (server) or a client, and
// returns its certificate and key files and the tls.Certificate.
func (ca *testCA) issue(t *testing.T, name string, client bool) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = writePEM(t, name+".pem", "CERTIFICATE", der), writePEM(t, name+".key", "EC PRIVATE KEY", keyDER)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func httpsClient(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: failBound, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
}

// A hub with a certificate serves HTTPS: the handshake works, clients
// sync over it, and plain HTTP is refused.
func TestHubTLS(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	certFile, keyFile, _ := ca.issue(t, "hub", false)
	h := startHub(t, Config{Dir: t.TempDir(), TokenFile: writeTokens(t, "tok team-1"), TLSCertFile: certFile, TLSKeyFile: keyFile})
	client := httpsClient(ca.pool)
	checkHealthy(t, client, h.url, "store", "http")

	r := httpReplica(t, h.url, "tok", func(o *httptransport.ClientOptions) { o.HTTPClient = client })
	r.put(t, "t1", "over TLS")
	r.waitStatus(t, "nothing pending", func(st converge.Status) bool { return st.Pending == 0 })
	if n, err := collection(t, h.DB()).Count(t.Context(), testNS, converge.Query{}); err != nil || n != 1 {
		t.Errorf("the hub holds %d tasks (%v), want the one synced over TLS", n, err)
	}

	plain := "http" + h.url[len("https"):]
	if resp, err := http.Get(plain + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("a TLS hub answered plain HTTP 200")
		}
	}
	if _, err := httpsClient(x509.NewCertPool()).Get(h.url + "/healthz"); err == nil {
		t.Error("a client that does not trust the hub's CA completed the handshake")
	}
}

// With a client CA, the hub requires client certificates (mTLS): a
// client without one, or with one of another CA, fails the handshake;
// one with a certificate of the CA is served.
func TestHubMutualTLS(t *testing.T) {
	t.Parallel()
	ca, rogue := newCA(t, "ca"), newCA(t, "rogue")
	certFile, keyFile, _ := ca.issue(t, "hub", false)
	_, _, clientCert := ca.issue(t, "client", true)
	_, _, rogueCert := rogue.issue(t, "rogue-client", true)
	h := startHub(t, Config{Dir: t.TempDir(), TokenFile: writeTokens(t, "tok team-1"),
		TLSCertFile: certFile, TLSKeyFile: keyFile, TLSClientCAFile: ca.file})

	if resp, err := httpsClient(ca.pool).Get(h.url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("a client without a certificate was answered %d, want a failed handshake", resp.StatusCode)
	}
	if resp, err := httpsClient(ca.pool, rogueCert).Get(h.url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("a client with another CA's certificate was answered %d, want a failed handshake", resp.StatusCode)
	}
	client := httpsClient(ca.pool, clientCert)
	checkHealthy(t, client, h.url, "store", "http")
	r := httpReplica(t, h.url, "tok", func(o *httptransport.ClientOptions) { o.HTTPClient = client })
	r.put(t, "t1", "over mTLS")
	r.waitStatus(t, "nothing pending", func(st converge.Status) bool { return st.Pending == 0 })
}

// The hub connects to a NATS server over TLS that verifies client
// certificates: the CA and client certificate options reach the
// connection.
func TestHubNATSOverTLS(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "nats-ca")
	srvCert, srvKey, _ := ca.issue(t, "nats", false)
	cliCert, cliKey, _ := ca.issue(t, "hub-client", true)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srvCert, KeyFile: srvKey, CaFile: ca.file, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	opts := embednats.Options()
	opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = tc, true, true, 5
	s, err := embednats.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	url := s.ClientURL()

	h := startHub(t, Config{Dir: t.TempDir(),
		NATS: NATSConfig{URL: url, Namespaces: []string{testNS}, TLSCAFile: ca.file, TLSCertFile: cliCert, TLSKeyFile: cliKey}})
	deadline := time.Now().Add(failBound)
	for !h.tr.Conn().IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("the hub never connected to the NATS server over TLS")
		}
		<-time.After(5 * time.Millisecond) // polling a condition, not synchronizing by time
	}
	if !h.tr.Conn().TLSRequired() {
		t.Error("the NATS connection does not use TLS")
	}
	if n := s.NumClients(); n != 1 {
		t.Errorf("the NATS server has %d clients, want the hub's", n)
	}
}

// Reload (SIGHUP) serves a renewed certificate to new connections,
// without a restart; a certificate that does not load leaves the served
// one in place.
func TestHubReloadsCertificate(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	certFile, keyFile, _ := ca.issue(t, "hub-old", false)
	h := startHub(t, Config{Dir: t.TempDir(), TokenFile: writeTokens(t, "tok team-1"), TLSCertFile: certFile, TLSKeyFile: keyFile})
	served := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", h.url[len("https://"):], &tls.Config{RootCAs: ca.pool})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "hub-old" {
		t.Fatalf("served %q, want hub-old", cn)
	}
	newCert, newKey, _ := ca.issue(t, "hub-new", false)
	for _, f := range [][2]string{{newCert, certFile}, {newKey, keyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cn := served(); cn != "hub-new" {
		t.Errorf("after Reload served %q, want hub-new", cn)
	}
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(t.Context()); err == nil {
		t.Error("Reload with a broken key = nil, want an error")
	}
	if cn := served(); cn != "hub-new" {
		t.Errorf("after a failed Reload served %q, want hub-new still", cn)
	}
}
