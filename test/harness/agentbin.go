package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// BuildAgent builds cmd/agent into out as the Dockerfile does: static and
// stripped.
func BuildAgent(ctx context.Context, out string) error {
	repo, err := toolchain.RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/agent")
	cmd.Dir, cmd.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the agent: %w\n%s", err, b)
	}
	return nil
}
