package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// The manager takes Runnables by these method sets (manager.Runnable and
// manager.LeaderElectionRunnable); importing the manager package itself would
// pull modules this package does not otherwise need.
type leaderElectionRunnable interface {
	Start(context.Context) error
	NeedLeaderElection() bool
}

var (
	_ healthz.Checker        = (&Store{}).Ready
	_ leaderElectionRunnable = (*Issuer)(nil)
	_ leaderElectionRunnable = (*Loader)(nil)
)

func TestStoreBeforeSet(t *testing.T) {
	var s Store
	if c, err := s.GetCertificate(&tls.ClientHelloInfo{}); !errors.Is(err, ErrNotReady) || c != nil {
		t.Errorf("GetCertificate = %v, %v; want nil, ErrNotReady", c, err)
	}
	if err := s.Ready(nil); !errors.Is(err, ErrNotReady) {
		t.Errorf("Ready = %v, want ErrNotReady", err)
	}
}

func TestStoreSet(t *testing.T) {
	hosts := []string{"injector.ns.svc", "127.0.0.1"}
	caCert, caKey := mustCA(t, time.Now(), time.Hour)
	first, firstKey := mustServing(t, caCert, caKey, hosts, time.Now(), time.Hour)
	second, secondKey := mustServing(t, caCert, caKey, hosts[:1], time.Now(), time.Hour)

	var s Store
	tests := []struct {
		name      string
		cert, key []byte
		wantErr   bool
		wantLeaf  []byte // the certificate served afterwards; nil means none
	}{
		{"garbage leaves it empty", []byte("garbage"), []byte("garbage"), true, nil},
		{"first pair", first, firstKey, false, first},
		{"mismatched key keeps the old pair", second, firstKey, true, first},
		{"second pair replaces the first", second, secondKey, false, second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Set(tt.cert, tt.key)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Set error = %v, wantErr %v", err, tt.wantErr)
			}
			got, getErr := s.GetCertificate(nil)
			if tt.wantLeaf == nil {
				if !errors.Is(getErr, ErrNotReady) {
					t.Errorf("GetCertificate error = %v, want ErrNotReady", getErr)
				}
				return
			}
			if getErr != nil {
				t.Fatalf("GetCertificate: %v", getErr)
			}
			if err := s.Ready(nil); err != nil {
				t.Errorf("Ready = %v, want nil", err)
			}
			want := mustParse(t, tt.wantLeaf)
			if got.Leaf == nil || !bytes.Equal(got.Leaf.Raw, want.Raw) {
				t.Errorf("served leaf is not the expected certificate")
			}
		})
	}
}

// TestStoreServesHandshakes checks the Store in its real place: a TLS server
// whose clients trust only the CA and name one of the hosts.
func TestStoreServesHandshakes(t *testing.T) {
	hosts := []string{"injector.ns.svc", "127.0.0.1"}
	caCert, caKey := mustCA(t, time.Now(), time.Hour)
	certPEM, keyPEM := mustServing(t, caCert, caKey, hosts, time.Now(), time.Hour)
	var s Store

	if err := handshake(t, &s, caCert, hosts[0]); err == nil {
		t.Fatal("handshake succeeded before any certificate was loaded")
	}
	if err := s.Set(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if err := handshake(t, &s, caCert, h); err != nil {
			t.Errorf("handshake for %s: %v", h, err)
		}
	}
	var hostErr x509.HostnameError
	if err := handshake(t, &s, caCert, "other.ns.svc"); !errors.As(err, &hostErr) {
		t.Errorf("handshake for a host not in the certificate = %v, want a HostnameError", err)
	}
}

// handshake runs a client against a TLS server on loopback and returns the
// client's error. TCP, unlike net.Pipe, buffers, so a client that aborts
// mid-handshake cannot deadlock against a server still writing.
func handshake(t *testing.T, s *Store, caPEM []byte, serverName string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		server := tls.Server(conn, &tls.Config{GetCertificate: s.GetCertificate, MinVersion: tls.VersionTLS12})
		_ = server.HandshakeContext(ctx)
	}()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := tls.Client(conn, &tls.Config{RootCAs: poolOf(t, caPEM), ServerName: serverName, MinVersion: tls.VersionTLS12})
	if err := client.HandshakeContext(ctx); err != nil {
		return err
	}
	names := client.ConnectionState().PeerCertificates[0].DNSNames
	if net.ParseIP(serverName) == nil && !slices.Contains(names, serverName) {
		t.Errorf("peer certificate names %v lack %s", names, serverName)
	}
	return nil
}
