package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

const agentImage = "ghcr.io/blinkchamber/agent:demo"

// The demo's one secret value is fake and shown on purpose; the password
// generated for the rotation is masked like any real one would be.
const demoPassword = "demo-password-not-a-secret"

// buildAgent builds cmd/agent as the image would hold it.
func buildAgent(ctx context.Context) (string, func(), error) {
	repo, err := toolchain.RepoRoot()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "blinkchamber-demo-agent-")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, "blinkchamber-agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/agent")
	cmd.Dir, cmd.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building the agent: %w\n%s", err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// provisionVault does by hand what `blinkchamber bootstrap` will do:
// kubernetes auth against this API server, a read-only policy and a role for
// the app, and its secret.
func provisionVault(ctx context.Context, s *step, kube *harness.Kube, vault *harness.Vault) error {
	if err := vault.ConfigureKubernetesAuth(ctx, kube); err != nil {
		return err
	}
	policy := `path "secret/data/shop/shop/*" { capabilities = ["read"] }`
	if err := vault.AppRole(ctx, "shop", "shop", "shop", policy, time.Hour); err != nil {
		return err
	}
	if _, err := vault.Client().KVv2("secret").Put(ctx, "shop/shop/db", map[string]any{
		"username": "shop", "password": demoPassword,
	}); err != nil {
		return err
	}
	s.say("Vault: kubernetes auth trusts this API server; role shop (ServiceAccount shop/shop) may read secret/data/shop/shop/*; secret/data/shop/shop/db written")
	return nil
}

// runAgent runs the injected agent container as the kubelet would, shows
// the rendered files, rotates the secret and shows the change.
func runAgent(ctx context.Context, s *step, kube *harness.Kube, vault *harness.Vault, agentBin string) error {
	s.say("running pod shop/shop's injected agent with the kubelet shim (TokenRequest token, tmpfs volume, the container's own command and env)")
	run, err := kube.RunPod(ctx, "shop", "shop", harness.ShimOptions{Binaries: map[string]string{agentImage: agentBin}})
	if err != nil {
		return err
	}
	defer func() {
		s.say("stopping the pod's agent")
		_ = run.Stop()
	}()
	dir := run.VolumeDir(mutate.SecretsVolume)
	s.say("startup probe passed: the first render is complete; the app containers would start now")
	if err := showFiles(s, dir, ""); err != nil {
		return err
	}
	rotated := fmt.Sprintf("rotated-%d", time.Now().UnixNano())
	start := time.Now()
	if _, err := vault.Client().KVv2("secret").Put(ctx, "shop/shop/db", map[string]any{"username": "shop", "password": rotated}); err != nil {
		return err
	}
	s.say("rotated secret/data/shop/shop/db in Vault; waiting for the file to change (render interval 1s)")
	if err := waitContains(ctx, filepath.Join(dir, "db"), rotated, 10*time.Second); err != nil {
		return err
	}
	s.say("the agent rewrote the files %.1fs after the rotation:", time.Since(start).Seconds())
	return showFiles(s, dir, rotated)
}

func showFiles(s *step, dir, mask string) error {
	for _, name := range []string{"db", "db-url"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		text := strings.TrimRight(string(b), "\n")
		if mask != "" {
			text = strings.ReplaceAll(text, mask, "********")
		}
		s.say("  /blinkchamber/secrets/%s (mode %04o): %s", name, st.Mode().Perm(), strings.ReplaceAll(text, "\n", " | "))
	}
	return nil
}

func waitContains(ctx context.Context, path, want string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not change within %s", path, within)
}
