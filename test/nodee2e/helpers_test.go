package nodee2e

import (
	"context"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"

	"github.com/blinkchamber/blinkchamber/test/stack"
)

const appsNS = stack.AppsNamespace

// The stack's helpers, failing the test on error.

func onboard(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	cfg, err := st.Onboard(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func serviceAccount(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if err := st.ServiceAccount(ctx, name); err != nil {
		t.Fatal(err)
	}
}

func waitEvent(t *testing.T, ctx context.Context, pod, what string, ok func(stack.Event) bool) stack.Event {
	t.Helper()
	e, err := st.WaitEvent(ctx, pod, what, ok)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func vaultClient(t *testing.T, ctx context.Context) *vaultapi.Client {
	t.Helper()
	vc, err := st.Vault(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return vc
}

func passwordDigest(t *testing.T, ctx context.Context, vc *vaultapi.Client, app string) string {
	t.Helper()
	d, err := stack.PasswordDigest(ctx, vc, app)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func runningPod(t *testing.T, ctx context.Context, name string) *corev1.Pod {
	t.Helper()
	p, err := st.ReadyPod(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
