package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// clockSkew backdates NotBefore so a peer whose clock runs a little behind
// the issuer's still accepts a certificate issued a moment ago.
const clockSkew = 5 * time.Minute

// maxCommonNameLen is the RFC 5280 upper bound; some verifiers reject a
// longer CommonName outright, and clients match on SANs anyway.
const maxCommonNameLen = 64

const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
)

// errNoCertificate is returned when PEM input holds no certificate.
var errNoCertificate = errors.New("no PEM certificate found")

// NewCA returns a self-signed ECDSA P-256 CA valid from now for validity.
func NewCA(now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		return nil, nil, fmt.Errorf("CA validity must be positive, got %v", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The timestamp tells the old CA from the new one in a caBundle
		// that carries both during a rotation.
		Subject:               pkix.Name{CommonName: fmt.Sprintf("blinkchamber-webhook-ca@%d", now.Unix())},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// NewServing returns an ECDSA P-256 serving certificate for hosts, signed by
// the given CA. Its NotAfter is capped at the CA's, because a certificate
// that outlives its issuer cannot be verified anyway.
func NewServing(caCertPEM, caKeyPEM []byte, hosts []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		return nil, nil, fmt.Errorf("serving certificate validity must be positive, got %v", validity)
	}
	if len(hosts) == 0 {
		return nil, nil, errors.New("serving certificate needs at least one host")
	}
	ca, caKey, err := parseCA(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating serving key: %w", err)
	}
	tmpl, err := servingTemplate(hosts, now, validity, ca.NotAfter)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("signing serving certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

func servingTemplate(hosts []string, now time.Time, validity time.Duration, caNotAfter time.Time) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	dnsNames, ips := splitHosts(hosts)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              minTime(now.Add(validity), caNotAfter),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	if len(hosts[0]) <= maxCommonNameLen {
		tmpl.Subject.CommonName = hosts[0]
	}
	return tmpl, nil
}

// parseCA parses a CA certificate and its private key and checks that they
// belong together and that the certificate may sign others.
func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	cert, err := parseCertificate(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, nil, errors.New("CA certificate is not a CA")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, nil, errors.New("CA key does not match the CA certificate")
	}
	return cert, key, nil
}

// parseCertificate returns the first certificate in PEM input.
func parseCertificate(certPEM []byte) (*x509.Certificate, error) {
	for rest := certPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errNoCertificate
		}
		if block.Type == pemCertificate {
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing certificate: %w", err)
			}
			return cert, nil
		}
	}
}

// NeedsRenewal reports whether certPEM must be replaced: it does not parse,
// it is not valid yet, less than renewBefore of it remains at now, or its
// SANs are not exactly hosts (in any order).
func NeedsRenewal(certPEM []byte, hosts []string, now time.Time, renewBefore time.Duration) bool {
	cert, err := parseCertificate(certPEM)
	if err != nil {
		return true
	}
	if expiresWithin(cert, now, renewBefore) {
		return true
	}
	return !sameHosts(cert, hosts)
}

// expiresWithin also counts a certificate that is not valid yet, which only
// happens when the clock moved back; peers would reject it either way.
func expiresWithin(cert *x509.Certificate, now time.Time, d time.Duration) bool {
	return now.Before(cert.NotBefore) || now.Add(d).After(cert.NotAfter)
}

func sameHosts(cert *x509.Certificate, hosts []string) bool {
	want := hostSet(hosts)
	got := make(map[string]bool, len(cert.DNSNames)+len(cert.IPAddresses))
	for _, n := range cert.DNSNames {
		got[n] = true
	}
	for _, ip := range cert.IPAddresses {
		got[ip.String()] = true
	}
	if len(got) != len(want) {
		return false
	}
	for h := range want {
		if !got[h] {
			return false
		}
	}
	return true
}

// hostSet normalises IPs through net.IP.String so "::1" and
// "0:0:0:0:0:0:0:1" count as the same SAN.
func hostSet(hosts []string) map[string]bool {
	set := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		}
		set[h] = true
	}
	return set
}

func splitHosts(hosts []string) (dnsNames []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM private key found")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("private key of type %T cannot sign", k)
		}
		return s, nil
	}
	// Keys written by other tools often use the SEC 1 form.
	k, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	return k, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// newSerial draws 128 random bits; RFC 5280 wants serials unique per CA and
// random ones need no state.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return n, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// concatPEM joins PEM documents, each ending in exactly one newline.
func concatPEM(docs ...[]byte) []byte {
	var buf bytes.Buffer
	for _, d := range docs {
		d = bytes.TrimRight(d, "\n")
		if len(d) == 0 {
			continue
		}
		buf.Write(d)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}
