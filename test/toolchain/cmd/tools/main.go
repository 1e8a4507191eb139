// Command tools builds (or finds in the cache) every real server that the
// tests and the demo need, and prints where each one is.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tools:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	repo, err := toolchain.RepoRoot()
	if err != nil {
		return err
	}
	for _, t := range toolchain.All {
		p, err := t.Ensure(ctx, repo, os.Stderr)
		if err != nil {
			return err
		}
		fmt.Printf("%-15s %-8s %s\n", t.Name, t.Version, p)
	}
	return nil
}
