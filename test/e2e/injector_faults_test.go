package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
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

// capturedInjector starts a cert-dir injector whose log goes to a buffer
// (for the leak scan), with a webhook configuration for every labelled
// namespace.
func capturedInjector(t *testing.T, ctx context.Context, vaultAddr, mwcName string) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	log := funcr.New(func(prefix, args string) { fmt.Fprintln(out, prefix, args) }, funcr.Options{Verbosity: 1})
	cfg := injectorConfig()
	cfg.VaultAddr = vaultAddr
	startInjectorLogging(t, ctx, cfg, mwcName, nil, log)
	return out
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

// TestInjectedPodUnderRestrictedPodSecurity: in a namespace whose
// PodSecurity admission enforces "restricted", the API server admits a
// compliant pod after our webhook injected it (PodSecurity runs after the
// mutating webhooks, so it judges the agent too), and refuses a pod that
// is not compliant (proof that the plugin is on). The injected pod then runs
// under the kubelet shim and renders its secret; the leak scan finds the
// secret in no log, Event, annotation, /metrics output or argument list.
func TestInjectedPodUnderRestrictedPodSecurity(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, sa = "psa", "web"
	injLog := capturedInjector(t, ctx, e.vault.Addr(), "blinkchamber-e2e-psa")
	const password = "psa-password-9f3c2b7e41"
	e.app(t, ctx, ns, sa, map[string]map[string]any{"db": {"password": password}})
	nsObj := &corev1.Namespace{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Name: ns}, nsObj); err != nil {
		t.Fatal(err)
	}
	nsObj.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
	nsObj.Labels["pod-security.kubernetes.io/enforce-version"] = "latest"
	if err := kube.Client.Update(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	ann := map[string]string{mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/psa/web/db"}

	t.Run("a non-compliant pod is refused by PodSecurity", func(t *testing.T) {
		pod := appPod("loose", ann)
		pod.Namespace, pod.Spec.ServiceAccountName = ns, sa
		err := kube.Client.Create(ctx, pod)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "restricted:latest"`) {
			t.Fatalf("want a PodSecurity refusal (is the PodSecurity admission plugin on?), got %v", err)
		}
	})

	pod := restrictedPod(ns, "tight", sa, ann)
	if err := kube.Client.Create(ctx, pod); err != nil {
		t.Fatalf("the API server refused an injected, compliant pod: %v", err)
	}
	if pod.Annotations[mutate.AnnotationStatus] != mutate.StatusInjected {
		t.Fatal("the compliant pod was not injected")
	}

	out := &syncBuffer{}
	scan := harness.NewLeakScan(kube)
	scan.Processes(filepath.Base(e.agentBin))
	run := kube.RunPodForTest(t, ns, "tight", e.shim(out))
	waitFile(t, filepath.Join(run.VolumeDir(mutate.SecretsVolume), "db"), "password: "+password+"\n", time.Minute)
	scan.Secret("KV password", password)
	scan.Secret("Vault root token", e.vault.RootToken)
	scan.Output("injector log", injLog)
	scan.Output("agent output", out)
	scan.Namespaces(ns)
	scan.Gatherer("injector /metrics", crmetrics.Registry)
	scan.MetricsURL("agent /metrics", "http://"+run.HealthAddr()+"/metrics")
	if err := scan.Check(ctx); err != nil {
		t.Error(err)
	}
	if scan.Sampled() == 0 {
		t.Error("the leak scan never saw the agent process: its argument list was not checked")
	}
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
