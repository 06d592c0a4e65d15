package hub

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
)

// serverCert is the hub's TLS certificate, reloaded by [Hub.Reload] (a
// renewed certificate takes effect without a restart).
type serverCert struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

func (c *serverCert) load() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("hub: TLS certificate: %w", err)
	}
	c.cur.Store(&cert)
	return nil
}

// tlsConfig returns the TLS configuration of cfg's files, serving the
// certificate cert holds, or nil without a certificate. With a client CA
// file, clients must present a certificate it signed.
func tlsConfig(cfg *Config) (*tls.Config, *serverCert, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil, nil
	}
	cert := &serverCert{certFile: cfg.TLSCertFile, keyFile: cfg.TLSKeyFile}
	if err := cert.load(); err != nil {
		return nil, nil, err
	}
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cert.cur.Load(), nil
		},
	}
	if cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("hub: TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("hub: TLS client CA %s: no PEM certificate in it", cfg.TLSClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, cert, nil
}
