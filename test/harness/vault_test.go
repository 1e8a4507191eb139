package harness

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestVaultDev(t *testing.T) {
	v := VaultForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // after a possible cold build
	defer cancel()

	if !strings.HasPrefix(v.Addr(), "http://127.0.0.1:") {
		t.Errorf("Addr() = %q", v.Addr())
	}
	if sealed, err := v.Sealed(ctx); err != nil || sealed {
		t.Fatalf("Sealed() = %v, %v; a dev server starts unsealed", sealed, err)
	}
	kv := v.Client().KVv2("secret")
	if _, err := kv.Put(ctx, "shop/app/db", map[string]any{"password": "s3cret"}); err != nil {
		t.Fatalf("KV v2 write: %v", err)
	}
	got, err := kv.Get(ctx, "shop/app/db")
	if err != nil {
		t.Fatalf("KV v2 read: %v", err)
	}
	if got.Data["password"] != "s3cret" {
		t.Errorf("read back %v", got.Data)
	}
}

func TestVaultKubernetesAuth(t *testing.T) {
	k := KubeForTest(t)
	v := VaultForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The claim that kube-apiserver bootstraps this role (so that
	// ensureAuthDelegator normally has nothing to do) is checked here.
	role, err := k.Clientset.RbacV1().ClusterRoles().Get(ctx, authDelegatorRole, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ClusterRole %s not bootstrapped by the API server: %v", authDelegatorRole, err)
	}
	if role.Annotations["rbac.authorization.kubernetes.io/autoupdate"] != "true" {
		t.Errorf("ClusterRole %s was not created by the RBAC bootstrap: %v", authDelegatorRole, role.Annotations)
	}
	for i := range 2 { // the second time shows it is idempotent
		if err := v.ConfigureKubernetesAuth(ctx, k); err != nil {
			t.Fatalf("ConfigureKubernetesAuth (call %d): %v", i+1, err)
		}
	}
	const policy = `path "secret/data/shop/app/*" { capabilities = ["read"] }`
	if err := v.AppRole(ctx, "shop-app", "shop", "app", policy, time.Hour); err != nil {
		t.Fatal(err)
	}
	kv := v.Client().KVv2("secret")
	for _, p := range []string{"shop/app/db", "shop/other/db"} {
		if _, err := kv.Put(ctx, p, map[string]any{"password": "pw-" + p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Namespace(ctx, "shop", false, "app"); err != nil {
		t.Fatal(err)
	}
	pod := createIdlePod(t, ctx, k, "shop", "app-0", "app")

	t.Run("pod token logs in and reads only its path", func(t *testing.T) {
		client := loginWithPodToken(t, ctx, v, k, pod, "vault", "shop-app")
		secret, err := client.KVv2("secret").Get(ctx, "shop/app/db")
		if err != nil {
			t.Fatalf("reading its own path: %v", err)
		}
		if secret.Data["password"] != "pw-shop/app/db" {
			t.Errorf("own secret = %v", secret.Data)
		}
		_, err = client.KVv2("secret").Get(ctx, "shop/other/db")
		if code := vaultStatus(err); code != http.StatusForbidden {
			t.Errorf("reading another path: status %d (%v), want 403", code, err)
		}
	})

	t.Run("token for another audience is refused", func(t *testing.T) {
		jwt := podToken(t, ctx, k, pod, "not-vault")
		_, err := v.Client().Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{"role": "shop-app", "jwt": jwt})
		if err == nil {
			t.Fatal("a token with audience not-vault logged in")
		}
		if vaultStatus(err) != http.StatusForbidden || !strings.Contains(err.Error(), "invalid audience") {
			t.Errorf("login error = %v, want 403 invalid audience", err)
		}
	})
}

func TestVaultServerInitAndRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute) // includes a cold build
	defer cancel()
	v, err := StartVault(ctx, testWriter{t}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Stop(); err != nil {
			t.Errorf("stopping Vault: %v", err)
		}
		if t.Failed() {
			t.Log(logTail(v.LogFile, 4000))
		}
	})
	if v.UnsealKey == "" || v.RootToken == "" {
		t.Fatalf("init left UnsealKey=%q RootToken set=%v", v.UnsealKey, v.RootToken != "")
	}
	kv := v.Client().KVv2("secret")
	if _, err := kv.Put(ctx, "persist/me", map[string]any{"k": "v1"}); err != nil {
		t.Fatalf("KV v2 write on a fresh server: %v", err)
	}
	oldPID := v.proc.cmd.Process.Pid

	if err := v.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if processAlive(oldPID) {
		t.Errorf("the first Vault process (pid %d) is still alive after Restart", oldPID)
	}
	if sealed, err := v.Sealed(ctx); err != nil || sealed {
		t.Fatalf("after Restart Sealed() = %v, %v", sealed, err)
	}
	got, err := kv.Get(ctx, "persist/me")
	if err != nil {
		t.Fatalf("reading after Restart: %v", err)
	}
	if got.Data["k"] != "v1" {
		t.Errorf("after Restart read %v", got.Data)
	}

	pid := v.proc.cmd.Process.Pid
	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Errorf("Vault (pid %d) still alive after Stop", pid)
	}
}

// createIdlePod creates a pod that will never run (there is no kubelet);
// it exists so that tokens can be bound to it.
func createIdlePod(t *testing.T, ctx context.Context, k *Kube, namespace, name, serviceAccount string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PodSpec{
			ServiceAccountName: serviceAccount,
			Containers:         []corev1.Container{{Name: "app", Image: "example/app:1.0"}},
		},
	}
	pod, err := k.Clientset.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s/%s: %v", namespace, name, err)
	}
	return pod
}

// podToken mints what the kubelet would project: a token for the pod's
// ServiceAccount, bound to the pod.
func podToken(t *testing.T, ctx context.Context, k *Kube, pod *corev1.Pod, audience string) string {
	t.Helper()
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{audience},
		ExpirationSeconds: ptr.To(int64(3600)),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	tr, err := k.Clientset.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", pod.Namespace, pod.Spec.ServiceAccountName, err)
	}
	return tr.Status.Token
}

// loginWithPodToken logs in as the pod would and checks what Vault granted.
func loginWithPodToken(t *testing.T, ctx context.Context, v *Vault, k *Kube, pod *corev1.Pod, audience, role string) *vaultapi.Client {
	t.Helper()
	client, err := v.Client().Clone() // a clone carries no token
	if err != nil {
		t.Fatal(err)
	}
	secret, err := client.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{
		"role": role, "jwt": podToken(t, ctx, k, pod, audience),
	})
	if err != nil {
		t.Fatalf("kubernetes login: %v", err)
	}
	auth := secret.Auth
	if auth == nil || auth.ClientToken == "" {
		t.Fatalf("login returned no token: %+v", secret)
	}
	if !slices.Contains(auth.TokenPolicies, role) || auth.LeaseDuration != 3600 {
		t.Errorf("login policies %v ttl %d, want [%s] and 3600", auth.TokenPolicies, auth.LeaseDuration, role)
	}
	if auth.Metadata["service_account_name"] != pod.Spec.ServiceAccountName || auth.Metadata["service_account_namespace"] != pod.Namespace {
		t.Errorf("login metadata = %v", auth.Metadata)
	}
	client.SetToken(auth.ClientToken)
	return client
}

func vaultStatus(err error) int {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}
