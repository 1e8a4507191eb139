package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// Names of what ConfigureKubernetesAuth creates in the cluster for Vault's
// TokenReview calls.
const (
	VaultNamespace        = "vault-system"
	VaultReviewerAccount  = "vault-token-reviewer"
	authDelegatorRole     = "system:auth-delegator"
	vaultKubernetesMount  = "kubernetes"
	vaultTokenAudience    = "vault"
	reviewerTokenLifetime = 24 * time.Hour
)

// Vault is a real Vault server on a free loopback port, either a dev server
// (in-memory storage, unsealed, root token chosen here) or a regular server
// with file storage that was initialised and unsealed here.
type Vault struct {
	// UnsealKey and RootToken come from init; for a dev server UnsealKey is
	// empty and RootToken is the one passed to -dev-root-token-id.
	UnsealKey string
	RootToken string
	// LogFile receives the server's output. It is kept after Stop so that a
	// failing test can read it.
	LogFile string
	// Dir holds the config and the file storage of a regular server; for a
	// dev server it holds only the log.
	Dir string
	// Raft makes a regular server use integrated storage (raft snapshots)
	// instead of file storage; set it before Start.
	Raft bool

	bin    string
	port   int
	dev    bool
	client *vaultapi.Client
	proc   *daemon
	// sealHCL is an extra seal stanza (auto-unseal); unmanaged servers are
	// left to the code under test to initialise and unseal.
	sealHCL   string
	env       []string
	unmanaged bool
}

// StartVaultDev starts `vault server -dev`. progress receives build messages
// (the first build of Vault takes minutes); it may be nil.
func StartVaultDev(ctx context.Context, progress io.Writer) (*Vault, error) {
	dir, err := os.MkdirTemp("", "blinkchamber-vault-dev-")
	if err != nil {
		return nil, fmt.Errorf("creating Vault log dir: %w", err)
	}
	return startVaultDevIn(ctx, progress, dir)
}

func startVaultDevIn(ctx context.Context, progress io.Writer, dir string) (*Vault, error) {
	v, err := newVault(ctx, progress, dir)
	if err != nil {
		return nil, err
	}
	v.dev = true
	if v.RootToken, err = randomHex(16); err != nil {
		return nil, err
	}
	if err := v.start(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// StartVault starts a regular (non-dev) server with file storage in
// dir/data, initialises it with one key share, unseals it and mounts KV v2
// at secret/, as bootstrap does on a fresh server. dir must not hold an
// initialised Vault: the keys of an earlier one are not known here.
func StartVault(ctx context.Context, progress io.Writer, dir string) (*Vault, error) {
	v, err := newVault(ctx, progress, dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("creating Vault storage dir: %w", err)
	}
	if err := os.WriteFile(v.configPath(), []byte(v.serverConfig()), 0o600); err != nil {
		return nil, fmt.Errorf("writing Vault config: %w", err)
	}
	if err := v.start(ctx); err != nil {
		return nil, err
	}
	if err := v.initialise(ctx); err != nil {
		_ = v.Stop() // the first error says what went wrong
		return nil, err
	}
	if err := v.mountKV(ctx); err != nil {
		_ = v.Stop()
		return nil, err
	}
	return v, nil
}

// StartVaultServer starts a regular server with file storage in dir/data
// and leaves it as a fresh installation would be: not initialised, sealed.
// It is for tests of code that initialises and unseals Vault (bootstrap).
// sealHCL, when not empty, is added to the config (an auto-unseal stanza).
func StartVaultServer(ctx context.Context, progress io.Writer, dir, sealHCL string) (*Vault, error) {
	v, err := NewVaultServer(ctx, progress, dir)
	if err != nil {
		return nil, err
	}
	return v, v.Start(ctx, sealHCL)
}

// NewVaultServer prepares an unmanaged server (see StartVaultServer) and
// chooses its port, without starting it: a test may need its address
// first (a config that names it).
func NewVaultServer(ctx context.Context, progress io.Writer, dir string) (*Vault, error) {
	v, err := newVault(ctx, progress, dir)
	if err != nil {
		return nil, err
	}
	v.unmanaged = true
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("creating Vault storage dir: %w", err)
	}
	return v, nil
}

// Start writes the server config (with sealHCL added) and starts a server
// made by NewVaultServer; env (KEY=value) is added to its environment, e.g.
// VAULT_TOKEN for a transit seal.
func (v *Vault) Start(ctx context.Context, sealHCL string, env ...string) error {
	v.sealHCL, v.env = sealHCL, env
	if err := os.WriteFile(v.configPath(), []byte(v.serverConfig()), 0o600); err != nil {
		return fmt.Errorf("writing Vault config: %w", err)
	}
	return v.start(ctx)
}

// VaultForTest starts a dev server for one test and stops it at cleanup; if
// the test failed, the end of the server's log is printed.
func VaultForTest(t testing.TB) *Vault {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute) // a cold build takes minutes
	defer cancel()
	v, err := startVaultDevIn(ctx, testWriter{t}, t.TempDir())
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() {
		if err := v.Stop(); err != nil {
			t.Errorf("stopping Vault: %v", err)
		}
		if t.Failed() {
			t.Log(logTail(v.LogFile, 4000))
		}
	})
	return v
}

func newVault(ctx context.Context, progress io.Writer, dir string) (*Vault, error) {
	repo, err := toolchain.RepoRoot()
	if err != nil {
		return nil, err
	}
	bin, err := toolchain.Vault.Ensure(ctx, repo, progress)
	if err != nil {
		return nil, err
	}
	port, err := freePortPair()
	if err != nil {
		return nil, fmt.Errorf("choosing a port for Vault: %w", err)
	}
	v := &Vault{bin: bin, port: port, Dir: dir, LogFile: filepath.Join(dir, "vault.log")}
	if v.client, err = newVaultClient(v.Addr()); err != nil {
		return nil, err
	}
	return v, nil
}

// freePortPair finds a free port whose successor is free too: Vault also
// listens on port+1 for cluster traffic, and a dev server cannot be told
// otherwise.
func freePortPair() (int, error) {
	for range 20 {
		port, err := FreePort()
		if err != nil {
			return 0, err
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		if err == nil {
			return port, l.Close()
		}
	}
	return 0, errors.New("no free pair of consecutive loopback ports in 20 tries")
}

// newVaultClient builds a client that ignores VAULT_* variables of the
// environment, which would otherwise point it elsewhere.
func newVaultClient(addr string) (*vaultapi.Client, error) {
	cfg := vaultapi.DefaultConfig()
	cfg.Address = addr
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("building Vault client: %w", err)
	}
	c.ClearToken()
	c.ClearNamespace()
	return c, nil
}

// Addr is the server's URL, http://127.0.0.1:<port>.
func (v *Vault) Addr() string { return "http://127.0.0.1:" + strconv.Itoa(v.port) }

// Client is a client holding the root token. Tests that need another token
// should Clone it.
func (v *Vault) Client() *vaultapi.Client { return v.client }

func (v *Vault) configPath() string { return filepath.Join(v.Dir, "vault.hcl") }

func (v *Vault) serverConfig() string {
	listen := "127.0.0.1:" + strconv.Itoa(v.port)
	storage := fmt.Sprintf("storage \"file\" {\n  path = %q\n}\n", filepath.Join(v.Dir, "data"))
	if v.Raft {
		// Integrated storage needs a cluster address: the port after the
		// API's, which freePortPair kept free.
		cluster := "127.0.0.1:" + strconv.Itoa(v.port+1)
		storage = fmt.Sprintf("storage \"raft\" {\n  path    = %q\n  node_id = \"node1\"\n}\ncluster_addr = %q\n",
			filepath.Join(v.Dir, "data"), "http://"+cluster)
	}
	return fmt.Sprintf(`%slistener "tcp" {
  address     = %q
  tls_disable = true
}
disable_mlock = true
api_addr      = %q
%s`, storage, listen, v.Addr(), v.sealHCL)
}

func (v *Vault) args() []string {
	if v.dev {
		return []string{"server", "-dev", "-dev-root-token-id=" + v.RootToken,
			"-dev-listen-address=127.0.0.1:" + strconv.Itoa(v.port)}
	}
	return []string{"server", "-config=" + v.configPath()}
}

// start runs the server process and waits until it answers sys/health (for
// a dev server: until it is unsealed and active).
func (v *Vault) start(ctx context.Context) error {
	// HOME points at Dir: a dev server stores its root token in
	// ~/.vault-token, which must not touch the real home.
	env := append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + v.Dir}, v.env...)
	proc, err := startDaemon(v.bin, v.args(), env, v.LogFile, nil)
	if err != nil {
		return err
	}
	v.proc = proc
	if v.dev {
		v.client.SetToken(v.RootToken)
	}
	if err := v.waitHealth(ctx, v.dev); err != nil {
		_ = v.Stop() // the health error already quotes the log
		return err
	}
	return nil
}

// waitHealth polls sys/health until the server answers and, when active is
// true, is initialised, unsealed and active.
func (v *Vault) waitHealth(ctx context.Context, active bool) error {
	poll, err := v.client.Clone()
	if err != nil {
		return fmt.Errorf("cloning Vault client: %w", err)
	}
	// Retries with backoff would only slow the polling down.
	poll.SetMaxRetries(0)
	var last error
	for {
		h, err := poll.Sys().HealthWithContext(ctx)
		switch {
		case err != nil:
			last = err
		case !active || h.Initialized && !h.Sealed && !h.Standby:
			return nil
		default:
			last = fmt.Errorf("initialized=%v sealed=%v standby=%v", h.Initialized, h.Sealed, h.Standby)
		}
		if !v.proc.running() {
			return v.proc.exitError()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Vault at %s not ready: %w (last: %v)\n%s", v.Addr(), ctx.Err(), last, logTail(v.LogFile, 3000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// initialise inits a fresh server with one key share and unseals it.
func (v *Vault) initialise(ctx context.Context) error {
	inited, err := v.client.Sys().InitStatusWithContext(ctx)
	if err != nil {
		return fmt.Errorf("reading Vault init status: %w", err)
	}
	if inited {
		return fmt.Errorf("Vault storage in %s is already initialised; its keys are unknown here", v.Dir)
	}
	resp, err := v.client.Sys().InitWithContext(ctx, &vaultapi.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return fmt.Errorf("initialising Vault: %w", err)
	}
	v.UnsealKey, v.RootToken = resp.Keys[0], resp.RootToken
	v.client.SetToken(v.RootToken)
	return v.unseal(ctx)
}

func (v *Vault) unseal(ctx context.Context) error {
	st, err := v.client.Sys().UnsealWithContext(ctx, v.UnsealKey)
	if err != nil {
		return fmt.Errorf("unsealing Vault: %w", err)
	}
	if st.Sealed {
		return fmt.Errorf("Vault still sealed after the unseal key (progress %d/%d)", st.Progress, st.T)
	}
	return v.waitHealth(ctx, true)
}

// mountKV mounts KV v2 at secret/, as a dev server has it, and waits until
// the mount serves requests: a new KV v2 mount upgrades itself in the
// background and refuses requests for a moment.
func (v *Vault) mountKV(ctx context.Context) error {
	err := v.client.Sys().MountWithContext(ctx, "secret", &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
	if err != nil {
		return fmt.Errorf("mounting KV v2 at secret/: %w", err)
	}
	for {
		_, err := v.client.Logical().ReadWithContext(ctx, "secret/config")
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("KV v2 at secret/ never became ready: %w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Sealed reports the server's seal status.
func (v *Vault) Sealed(ctx context.Context) (bool, error) {
	st, err := v.client.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return false, fmt.Errorf("reading Vault seal status: %w", err)
	}
	return st.Sealed, nil
}

// Stop ends the server with SIGTERM (Vault seals and exits) and waits for
// it; after 15 s it is killed. Calling it twice is harmless.
func (v *Vault) Stop() error {
	if v.proc == nil {
		return nil
	}
	return v.proc.stop(syscall.SIGTERM, 15*time.Second)
}

// Restart stops the server and starts it again on the same port with the
// same storage, and unseals a regular server with the kept key. A dev
// server comes back empty, as `vault server -dev` always does.
func (v *Vault) Restart(ctx context.Context) error {
	if err := v.Stop(); err != nil {
		return fmt.Errorf("restarting Vault: %w", err)
	}
	if err := v.start(ctx); err != nil {
		return fmt.Errorf("restarting Vault: %w", err)
	}
	if v.dev || v.unmanaged {
		return nil
	}
	return v.unseal(ctx)
}

// ConfigureKubernetesAuth points Vault's kubernetes auth method at k's API
// server: a ServiceAccount allowed to call TokenReview (ClusterRole
// system:auth-delegator) lends Vault a long-lived token for those calls.
// It is idempotent.
func (v *Vault) ConfigureKubernetesAuth(ctx context.Context, k *Kube) error {
	reviewerJWT, err := tokenReviewerJWT(ctx, k.Clientset)
	if err != nil {
		return err
	}
	if err := v.enableAuth(ctx, vaultKubernetesMount); err != nil {
		return err
	}
	_, err = v.client.Logical().WriteWithContext(ctx, "auth/"+vaultKubernetesMount+"/config", map[string]any{
		"kubernetes_host":    k.Config.Host,
		"kubernetes_ca_cert": string(k.Config.CAData),
		"token_reviewer_jwt": reviewerJWT,
		// Vault runs outside the cluster: there is no pod token of its own.
		"disable_local_ca_jwt": true,
	})
	if err != nil {
		return fmt.Errorf("writing auth/%s/config: %w", vaultKubernetesMount, err)
	}
	return nil
}

// AppRole writes policy name and a kubernetes auth role name bound to the
// ServiceAccount namespace/serviceAccount, for tokens with audience vault;
// the Vault tokens it issues live ttl and carry only that policy.
func (v *Vault) AppRole(ctx context.Context, name, namespace, serviceAccount string, policyHCL string, ttl time.Duration) error {
	if err := v.client.Sys().PutPolicyWithContext(ctx, name, policyHCL); err != nil {
		return fmt.Errorf("writing policy %s: %w", name, err)
	}
	_, err := v.client.Logical().WriteWithContext(ctx, "auth/"+vaultKubernetesMount+"/role/"+name, map[string]any{
		"bound_service_account_names":      []string{serviceAccount},
		"bound_service_account_namespaces": []string{namespace},
		"audience":                         vaultTokenAudience,
		"token_ttl":                        int(ttl.Seconds()),
		"token_policies":                   []string{name},
	})
	if err != nil {
		return fmt.Errorf("writing kubernetes auth role %s: %w", name, err)
	}
	return nil
}

// enableAuth enables an auth method of the same type as its path, unless
// it is already there.
func (v *Vault) enableAuth(ctx context.Context, path string) error {
	mounts, err := v.client.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("listing auth methods: %w", err)
	}
	if m, ok := mounts[path+"/"]; ok {
		if m.Type != path {
			return fmt.Errorf("auth/%s is a %s auth method, not %s", path, m.Type, path)
		}
		return nil
	}
	if err := v.client.Sys().EnableAuthWithOptionsWithContext(ctx, path, &vaultapi.EnableAuthOptions{Type: path}); err != nil {
		return fmt.Errorf("enabling auth/%s: %w", path, err)
	}
	return nil
}

// tokenReviewerJWT creates (or finds) the reviewer ServiceAccount and its
// binding and mints a token for it.
func tokenReviewerJWT(ctx context.Context, cs kubernetes.Interface) (string, error) {
	if err := ensureNamespace(ctx, cs, VaultNamespace); err != nil {
		return "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: VaultReviewerAccount, Namespace: VaultNamespace}}
	if _, err := cs.CoreV1().ServiceAccounts(VaultNamespace).Create(ctx, sa, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return "", fmt.Errorf("creating ServiceAccount %s/%s: %w", VaultNamespace, VaultReviewerAccount, err)
	}
	if err := ensureAuthDelegator(ctx, cs); err != nil {
		return "", err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: VaultReviewerAccount + "-auth-delegator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: authDelegatorRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: VaultReviewerAccount, Namespace: VaultNamespace}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return "", fmt.Errorf("creating ClusterRoleBinding %s: %w", binding.Name, err)
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(int64(reviewerTokenLifetime.Seconds())),
	}}
	tr, err := cs.CoreV1().ServiceAccounts(VaultNamespace).CreateToken(ctx, VaultReviewerAccount, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for %s/%s: %w", VaultNamespace, VaultReviewerAccount, err)
	}
	return tr.Status.Token, nil
}

// ensureAuthDelegator makes sure ClusterRole system:auth-delegator exists.
// A kube-apiserver with RBAC (envtest's default) bootstraps it; a server
// without the bootstrap policy gets the same rules here.
func ensureAuthDelegator(ctx context.Context, cs kubernetes.Interface) error {
	_, err := cs.RbacV1().ClusterRoles().Get(ctx, authDelegatorRole, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading ClusterRole %s: %w", authDelegatorRole, err)
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: authDelegatorRole},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
		},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("creating ClusterRole %s: %w", authDelegatorRole, err)
	}
	return nil
}

func ensureNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// TokensOfRole lists the accessors of the live tokens Vault issued to a
// kubernetes auth role (c must be allowed to list and look up accessors).
func TokensOfRole(ctx context.Context, c *vaultapi.Client, role string) ([]string, error) {
	list, err := c.Logical().ListWithContext(ctx, "auth/token/accessors")
	if err != nil {
		return nil, fmt.Errorf("listing token accessors: %w", err)
	}
	if list == nil {
		return nil, errors.New("listing token accessors: no answer")
	}
	var out []string
	keys, _ := list.Data["keys"].([]any)
	for _, k := range keys {
		acc, _ := k.(string)
		s, err := c.Auth().Token().LookupAccessorWithContext(ctx, acc)
		if err != nil || s == nil {
			continue // revoked or expired since the list
		}
		if meta, _ := s.Data["meta"].(map[string]any); meta != nil && meta["role"] == role {
			out = append(out, acc)
		}
	}
	return out, nil
}
