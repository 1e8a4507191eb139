// Command webhookbench measures the real injector, built as the Dockerfile
// builds it and run as its own process against a real kube-apiserver,
// serving AdmissionReviews over TLS on loopback: throughput and latency by
// pod size and concurrency, then RSS and goroutines over a long run. It also
// reports the stripped binaries' sizes. Both go to docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are every setting of a run, bound to flags and validated once.
type options struct {
	secrets         intList
	concurrency     intList
	duration        time.Duration
	warmup          time.Duration
	soak            time.Duration
	soakConcurrency int
	soakSecrets     int
	sampleEvery     time.Duration
	http2           bool
	injectorGOGC    string
	out             string
	plotDir         string
}

func defaultOptions() options {
	return options{
		secrets: intList{1, 3, 5, 20}, concurrency: intList{1, 16, 64},
		duration: 10 * time.Second, warmup: 2 * time.Second,
		soak: time.Minute, soakConcurrency: 16, soakSecrets: 3, sampleEvery: time.Second,
		http2: true,
	}
}

func (o *options) bind(fs *flag.FlagSet) {
	fs.Var(&o.secrets, "secrets", "comma-separated numbers of secrets per pod")
	fs.Var(&o.concurrency, "concurrency", "comma-separated numbers of requests in flight")
	fs.DurationVar(&o.duration, "duration", o.duration, "measured time per (secrets, concurrency) point")
	fs.DurationVar(&o.warmup, "warmup", o.warmup, "unmeasured load before each point")
	fs.DurationVar(&o.soak, "soak", o.soak, "length of the RSS and goroutine run (0 skips it)")
	fs.IntVar(&o.soakConcurrency, "soak-concurrency", o.soakConcurrency, "requests in flight during the soak run")
	fs.IntVar(&o.soakSecrets, "soak-secrets", o.soakSecrets, "secrets per pod during the soak run")
	fs.DurationVar(&o.sampleEvery, "sample-every", o.sampleEvery, "RSS and goroutine sampling period during the soak run")
	fs.BoolVar(&o.http2, "http2", o.http2, "speak HTTP/2 over one connection, as the kube-apiserver's webhook client does; false: HTTP/1.1, one kept-alive connection per worker")
	fs.StringVar(&o.injectorGOGC, "injector-gogc", o.injectorGOGC, "GOGC of the injector process (empty: the chart's injector.goGC)")
	fs.StringVar(&o.out, "out", o.out, "also write the \"webhook\" and \"sizes\" sections of this Markdown file")
	fs.StringVar(&o.plotDir, "plot-dir", o.plotDir, "directory for the latency/throughput PNG (empty: no plot)")
}

// errOptions is wrapped by every validation error.
var errOptions = errors.New("invalid webhookbench options")

func (o options) validate() error {
	var errs []error
	bad := func(flagName, format string, a ...any) {
		errs = append(errs, fmt.Errorf("-%s: %s", flagName, fmt.Sprintf(format, a...)))
	}
	if len(o.secrets) == 0 {
		bad("secrets", "needs at least one number")
	}
	for _, n := range o.secrets {
		if n < 1 || n > 100 {
			bad("secrets", "%d must be between 1 and 100", n)
		}
	}
	if len(o.concurrency) == 0 {
		bad("concurrency", "needs at least one number")
	}
	for _, n := range o.concurrency {
		if n < 1 || n > 1024 {
			bad("concurrency", "%d must be between 1 and 1024", n)
		}
	}
	if o.duration < time.Second {
		bad("duration", "%s is shorter than 1s", o.duration)
	}
	if o.warmup < 0 {
		bad("warmup", "%s is negative", o.warmup)
	}
	if o.soak < 0 {
		bad("soak", "%s is negative", o.soak)
	}
	if o.soak > 0 {
		if o.soakConcurrency < 1 || o.soakConcurrency > 1024 {
			bad("soak-concurrency", "%d must be between 1 and 1024", o.soakConcurrency)
		}
		if o.soakSecrets < 1 || o.soakSecrets > 100 {
			bad("soak-secrets", "%d must be between 1 and 100", o.soakSecrets)
		}
		if o.sampleEvery < 100*time.Millisecond || o.sampleEvery > o.soak/4 {
			bad("sample-every", "%s must be at least 100ms and at most a quarter of -soak", o.sampleEvery)
		}
	}
	if o.injectorGOGC != "" && o.injectorGOGC != "off" {
		if n, err := strconv.Atoi(o.injectorGOGC); err != nil || n < 1 {
			bad("injector-gogc", "%q must be a positive percentage or off", o.injectorGOGC)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", errOptions, errors.Join(errs...))
	}
	return nil
}

// intList is a comma-separated list of integers.
type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, n := range *l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	*l = nil
	for _, part := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("%q is not a number", part)
		}
		*l = append(*l, n)
	}
	return nil
}

func main() {
	o := defaultOptions()
	fs := flag.NewFlagSet("webhookbench", flag.ContinueOnError)
	o.bind(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, strings.Join(os.Args[1:], " ")); err != nil {
		fmt.Fprintln(os.Stderr, "webhookbench:", err)
		os.Exit(1)
	}
}
