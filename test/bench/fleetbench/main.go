// Command fleetbench starts fleets of blinkchamber agents (10, 100, 500
// real processes by default) against one real Vault and one real
// kube-apiserver, each agent with its own pod object and its own
// TokenRequest token bound to that pod, and measures how long until every
// agent has rendered, what Vault and the API server spend on it, Vault's
// request rate while the fleet starts and at idle, and the fleet's memory.
// It writes the "fleet" section of docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
)

// options are the command's flags, validated once.
type options struct {
	sizes    []int
	secrets  int
	interval time.Duration
	tokenTTL time.Duration
	settle   time.Duration
	idle     time.Duration
	timeout  time.Duration
	out      string
	plot     string
	// agentSrc is a checkout to build the agent from, to compare versions.
	agentSrc string
}

const maxFleet = 2000

// errOption marks a bad flag value.
var errOption = errors.New("invalid option")

func (o *options) bind(fs *flag.FlagSet) *string {
	sizes := fs.String("sizes", "10,100,500", "fleet sizes to run, one after the other")
	fs.IntVar(&o.secrets, "secrets", 1, "KV secrets (one template each) per agent")
	fs.DurationVar(&o.interval, "render-interval", 5*time.Second, "the agents' static secret re-read interval")
	fs.DurationVar(&o.tokenTTL, "token-ttl", time.Hour, "TTL of the Vault tokens the agents log in for")
	fs.DurationVar(&o.settle, "settle", 5*time.Second, "wait after the last render before the idle window opens")
	fs.DurationVar(&o.idle, "idle", time.Minute, "idle window for Vault CPU and request rate")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up when a fleet has not rendered within this")
	fs.StringVar(&o.out, "out", "", "write the report as the \"fleet\" section of this Markdown file as well as to stdout")
	fs.StringVar(&o.plot, "plot", "", "write a PNG plot of time to all rendered and Vault CPU against fleet size here")
	fs.StringVar(&o.agentSrc, "agent-src", "", "build cmd/agent from this checkout instead of this repository (to compare versions)")
	return sizes
}

// parseSizes reads "-sizes 10,100,500".
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxFleet {
			return nil, fmt.Errorf("%w: -sizes: %q is not a fleet size between 1 and %d", errOption, f, maxFleet)
		}
		out = append(out, n)
	}
	return out, nil
}

func (o *options) validate() error {
	var errs []error
	if o.secrets < 1 || o.secrets > 100 {
		errs = append(errs, fmt.Errorf("%w: -secrets %d: must be between 1 and 100", errOption, o.secrets))
	}
	if o.interval < agent.MinRenderInterval || o.interval > agent.MaxRenderInterval {
		errs = append(errs, fmt.Errorf("%w: -render-interval %s: the agent accepts %s to %s", errOption, o.interval, agent.MinRenderInterval, agent.MaxRenderInterval))
	}
	if o.tokenTTL < time.Minute {
		errs = append(errs, fmt.Errorf("%w: -token-ttl %s: must be at least 1m", errOption, o.tokenTTL))
	}
	if o.settle < 0 {
		errs = append(errs, fmt.Errorf("%w: -settle %s: must not be negative", errOption, o.settle))
	}
	// The idle spread is counted in 1 s windows over several intervals.
	if o.idle < 2*o.interval || o.idle < 10*time.Second {
		errs = append(errs, fmt.Errorf("%w: -idle %s: must be at least 10s and two render intervals", errOption, o.idle))
	}
	if o.timeout < 10*time.Second {
		errs = append(errs, fmt.Errorf("%w: -timeout %s: must be at least 10s", errOption, o.timeout))
	}
	if o.plot != "" && !strings.HasSuffix(o.plot, ".png") {
		errs = append(errs, fmt.Errorf("%w: -plot %q: must name a .png file", errOption, o.plot))
	}
	if o.agentSrc != "" {
		if _, err := os.Stat(filepath.Join(o.agentSrc, "cmd", "agent", "main.go")); err != nil {
			errs = append(errs, fmt.Errorf("%w: -agent-src %q: not a checkout with cmd/agent: %w", errOption, o.agentSrc, err))
		}
	}
	return errors.Join(errs...)
}

func main() {
	var o options
	fs := flag.NewFlagSet("fleetbench", flag.ExitOnError)
	sizes := o.bind(fs)
	_ = fs.Parse(os.Args[1:])
	var err error
	if o.sizes, err = parseSizes(*sizes); err == nil {
		err = o.validate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		os.Exit(1)
	}
}
