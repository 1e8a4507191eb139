package injector

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/blinkchamber/blinkchamber/pkg/certs"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

// nativeSidecarSince is the first Kubernetes minor with native sidecars
// (init containers with restartPolicy Always) enabled by default.
var nativeSidecarSince = version.MustParseGeneric("1.29.0")

// Run starts the injector and blocks until ctx ends. cfg must be validated.
func Run(ctx context.Context, cfg *Config, rc *rest.Config, log logr.Logger) error {
	caPEM, err := readCA(cfg.VaultCAFile)
	if err != nil {
		return err
	}
	mode, err := resolveMode(cfg.DefaultMode, rc)
	if err != nil {
		return err
	}
	log.Info("starting injector", "defaultMode", mode, "selfManagedTLS", cfg.SelfManagedTLS(), "port", cfg.Port)

	store := &certs.Store{}
	mgr, err := ctrl.NewManager(rc, managerOptions(cfg, store, log))
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	m, err := NewMetrics(crmetrics.Registry)
	if err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	mgr.GetWebhookServer().Register(Path, NewWebhook(cfg.mutateOptions(caPEM, mode), m, log.WithName("admission")))
	if err := addChecks(mgr, cfg, store); err != nil {
		return err
	}
	if cfg.SelfManagedTLS() {
		opts := certs.Options{Namespace: cfg.Namespace, SecretName: cfg.CertSecretName,
			WebhookConfigName: cfg.WebhookConfigName, Hosts: cfg.hosts()}
		if err := opts.Validate(); err != nil {
			return fmt.Errorf("self-managed certificates: %w", err)
		}
		// A direct client: the manager's cached one would start informers
		// on every Secret in the cluster and need list/watch on them all.
		direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
		if err != nil {
			return fmt.Errorf("creating API client: %w", err)
		}
		issuer, err := issuerRunnable(cfg, rc, certs.NewIssuer(direct, opts, log.WithName("cert-issuer")), log)
		if err != nil {
			return err
		}
		if err := mgr.Add(issuer); err != nil {
			return err
		}
		if err := mgr.Add(certs.NewLoader(mgr.GetAPIReader(), opts, store, log.WithName("cert-loader"))); err != nil {
			return err
		}
	}
	return mgr.Start(ctx)
}

// issuerRunnable runs the issuer on one replica at a time: through its own
// lease with --leader-elect (a lost lease stops the issuer, not the
// webhook), else on this replica alone.
func issuerRunnable(cfg *Config, rc *rest.Config, issuer *certs.Issuer, log logr.Logger) (manager.Runnable, error) {
	if !cfg.LeaderElect {
		return manager.RunnableFunc(issuer.Start), nil
	}
	return certs.NewElected(rc, cfg.Namespace, leaseName, issuer.Start, log.WithName("cert-lease"))
}

// leaseName is the Lease that elects the replica issuing certificates.
const leaseName = "blinkchamber-injector"

func managerOptions(cfg *Config, store *certs.Store, log logr.Logger) ctrl.Options {
	tlsOpts := []func(*tls.Config){hardenTLS}
	if cfg.SelfManagedTLS() {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.GetCertificate = store.GetCertificate })
	}
	return ctrl.Options{
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: cfg.MetricsBindAddress},
		HealthProbeBindAddress: cfg.HealthProbeBindAddress,
		PprofBindAddress:       cfg.PprofBindAddress,
		// No manager-wide election: it would end the process when a
		// replica loses the API server (see issuerRunnable).
		LeaderElection: false,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: cfg.Host, Port: cfg.Port, CertDir: cfg.CertDir, TLSOpts: tlsOpts,
		}),
	}
}

// modernCiphers are the TLS 1.2 suites with forward secrecy and AEAD; Go's
// defaults also offer ECDHE with CBC and SHA-1. TLS 1.3 suites are all
// modern and not configurable.
var modernCiphers = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// hardenTLS makes the webhook server refuse TLS 1.0 and 1.1 and weak suites.
func hardenTLS(c *tls.Config) {
	c.MinVersion = tls.VersionTLS12
	c.CipherSuites = modernCiphers
}

func addChecks(mgr ctrl.Manager, cfg *Config, store *certs.Store) error {
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	if cfg.SelfManagedTLS() {
		return mgr.AddReadyzCheck("certificate", store.Ready)
	}
	return nil
}

func readCA(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--vault-ca-file: %w", err)
	}
	return string(b), nil
}

// resolveMode turns "auto" into native or sidecar from the server version.
func resolveMode(flagValue string, rc *rest.Config) (mutate.Mode, error) {
	if flagValue != ModeAuto {
		return mutate.ParseMode(flagValue)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return "", fmt.Errorf("discovery client: %w", err)
	}
	info, err := dc.ServerVersion()
	if err != nil {
		return "", fmt.Errorf("reading the API server version for --default-mode=auto: %w", err)
	}
	return modeForVersion(info.GitVersion)
}

func modeForVersion(gitVersion string) (mutate.Mode, error) {
	v, err := version.ParseGeneric(gitVersion)
	if err != nil {
		return "", fmt.Errorf("API server version %q: %w", gitVersion, err)
	}
	if v.AtLeast(nativeSidecarSince) {
		return mutate.ModeNative, nil
	}
	return mutate.ModeSidecar, nil
}
