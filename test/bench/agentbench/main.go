// Command agentbench measures blinkchamber's agent against `vault agent`
// side by side: the same Vault, the same kubernetes auth role and token, the
// same templates and render interval, in the same run, so the ratios hold on
// a noisy shared machine. It writes a Markdown report.
package main

import (
	"context"
	"flag"
	"fmt"

	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/test/bench/report"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

type options struct {
	sizes    []int
	starts   int
	idle     time.Duration
	interval time.Duration
	out      string
}

func main() {
	o := options{}
	var sizes string
	flag.StringVar(&sizes, "sizes", "1,10", "numbers of secrets (one template each)")
	flag.IntVar(&o.starts, "starts", 5, "cold starts per agent and size (the median is reported)")
	flag.DurationVar(&o.idle, "idle", time.Minute, "idle window for CPU and Vault requests")
	flag.DurationVar(&o.interval, "render-interval", 5*time.Second, "static secret render interval, for both agents")
	flag.StringVar(&o.out, "out", "", "write the report as the \"agent\" section of this Markdown file as well as to stdout")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "-sizes: %q is not a positive number\n", s)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	crlog.SetLogger(logr.Discard())
	env, err := setup(ctx)
	if err != nil {
		return err
	}
	defer env.close()
	var rows []result
	for _, n := range o.sizes {
		if err := env.writeSecrets(ctx, n); err != nil {
			return err
		}
		for _, kind := range []agentKind{ours, vaultAgent} {
			r, err := env.measure(ctx, kind, n, o)
			if err != nil {
				return fmt.Errorf("%s with %d secrets: %w", kind, n, err)
			}
			rows = append(rows, r)
			fmt.Fprintf(os.Stderr, "%s, %d secrets: %+v\n", kind, n, r)
		}
	}
	text := render(o, rows, env.sizes())
	fmt.Print(text)
	if o.out != "" {
		return report.WriteSection(o.out, "agent", []byte(text))
	}
	return nil
}

// result is one agent at one size.
type result struct {
	kind          agentKind
	secrets       int
	firstRender   time.Duration // median of starts
	firstRenders  []time.Duration
	rssKiB        int64
	rssAnonKiB    int64
	cpuSeconds    float64
	vaultRequests int64
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func render(o options, rows []result, sizes map[string]int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Agent against `vault agent` (issue #3)\n\n")
	fmt.Fprintf(&b, "Command: `go run ./test/bench/agentbench -sizes %s -starts %d -idle %s -render-interval %s`  \n",
		joinInts(o.sizes), o.starts, o.idle, o.interval)
	fmt.Fprintf(&b, "Machine: %d cores, Go %s, %s. Same Vault (v1.21.0 dev server), same kubernetes auth role and TokenRequest token, same templates, same static render interval (%s) for both. Each agent talks to Vault through its own counting proxy.\n\n",
		runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format("2006-01-02"), o.interval)
	fmt.Fprintf(&b, "| secrets | agent | first render (median of %d) | RSS | RssAnon | CPU over %s idle | Vault requests in %s idle |\n|---|---|---|---|---|---|---|\n", o.starts, o.idle, o.idle)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %s | %.1f MiB | %.1f MiB | %.3f s | %d |\n", r.secrets, r.kind,
			r.firstRender.Round(time.Millisecond), float64(r.rssKiB)/1024, float64(r.rssAnonKiB)/1024, r.cpuSeconds, r.vaultRequests)
	}
	fmt.Fprintf(&b, "\nRatios (blinkchamber / vault agent; target in brackets):\n\n| secrets | RssAnon [<= 0.25] | RSS [<= 0.10] | first render [<= 0.50] | CPU idle | Vault requests idle |\n|---|---|---|---|---|---|\n")
	for i := 0; i+1 < len(rows); i += 2 {
		a, v := rows[i], rows[i+1]
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", a.secrets,
			ratio(float64(a.rssAnonKiB), float64(v.rssAnonKiB), 0.25), ratio(float64(a.rssKiB), float64(v.rssKiB), 0.10),
			ratio(a.firstRender.Seconds(), v.firstRender.Seconds(), 0.5), ratio(a.cpuSeconds, v.cpuSeconds, 0),
			ratio(float64(a.vaultRequests), float64(v.vaultRequests), 0))
	}
	fmt.Fprintf(&b, "\nBinary sizes (stripped, static): blinkchamber-agent %.1f MB [target <= 25 MB]; vault %.1f MB.\n",
		float64(sizes["agent"])/1e6, float64(sizes["vault"])/1e6)
	return b.String()
}

func ratio(a, b, target float64) string {
	if b == 0 {
		return "n/a"
	}
	r := a / b
	if target == 0 {
		return fmt.Sprintf("%.2f", r)
	}
	verdict := "met"
	if r > target {
		verdict = "MISSED"
	}
	return fmt.Sprintf("%.3f (%s)", r, verdict)
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
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
