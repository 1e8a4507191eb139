// Command soak runs many agents for a long time against a real Vault and
// kube-apiserver, with short token TTLs and secrets rotating, and reports
// whether every rotation arrived and whether goroutines, descriptors or
// memory grew. It is `make soak`; CI does not run it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/test/harness"
)

type options struct {
	agents   int
	duration time.Duration
	rotate   time.Duration
	interval time.Duration
	tokenTTL time.Duration
	warmup   time.Duration
	sample   time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.agents, "agents", 200, "agent processes")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long they run")
	flag.DurationVar(&o.rotate, "rotate", 20*time.Second, "time between rotations of every agent's secret")
	flag.DurationVar(&o.interval, "render-interval", 5*time.Second, "the agents' render interval")
	flag.DurationVar(&o.tokenTTL, "token-ttl", 30*time.Second, "Vault token TTL (max TTL is three times this)")
	flag.DurationVar(&o.warmup, "warmup", time.Minute, "growth is measured from the first sample after this")
	flag.DurationVar(&o.sample, "sample", 30*time.Second, "time between /proc samples")
	flag.Parse()
	// controller-runtime, under the harness, wants a logger; its logs are noise here.
	crlog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	dir, err := os.MkdirTemp("", "blinkchamber-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "blinkchamber-agent")
	if err := harness.BuildAgent(ctx, bin); err != nil {
		return err
	}
	env, err := startEnv(ctx, o, dir)
	if err != nil {
		return err
	}
	defer env.stop()
	fleet, err := startFleet(ctx, o, env, bin, dir)
	defer fleet.stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "soak: %d agents up; running %s\n", o.agents, o.duration)
	res, err := soak(ctx, o, env, fleet)
	if err != nil {
		return err
	}
	res.write(out, o)
	if !res.ok() {
		return fmt.Errorf("the soak found a problem (see the table)")
	}
	return nil
}
