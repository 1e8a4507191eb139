package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/injector"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// kube is the control plane shared by the package's tests: starting one
// takes seconds, and tests keep to their own namespaces.
var kube *harness.Kube

func TestMain(m *testing.M) {
	crlog.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	k, err := harness.StartKube(ctx, os.Stderr)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	kube = k
	code := m.Run()
	stopAgentEnv()
	if err := k.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping control plane:", err)
	}
	os.Exit(code)
}

// Pods carrying this label go to the self-managed injector's webhook; all
// others to the cert-dir injector's.
const routeLabel = "e2e.blinkchamber.io/webhook"

func injectorConfig() *injector.Config {
	cfg := injector.NewConfig()
	cfg.AgentImage = agentImage
	cfg.VaultAddr = "https://vault.vault.svc:8200"
	cfg.MetricsBindAddress = "0"
	cfg.HealthProbeBindAddress = "0"
	cfg.Namespace = "blinkchamber-system"
	return cfg
}

// startCertDirInjector runs the injector with mounted certificates and
// registers its MutatingWebhookConfiguration for every pod that is not
// routed to the self-managed injector.
func startCertDirInjector(t *testing.T, ctx context.Context) *harness.Injector {
	t.Helper()
	return startInjector(t, ctx, injectorConfig().VaultAddr, "blinkchamber-e2e-certdir", &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: routeLabel, Operator: metav1.LabelSelectorOpDoesNotExist}},
	})
}

// startInjector runs the injector in-process with generated certificates in
// --cert-dir, pointed at vaultAddr, and registers a webhook configuration
// named mwcName; both end with the test.
func startInjector(t *testing.T, ctx context.Context, vaultAddr, mwcName string, selector *metav1.LabelSelector) *harness.Injector {
	t.Helper()
	cfg := injectorConfig()
	cfg.VaultAddr = vaultAddr
	return startInjectorWith(t, ctx, cfg, mwcName, selector)
}

// startInjectorWith serves cfg (its TLS from a fresh cert dir) behind a new
// MutatingWebhookConfiguration; both go away when the test ends.
func startInjectorWith(t *testing.T, ctx context.Context, cfg *injector.Config, mwcName string, selector *metav1.LabelSelector) *harness.Injector {
	t.Helper()
	return startInjectorLogging(t, ctx, cfg, mwcName, selector, testr.New(t))
}

// startInjectorLogging is startInjectorWith with the injector's logger
// chosen by the caller (a leak scan reads what it wrote).
func startInjectorLogging(t *testing.T, ctx context.Context, cfg *injector.Config, mwcName string, selector *metav1.LabelSelector, log logr.Logger) *harness.Injector {
	t.Helper()
	cfg.CertDir = t.TempDir()
	caPEM, err := harness.ServingCertDir(cfg.CertDir)
	if err != nil {
		t.Fatal(err)
	}
	inj, err := kube.StartInjector(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := inj.Stop(); err != nil {
			t.Errorf("injector: %v", err)
		}
	})
	if err := inj.WaitServing(ctx, caPEM); err != nil {
		t.Fatal(err)
	}
	inj.CAPEM = caPEM
	createAndCleanup(t, ctx, harness.WebhookConfig(mwcName, inj.URL(), caPEM, selector))
	return inj
}

func createAndCleanup(t *testing.T, ctx context.Context, obj client.Object) {
	t.Helper()
	if err := kube.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Client.Delete(context.Background(), obj) })
}

func appPod(name string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: corev1.PodSpec{
			ServiceAccountName: "app",
			Containers: []corev1.Container{
				{Name: "app", Image: "example/app:1.0"},
				{Name: "worker", Image: "example/worker:1.0"},
			},
		},
	}
}

func TestInjectorEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	inj := startCertDirInjector(t, ctx)
	if err := kube.Namespace(ctx, "shop", true, "app"); err != nil {
		t.Fatal(err)
	}
	if err := kube.Namespace(ctx, "plain", false, "app"); err != nil {
		t.Fatal(err)
	}

	t.Run("annotated pod is injected", func(t *testing.T) {
		pod := appPod("injected", map[string]string{
			mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/shop/app/db",
		})
		pod.Namespace = "shop"
		if err := kube.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		stored := &corev1.Pod{}
		if err := kube.Client.Get(ctx, client.ObjectKeyFromObject(pod), stored); err != nil {
			t.Fatal(err)
		}
		assertInjectedNative(t, stored, "secret/data/shop/app/db")
	})

	t.Run("namespace without the label is untouched", func(t *testing.T) {
		pod := appPod("untouched", map[string]string{
			mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/plain/app/db",
		})
		pod.Namespace = "plain"
		if err := kube.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if _, ok := pod.Annotations[mutate.AnnotationStatus]; ok {
			t.Fatal("pod in an unlabelled namespace was injected")
		}
		if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Containers) != 2 {
			t.Fatalf("pod changed: %d init, %d containers", len(pod.Spec.InitContainers), len(pod.Spec.Containers))
		}
	})

	t.Run("bad annotation is refused with its name", func(t *testing.T) {
		pod := appPod("refused", map[string]string{
			mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/shop/app/db",
			mutate.PrefixPerms + "db": "999", mutate.PrefixTemplate + "x": `{{ plugin "/bin/sh" }}`,
		})
		pod.Namespace = "shop"
		err := kube.Client.Create(ctx, pod)
		if err == nil {
			t.Fatal("a pod with bad annotations was admitted")
		}
		if !apierrors.IsInvalid(err) {
			t.Errorf("want a 422 Invalid status, got %T %v", err, err)
		}
		msg := err.Error()
		for _, want := range []string{`admission webhook "inject.blinkchamber.io" denied the request`,
			"metadata.annotations[blinkchamber.io/perms-db]", "not an octal mode",
			"metadata.annotations[blinkchamber.io/template-x]", `"plugin" runs an arbitrary command`} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q lacks %q", msg, want)
			}
		}
		t.Logf("kubectl would print: %s", msg)
	})

	t.Run("deployment-style pod with generateName", func(t *testing.T) {
		pod := appPod("", map[string]string{
			mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/shop/app/db",
			mutate.AnnotationContainers: "app",
		})
		pod.GenerateName = "shop-7d9f-"
		pod.Namespace = "shop"
		if err := kube.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		for _, c := range pod.Spec.Containers {
			_, mounted := mountOf(c, mutate.SecretsVolume)
			if mounted != (c.Name == "app") {
				t.Errorf("container %s: secrets mounted = %v", c.Name, mounted)
			}
		}
		// ServiceAccount admission ran too: the default API token volume
		// sits beside ours.
		if len(pod.Spec.Volumes) < 3 {
			t.Errorf("volumes = %d, want the API token volume and ours", len(pod.Spec.Volumes))
		}
	})

	t.Run("raw admission requests", func(t *testing.T) { rawRequests(t, inj) })

	t.Run("mounted certificates are reloaded when they change", func(t *testing.T) {
		newCA, err := harness.ServingCertDir(inj.CertDir)
		if err != nil {
			t.Fatal(err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := inj.WaitServing(waitCtx, newCA); err != nil {
			t.Fatalf("the injector kept serving the old certificate: %v", err)
		}
	})

	t.Run("metrics count outcomes", func(t *testing.T) {
		for _, outcome := range []string{injector.OutcomeInjected, injector.OutcomeDenied} {
			if n := admissions(t, "shop", outcome); n < 1 {
				t.Errorf("admissions{namespace=shop,outcome=%s} = %v, want >= 1", outcome, n)
			}
		}
	})
}

func assertInjectedNative(t *testing.T, pod *corev1.Pod, secretPath string) {
	t.Helper()
	if pod.Annotations[mutate.AnnotationStatus] != mutate.StatusInjected {
		t.Fatalf("status annotation = %q", pod.Annotations[mutate.AnnotationStatus])
	}
	if len(pod.Spec.InitContainers) != 1 {
		t.Fatalf("init containers = %d, want the native agent", len(pod.Spec.InitContainers))
	}
	a := pod.Spec.InitContainers[0]
	if a.Name != mutate.AgentContainer || a.RestartPolicy == nil || *a.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("agent %s is not a native sidecar (restartPolicy %v)", a.Name, a.RestartPolicy)
	}
	if a.StartupProbe == nil || a.StartupProbe.Exec == nil {
		t.Errorf("agent has no exec startup probe")
	}
	sc := a.SecurityContext
	if sc == nil || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("agent securityContext is not locked down: %+v", sc)
	}
	var cfgJSON string
	for _, e := range a.Env {
		if e.Name == agent.ConfigEnv {
			cfgJSON = e.Value
		}
	}
	cfg, err := agent.Decode([]byte(cfgJSON))
	if err != nil {
		t.Fatalf("agent config: %v", err)
	}
	if cfg.Mode != agent.ModeNative || cfg.Vault.Role != "app" || cfg.Secrets[0].Path != secretPath {
		t.Errorf("agent config = %+v", cfg)
	}
	for _, c := range pod.Spec.Containers {
		m, ok := mountOf(c, mutate.SecretsVolume)
		if !ok || !m.ReadOnly || m.MountPath != mutate.SecretsPath {
			t.Errorf("container %s: secrets mount %+v", c.Name, m)
		}
	}
	var secrets, token *corev1.Volume
	for i, v := range pod.Spec.Volumes {
		switch v.Name {
		case mutate.SecretsVolume:
			secrets = &pod.Spec.Volumes[i]
		case mutate.TokenVolume:
			token = &pod.Spec.Volumes[i]
		}
	}
	if secrets == nil || secrets.EmptyDir == nil || secrets.EmptyDir.Medium != corev1.StorageMediumMemory || secrets.EmptyDir.SizeLimit == nil {
		t.Errorf("secrets volume = %+v", secrets)
	}
	if token == nil || token.Projected == nil {
		t.Fatalf("token volume = %+v", token)
	}
	sat := token.Projected.Sources[0].ServiceAccountToken
	if sat.Audience != "vault" || *sat.ExpirationSeconds != 3600 {
		t.Errorf("token projection = %+v", sat)
	}
}

func mountOf(c corev1.Container, volume string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

// rawRequests sends what no API server would: malformed JSON, a wrong kind,
// an oversized body, DELETE and CONNECT, an old (v1beta1) and an unknown
// AdmissionReview version, an unknown operation, a review without a request.
// Each gets a clear answer, no panic.
func rawRequests(t *testing.T, inj *harness.Injector) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(inj.CAPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	podRaw, _ := json.Marshal(appPod("raw", map[string]string{mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/a/b"}))
	reviewVersion := func(apiVersion string, op admissionv1.Operation, kind metav1.GroupVersionKind, raw []byte) []byte {
		b, _ := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: types.UID("raw-1"), Kind: kind, Operation: op, Namespace: "shop",
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Object: runtime.RawExtension{Raw: raw}},
		})
		return b
	}
	review := func(op admissionv1.Operation, kind metav1.GroupVersionKind, raw []byte) []byte {
		return reviewVersion("admission.k8s.io/v1", op, kind, raw)
	}
	podKind := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	cases := []struct {
		name       string
		body       []byte
		wantStatus int  // HTTP status
		allowed    bool // when the status is 200
		code       int32
		uid        types.UID // echoed back; empty when the request could not be read
	}{
		// The admission protocol reports errors inside a 200 response; the
		// API server reads status.code and shows status.message.
		{"malformed JSON", []byte(`{"apiVersion":`), 200, false, http.StatusBadRequest, ""},
		{"oversized body", bytes.Repeat([]byte("a"), 8<<20), 200, false, http.StatusRequestEntityTooLarge, ""},
		{"wrong kind", review(admissionv1.Create, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, podRaw), 200, false, 400, "raw-1"},
		{"pod object not JSON", review(admissionv1.Create, podKind, []byte(`"nope"`)), 200, false, 400, "raw-1"},
		{"DELETE", review(admissionv1.Delete, podKind, nil), 200, true, 0, "raw-1"},
		{"CONNECT", review(admissionv1.Connect, podKind, nil), 200, true, 0, "raw-1"},
		{"valid CREATE", review(admissionv1.Create, podKind, podRaw), 200, true, 0, "raw-1"},
		{"v1beta1 CREATE", reviewVersion("admission.k8s.io/v1beta1", admissionv1.Create, podKind, podRaw), 200, true, 0, "raw-1"},
		{"unknown apiVersion", reviewVersion("admission.k8s.io/v2", admissionv1.Create, podKind, podRaw), 200, false, 400, ""},
		{"unknown operation", review("PATCH", podKind, podRaw), 200, false, 400, "raw-1"},
		{"no request", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), 200, false, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := hc.Post(inj.URL(), "application/json", bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("HTTP %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantStatus != 200 {
				return
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
			r := out.Response
			if r.Allowed != tc.allowed || r.UID != tc.uid {
				t.Fatalf("response uid=%q allowed=%v, want uid=%q allowed=%v: %s", r.UID, r.Allowed, tc.uid, tc.allowed, body)
			}
			if tc.code != 0 && (r.Result == nil || r.Result.Code != tc.code || r.Result.Message == "") {
				t.Errorf("result = %+v, want code %d with a message", r.Result, tc.code)
			}
			if strings.HasSuffix(tc.name, "CREATE") && len(r.Patch) == 0 {
				t.Errorf("valid pod got no patch")
			}
		})
	}
}

// admissions reads the injector's counter from the metrics registry.
func admissions(t *testing.T, namespace, outcome string) float64 {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "blinkchamber_injector_admissions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == namespace && labels["outcome"] == outcome {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestSelfManagedCertificates runs the injector without --cert-dir: it must
// issue its CA into a Secret, write the caBundle into its webhook
// configuration, and the API server must then trust it.
func TestSelfManagedCertificates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kube.Namespace(ctx, "self", true, "app"); err != nil {
		t.Fatal(err)
	}
	if err := ensureNamespace(ctx, "blinkchamber-system"); err != nil {
		t.Fatal(err)
	}
	const mwcName = "blinkchamber-e2e-self"
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://127.0.0.1:%d%s", port, injector.Path)
	// Registered before the injector starts, with no caBundle: the injector
	// must fill it in.
	mwc := harness.WebhookConfig(mwcName, url, nil, &metav1.LabelSelector{MatchLabels: map[string]string{routeLabel: "self"}})
	createAndCleanup(t, ctx, mwc)

	cfg := injectorConfig()
	cfg.WebhookConfigName = mwcName
	cfg.CertSecretName = "blinkchamber-e2e-self-tls"
	cfg.LeaderElect = true
	_ = cfg.CertHosts.Set("127.0.0.1,localhost")
	inj, err := kube.StartInjectorOnPort(cfg, port, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := inj.Stop(); err != nil {
			t.Errorf("injector: %v", err)
		}
	})

	var caBundle []byte
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		got := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := kube.Client.Get(ctx, client.ObjectKey{Name: mwcName}, got); err != nil {
			return false, err
		}
		caBundle = got.Webhooks[0].ClientConfig.CABundle
		return len(caBundle) > 0, nil
	})
	if err != nil {
		t.Fatalf("caBundle never written: %v", err)
	}
	secret := &corev1.Secret{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: "blinkchamber-system", Name: cfg.CertSecretName}, secret); err != nil {
		t.Fatalf("certificate Secret: %v", err)
	}
	if !bytes.Contains(caBundle, bytes.TrimSpace(secret.Data["ca.crt"])) {
		t.Errorf("caBundle does not hold the Secret's CA")
	}
	if err := inj.WaitServing(ctx, caBundle); err != nil {
		t.Fatal(err)
	}

	pod := appPod("self-managed", map[string]string{
		mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/self/app/db",
	})
	pod.Namespace, pod.Labels = "self", map[string]string{routeLabel: "self"}
	// The loader polls the Secret; the API server may call before the first
	// load completes, so allow a few seconds of retries as a client would.
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err := kube.Client.Create(ctx, pod.DeepCopy())
		if apierrors.IsInternalError(err) {
			t.Logf("webhook not ready yet: %v", err)
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	stored := &corev1.Pod{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: "self", Name: "self-managed"}, stored); err != nil {
		t.Fatal(err)
	}
	assertInjectedNative(t, stored, "secret/data/self/app/db")
}

func ensureNamespace(ctx context.Context, name string) error {
	err := kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
