package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/test/harness"
)

const (
	namespace = "soak"
	account   = "soak"
	role      = "soak"
)

// env is the real servers the fleet talks to.
type env struct {
	kube      *harness.Kube
	vault     *harness.Vault
	tokenFile string
}

func startEnv(ctx context.Context, o options, dir string) (*env, error) {
	k, err := harness.StartKube(ctx, os.Stderr)
	if err != nil {
		return nil, err
	}
	e := &env{kube: k}
	if e.vault, err = harness.StartVault(ctx, os.Stderr, filepath.Join(dir, "vault")); err != nil {
		return nil, errors.Join(err, e.stop())
	}
	if err := e.configure(ctx, o, dir); err != nil {
		return nil, errors.Join(err, e.stop())
	}
	return e, nil
}

// configure: kubernetes auth, a role whose tokens live tokenTTL (renewable
// up to three times that, so agents both renew and log in again), and a
// ServiceAccount token every agent logs in with.
func (e *env) configure(ctx context.Context, o options, dir string) error {
	if err := e.vault.ConfigureKubernetesAuth(ctx, e.kube); err != nil {
		return err
	}
	if err := e.kube.Namespace(ctx, namespace, false, account); err != nil {
		return err
	}
	c := e.vault.Client()
	policy := fmt.Sprintf(`path "secret/data/%s/*" { capabilities = ["read"] }`, namespace)
	if err := c.Sys().PutPolicyWithContext(ctx, role, policy); err != nil {
		return err
	}
	_, err := c.Logical().WriteWithContext(ctx, "auth/kubernetes/role/"+role, map[string]any{
		"bound_service_account_names":      []string{account},
		"bound_service_account_namespaces": []string{namespace},
		"audience":                         "vault",
		"token_ttl":                        int(o.tokenTTL.Seconds()),
		"token_max_ttl":                    int(3 * o.tokenTTL.Seconds()),
		"token_policies":                   []string{role},
	})
	if err != nil {
		return fmt.Errorf("writing the soak role: %w", err)
	}
	tr, err := e.kube.Clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, account, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}, ExpirationSeconds: ptr.To(int64(24 * 3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("minting the ServiceAccount token: %w", err)
	}
	e.tokenFile = filepath.Join(dir, "token")
	return os.WriteFile(e.tokenFile, []byte(tr.Status.Token), 0o600)
}

// put writes agent i's secret.
func (e *env) put(ctx context.Context, i int, value string) error {
	_, err := e.vault.Client().KVv2("secret").Put(ctx, secretPath(i), map[string]any{"value": value})
	return err
}

func secretPath(i int) string { return fmt.Sprintf("%s/agent-%d", namespace, i) }

func (e *env) stop() error {
	var errs []error
	if e.vault != nil {
		errs = append(errs, e.vault.Stop())
	}
	return errors.Join(append(errs, e.kube.Stop())...)
}
