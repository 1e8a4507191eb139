package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/test/harness"
)

// TestInjectorTLSPolicy dials the real webhook listener with real TLS
// clients: TLS 1.0 and 1.1 and suites without forward secrecy or AEAD are
// refused; TLS 1.2 with an ECDHE-AEAD suite and TLS 1.3 are accepted.
func TestInjectorTLSPolicy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := injectorConfig()
	cfg.CertDir = t.TempDir()
	caPEM, err := harness.ServingCertDir(cfg.CertDir)
	if err != nil {
		t.Fatal(err)
	}
	inj, err := kube.StartInjector(cfg, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inj.Stop() })
	if err := inj.WaitServing(ctx, caPEM); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cases := []struct {
		name     string
		min, max uint16
		suites   []uint16
		accepted bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, nil, false},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS11, nil, false},
		{"TLS 1.2 ECDHE CBC SHA-1 (a Go default)", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}, false},
		{"TLS 1.2 ECDHE CBC SHA-256", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}, false},
		{"TLS 1.2 RC4", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA}, false},
		{"TLS 1.2 RSA key exchange", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, false},
		{"TLS 1.2 ECDHE AES-GCM", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
		{"TLS 1.2 ECDHE ChaCha20", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, true},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1",
				MinVersion: tc.min, MaxVersion: tc.max, CipherSuites: tc.suites}}
			conn, err := d.DialContext(ctx, "tcp", inj.Addr)
			if conn != nil {
				st := conn.(*tls.Conn).ConnectionState()
				t.Logf("negotiated %s %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
				_ = conn.Close()
			}
			if tc.accepted && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.accepted && err == nil {
				t.Fatal("the handshake succeeded")
			}
			if !tc.accepted {
				var alert tls.AlertError
				if !errors.As(err, &alert) && !strings.Contains(err.Error(), "tls:") {
					t.Errorf("refused, but not by TLS: %v", err)
				}
			}
		})
	}
}

// restrictedPod is an app pod that meets the restricted Pod Security
// Standard by itself.
func restrictedPod(ns, name, sa string, ann map[string]string) *corev1.Pod {
	pod := appPod(name, ann)
	pod.Namespace, pod.Spec.ServiceAccountName = ns, sa
	pod.Spec.Containers = pod.Spec.Containers[:1]
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	return pod
}

// TestLeakScanFindsPlantedSecrets proves the scanner can fail: a value
// planted in each kind of place is reported, by label and place, raw or
// base64-encoded, and a clean scan passes.
func TestLeakScanFindsPlantedSecrets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ns = "leakscan"
	if err := kube.Namespace(ctx, ns, false); err != nil {
		t.Fatal(err)
	}
	clean := harness.NewLeakScan(kube)
	clean.Secret("nothing", "a-value-planted-nowhere")
	clean.Output("log", &syncBuffer{})
	clean.Namespaces(ns)
	if err := clean.Check(ctx); err != nil {
		t.Fatalf("a clean scan failed: %v", err)
	}

	// No two values share 8 bytes: the scan also finds substrings of 8
	// bytes and more, which would report one plant under another's label.
	plant := map[string]string{"log": "qLogVx7w3Kp", "event": "zEvtMn4r8Tb", "annotation": "jAnnoYc2h6Wd",
		"metric": "fMtrUs9k5Qe", "argv": "0.0000004242424242", "b64": "hB64Gz1p7Ns"}
	scan := harness.NewLeakScan(kube)
	for label, v := range plant {
		scan.Secret(label, v)
	}
	scan.Processes("sleep")
	// The planted argument is a duration sleep accepts, so it runs long
	// enough (0.5 s) for the sampler to see it.
	if err := exec.CommandContext(ctx, "sleep", "0.5", plant["argv"]).Run(); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	fmt.Fprintf(log, "line one\nleaked %s and %s\n", plant["log"], base64.StdEncoding.EncodeToString([]byte(plant["b64"])))
	scan.Output("log", log)
	event := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "planted", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "x"}, Reason: "Test", Message: "value " + plant["event"]}
	if err := kube.Client.Create(ctx, event); err != nil {
		t.Fatal(err)
	}
	pod := appPod("planted", map[string]string{"note": plant["annotation"]})
	pod.Namespace = ns
	pod.Spec.ServiceAccountName = "default"
	if err := kube.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	scan.Namespaces(ns)
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "planted", Help: "h"}, []string{"v"})
	reg.MustRegister(g)
	g.WithLabelValues(plant["metric"]).Set(1)
	scan.Gatherer("metrics", reg)

	err := scan.Check(ctx)
	if !errors.Is(err, harness.ErrLeak) {
		t.Fatalf("Check = %v, want ErrLeak", err)
	}
	for label := range plant {
		if !strings.Contains(err.Error(), ": "+label+" (") {
			t.Errorf("the %s plant was not reported: %v", label, err)
		}
	}
	for _, v := range plant {
		if strings.Contains(err.Error(), v) {
			t.Errorf("the report quotes a secret value")
		}
	}
	t.Logf("the scan reports:\n%v", err)
}
