package nodee2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"

	"github.com/blinkchamber/blinkchamber/test/stack"
)

const appsNS = stack.AppsNamespace

// must fails the test on err; the stack's helpers return errors so that
// the demo can use them too.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// deploy runs tmpl as the Deployment name until the test ends.
func deploy(t *testing.T, ctx context.Context, name string, tmpl corev1.PodTemplateSpec) *corev1.Pod {
	t.Helper()
	t.Cleanup(func() { _ = st.DeleteDeployment(context.Background(), name, false) })
	pod, err := st.Deploy(ctx, name, tmpl)
	must(t, err)
	return pod
}

// fileEvent waits for the test app in container to report path as ok
// accepts it.
func fileEvent(t *testing.T, ctx context.Context, pod, container, path string, ok func(stack.Event) bool) stack.Event {
	t.Helper()
	e, err := st.WaitEventIn(ctx, pod, container, path, func(e stack.Event) bool {
		return e.Event == "file" && e.Path == path && ok(e)
	})
	must(t, err)
	return e
}

// put writes a KV secret of app, under the prefix its policy reads.
func put(t *testing.T, ctx context.Context, vc *vaultapi.Client, app, name string, data map[string]any) {
	t.Helper()
	_, err := vc.Logical().WriteWithContext(ctx, stack.KVSecretPath(app, name), map[string]any{"data": data})
	must(t, err)
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// randomSecret is a value long and random enough for the leak scan.
func randomSecret(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}
