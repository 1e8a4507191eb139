package e2e

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// TestBootstrapKilledAtEveryStep runs the real `blinkchamber bootstrap`
// against a fresh Vault with the crash hook set to 1: each run applies one
// change and SIGKILLs itself before reporting it or starting the next step.
// Rerunning it until it exits on its own interrupts it after every step in
// turn. Between runs the key store and the generated KV values are read:
// once written, neither may change (no key lost or replaced, no secret
// rotated). At the end a plain run changes nothing, Vault is unsealed, and
// no secret appears in any output, Event, annotation or argument list.
func TestBootstrapKilledAtEveryStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	e := newBootEnv(t, ctx, "crash")
	scan := harness.NewLeakScan(kube)
	scan.Processes("blinkchamber")
	kvPaths := []string{"crash-shop/shop/db", "crash-billing/billing/api"}

	var keys []string         // first key store content seen
	kv := map[string]string{} // path -> first generated value seen
	const maxRuns = 80        // far more than the plan's steps
	kills := 0
	for run := 1; ; run++ {
		if run > maxRuns {
			t.Fatalf("bootstrap did not converge in %d interrupted runs", maxRuns)
		}
		out, killed := e.runCrashing(t, ctx)
		if !killed {
			t.Logf("run %d completed after %d interrupted runs:\n%s", run, kills, out)
			break
		}
		kills++
		keys = assertKeysKept(t, e, keys, run)
		if keys != nil {
			assertKVKept(t, ctx, e, kvPaths, kv, run)
		}
	}
	if kills < 10 {
		t.Fatalf("only %d interrupted runs: the hook did not interrupt every step", kills)
	}
	if keys == nil || len(kv) != len(kvPaths) {
		t.Fatalf("after converging: keys stored %v, generated secrets %d of %d", keys != nil, len(kv), len(kvPaths))
	}
	out := e.mustRun(t, ctx, "bootstrap", "base", "vault", "secrets")
	if !strings.Contains(out, "done: 0 changed") {
		t.Errorf("a run after convergence changed something:\n%s", out)
	}
	assertKVKept(t, ctx, e, kvPaths, kv, kills+2)
	if sealed, err := e.vault.Sealed(ctx); err != nil || sealed {
		t.Errorf("Vault sealed=%v (%v) after convergence", sealed, err)
	}
	t.Logf("%d kills, one after each applied change; keys and %d generated secrets unchanged throughout", kills, len(kv))

	for i, k := range keys {
		scan.Secret("key store entry "+string(rune('A'+i)), k)
	}
	for p, v := range kv {
		for _, line := range strings.Split(v, "\n") {
			field, value, _ := strings.Cut(line, "=")
			scan.Secret("generated secret "+p+"#"+field, value)
		}
	}
	scan.Output("bootstrap output", &e.allOutput)
	scan.Namespaces("crash-shop", "crash-billing", "crash-system")
	if err := scan.Check(ctx); err != nil {
		t.Error(err)
	}
	if scan.Sampled() == 0 {
		t.Error("the leak scan never saw a blinkchamber process: its argument lists were not checked")
	}
}

// runCrashing runs bootstrap with the crash hook and reports whether it was
// killed by it.
func (e *bootEnv) runCrashing(t *testing.T, ctx context.Context) (string, bool) {
	t.Helper()
	cmd := exec.CommandContext(ctx, cliBinary(t), "--config", e.config, "--kubeconfig", e.kubeconfig, "bootstrap", "base", "vault", "secrets")
	cmd.Env = append(os.Environ(), bootstrap.CrashEnv+"=1")
	out, err := cmd.CombinedOutput()
	e.allOutput.Write(out)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), false
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return string(out), true
		}
	}
	t.Fatalf("bootstrap failed on its own (not killed by the hook): %v\n%s", err, out)
	return "", false
}

// assertKeysKept compares the key store with what was first stored; keys
// is nil until the store exists.
func assertKeysKept(t *testing.T, e *bootEnv, keys []string, run int) []string {
	t.Helper()
	if _, err := os.Stat(e.keys); errors.Is(err, os.ErrNotExist) {
		if keys != nil {
			t.Fatalf("run %d: the key store disappeared", run)
		}
		return nil
	}
	now := readKeys(t, e.keys)
	if keys != nil && strings.Join(now, ",") != strings.Join(keys, ",") {
		t.Fatalf("run %d: the unseal keys or root token changed", run)
	}
	return now
}

// assertKVKept reads every generated secret; one seen before must be the
// same.
func assertKVKept(t *testing.T, ctx context.Context, e *bootEnv, paths []string, seen map[string]string, run int) {
	t.Helper()
	if sealed, err := e.vault.Sealed(ctx); err != nil || sealed {
		return // nothing readable yet; the next run unseals
	}
	root := rootClient(t, e)
	for _, p := range paths {
		s, err := root.KVv2("secret").Get(ctx, p)
		if err != nil {
			continue // not written yet (or the mount is not there yet)
		}
		v := strings.TrimSpace(flatten(s.Data))
		if old, ok := seen[p]; ok && old != v {
			t.Fatalf("run %d: secret %s changed after an interrupted run", run, p)
		}
		seen[p] = v
	}
}

// flatten is the secret's data as "key=value" lines, in key order.
func flatten(data map[string]any) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(data)) {
		if s, ok := data[k].(string); ok {
			b.WriteString(k + "=" + s + "\n")
		}
	}
	return b.String()
}
