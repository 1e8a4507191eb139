package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/test/bench/report"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// results is everything one run measured.
type results struct {
	args             string
	http2            bool
	loadBefore       string
	loadAfter        string
	points           []point
	soak             *soakResult
	sizes            []binarySize
	vault            binarySize
	bench            []benchLine
	shares           []share
	runtimeEnv       []string // the injector's GOGC and GOMEMLIMIT
	reference        []point  // the decode-only webhook, target pod
	servedShares     []share  // profile of the served injector at the target point
	started, stopped time.Time
}

func run(ctx context.Context, o options, args string) error {
	crlog.SetLogger(logr.Discard())
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "webhookbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res := results{args: args, http2: o.http2}
	if res.runtimeEnv, err = runtimeEnv(repo, o.injectorGOGC); err != nil {
		return err
	}
	if res.sizes, res.vault, err = sizes(ctx, repo, dir); err != nil {
		return err
	}
	if res.bench, res.shares, err = inProcess(ctx, repo, dir, res.runtimeEnv); err != nil {
		return err
	}
	kube, err := harness.StartKube(ctx, os.Stderr)
	if err != nil {
		return err
	}
	defer func() { _ = kube.Stop() }()
	s, err := startInjector(ctx, filepath.Join(dir, "blinkchamber-injector"), dir, kube, res.runtimeEnv)
	if err != nil {
		return err
	}
	defer func() { _ = s.stop() }()
	ref, err := startReference(ctx, s, o, dir, res.runtimeEnv)
	if err != nil {
		return fmt.Errorf("decode-only reference: %w", err)
	}
	defer func() { _ = ref.stop() }()
	if err := measure(ctx, s, ref, o, &res); err != nil {
		return fmt.Errorf("%w (injector log: %s, decode-only log: %s)", err, s.logPath, ref.logPath)
	}
	return write(o, res)
}

// sizes builds the three programs and weighs them against Vault's binary.
func sizes(ctx context.Context, repo, dir string) ([]binarySize, binarySize, error) {
	bins, err := build(ctx, repo, dir)
	if err != nil {
		return nil, binarySize{}, err
	}
	var out []binarySize
	for _, b := range []struct{ name, path string }{
		{"blinkchamber-injector", bins.injector}, {"blinkchamber-agent", bins.agent}, {"blinkchamber (CLI)", bins.cli},
	} {
		s, err := measureSize(b.name, b.path)
		if err != nil {
			return nil, binarySize{}, err
		}
		out = append(out, s)
	}
	vaultBin, err := toolchain.Vault.Ensure(ctx, repo, os.Stderr)
	if err != nil {
		return nil, binarySize{}, err
	}
	v, err := measureSize("vault", vaultBin)
	return out, v, err
}

// measure runs every point, then the soak run. Each point of the target
// pod is followed at once by the same point against the decode-only
// webhook ref, so that both see the same load from other work.
func measure(ctx context.Context, s, ref *served, o options, res *results) error {
	conns := slices.Max(append([]int{o.soakConcurrency}, o.concurrency...))
	c, err := s.client(conns, o.http2)
	if err != nil {
		return err
	}
	rc, err := ref.client(conns, o.http2)
	if err != nil {
		return err
	}
	res.started, res.loadBefore = time.Now(), loadAvg()
	pid := s.cmd.Process.Pid
	for _, n := range o.secrets {
		r, err := newRequest(n)
		if err != nil {
			return err
		}
		for _, conc := range o.concurrency {
			rn, err := drive(ctx, c, s.url, r, conc, o.warmup, o.duration, pid)
			if err != nil {
				return fmt.Errorf("%d secrets at concurrency %d: %w", n, conc, err)
			}
			p := summarize(n, conc, rn)
			res.points = append(res.points, p)
			fmt.Fprintf(os.Stderr, "secrets=%d conc=%d: %.0f/s p50 %s p99 %s cpu/adm %s\n", n, conc, p.throughput, p.p50, p.p99, p.cpuPerAdmission)
			if n != targetSecrets {
				continue
			}
			rn, err = drive(ctx, rc, ref.url, r, conc, o.warmup, o.duration, ref.cmd.Process.Pid)
			if err != nil {
				return fmt.Errorf("decode-only webhook at concurrency %d: %w", conc, err)
			}
			p = summarize(n, conc, rn)
			res.reference = append(res.reference, p)
			fmt.Fprintf(os.Stderr, "decode-only conc=%d: %.0f/s p99 %s cpu/adm %s\n", conc, p.throughput, p.p99, p.cpuPerAdmission)
		}
	}
	if res.servedShares, err = servedProfile(ctx, c, s, s.cmd.Path, filepath.Dir(s.logPath), o.warmup, o.duration); err != nil {
		return err
	}
	if o.soak > 0 {
		r, err := newRequest(o.soakSecrets)
		if err != nil {
			return err
		}
		sr, err := soak(ctx, c, s, r, o)
		if err != nil {
			return fmt.Errorf("soak run: %w", err)
		}
		res.soak = &sr
		f := sr.flatness()
		fmt.Fprintf(os.Stderr, "soak: %.0f/s, RSS %d -> %d KiB, goroutines %d -> %d\n", sr.point.throughput, f.firstRSS, f.lastRSS, f.firstG, f.lastG)
	}
	res.stopped, res.loadAfter = time.Now(), loadAvg()
	return nil
}

// startReference starts the decode-only webhook, answering with the
// injector's own answer to the target review.
func startReference(ctx context.Context, inj *served, o options, dir string, runtime []string) (*served, error) {
	r, err := newRequest(targetSecrets)
	if err != nil {
		return nil, err
	}
	c, err := inj.client(1, o.http2)
	if err != nil {
		return nil, err
	}
	answer, err := post(ctx, c, inj.url, r.body)
	if err != nil {
		return nil, err
	}
	return startDecodeOnly(ctx, filepath.Join(dir, "decodeonly"), dir, inj.caPEM, answer, runtime)
}

func write(o options, res results) error {
	if o.plotDir != "" {
		if err := writePlots(o.plotDir, res.points, o.secrets); err != nil {
			return err
		}
	}
	webhook, sizesText := renderWebhook(o, res), renderSizes(res.sizes, res.vault)
	fmt.Print(webhook, "\n", sizesText)
	if o.out == "" {
		return nil
	}
	if err := report.WriteSection(o.out, "webhook", []byte(webhook)); err != nil {
		return err
	}
	return report.WriteSection(o.out, "sizes", []byte(sizesText))
}
