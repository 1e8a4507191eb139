package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// benchLine is one line of `go test -bench` output: the sub-benchmark and
// its metrics by unit (ns/op, cpu-ns/op, B/op, allocs/op).
type benchLine struct {
	name    string
	metrics map[string]float64
}

// share is one function's cumulative part of the profiled admission.
type share struct {
	label, function string
	percent         float64
}

// profiled are the functions whose shares the report gives; together they
// say where one admission's CPU goes.
var profiled = []share{
	{label: "review and pod decode, one pass", function: "github.com/blinkchamber/blinkchamber/pkg/injector.readReview"},
	{label: "mutation (pkg/mutate.Mutate)", function: "github.com/blinkchamber/blinkchamber/pkg/mutate.Mutate"},
	{label: "of which the agent config check", function: "github.com/blinkchamber/blinkchamber/pkg/agent.(*Config).Validate"},
	{label: "JSON patch, all of it: both pods' changed fields to JSON, then the diff", function: "github.com/blinkchamber/blinkchamber/pkg/injector.podPatch"},
	{label: "of which emptying the unchanged fields", function: "github.com/blinkchamber/blinkchamber/pkg/injector.emptyEqual"},
	{label: "of which controller-runtime's diff", function: "gomodules.xyz/jsonpatch/v2.CreatePatch"},
	{label: "patch operations to JSON", function: "sigs.k8s.io/controller-runtime/pkg/webhook/admission.(*Response).Complete"},
	{label: "answer written", function: "github.com/blinkchamber/blinkchamber/pkg/injector.writeReview"},
	{label: "garbage collector, background", function: "runtime.gcBgMarkWorker"},
}

// inProcess runs BenchmarkAdmission (one admission without TLS or
// sockets) for every size, then profiles the size the comparison uses,
// with the injector's runtime settings in the environment.
func inProcess(ctx context.Context, repo, dir string, runtimeEnv []string) ([]benchLine, []share, error) {
	bin := filepath.Join(dir, "injector.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, "./pkg/injector")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("building the injector's benchmark: %w\n%s", err, out)
	}
	bench := exec.CommandContext(ctx, bin, "-test.run", "^$", "-test.bench", "^BenchmarkAdmission$",
		"-test.benchmem", "-test.benchtime", "2000x")
	bench.Env = append(os.Environ(), runtimeEnv...)
	out, err := bench.CombinedOutput()
	if err != nil {
		return nil, nil, fmt.Errorf("BenchmarkAdmission: %w\n%s", err, out)
	}
	lines := parseBench(string(out))
	if len(lines) == 0 {
		return nil, nil, fmt.Errorf("BenchmarkAdmission printed no results:\n%s", out)
	}
	profile := filepath.Join(dir, "cpu.out")
	prof := exec.CommandContext(ctx, bin, "-test.run", "^$", "-test.bench", fmt.Sprintf("^BenchmarkAdmission$/^secrets=%d$", targetSecrets),
		"-test.benchtime", "4000x", "-test.cpuprofile", profile)
	prof.Env = append(os.Environ(), runtimeEnv...)
	if out, err := prof.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("profiling BenchmarkAdmission: %w\n%s", err, out)
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=100000", bin, profile).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("go tool pprof: %w", err)
	}
	return lines, cumShares(string(top), profiled), nil
}

// parseBench reads "BenchmarkX/sub-2  N  v unit  v unit ..." lines.
func parseBench(out string) []benchLine {
	var lines []benchLine
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		b := benchLine{name: f[0], metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				b.metrics[f[i+1]] = v
			}
		}
		lines = append(lines, b)
	}
	return lines
}

// cumShares picks the parts' functions' cum% from `pprof -top -cum`
// ("flat flat% sum% cum cum% name" lines).
func cumShares(top string, parts []share) []share {
	cum := map[string]float64{}
	for _, l := range strings.Split(top, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || !strings.HasSuffix(f[4], "%") {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64); err == nil {
			cum[strings.Join(f[5:], " ")] = v
		}
	}
	out := make([]share, 0, len(parts))
	for _, s := range parts {
		if v, ok := cum[s.function]; ok {
			s.percent = v
			out = append(out, s)
		}
	}
	return out
}

// renderInProcess is the in-process part of the webhook section.
func renderInProcess(b *strings.Builder, lines []benchLine, shares []share, runtimeEnv []string) {
	fmt.Fprintf(b, "\n### One admission in process (allocations and profile)\n\n")
	fmt.Fprintf(b, "`%s go test -run '^$' -bench '^BenchmarkAdmission$' -benchmem -benchtime 2000x ./pkg/injector`: the same review through the webhook handler without TLS or sockets. "+
		"cpu-ns/op is the process's CPU time per admission, GC included; on a shared machine it is steadier than ns/op, which counts time spent waiting for a core.\n\n", strings.Join(runtimeEnv, " "))
	fmt.Fprintf(b, "| benchmark | ns/op | cpu-ns/op | B/op | allocs/op |\n|---|---|---|---|---|\n")
	for _, l := range lines {
		m := l.metrics
		fmt.Fprintf(b, "| %s | %.0f | %.0f | %.0f | %.0f |\n", l.name, m["ns/op"], m["cpu-ns/op"], m["B/op"], m["allocs/op"])
	}
	if len(shares) == 0 {
		return
	}
	fmt.Fprintf(b, "\nWhere the CPU of a %d-secret admission goes (cumulative share of the profiled process, `-cpuprofile`, `go tool pprof -top -cum`):\n\n| part | function | share |\n|---|---|---|\n", targetSecrets)
	for _, s := range shares {
		fmt.Fprintf(b, "| %s | `%s` | %.0f%% |\n", s.label, s.function, s.percent)
	}
}
