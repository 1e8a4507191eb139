// Command nodebench measures the local node that `make demo` and the node
// tests run: how long each step of bringing blinkchamber up on it takes,
// an injected Deployment's and Job's times, and the memory of every part
// at idle. With -cold it first builds every tool and image into empty
// caches (an empty Go build cache too), as on a new machine.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/bench/procstat"
	"github.com/blinkchamber/blinkchamber/test/bench/report"
	"github.com/blinkchamber/blinkchamber/test/images"
	"github.com/blinkchamber/blinkchamber/test/stack"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

type options struct {
	out  string
	cold bool
	idle time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "Markdown file whose node section is rewritten (default: print)")
	flag.BoolVar(&o.cold, "cold", false, "build every tool and image first into empty caches, as on a new machine")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "idle time after the install before memory is read")
	flag.Parse()
	crlog.SetLogger(logr.Discard())
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "nodebench:", err)
		os.Exit(1)
	}
}

// timeline records when each progress line of the install was printed.
type timeline struct {
	start time.Time
	marks []mark
}

type mark struct {
	at   time.Duration
	line string
}

func (t *timeline) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		t.marks = append(t.marks, mark{time.Since(t.start), l})
		fmt.Fprintln(os.Stderr, l)
	}
	return len(p), nil
}

// since is the time from the mark starting with from to the one starting
// with to (or the end).
func (t *timeline) between(from, to string, end time.Duration) time.Duration {
	var a, b time.Duration = -1, end
	for _, m := range t.marks {
		if a < 0 && strings.HasPrefix(m.line, from) {
			a = m.at
		} else if a >= 0 && strings.HasPrefix(m.line, to) {
			b = m.at
			break
		}
	}
	if a < 0 {
		return 0
	}
	return b - a
}

type results struct {
	cold          time.Duration
	coldImages    time.Duration
	coldCPU       time.Duration // user+sys of the build processes
	coldImagesCPU time.Duration
	images, node  time.Duration
	install       time.Duration
	total         time.Duration
	deploy, job   time.Duration
	stop          time.Duration
	memory        map[string]procstat.Memory
	pods          int64
	partsMemoryKB int64
}

func run(ctx context.Context, o options) error {
	var r results
	if o.cold {
		dir, err := coldBuild(ctx, &r)
		defer removeCold(dir)
		if err != nil {
			return err
		}
	}
	tl := &timeline{start: time.Now()}
	st, err := stack.Install(ctx, stack.Options{Progress: tl})
	if err != nil {
		return err
	}
	r.total = time.Since(tl.start)
	r.images = tl.between("building the images", "starting the node", r.total)
	r.node = tl.between("starting the node", "pushing the images", r.total)
	r.install = tl.between("pushing the images", "\x00", r.total)
	if err := workload(ctx, st, &r); err != nil {
		_ = st.Stop()
		return err
	}
	time.Sleep(o.idle)
	r.memory = map[string]procstat.Memory{}
	for name, pid := range st.Node.Processes() {
		if m, err := procstat.ReadMemory(pid); err == nil {
			r.memory[name] = m
			r.partsMemoryKB += m.RSS
		}
	}
	r.pods = st.Node.PodsMemory()
	start := time.Now()
	if err := st.Stop(); err != nil {
		return err
	}
	r.stop = time.Since(start)
	return write(o, r)
}

// workload times an injected Deployment from create to Ready and an
// injected Job from create to Complete.
func workload(ctx context.Context, st *stack.Stack, r *results) error {
	for _, app := range []string{"shop", "nightly"} {
		if _, err := st.Onboard(ctx, app); err != nil {
			return err
		}
	}
	start := time.Now()
	if _, err := st.Deploy(ctx, "shop", st.AppTemplate("shop", nil, "watch", mutate.SecretsPath+"/db")); err != nil {
		return err
	}
	r.deploy = time.Since(start)
	start = time.Now()
	if _, err := st.RunJob(ctx, "nightly", st.AppTemplate("nightly", nil, "report", mutate.SecretsPath+"/db")); err != nil {
		return err
	}
	r.job = time.Since(start)
	return nil
}

// coldBuild builds every tool and image into new, empty caches, with
// empty Go build and module caches, as on a new machine, and points this
// process at them. Wall time on a shared machine depends on its load; the
// build processes' CPU time (user+sys) does not, much.
func coldBuild(ctx context.Context, r *results) (string, error) {
	dir, err := os.MkdirTemp("", "nodebench-cold-")
	if err != nil {
		return "", err
	}
	for k, v := range map[string]string{
		"BLINKCHAMBER_TOOLS_CACHE": filepath.Join(dir, "tools"),
		"GOCACHE":                  filepath.Join(dir, "gocache"),
		"GOMODCACHE":               filepath.Join(dir, "gomodcache"),
	} {
		if err := os.Setenv(k, v); err != nil {
			return dir, err
		}
	}
	repo, err := toolchain.RepoRoot()
	if err != nil {
		return dir, err
	}
	start, cpu := time.Now(), childrenCPU()
	for _, t := range toolchain.All {
		if _, err := t.Ensure(ctx, repo, os.Stderr); err != nil {
			return dir, err
		}
	}
	r.cold, r.coldCPU = time.Since(start), childrenCPU()-cpu
	imgDir, err := images.DefaultDir()
	if err != nil {
		return dir, err
	}
	start, cpu = time.Now(), childrenCPU()
	if _, err := images.Build(ctx, images.Options{Dir: imgDir, Version: stack.Version}); err != nil {
		return dir, err
	}
	r.coldImages, r.coldImagesCPU = time.Since(start), childrenCPU()-cpu
	return dir, nil
}

// childrenCPU is the user+sys time of every waited-for descendant so far.
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// removeCold deletes the cold caches; the module cache is read-only.
func removeCold(dir string) {
	if dir == "" {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "nodebench: removing the cold caches:", err)
	}
}

func write(o options, r results) error {
	var b bytes.Buffer
	cmd := "go run ./test/bench/nodebench -out docs/benchmarks.md"
	if o.cold {
		cmd += " -cold"
	}
	fmt.Fprintf(&b, "## The local node\n\nCommand (`make bench`): `%s`\n\n", cmd)
	fmt.Fprintf(&b, "Machine: %d cores, Go %s, run on %s. The node: Kubernetes %s parts built from Go modules, Debian's containerd and runc; blinkchamber installed by `helm install` from images pushed to a local registry (development values, two injector replicas, the app stack off).\n\n",
		runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), toolchain.Kubelet.Version)
	if o.cold {
		b.WriteString("### First build\n\nInto empty caches (tools, images, Go build and module caches), as on a new machine. Wall time depends on what else the machine runs; CPU time is the build processes' user+sys, and divided by the cores it bounds the wall time on an idle machine from below.\n\n| step | wall | CPU (user+sys) |\n|---|---|---|\n")
		fmt.Fprintf(&b, "| every tool (etcd, kube-apiserver, Vault, kubelet, controller-manager, scheduler, kube-proxy, CoreDNS), modules downloaded | %s | %s |\n", r.cold.Round(time.Second), r.coldCPU.Round(time.Second))
		fmt.Fprintf(&b, "| the images (injector, agent, CLI, Vault, pause, test app) | %s | %s |\n\n", r.coldImages.Round(time.Second), r.coldImagesCPU.Round(time.Second))
	}
	b.WriteString("### Time\n\n| step | time |\n|---|---|\n")
	for _, row := range []struct {
		what string
		d    time.Duration
	}{
		{"images, already built (checked against their sources)", r.images},
		{"node start: control plane, containerd, kube-proxy, CoreDNS, kubelet, node Ready", r.node},
		{"push to the local registry and `helm install --wait` until the bootstrap Job completed", r.install},
		{"all of the above (what `make demo` waits before its first app)", r.total},
		{"injected Deployment: create to pod Ready (image pull, agent renders, app starts)", r.deploy},
		{"injected Job: create to Complete", r.job},
		{"teardown, machine back as it was", r.stop},
	} {
		fmt.Fprintf(&b, "| %s | %s |\n", row.what, row.d.Round(100*time.Millisecond))
	}
	fmt.Fprintf(&b, "\n### Memory at idle\n\nResident memory (VmRSS) of each part %s after the workload above, read from /proc; the pods' figure is the kubelet's kubepods cgroup (memory.usage_in_bytes: Vault, two injectors, the app's agent and test app, page cache included).\n\n| part | RSS |\n|---|---|\n", o.idle)
	names := make([]string, 0, len(r.memory))
	for n := range r.memory {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "| %s | %.1f MiB |\n", n, float64(r.memory[n].RSS)/1024)
	}
	fmt.Fprintf(&b, "| all parts | %.1f MiB |\n| pods | %.1f MiB |\n", float64(r.partsMemoryKB)/1024, float64(r.pods)/(1<<20))
	if o.out == "" {
		_, err := os.Stdout.Write(b.Bytes())
		return err
	}
	return report.WriteSection(o.out, "node", b.Bytes())
}
