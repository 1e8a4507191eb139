// Command agentbench measures blinkchamber's agent against `vault agent`
// side by side (issue #6): the same Vault, the same kubernetes auth role and
// token, the same templates and render interval, in the same run, so the
// ratios hold on a noisy shared machine. It writes a Markdown report and
// PNG plots.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/test/bench/report"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// options are the flags; the defaults reproduce the published figures.
type options struct {
	sizes             []int
	starts            int
	replicas          int
	idle              time.Duration
	interval          time.Duration
	rotationIntervals []time.Duration
	rotations         int
	out               string
	plots             string
}

func parseOptions(args []string) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("agentbench", flag.ContinueOnError)
	sizes := fs.String("sizes", "1,10,50", "numbers of secrets (one template each)")
	fs.IntVar(&o.starts, "starts", 20, "starts per agent and size timed to the first render (the median is reported)")
	fs.IntVar(&o.replicas, "replicas", 3, "processes per agent and size through the idle window (the median is reported)")
	fs.DurationVar(&o.idle, "idle", 5*time.Minute, "idle window for memory, CPU and Vault requests")
	fs.DurationVar(&o.interval, "render-interval", 5*time.Second, "static secret render interval for the first-render and idle runs, for both agents")
	rotIntervals := fs.String("rotation-intervals", "1s,5s", "render intervals at which rotation latency is measured")
	fs.IntVar(&o.rotations, "rotations", 50, "KV v2 writes per rotation interval")
	fs.StringVar(&o.out, "out", "", "write the report as the \"agent\" section of this Markdown file as well as to stdout")
	fs.StringVar(&o.plots, "plots", "", "directory for the PNG plots (default: benchmarks/ beside -out)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	for _, s := range strings.Split(*sizes, ",") {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("-sizes: %q is not a positive number", s))
			continue
		}
		o.sizes = append(o.sizes, n)
	}
	for _, s := range strings.Split(*rotIntervals, ",") {
		d, err := time.ParseDuration(s)
		if err != nil || d < agent.MinRenderInterval {
			errs = append(errs, fmt.Errorf("-rotation-intervals: %q is not a duration of at least %s", s, agent.MinRenderInterval))
			continue
		}
		o.rotationIntervals = append(o.rotationIntervals, d)
	}
	if o.interval < agent.MinRenderInterval {
		errs = append(errs, fmt.Errorf("-render-interval: %s is below the agent's minimum %s", o.interval, agent.MinRenderInterval))
	}
	for name, n := range map[string]int{"-starts": o.starts, "-replicas": o.replicas, "-rotations": o.rotations} {
		if n < 1 {
			errs = append(errs, fmt.Errorf("%s: %d is not a positive number", name, n))
		}
	}
	if o.idle < time.Second {
		errs = append(errs, fmt.Errorf("-idle: %s is shorter than a second", o.idle))
	}
	if o.plots == "" && o.out != "" {
		o.plots = filepath.Join(filepath.Dir(o.out), "benchmarks")
	}
	return o, errors.Join(errs...)
}

func main() {
	o, err := parseOptions(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
}

// results is everything one run measured.
type results struct {
	machine   machine
	firsts    map[key][]time.Duration
	phases    map[int][]phases // blinkchamber-agent's first renders split by its log
	idle      map[key][]idleRun
	rotations []rotation
	sizes     map[string]int64 // binary sizes
	outTmpfs  bool             // files rendered to a tmpfs
}

func run(ctx context.Context, o options) error {
	crlog.SetLogger(logr.Discard())
	res := results{machine: readMachine()}
	// Read before the build, which is what it describes.
	res.machine.agentSource = agentSource(ctx)
	env, err := setup(ctx)
	if err != nil {
		return err
	}
	defer env.close()
	res.machine.vault, res.outTmpfs = env.vaultVersion(ctx), env.outTmpfs
	if err := env.writeSecrets(ctx, slices.Max(o.sizes)); err != nil {
		return err
	}
	if res.firsts, res.phases, err = env.firstRenders(ctx, o); err != nil {
		return err
	}
	if res.idle, err = env.idle(ctx, o); err != nil {
		return err
	}
	for _, d := range o.rotationIntervals {
		r, err := env.rotations(ctx, d, o)
		if err != nil {
			return fmt.Errorf("rotation at %s: %w", d, err)
		}
		res.rotations = append(res.rotations, r)
	}
	res.sizes = env.sizes()
	res.machine.loadEnd = loadAverage()
	var figs []figure
	if o.plots != "" {
		if figs, err = writePlots(o.plots, o, res); err != nil {
			return err
		}
	}
	text := markdown(o, res, figs)
	fmt.Print(text)
	if o.out != "" {
		return report.WriteSection(o.out, "agent", []byte(text))
	}
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format(time.TimeOnly)+" "+format+"\n", args...)
}

func repoRoot() string {
	r, err := toolchain.RepoRoot()
	if err != nil {
		return "."
	}
	return r
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// allWritten reports whether every destination holds a non-empty file.
func allWritten(dir string, n int) bool {
	for i := range n {
		st, err := os.Stat(filepath.Join(dir, secretName(i)))
		if err != nil || st.Size() == 0 {
			return false
		}
	}
	return true
}

func secretName(i int) string { return fmt.Sprintf("s%02d", i) }
