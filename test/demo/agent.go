package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/config"
	"github.com/blinkchamber/blinkchamber/pkg/cli"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

const agentImage = "ghcr.io/blinkchamber/agent:demo"

// demoValue is the one value the demo shows unmasked: examples/demo.yaml
// sets it as a literal so that a reader can see a file's real content.
const demoValue = "demo-value-not-a-secret"

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

// bootstrapper runs the blinkchamber command in-process against the demo's
// servers, with examples/demo.yaml pointed at them.
type bootstrapper struct {
	config, kubeconfig string
	keys               string
}

func newBootstrapper(work string, kube *harness.Kube, vault *harness.Vault) (*bootstrapper, error) {
	repo, err := toolchain.RepoRoot()
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(filepath.Join(repo, "examples", "demo.yaml"))
	if err != nil {
		return nil, err
	}
	b := &bootstrapper{config: filepath.Join(work, "blinkchamber.yaml"), kubeconfig: filepath.Join(work, "kubeconfig"),
		keys: filepath.Join(work, "keys", "vault-keys.json")}
	cfg.Vault.Address = vault.Addr()
	cfg.Vault.Seal.Shamir.KeyStore.Path = b.keys
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(b.config, out, 0o600); err != nil {
		return nil, err
	}
	return b, kube.WriteKubeconfig(b.kubeconfig)
}

func (b *bootstrapper) run(out io.Writer, args ...string) error {
	full := append([]string{"--config", b.config, "--kubeconfig", b.kubeconfig}, args...)
	if code := cli.Main(full, indent{out}, indent{out}); code != 0 {
		return fmt.Errorf("blinkchamber %s exited %d", strings.Join(args, " "), code)
	}
	return nil
}

// indent prefixes the command's lines so they read as its output.
type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	text := strings.TrimRight(string(p), "\n")
	_, err := fmt.Fprintln(i.w, "          | "+strings.ReplaceAll(text, "\n", "\n          | "))
	return len(p), err
}

// runAgent runs the injected agent container as the kubelet would, shows
// the rendered files, rotates the secret and shows the change.
func runAgent(ctx context.Context, s *step, kube *harness.Kube, boot *bootstrapper, agentBin string) error {
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
	before, err := showFiles(s, dir)
	if err != nil {
		return err
	}
	start := time.Now()
	s.say("running: blinkchamber secrets rotate shop/db")
	if err := boot.run(s.out, "secrets", "rotate", "shop/db"); err != nil {
		return err
	}
	if err := waitChange(ctx, filepath.Join(dir, "db"), before, 10*time.Second); err != nil {
		return err
	}
	s.say("the agent rewrote the files %.1fs after the rotation (render interval 1s):", time.Since(start).Seconds())
	_, err = showFiles(s, dir)
	return err
}

// showFiles prints the rendered files with every value masked but the demo
// value, and returns the db file's content.
func showFiles(s *step, dir string) (string, error) {
	var db string
	for _, name := range []string{"db", "db-url"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		if name == "db" {
			db = string(b)
		}
		s.say("  /blinkchamber/secrets/%s (mode %04o, %d bytes): %s", name, st.Mode().Perm(), len(b), mask(string(b)))
	}
	return db, nil
}

// mask hides every value except the demo's fake one and the username.
func mask(text string) string {
	var out []string
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		switch {
		case ok && (v == demoValue || k == "username"):
			out = append(out, line)
		case ok:
			// A short fingerprint shows that a value changed without showing it.
			sum := sha256.Sum256([]byte(v))
			out = append(out, fmt.Sprintf("%s: ******** (%d characters, sha256 %x...)", k, len(v), sum[:3]))
		default:
			out = append(out, "******** (masked)")
		}
	}
	return strings.Join(out, " | ")
}

func waitChange(ctx context.Context, path, before string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && string(b) != before {
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
