package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/certs"
	"github.com/blinkchamber/blinkchamber/pkg/injector"
)

// InjectionLabel opts a namespace in, as the chart's webhook does.
const InjectionLabel = "blinkchamber.io/injection"

// Injector is the real injector running in-process on a free loopback port.
type Injector struct {
	Addr    string // host:port
	CAPEM   []byte // CA to trust; nil for self-managed TLS until issued
	CertDir string // --cert-dir, when the injector reads mounted certificates
	cancel  context.CancelFunc
	done    chan error
}

// FreePort asks the kernel for an unused loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ServingCertDir writes a fresh CA and a serving pair for 127.0.0.1 and
// localhost into dir, as cert-manager would mount them.
func ServingCertDir(dir string) (caPEM []byte, err error) {
	now := time.Now()
	caPEM, caKey, err := certs.NewCA(now, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	crt, key, err := certs.NewServing(caPEM, caKey, []string{"127.0.0.1", "localhost"}, now, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), crt, 0o600); err != nil {
		return nil, err
	}
	return caPEM, os.WriteFile(filepath.Join(dir, "tls.key"), key, 0o600)
}

// StartInjector runs injector.Run with cfg on a free loopback port. cfg's
// Host and Port are set here; its other fields are the caller's.
func (k *Kube) StartInjector(cfg *injector.Config, log logr.Logger) (*Injector, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	return k.StartInjectorOnPort(cfg, port, log)
}

// StartInjectorOnPort is StartInjector on a port chosen by the caller (who
// needed the URL before the injector started).
func (k *Kube) StartInjectorOnPort(cfg *injector.Config, port int, log logr.Logger) (*Injector, error) {
	cfg.Host, cfg.Port = "127.0.0.1", port
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	inj := &Injector{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), CertDir: cfg.CertDir, cancel: cancel, done: make(chan error, 1)}
	go func() { inj.done <- injector.Run(ctx, cfg, k.Config, log) }()
	return inj, nil
}

// WaitServing waits until the webhook completes a TLS handshake verified by
// caPEM.
func (i *Injector) WaitServing(ctx context.Context, caPEM []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no CA certificate in PEM")
	}
	for {
		d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
		c, err := d.DialContext(ctx, "tcp", i.Addr)
		if err == nil {
			return c.Close()
		}
		select {
		case err := <-i.done:
			return fmt.Errorf("injector exited: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("webhook at %s never served TLS: %w (last: %v)", i.Addr, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop cancels the injector and waits for it to return.
func (i *Injector) Stop() error {
	i.cancel()
	return <-i.done
}

// URL is the mutate endpoint.
func (i *Injector) URL() string { return "https://" + i.Addr + injector.Path }

// WebhookConfig is the MutatingWebhookConfiguration the chart installs,
// pointed at a URL instead of a Service (there is no kube-proxy here).
// objectSelector, when set, narrows it to some pods (tests running two
// injectors side by side).
func WebhookConfig(name, url string, caPEM []byte, objectSelector *metav1.LabelSelector) *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "inject.blinkchamber.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			TimeoutSeconds:          ptr.To(int32(10)),
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{InjectionLabel: "enabled"}},
			ObjectSelector:          objectSelector,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
					Resources: []string{"pods"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
			}, {
				// Debug containers added to an injected pod are checked too.
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
					Resources: []string{"pods/ephemeralcontainers"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
			}},
		}},
	}
}

// Namespace creates a namespace, labelled for injection when inject is true,
// with the ServiceAccounts named (ServiceAccount admission requires them).
func (k *Kube) Namespace(ctx context.Context, name string, inject bool, serviceAccounts ...string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if inject {
		ns.Labels = map[string]string{InjectionLabel: "enabled"}
	}
	if err := k.Client.Create(ctx, ns); err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	for _, sa := range append([]string{"default"}, serviceAccounts...) {
		obj := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: name}}
		if err := k.Client.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating ServiceAccount %s/%s: %w", name, sa, err)
		}
	}
	return nil
}
