package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"testing"
	"time"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func mustCA(t *testing.T, now time.Time, validity time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := NewCA(now, validity)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return certPEM, keyPEM
}

func mustServing(t *testing.T, caCert, caKey []byte, hosts []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := NewServing(caCert, caKey, hosts, now, validity)
	if err != nil {
		t.Fatalf("NewServing: %v", err)
	}
	return certPEM, keyPEM
}

func mustParse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := parseCertificate(certPEM)
	if err != nil {
		t.Fatalf("parsing certificate: %v", err)
	}
	return c
}

func poolOf(t *testing.T, pemCerts ...[]byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, p := range pemCerts {
		if !pool.AppendCertsFromPEM(p) {
			t.Fatalf("no certificate in PEM %q", p)
		}
	}
	return pool
}

func TestNewCA(t *testing.T) {
	certPEM, keyPEM := mustCA(t, testNow, 24*time.Hour)
	ca := mustParse(t, certPEM)
	if !ca.IsCA || !ca.BasicConstraintsValid {
		t.Errorf("IsCA=%v BasicConstraintsValid=%v, want both true", ca.IsCA, ca.BasicConstraintsValid)
	}
	if ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("KeyUsage %v lacks CertSign", ca.KeyUsage)
	}
	if !ca.NotAfter.Equal(testNow.Add(24 * time.Hour)) {
		t.Errorf("NotAfter = %v, want %v", ca.NotAfter, testNow.Add(24*time.Hour))
	}
	if ca.NotBefore.After(testNow) {
		t.Errorf("NotBefore %v is after issue time %v", ca.NotBefore, testNow)
	}
	pub, ok := ca.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", ca.PublicKey)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if _, _, err := parseCA(certPEM, keyPEM); err != nil {
		t.Errorf("CA key does not match certificate: %v", err)
	}
	if _, _, err := NewCA(testNow, 0); err == nil {
		t.Error("NewCA with zero validity succeeded")
	}
}

func TestNewServingVerifiesForEveryHost(t *testing.T) {
	hosts := []string{"injector.blinkchamber.svc", "injector.blinkchamber.svc.cluster.local", "127.0.0.1", "::1"}
	caCert, caKey := mustCA(t, testNow, 365*24*time.Hour)
	certPEM, keyPEM := mustServing(t, caCert, caKey, hosts, testNow, 30*24*time.Hour)
	leaf := mustParse(t, certPEM)

	if got, want := leaf.DNSNames, hosts[:2]; !slices.Equal(got, want) {
		t.Errorf("DNSNames = %v, want %v", got, want)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IPAddresses = %v, want [127.0.0.1 ::1]", leaf.IPAddresses)
	}
	if leaf.Subject.CommonName != hosts[0] {
		t.Errorf("CommonName = %q, want %q", leaf.Subject.CommonName, hosts[0])
	}
	if leaf.IsCA {
		t.Error("serving certificate is a CA")
	}
	if _, err := (&Store{}).set(certPEM, keyPEM); err != nil {
		t.Errorf("serving key does not match certificate: %v", err)
	}

	roots := poolOf(t, caCert)
	for _, h := range append(hosts, "::0001") {
		t.Run(h, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{
				DNSName:     h,
				Roots:       roots,
				CurrentTime: testNow,
				KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				t.Errorf("Verify(%s): %v", h, err)
			}
		})
	}
	t.Run("other host is rejected", func(t *testing.T) {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: "evil.example.com", Roots: roots, CurrentTime: testNow})
		var hostErr x509.HostnameError
		if !errors.As(err, &hostErr) {
			t.Errorf("Verify(evil.example.com) = %v, want a HostnameError", err)
		}
	})
	t.Run("other CA is rejected", func(t *testing.T) {
		otherCA, _ := mustCA(t, testNow, time.Hour)
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: hosts[0], Roots: poolOf(t, otherCA), CurrentTime: testNow})
		var authErr x509.UnknownAuthorityError
		if !errors.As(err, &authErr) {
			t.Errorf("Verify with another CA = %v, want UnknownAuthorityError", err)
		}
	})
}

func TestNewServingValidity(t *testing.T) {
	caCert, caKey := mustCA(t, testNow, 10*24*time.Hour)
	tests := []struct {
		name     string
		validity time.Duration
		want     time.Time
	}{
		{"within the CA", 24 * time.Hour, testNow.Add(24 * time.Hour)},
		{"capped at the CA", 30 * 24 * time.Hour, testNow.Add(10 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, _ := mustServing(t, caCert, caKey, []string{"a.example"}, testNow, tt.validity)
			if got := mustParse(t, certPEM).NotAfter; !got.Equal(tt.want) {
				t.Errorf("NotAfter = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewServingRejectsBadInput(t *testing.T) {
	caCert, caKey := mustCA(t, testNow, time.Hour)
	otherCert, otherKey := mustCA(t, testNow, time.Hour)
	leafCert, leafKey := mustServing(t, caCert, caKey, []string{"a.example"}, testNow, time.Hour)
	hosts := []string{"a.example"}
	tests := []struct {
		name          string
		caCert, caKey []byte
		hosts         []string
		validity      time.Duration
	}{
		{"no hosts", caCert, caKey, nil, time.Hour},
		{"zero validity", caCert, caKey, hosts, 0},
		{"garbage CA", []byte("garbage"), caKey, hosts, time.Hour},
		{"garbage key", caCert, []byte("garbage"), hosts, time.Hour},
		{"key of another CA", caCert, otherKey, hosts, time.Hour},
		{"not a CA", leafCert, leafKey, hosts, time.Hour},
		{"cert of another CA", otherCert, caKey, hosts, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := NewServing(tt.caCert, tt.caKey, tt.hosts, testNow, tt.validity); err == nil {
				t.Error("NewServing succeeded")
			}
		})
	}
}

func TestNewServingAcceptsSEC1Key(t *testing.T) {
	caCert, caKey := mustCA(t, testNow, time.Hour)
	block, _ := pem.Decode(caKey)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if _, _, err := NewServing(caCert, sec1, []string{"a.example"}, testNow, time.Hour); err != nil {
		t.Errorf("NewServing with an EC PRIVATE KEY: %v", err)
	}
}

func TestNeedsRenewal(t *testing.T) {
	hosts := []string{"injector.ns.svc", "127.0.0.1"}
	caCert, caKey := mustCA(t, testNow, 365*24*time.Hour)
	certPEM, _ := mustServing(t, caCert, caKey, hosts, testNow, 30*24*time.Hour)
	notAfter := testNow.Add(30 * 24 * time.Hour)
	renewBefore := 10 * 24 * time.Hour

	tests := []struct {
		name  string
		cert  []byte
		hosts []string
		now   time.Time
		want  bool
	}{
		{"fresh", certPEM, hosts, testNow, false},
		{"just outside the renewal window", certPEM, hosts, notAfter.Add(-renewBefore - time.Second), false},
		{"inside the renewal window", certPEM, hosts, notAfter.Add(-renewBefore + time.Second), true},
		{"expired", certPEM, hosts, notAfter.Add(time.Second), true},
		{"not valid yet", certPEM, hosts, testNow.Add(-time.Hour), true},
		{"hosts in another order", certPEM, []string{"127.0.0.1", "injector.ns.svc"}, testNow, false},
		{"same IP spelled differently", certPEM, []string{"injector.ns.svc", "::ffff:127.0.0.1"}, testNow, false},
		{"host added", certPEM, append(slices.Clone(hosts), "injector.ns.svc.cluster.local"), testNow, true},
		{"host removed", certPEM, hosts[:1], testNow, true},
		{"host replaced", certPEM, []string{"injector.other.svc", "127.0.0.1"}, testNow, true},
		{"IP changed", certPEM, []string{"injector.ns.svc", "127.0.0.2"}, testNow, true},
		{"garbage", []byte("not a certificate"), hosts, testNow, true},
		{"PEM of a key, not a certificate", caKey, hosts, testNow, true},
		{"empty", nil, hosts, testNow, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NeedsRenewal(tt.cert, tt.hosts, tt.now, renewBefore); got != tt.want {
				t.Errorf("NeedsRenewal = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConcatPEM(t *testing.T) {
	a, _ := mustCA(t, testNow, time.Hour)
	b, _ := mustCA(t, testNow, time.Hour)
	bundle := concatPEM(a, nil, b)
	var n int
	for rest := bundle; ; n++ {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
	}
	if n != 2 {
		t.Errorf("bundle holds %d PEM blocks, want 2", n)
	}
	if string(concatPEM(a)) != string(a) {
		t.Error("a single document changed when concatenated")
	}
}
