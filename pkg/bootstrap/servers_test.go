package bootstrap_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/blinkchamber/blinkchamber/test/harness"
)

// kubeAndVault starts an API server and an uninitialised Vault server (file
// storage) for one test, and returns them with a directory of the test's.
func kubeAndVault(t *testing.T, ctx context.Context) (*harness.Kube, *harness.Vault, string) {
	t.Helper()
	kube := harness.KubeForTest(t)
	dir := t.TempDir()
	v, err := harness.StartVaultServer(ctx, os.Stderr, filepath.Join(dir, "vault"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Stop() })
	return kube, v, dir
}
