package cli

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap"
	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/config"
	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/keystore"
)

// environment is the loaded config turned into what the steps act on.
type environment struct {
	cfg     *config.Config
	spec    *bootstrap.Spec
	targets bootstrap.Targets
}

// reviewerTokenLifetime is what bootstrap asks for the token Vault uses for
// TokenReview; the API server may grant less, and a later bootstrap run
// repairs an expired one.
const reviewerTokenLifetime = 365 * 24 * 3600

func load(ctx context.Context, o *Options) (*environment, error) {
	cfg, err := config.Load(o.Config)
	if err != nil {
		return nil, err
	}
	if o.Env != "" && o.Env != string(cfg.Environment) {
		return nil, &usageError{fmt.Sprintf("--env %s, but %s is for %s: refusing to apply one environment's config to another", o.Env, o.Config, cfg.Environment)}
	}
	rc, err := restConfig(o.Kubeconfig)
	if err != nil {
		return nil, err
	}
	kc, err := client.New(rc, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("Kubernetes client: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("Kubernetes client: %w", err)
	}
	vc, err := vaultClient(cfg.Vault)
	if err != nil {
		return nil, err
	}
	getter := genericclioptions.NewConfigFlags(false)
	if o.Kubeconfig != "" {
		getter.KubeConfig = &o.Kubeconfig
	}
	spec, err := buildSpec(ctx, cfg, rc, kc, cs, o.Chart, getter)
	if err != nil {
		return nil, err
	}
	return &environment{cfg: cfg, spec: spec, targets: bootstrap.Targets{Kube: kc, Vault: vc, VaultAddr: cfg.Vault.Address}}, nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	return rc, nil
}

func vaultClient(v config.Vault) (*api.Client, error) {
	vc := api.DefaultConfig()
	vc.Address = v.Address
	// A sealed Vault answers 503, which the client would retry with
	// backoff on every step; bootstrap's steps decide themselves, and a
	// failed run is simply run again.
	vc.MaxRetries = 0
	if v.CAFile != "" {
		if err := vc.ConfigureTLS(&api.TLSConfig{CACert: v.CAFile}); err != nil {
			return nil, fmt.Errorf("vault.caFile: %w", err)
		}
	}
	c, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("Vault client: %w", err)
	}
	// Bootstrap's identity comes from the key store only.
	c.ClearToken()
	c.ClearNamespace()
	return c, nil
}

func buildSpec(ctx context.Context, cfg *config.Config, rc *rest.Config, kc client.Client, cs kubernetes.Interface, chart string, getter genericclioptions.RESTClientGetter) (*bootstrap.Spec, error) {
	var err error
	v := cfg.Vault
	spec := &bootstrap.Spec{
		Environment: string(cfg.Environment),
		Audit:       bootstrap.Audit{Type: string(v.Audit.Type), Path: v.Audit.Path},
		KVMount:     v.KVMount,
		TokenTTL:    v.TokenTTL.Duration,
		VaultAddr:   v.Address,
		Owner:       cfg.Owner,
		Prune:       cfg.Prune,
		Release:     bootstrap.Release{ChartDir: chart, Release: "blinkchamber", Namespace: "blinkchamber", Getter: getter},
	}
	for _, p := range cfg.Prerequisites {
		spec.Prerequisites = append(spec.Prerequisites, bootstrap.Prerequisite(p))
	}
	if spec.Seal, err = seal(v.Seal); err != nil {
		return nil, err
	}
	ks := v.Seal.KeyStore()
	switch ks.Type {
	case config.KeyStoreKubernetesSecret:
		spec.Keys = keystore.NewKubernetesSecret(kc, ks.Namespace, ks.Name)
	default:
		spec.Keys = keystore.NewFile(ks.Path)
	}
	if cfg.Environment == config.Production {
		// Production replaces the root token with an admin token kept
		// beside the keys (production forbids the Secret store).
		spec.AdminKeys = keystore.NewFile(strings.TrimSuffix(ks.Path, ".json") + "-admin-token.json")
	}
	ka, err := kubeAuth(v.KubernetesAuth, rc, cs)
	if err != nil {
		return nil, err
	}
	spec.KubeAuth = ka
	for i, a := range cfg.Apps {
		app, err := buildApp(ctx, cfg, a, secretReader(cs))
		if err != nil {
			return nil, fmt.Errorf("apps[%d] (%s): %w", i, a.Name, err)
		}
		spec.Apps = append(spec.Apps, app)
	}
	return spec, nil
}

// Recovery keys of an auto-unsealed Vault: Vault's own defaults.
const recoveryShares, recoveryThreshold = 5, 3

func seal(s config.Seal) (bootstrap.Seal, error) {
	switch s.Kind() {
	case config.SealShamir:
		return bootstrap.Seal{Kind: "shamir", Shares: s.Shamir.Shares, Threshold: s.Shamir.Threshold}, nil
	case config.SealTransit:
		t := s.Transit
		c, err := vaultClient(config.Vault{Address: t.Address, CAFile: t.CAFile})
		if err != nil {
			return bootstrap.Seal{}, fmt.Errorf("vault.seal.transit: %w", err)
		}
		token, err := os.ReadFile(t.TokenFile)
		if err != nil {
			return bootstrap.Seal{}, fmt.Errorf("vault.seal.transit.tokenFile: %w", err)
		}
		c.SetToken(strings.TrimSpace(string(token)))
		return bootstrap.Seal{Kind: "transit", Shares: recoveryShares, Threshold: recoveryThreshold,
			Transit: &bootstrap.TransitSeal{Address: t.Address, CAFile: t.CAFile, Mount: t.Mount, Key: t.Key, Client: c}}, nil
	}
	a := s.AWSKMS
	return bootstrap.Seal{Kind: "awskms", Shares: recoveryShares, Threshold: recoveryThreshold,
		AWSKMS: &bootstrap.AWSKMSSeal{Region: a.Region, KMSKeyID: a.KMSKeyID}}, nil
}

func kubeAuth(k config.KubernetesAuth, rc *rest.Config, cs kubernetes.Interface) (bootstrap.KubeAuth, error) {
	ka := bootstrap.KubeAuth{Path: k.Path, Host: k.Host, CAPEM: string(rc.CAData),
		VaultPodReviewer:  k.ReviewerToken == config.ReviewerTokenVaultPod,
		ReviewerNamespace: k.ReviewerNamespace, ReviewerServiceAccount: k.ReviewerServiceAccount}
	if ka.CAPEM == "" && rc.CAFile != "" {
		// In a pod, the kubeconfig names the ServiceAccount's CA file.
		b, err := os.ReadFile(rc.CAFile)
		if err != nil {
			return ka, fmt.Errorf("reading the API server CA %s: %w", rc.CAFile, err)
		}
		ka.CAPEM = string(b)
	}
	if ka.Host == "" {
		ka.Host = rc.Host
	}
	if k.CAFile != "" {
		b, err := os.ReadFile(k.CAFile)
		if err != nil {
			return ka, fmt.Errorf("vault.kubernetesAuth.caFile: %w", err)
		}
		ka.CAPEM = string(b)
	}
	if ka.VaultPodReviewer {
		return ka, nil
	}
	ka.ReviewerJWT = func(ctx context.Context) (string, time.Time, error) {
		tr, err := cs.CoreV1().ServiceAccounts(k.ReviewerNamespace).CreateToken(ctx, k.ReviewerServiceAccount,
			&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(reviewerTokenLifetime))}}, metav1.CreateOptions{})
		if err != nil {
			return "", time.Time{}, err
		}
		return tr.Status.Token, tr.Status.ExpirationTimestamp.Time, nil
	}
	return ka, nil
}

// secretKey reads one key of a Kubernetes Secret.
type secretKey func(ctx context.Context, ref config.SecretKeyRef) (string, error)

// secretReader reads Secrets with cs. Its errors name the Secret and the
// key, never the value.
func secretReader(cs kubernetes.Interface) secretKey {
	return func(ctx context.Context, ref config.SecretKeyRef) (string, error) {
		s, err := cs.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("reading Secret %s/%s: %w", ref.Namespace, ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			return "", fmt.Errorf("Secret %s/%s has no key %q", ref.Namespace, ref.Name, ref.Key)
		}
		return string(v), nil
	}
}

func buildApp(ctx context.Context, cfg *config.Config, a config.App, read secretKey) (bootstrap.App, error) {
	v := cfg.Vault
	app := bootstrap.App{Name: a.Name, Namespace: a.Namespace, ServiceAccount: a.ServiceAccount,
		Policy: a.PolicyName(), Role: a.RoleName(), SkipNetworkPolicies: !a.ManagesNetworkPolicies()}
	for _, v := range a.VaultAccess {
		app.ReadPaths = append(app.ReadPaths, v.Path())
	}
	for _, p := range a.KVReadPaths {
		app.ReadPaths = append(app.ReadPaths, v.KVMount+"/data/"+p)
	}
	for _, s := range a.Secrets {
		sec, err := buildSecret(ctx, a, s, v.KVMount, read)
		if err != nil {
			return app, err
		}
		app.Secrets = append(app.Secrets, sec)
	}
	if a.Postgres != nil {
		db, err := database(cfg, a)
		if err != nil {
			return app, err
		}
		app.Database = db
	}
	return app, nil
}

// buildSecret reads the values a secret imports: files and Kubernetes
// Secrets.
func buildSecret(ctx context.Context, a config.App, s config.Secret, kvMount string, read secretKey) (bootstrap.Secret, error) {
	sec := bootstrap.Secret{Name: s.Name, Path: a.KVPath(kvMount, s.Name), Literal: s.Data,
		Imported: map[string]string{}, Generate: map[string]func() (string, error){}}
	for key, file := range s.FromFile {
		b, err := os.ReadFile(file)
		if err != nil {
			return sec, fmt.Errorf("secrets %s, fromFile %s: %w", s.Name, key, err)
		}
		sec.Imported[key] = strings.TrimRight(string(b), "\r\n")
	}
	for key, ref := range s.FromSecret {
		val, err := read(ctx, ref)
		if err != nil {
			return sec, fmt.Errorf("secrets %s, fromSecret %s: %w", s.Name, key, err)
		}
		sec.Imported[key] = val
	}
	for key, g := range s.Generate {
		sec.Generate[key] = func() (string, error) { return config.Generate(g) }
	}
	return sec, nil
}

func database(cfg *config.Config, a config.App) (*bootstrap.Database, error) {
	c := a.Postgres.Connection
	var pw []byte
	var kvRef *bootstrap.KVRef
	if c.PasswordFromSecret != "" {
		ref, err := secretRef(cfg, c.PasswordFromSecret)
		if err != nil {
			return nil, fmt.Errorf("postgres.connection.passwordFromSecret: %w", err)
		}
		kvRef = ref
	} else {
		var err error
		if pw, err = os.ReadFile(c.PasswordFile); err != nil {
			return nil, fmt.Errorf("postgres.connection.passwordFile: %w", err)
		}
	}
	u := url.URL{Scheme: "postgresql", Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), Path: "/" + c.Database,
		RawQuery: "sslmode=" + string(c.SSLMode)}
	db := &bootstrap.Database{
		Connection:    a.Namespace + "-" + a.Name,
		ConnectionURL: strings.Replace(u.String(), "postgresql://", "postgresql://{{username}}:{{password}}@", 1),
		Username:      c.Username, Password: strings.TrimRight(string(pw), "\r\n"), PasswordKV: kvRef,
	}
	for _, r := range a.Postgres.Roles {
		db.Roles = append(db.Roles, bootstrap.DBRole{Name: r.Name, DefaultTTL: r.DefaultTTL.Duration,
			MaxTTL: r.MaxTTL.Duration, CreationStatements: r.CreationStatements})
	}
	return db, nil
}

// secretRef resolves "<app>/<secret>#<key>" to the KV path of a secret this
// config manages.
func secretRef(cfg *config.Config, ref string) (*bootstrap.KVRef, error) {
	appName, secretName, key, err := config.ParseSecretRef(ref)
	if err != nil {
		return nil, err
	}
	for _, a := range cfg.Apps {
		if a.Name != appName {
			continue
		}
		for _, s := range a.Secrets {
			if s.Name == secretName && slices.Contains(s.Keys(), key) {
				return &bootstrap.KVRef{Path: a.KVPath(cfg.Vault.KVMount, s.Name), Key: key}, nil
			}
		}
	}
	return nil, fmt.Errorf("%q names no key of a secret in this config", ref)
}
