// Package harness starts the real servers that end-to-end tests and the demo
// talk to (etcd + kube-apiserver through envtest; Vault joins next), built
// from Go modules by package toolchain, all on loopback with free ports.
package harness

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// Kube is a running control plane: real etcd and kube-apiserver.
type Kube struct {
	env       *envtest.Environment
	Config    *rest.Config
	Client    client.Client
	Clientset kubernetes.Interface
}

// StartKube builds (or reuses) etcd and kube-apiserver and starts them.
// progress receives build messages; it may be nil.
func StartKube(ctx context.Context, progress io.Writer) (*Kube, error) {
	repo, err := toolchain.RepoRoot()
	if err != nil {
		return nil, err
	}
	etcd, err := toolchain.Etcd.Ensure(ctx, repo, progress)
	if err != nil {
		return nil, err
	}
	apiserver, err := toolchain.KubeAPIServer.Ensure(ctx, repo, progress)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{}
	// Generous start timeouts: on a 2-core machine running test packages in
	// parallel, several control planes may start at once.
	env.ControlPlane.Etcd = &envtest.Etcd{Path: etcd, StartTimeout: time.Minute}
	env.ControlPlane.APIServer = &envtest.APIServer{Path: apiserver, StartTimeout: 3 * time.Minute}
	// envtest turns ServiceAccount admission off; a real cluster has it on,
	// and it is what adds the default projected API token volume to pods.
	// Tests therefore create the ServiceAccounts their pods name.
	env.ControlPlane.APIServer.Configure().
		Disable("disable-admission-plugins").
		Set("enable-admission-plugins", "ServiceAccount", "MutatingAdmissionWebhook", "ValidatingAdmissionWebhook")
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	k := &Kube{env: env, Config: cfg}
	if k.Client, err = client.New(cfg, client.Options{}); err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("building client: %w", err)
	}
	if k.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("building clientset: %w", err)
	}
	return k, nil
}

// Stop ends the control plane and removes its data.
func (k *Kube) Stop() error { return k.env.Stop() }

// KubeForTest starts a control plane for one test (or one package, from
// TestMain) and stops it at cleanup. It fails, never skips: a missing binary
// is built.
func KubeForTest(t testing.TB) *Kube {
	t.Helper()
	k, err := StartKube(context.Background(), testWriter{t})
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() {
		if err := k.Stop(); err != nil {
			t.Errorf("stopping control plane: %v", err)
		}
	})
	return k
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// WriteKubeconfig writes a kubeconfig for the control plane's admin
// credentials, for commands run as separate processes.
func (k *Kube) WriteKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: k.Config.Host, CertificateAuthorityData: k.Config.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: k.Config.CertData, ClientKeyData: k.Config.KeyData, Token: k.Config.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	cfg.CurrentContext = "envtest"
	return clientcmd.WriteToFile(*cfg, path)
}
