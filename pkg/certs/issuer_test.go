package certs_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/blinkchamber/blinkchamber/pkg/certs"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// These tests live in package certs_test because the harness they use
// imports this package.

// TestIssuerAndLoader runs against a real kube-apiserver; the subtests share
// it and keep apart by namespace and webhook configuration name.
func TestIssuerAndLoader(t *testing.T) {
	k := harness.KubeForTest(t)
	t.Run("issues, publishes, renews and loads", func(t *testing.T) { testIssueAndLoad(t, k.Client) })
	t.Run("missing webhook configuration is not fatal", func(t *testing.T) { testMissingWebhookConfig(t, k.Client) })
	t.Run("CA rotation trusts both CAs until the old one expires", func(t *testing.T) { testCARotation(t, k.Client) })
	t.Run("a failing caBundle write holds back only a new CA's certificate", func(t *testing.T) { testBundleWriteFails(t, k) })
	t.Run("unusable Secret contents are replaced", func(t *testing.T) { testGarbageReplaced(t, k.Client) })
	t.Run("loader waits for a missing Secret", func(t *testing.T) { testLoaderWaits(t, k.Client) })
	t.Run("Start runs until cancelled", func(t *testing.T) { testStart(t, k.Client) })
}

func testIssueAndLoad(t *testing.T, c client.Client) {
	ctx := context.Background()
	opts, logs := setupCluster(t, c, "issue")
	iss := certs.NewIssuer(c, opts, logs.logger)

	mustReconcile(t, iss, true)
	sec := getSecret(t, c, opts)
	if sec.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type = %q, want %q", sec.Type, corev1.SecretTypeTLS)
	}
	for _, key := range []string{certs.CACertKey, certs.CAKeyKey, certs.TLSCertKey, certs.TLSKeyKey} {
		if len(sec.Data[key]) == 0 {
			t.Errorf("Secret lacks %s", key)
		}
	}
	if _, ok := sec.Data[certs.PreviousCACertKey]; ok {
		t.Errorf("fresh Secret has %s", certs.PreviousCACertKey)
	}
	assertBundle(t, c, opts, sec.Data[certs.CACertKey])
	assertServes(t, sec.Data, opts.Hosts, time.Now())
	// Owned by the webhook configuration, so it goes when that goes
	// (helm uninstall); the real node's uninstall test sees it collected.
	if mwc := getMWC(t, c, opts); len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != mwc.UID ||
		sec.OwnerReferences[0].Kind != "MutatingWebhookConfiguration" {
		t.Errorf("Secret owners %+v, want the MutatingWebhookConfiguration %s (uid %s)", sec.OwnerReferences, mwc.Name, mwc.UID)
	}

	mwcVersion := getMWC(t, c, opts).ResourceVersion
	mustReconcile(t, iss, false)
	if again := getSecret(t, c, opts); again.ResourceVersion != sec.ResourceVersion {
		t.Error("a pass with nothing to do rewrote the Secret")
	}
	if getMWC(t, c, opts).ResourceVersion != mwcVersion {
		t.Error("a pass with nothing to do rewrote the webhook configuration")
	}

	store := &certs.Store{}
	loader := certs.NewLoader(c, opts, store, logs.logger)
	if err := loader.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	assertLoaded(t, store, sec.Data[certs.TLSCertKey], opts.Hosts)
	loaded, _ := store.GetCertificate(nil)
	if err := loader.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if again, _ := store.GetCertificate(nil); again != loaded {
		t.Error("Load replaced an unchanged serving pair")
	}

	// A serving certificate about to expire is re-issued under the same CA.
	soon, soonKey := mustServing(t, sec.Data[certs.CACertKey], sec.Data[certs.CAKeyKey], opts.Hosts, time.Now(), time.Minute)
	patchSecretData(t, c, opts, map[string][]byte{certs.TLSCertKey: soon, certs.TLSKeyKey: soonKey})
	mustReconcile(t, iss, true)
	renewed := getSecret(t, c, opts)
	if bytes.Equal(renewed.Data[certs.TLSCertKey], soon) {
		t.Fatal("expiring serving certificate was not re-issued")
	}
	if !bytes.Equal(renewed.Data[certs.CACertKey], sec.Data[certs.CACertKey]) {
		t.Error("renewing the serving certificate replaced the CA")
	}
	if left := time.Until(mustParse(t, renewed.Data[certs.TLSCertKey]).NotAfter); left < certs.DefaultCertValidity-time.Hour {
		t.Errorf("re-issued certificate has %v left, want about %v", left, certs.DefaultCertValidity)
	}
	assertServes(t, renewed.Data, opts.Hosts, time.Now())
	assertBundle(t, c, opts, sec.Data[certs.CACertKey])

	// A new host list re-issues, and the Loader picks the new pair up.
	opts.Hosts = append(opts.Hosts, "injector.example.test")
	mustReconcile(t, certs.NewIssuer(c, opts, logs.logger), true)
	rehosted := getSecret(t, c, opts)
	if err := loader.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	assertLoaded(t, store, rehosted.Data[certs.TLSCertKey], opts.Hosts)

	logs.assertNoKeys(t, sec.Data[certs.CAKeyKey], sec.Data[certs.TLSKeyKey], renewed.Data[certs.TLSKeyKey], rehosted.Data[certs.TLSKeyKey])
}

func testMissingWebhookConfig(t *testing.T, c client.Client) {
	opts, logs := setupCluster(t, c, "nomwc")
	if err := c.Delete(context.Background(), getMWC(t, c, opts)); err != nil {
		t.Fatal(err)
	}
	iss := certs.NewIssuer(c, opts, logs.logger)
	mustReconcile(t, iss, true)
	sec := getSecret(t, c, opts)
	if len(sec.OwnerReferences) != 0 {
		t.Errorf("with no webhook configuration to own it, the Secret has owners %+v", sec.OwnerReferences)
	}

	createMWC(t, c, opts.WebhookConfigName)
	mustReconcile(t, iss, true)
	assertBundle(t, c, opts, sec.Data[certs.CACertKey])
	mustReconcile(t, iss, false)
}

func testCARotation(t *testing.T, c client.Client) {
	opts, logs := setupCluster(t, c, "rotate")
	opts.CAValidity, opts.CertValidity, opts.RenewBefore = 48*time.Hour, 24*time.Hour, 8*time.Hour
	iss := certs.NewIssuer(c, opts, logs.logger)
	start := time.Now()
	certs.SetClock(iss, func() time.Time { return start })
	mustReconcile(t, iss, true)
	first := getSecret(t, c, opts).Data
	oldCA := mustParse(t, first[certs.CACertKey])

	// Shortly before the CA's renewal window the serving certificate is
	// renewed under the old CA, capped at that CA's expiry.
	certs.SetClock(iss, func() time.Time { return oldCA.NotAfter.Add(-10 * time.Hour) })
	mustReconcile(t, iss, true)
	beforeRotation := getSecret(t, c, opts).Data
	if !bytes.Equal(beforeRotation[certs.CACertKey], first[certs.CACertKey]) {
		t.Fatal("CA rotated before its renewal window")
	}
	if got := mustParse(t, beforeRotation[certs.TLSCertKey]).NotAfter; !got.Equal(oldCA.NotAfter) {
		t.Errorf("serving certificate NotAfter = %v, want it capped at the CA's %v", got, oldCA.NotAfter)
	}

	// Inside the window: new CA, both in the bundle, new serving certificate.
	during := oldCA.NotAfter.Add(-4 * time.Hour)
	certs.SetClock(iss, func() time.Time { return during })
	mustReconcile(t, iss, true)
	rotated := getSecret(t, c, opts).Data
	if bytes.Equal(rotated[certs.CACertKey], first[certs.CACertKey]) {
		t.Fatal("CA inside its renewal window was not rotated")
	}
	if !bytes.Equal(rotated[certs.PreviousCACertKey], first[certs.CACertKey]) {
		t.Errorf("%s is not the old CA", certs.PreviousCACertKey)
	}
	bundle := assertBundle(t, c, opts, append(slices.Clone(rotated[certs.CACertKey]), first[certs.CACertKey]...))
	assertServes(t, rotated, opts.Hosts, during)
	if err := verifyLeaf(beforeRotation[certs.TLSCertKey], bundle, opts.Hosts[0], during); err != nil {
		t.Errorf("a replica still serving the old certificate fails against the bundle: %v", err)
	}
	if err := verifyLeaf(rotated[certs.TLSCertKey], rotated[certs.CACertKey], opts.Hosts[0], during); err != nil {
		t.Errorf("new serving certificate is not signed by the new CA: %v", err)
	}
	mustReconcile(t, iss, false)

	// Once the old CA has expired it leaves the Secret and the bundle.
	certs.SetClock(iss, func() time.Time { return oldCA.NotAfter.Add(time.Minute) })
	mustReconcile(t, iss, true)
	after := getSecret(t, c, opts).Data
	if _, ok := after[certs.PreviousCACertKey]; ok {
		t.Errorf("%s kept after the old CA expired", certs.PreviousCACertKey)
	}
	if !bytes.Equal(after[certs.CACertKey], rotated[certs.CACertKey]) {
		t.Error("expiry of the old CA replaced the new one")
	}
	assertBundle(t, c, opts, rotated[certs.CACertKey])
	logs.assertNoKeys(t, first[certs.CAKeyKey], rotated[certs.CAKeyKey], rotated[certs.TLSKeyKey])
}

func testBundleWriteFails(t *testing.T, k *harness.Kube) {
	opts, logs := setupCluster(t, k.Client, "bundlefail")
	opts.CAValidity, opts.CertValidity, opts.RenewBefore = 48*time.Hour, 24*time.Hour, 8*time.Hour
	errDenied := errors.New("denied by the test")
	failing := certs.NewIssuer(mwcPatchFails(t, k, errDenied), opts, logs.logger)
	working := certs.NewIssuer(k.Client, opts, logs.logger)
	start := time.Now()
	certs.SetClock(working, func() time.Time { return start })
	mustReconcile(t, working, true)
	first := getSecret(t, k.Client, opts).Data
	oldCA := mustParse(t, first[certs.CACertKey])

	// Same CA: the expiring certificate is renewed although the caBundle
	// (emptied here, so there is something to write) cannot be written.
	clearBundle(t, k.Client, opts)
	certs.SetClock(failing, func() time.Time { return start.Add(20 * time.Hour) })
	changed, err := failing.Reconcile(context.Background())
	if !errors.Is(err, errDenied) || !changed {
		t.Fatalf("Reconcile = %v, %v; want true and the patch error", changed, err)
	}
	renewed := getSecret(t, k.Client, opts).Data
	if bytes.Equal(renewed[certs.TLSCertKey], first[certs.TLSCertKey]) {
		t.Error("expiring certificate under the trusted CA was not renewed")
	}
	assertServes(t, renewed, opts.Hosts, start.Add(20*time.Hour))

	// New CA: the certificate must not move to a CA the bundle lacks.
	during := oldCA.NotAfter.Add(-6 * time.Hour)
	certs.SetClock(failing, func() time.Time { return during })
	if _, err := failing.Reconcile(context.Background()); !errors.Is(err, errDenied) {
		t.Fatalf("Reconcile = %v, want the patch error", err)
	}
	rotated := getSecret(t, k.Client, opts).Data
	if bytes.Equal(rotated[certs.CACertKey], first[certs.CACertKey]) {
		t.Fatal("CA inside its renewal window was not rotated")
	}
	if !bytes.Equal(rotated[certs.TLSCertKey], renewed[certs.TLSCertKey]) {
		t.Error("serving certificate moved to a CA the caBundle does not trust yet")
	}

	// Once the bundle is written, the certificate follows in the same pass.
	certs.SetClock(working, func() time.Time { return during })
	mustReconcile(t, working, true)
	final := getSecret(t, k.Client, opts).Data
	assertBundle(t, k.Client, opts, append(slices.Clone(final[certs.CACertKey]), first[certs.CACertKey]...))
	if err := verifyLeaf(final[certs.TLSCertKey], final[certs.CACertKey], opts.Hosts[0], during); err != nil {
		t.Errorf("serving certificate is not from the new CA: %v", err)
	}
}

// mwcPatchFails returns a client on the test API server whose patches of
// MutatingWebhookConfigurations fail with err.
func mwcPatchFails(t *testing.T, k *harness.Kube, err error) client.Client {
	t.Helper()
	c, newErr := client.NewWithWatch(k.Config, client.Options{})
	if newErr != nil {
		t.Fatal(newErr)
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if _, ok := obj.(*admissionregistrationv1.MutatingWebhookConfiguration); ok {
				return err
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	})
}

func clearBundle(t *testing.T, c client.Client, opts certs.Options) {
	t.Helper()
	mwc := getMWC(t, c, opts)
	orig := mwc.DeepCopy()
	for n := range mwc.Webhooks {
		mwc.Webhooks[n].ClientConfig.CABundle = nil
	}
	if err := c.Patch(context.Background(), mwc, client.StrategicMergeFrom(orig)); err != nil {
		t.Fatalf("clearing caBundle: %v", err)
	}
}

func testGarbageReplaced(t *testing.T, c client.Client) {
	opts, logs := setupCluster(t, c, "garbage")
	iss := certs.NewIssuer(c, opts, logs.logger)
	mustReconcile(t, iss, true)
	orig := getSecret(t, c, opts).Data

	tests := []struct {
		name      string
		data      map[string][]byte
		wantNewCA bool
	}{
		{"garbage CA", map[string][]byte{certs.CACertKey: []byte("garbage")}, true},
		{"CA key of another CA", map[string][]byte{certs.CAKeyKey: otherKey(t)}, true},
		{"garbage serving certificate", map[string][]byte{certs.TLSCertKey: []byte("garbage")}, false},
		{"serving key of another certificate", map[string][]byte{certs.TLSKeyKey: otherKey(t)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := getSecret(t, c, opts).Data
			patchSecretData(t, c, opts, tt.data)
			mustReconcile(t, iss, true)
			got := getSecret(t, c, opts).Data
			if newCA := !bytes.Equal(got[certs.CACertKey], before[certs.CACertKey]); newCA != tt.wantNewCA {
				t.Errorf("new CA = %v, want %v", newCA, tt.wantNewCA)
			}
			if _, ok := got[certs.PreviousCACertKey]; ok {
				t.Errorf("an unusable CA was kept as %s", certs.PreviousCACertKey)
			}
			assertBundle(t, c, opts, got[certs.CACertKey])
			assertServes(t, got, opts.Hosts, time.Now())
			mustReconcile(t, iss, false)
		})
	}
	logs.assertNoKeys(t, orig[certs.CAKeyKey], orig[certs.TLSKeyKey])
}

func testLoaderWaits(t *testing.T, c client.Client) {
	opts, logs := setupCluster(t, c, "wait")
	store := &certs.Store{}
	loader := certs.NewLoader(c, opts, store, logs.logger)
	if err := loader.Load(context.Background()); err != nil {
		t.Fatalf("Load without a Secret = %v, want nil", err)
	}
	if err := store.Ready(nil); !errors.Is(err, certs.ErrNotReady) {
		t.Errorf("Ready = %v, want ErrNotReady", err)
	}

	// A Secret created empty (as a chart might) is waited on as well.
	empty := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.SecretName},
		Type:       corev1.SecretTypeOpaque,
	}
	if err := c.Create(context.Background(), empty); err != nil {
		t.Fatal(err)
	}
	if err := loader.Load(context.Background()); err != nil {
		t.Fatalf("Load with an empty Secret = %v, want nil", err)
	}
	if err := store.Ready(nil); !errors.Is(err, certs.ErrNotReady) {
		t.Errorf("Ready = %v, want ErrNotReady", err)
	}

	// The Issuer fills the pre-created Secret; the Loader then loads it.
	mustReconcile(t, certs.NewIssuer(c, opts, logs.logger), true)
	if err := loader.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	assertLoaded(t, store, getSecret(t, c, opts).Data[certs.TLSCertKey], opts.Hosts)
}

func testStart(t *testing.T, c client.Client) {
	opts, logs := setupCluster(t, c, "start")
	opts.PollInterval = 100 * time.Millisecond
	store := &certs.Store{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	go func() { done <- certs.NewLoader(c, opts, store, logs.logger).Start(ctx) }()
	go func() { done <- certs.NewIssuer(c, opts, logs.logger).Start(ctx) }()

	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return store.Ready(nil) == nil, nil })
	if err != nil {
		t.Fatalf("store never became ready: %v", err)
	}
	assertLoaded(t, store, getSecret(t, c, opts).Data[certs.TLSCertKey], opts.Hosts)
	assertBundle(t, c, opts, getSecret(t, c, opts).Data[certs.CACertKey])

	cancel()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start after cancel = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Start did not return after cancel")
		}
	}
}

func TestStartRejectsInvalidOptions(t *testing.T) {
	bad := validOptions()
	bad.Hosts = nil
	log := logr.Discard()
	if err := certs.NewIssuer(nil, bad, log).Start(context.Background()); !errors.Is(err, certs.ErrInvalidOptions) {
		t.Errorf("Issuer.Start = %v, want ErrInvalidOptions", err)
	}
	if err := certs.NewLoader(nil, bad, &certs.Store{}, log).Start(context.Background()); !errors.Is(err, certs.ErrInvalidOptions) {
		t.Errorf("Loader.Start = %v, want ErrInvalidOptions", err)
	}
	if _, err := certs.NewIssuer(nil, bad, log).Reconcile(context.Background()); !errors.Is(err, certs.ErrInvalidOptions) {
		t.Errorf("Reconcile = %v, want ErrInvalidOptions", err)
	}
}

func TestRunnablesLeaderElection(t *testing.T) {
	if !certs.NewIssuer(nil, validOptions(), logr.Discard()).NeedLeaderElection() {
		t.Error("Issuer must run on the leader only")
	}
	if certs.NewLoader(nil, validOptions(), &certs.Store{}, logr.Discard()).NeedLeaderElection() {
		t.Error("Loader must run on every replica")
	}
}

// setupCluster creates a namespace and a webhook configuration named after
// the test and returns Options pointing at them.
func setupCluster(t *testing.T, c client.Client, name string) (certs.Options, *capturedLogs) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "certs-" + name}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	opts := certs.Options{
		Namespace:         ns.Name,
		SecretName:        "injector-tls",
		WebhookConfigName: "certs-" + name,
		Hosts:             []string{"injector." + ns.Name + ".svc", "injector." + ns.Name + ".svc.cluster.local", "127.0.0.1"},
	}
	createMWC(t, c, opts.WebhookConfigName)
	return opts, newCapturedLogs(t)
}

// createMWC creates a configuration with two webhooks and no caBundle. Its
// rules match a resource that does not exist, so it never intercepts.
func createMWC(t *testing.T, c client.Client, name string) {
	t.Helper()
	webhook := func(name string) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name:         name,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/mutate")},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{"blinkchamber.test"}, APIVersions: []string{"v1"}, Resources: []string{"nothings"},
				},
			}},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
		}
	}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{webhook("inject.blinkchamber.io"), webhook("second.blinkchamber.io")},
	}
	if err := c.Create(context.Background(), mwc); err != nil {
		t.Fatalf("creating MutatingWebhookConfiguration: %v", err)
	}
}

func mustReconcile(t *testing.T, iss *certs.Issuer, wantChanged bool) {
	t.Helper()
	changed, err := iss.Reconcile(context.Background())
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if changed != wantChanged {
		t.Fatalf("Reconcile changed = %v, want %v", changed, wantChanged)
	}
}

func getSecret(t *testing.T, c client.Client, opts certs.Options) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: opts.Namespace, Name: opts.SecretName}, s); err != nil {
		t.Fatalf("getting Secret: %v", err)
	}
	return s
}

func getMWC(t *testing.T, c client.Client, opts certs.Options) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: opts.WebhookConfigName}, mwc); err != nil {
		t.Fatalf("getting MutatingWebhookConfiguration: %v", err)
	}
	return mwc
}

func patchSecretData(t *testing.T, c client.Client, opts certs.Options, data map[string][]byte) {
	t.Helper()
	s := getSecret(t, c, opts)
	orig := s.DeepCopy()
	for k, v := range data {
		s.Data[k] = v
	}
	if err := c.Patch(context.Background(), s, client.MergeFrom(orig)); err != nil {
		t.Fatalf("patching Secret: %v", err)
	}
}

// assertBundle checks that every webhook carries exactly want and returns it.
func assertBundle(t *testing.T, c client.Client, opts certs.Options, want []byte) []byte {
	t.Helper()
	mwc := getMWC(t, c, opts)
	for _, w := range mwc.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, want) {
			t.Errorf("webhook %s caBundle holds %d certificates, want %d (or different ones)",
				w.Name, countCerts(w.ClientConfig.CABundle), countCerts(want))
		}
	}
	return want
}

// assertServes checks that the Secret's serving pair matches and verifies
// against its CA for every host at the given time.
func assertServes(t *testing.T, data map[string][]byte, hosts []string, at time.Time) {
	t.Helper()
	if err := (&certs.Store{}).Set(data[certs.TLSCertKey], data[certs.TLSKeyKey]); err != nil {
		t.Errorf("serving pair does not load: %v", err)
	}
	for _, h := range hosts {
		if err := verifyLeaf(data[certs.TLSCertKey], data[certs.CACertKey], h, at); err != nil {
			t.Errorf("serving certificate for %s: %v", h, err)
		}
	}
}

func verifyLeaf(leafPEM, rootsPEM []byte, host string, at time.Time) error {
	block, _ := pem.Decode(leafPEM)
	if block == nil {
		return errors.New("no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootsPEM) {
		return errors.New("no roots")
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		DNSName: host, Roots: roots, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

func assertLoaded(t *testing.T, s *certs.Store, wantCert []byte, hosts []string) {
	t.Helper()
	got, err := s.GetCertificate(nil)
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	if !bytes.Equal(got.Leaf.Raw, mustParse(t, wantCert).Raw) {
		t.Error("Store serves a different certificate than the Secret holds")
	}
	names := slices.Clone(got.Leaf.DNSNames)
	for _, ip := range got.Leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if !sameElements(names, hosts) {
		t.Errorf("served SANs = %v, want %v", names, hosts)
	}
}

func sameElements(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func countCerts(bundle []byte) int {
	n := 0
	for rest := bundle; ; n++ {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return n
		}
	}
}

func otherKey(t *testing.T) []byte {
	_, key := mustCA(t, time.Now(), time.Hour)
	return key
}

// capturedLogs records every log line (verbosity included) so tests can
// check that no key material reached the log.
type capturedLogs struct {
	logger logr.Logger
	mu     sync.Mutex
	lines  []string
}

func newCapturedLogs(t *testing.T) *capturedLogs {
	l := &capturedLogs{}
	l.logger = funcr.New(func(prefix, args string) {
		l.mu.Lock()
		l.lines = append(l.lines, args)
		l.mu.Unlock()
		t.Log(prefix, args)
	}, funcr.Options{Verbosity: 10})
	return l
}

// assertNoKeys fails if any log line holds a private key, as PEM text, as
// base64 of the PEM (how []byte values are rendered), or as a PEM body line.
func (l *capturedLogs) assertNoKeys(t *testing.T, keys ...[]byte) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 0 {
		t.Error("nothing was logged; the check below would prove nothing")
	}
	for _, line := range l.lines {
		if strings.Contains(line, "PRIVATE KEY") {
			t.Errorf("log line holds a PEM private key header: %.80s", line)
		}
		for _, key := range keys {
			block, _ := pem.Decode(key)
			body := base64.StdEncoding.EncodeToString(block.Bytes)
			for _, needle := range []string{body[:32], base64.StdEncoding.EncodeToString(key)[:32]} {
				if strings.Contains(line, needle) {
					t.Errorf("log line holds key material: %.80s", line)
				}
			}
		}
	}
}

func validOptions() certs.Options {
	return certs.Options{
		Namespace:         "blinkchamber",
		SecretName:        "blinkchamber-injector-tls",
		WebhookConfigName: "blinkchamber-injector",
		Hosts:             []string{"blinkchamber-injector.blinkchamber.svc", "127.0.0.1"},
	}
}

func mustCA(t *testing.T, now time.Time, validity time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := certs.NewCA(now, validity)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return certPEM, keyPEM
}

func mustServing(t *testing.T, caCert, caKey []byte, hosts []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := certs.NewServing(caCert, caKey, hosts, now, validity)
	if err != nil {
		t.Fatalf("NewServing: %v", err)
	}
	return certPEM, keyPEM
}

func mustParse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parsing certificate: %v", err)
	}
	return c
}
