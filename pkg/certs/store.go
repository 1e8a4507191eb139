package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
)

// ErrNotReady is wrapped when no serving certificate has been loaded yet.
var ErrNotReady = errors.New("serving certificate not loaded yet")

// Store holds the serving certificate the TLS server presents. The zero
// value is empty and ready to use; it is safe for concurrent use, since
// handshakes read it while the Loader replaces it.
type Store struct {
	cert atomic.Pointer[tls.Certificate]
}

// GetCertificate fits tls.Config.GetCertificate. Until Set succeeds it fails
// every handshake with an error wrapping ErrNotReady rather than serving
// nothing.
func (s *Store) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.cert.Load()
	if c == nil {
		return nil, fmt.Errorf("webhook TLS: %w", ErrNotReady)
	}
	return c, nil
}

// Ready fits healthz.Checker: a replica is ready once it can complete a
// handshake.
func (s *Store) Ready(*http.Request) error {
	if s.cert.Load() == nil {
		return fmt.Errorf("webhook TLS: %w", ErrNotReady)
	}
	return nil
}

// Set parses a PEM certificate chain and key and makes them the served pair.
// On error the previous pair stays in place.
func (s *Store) Set(certPEM, keyPEM []byte) error {
	_, err := s.set(certPEM, keyPEM)
	return err
}

func (s *Store) set(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading serving key pair: %w", err)
	}
	// Leaf is filled by default since Go 1.23, but GODEBUG x509keypairleaf=0
	// turns that off; callers read SANs and expiry from it.
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parsing serving certificate: %w", err)
		}
	}
	s.cert.Store(&pair)
	return &pair, nil
}
