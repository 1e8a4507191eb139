package e2e

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// TestBootstrapBackupRole: on a Vault with raft storage (as the chart runs
// it in staging and production), an app whose config grants vaultAccess
// raft-snapshot (the chart's vault-backup CronJob) logs in with its own
// ServiceAccount token and saves a snapshot; it can read nothing else, and
// an app without that grant cannot take a snapshot.
func TestBootstrapBackupRole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e := newBootEnv(t, ctx, "bak")
	// The same fresh server, switched to integrated storage before
	// anything is stored in it.
	if err := e.vault.Stop(); err != nil {
		t.Fatal(err)
	}
	e.vault.Raft = true
	if err := e.vault.Start(ctx, ""); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	backup := "  - name: vault-backup\n    namespace: bak-ops\n    vaultAccess: [raft-snapshot]\n"
	if err := os.WriteFile(e.config, append(cfg, backup...), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun(t, ctx, "bootstrap", "base", "vault", "secrets")

	snapshotter := appClient(t, ctx, e, "bak-ops", "vault-backup")
	var snap bytes.Buffer
	if err := snapshotter.Sys().RaftSnapshotWithContext(ctx, &snap); err != nil {
		t.Fatalf("the backup role could not take a raft snapshot: %v", err)
	}
	if snap.Len() < 1024 {
		t.Errorf("snapshot of %d bytes", snap.Len())
	}
	if _, err := snapshotter.Logical().ReadWithContext(ctx, "secret/data/bak-shop/shop/db"); !forbidden(err) {
		t.Errorf("the backup role read another app's secret: %v", err)
	}
	shop := appClient(t, ctx, e, "bak-shop", "shop")
	if err := shop.Sys().RaftSnapshotWithContext(ctx, &bytes.Buffer{}); !forbidden(err) {
		t.Errorf("an app without vaultAccess took a snapshot: %v", err)
	}
}

// appClient logs in to e's Vault as namespace/sa through kubernetes auth,
// with a TokenRequest token, as the app's agent would.
func appClient(t *testing.T, ctx context.Context, e *bootEnv, namespace, sa string) *vaultapi.Client {
	t.Helper()
	token := saToken(t, ctx, namespace, sa)
	c, err := e.vault.Client().Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	s, err := c.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{"role": sa, "jwt": token})
	if err != nil || s == nil || s.Auth == nil {
		t.Fatalf("login as %s/%s: %v", namespace, sa, err)
	}
	c.SetToken(s.Auth.ClientToken)
	return c
}

func forbidden(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}
