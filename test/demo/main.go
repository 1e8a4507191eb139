// Command demo runs blinkchamber end to end on a real local node: etcd,
// kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy and
// CoreDNS built from Go modules, Debian's containerd and runc, in a network
// namespace of its own. It builds the images, pushes them to a local
// registry, `helm install`s the chart (the bootstrap Job initialises,
// unseals and provisions the in-cluster Vault), onboards an app with the
// CLI, runs it as a Deployment whose agent renders its secret, rotates the
// secret, runs a Job to completion, shows a refused pod, uninstalls, and
// puts the machine back as it was.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/node"
	"github.com/blinkchamber/blinkchamber/test/stack"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		what, code := "demo failed", 1
		if ctx.Err() != nil {
			what, code = "demo interrupted", 130
		}
		fmt.Fprintln(os.Stderr, what+":", err)
		os.Exit(code)
	}
}

type step struct {
	out   io.Writer
	start time.Time
}

func (s *step) say(format string, a ...any) {
	fmt.Fprintf(s.out, "[%5.1fs] %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, a...))
}

// Write lets the stack's own progress lines go through say.
func (s *step) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		s.say("  %s", l)
	}
	return len(p), nil
}

func run(ctx context.Context, out io.Writer) (err error) {
	s := &step{out: out, start: time.Now()}
	crlog.SetLogger(logr.Discard())
	if err := node.Preflight(); err != nil {
		return err
	}
	s.say("starting a real local node (Kubernetes %s from Go modules, Debian's containerd and runc) and installing the chart; the first run builds everything", toolchain.Kubelet.Version)
	st, err := stack.Install(ctx, stack.Options{Progress: s})
	if err != nil {
		return err
	}
	defer func() {
		s.say("stopping the node and putting the machine back as it was")
		serr := st.Stop()
		if serr == nil {
			s.say("the machine is as it was: mounts, cgroups, links, routes, sysctls, netfilter rules, system paths and processes")
		}
		err = errors.Join(err, serr)
	}()
	if err := showRelease(ctx, s, st); err != nil {
		return err
	}
	s.say("onboarding app shop: blinkchamber bootstrap base secrets (its policy, role and secret db)")
	cfg, err := st.Onboard(ctx, "shop")
	if err != nil {
		return err
	}
	if err := deployment(ctx, s, st, cfg); err != nil {
		return err
	}
	if err := job(ctx, s, st); err != nil {
		return err
	}
	if err := refused(ctx, s, st); err != nil {
		return err
	}
	s.say("helm uninstall %s", stack.Release)
	if err := st.Uninstall(3 * time.Minute); err != nil {
		return err
	}
	s.say("demo complete")
	return nil
}

func showRelease(ctx context.Context, s *step, st *stack.Stack) error {
	s.say("helm install done; the bootstrap Job initialised and unsealed Vault and configured kubernetes auth. Pods of the release:")
	pods, err := st.Node.Clientset.CoreV1().Pods(stack.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		s.say("  %-32s %-10s image %s", p.Name, p.Status.Phase, p.Spec.Containers[0].Image)
	}
	return nil
}

func deployment(ctx context.Context, s *step, st *stack.Stack, cfg string) error {
	tmpl := st.AppTemplate("shop", map[string]string{mutate.PrefixSignal + "db": "SIGHUP:testapp"},
		"watch", "-interval", "500ms", mutate.SecretsPath+"/db")
	s.say("deploying shop (a Deployment) with blinkchamber.io/inject: \"true\", role shop, secret db, signal-db SIGHUP:testapp")
	pod, err := st.Deploy(ctx, "shop", tmpl)
	if err != nil {
		return err
	}
	describe(s, pod)
	vc, err := st.Vault(ctx)
	if err != nil {
		return err
	}
	want, err := stack.PasswordDigest(ctx, vc, "shop")
	if err != nil {
		return err
	}
	e, err := st.WaitEvent(ctx, pod.Name, "the secret", func(e stack.Event) bool { return e.Event == "file" && e.SHA256 != "" })
	if err != nil {
		return err
	}
	s.say("  the app sees %s: mode %s, uid %d, sha256 %s… (Vault's password: %s…; equal: %v)", e.Path, e.Mode, e.UID, e.SHA256[:12], want[:12], e.SHA256 == want)
	s.say("running: blinkchamber secrets rotate shop/db")
	if _, err := st.CLI(cfg, "secrets", "rotate", "shop/db"); err != nil {
		return err
	}
	rotated, err := stack.PasswordDigest(ctx, vc, "shop")
	if err != nil {
		return err
	}
	if _, err := st.WaitEvent(ctx, pod.Name, "the rotated secret", func(e stack.Event) bool { return e.Event == "file" && e.SHA256 == rotated }); err != nil {
		return err
	}
	s.say("  the running pod's file changed to the new password (sha256 %s…)", rotated[:12])
	if _, err := st.WaitEvent(ctx, pod.Name, "a SIGHUP", func(e stack.Event) bool { return e.Event == "sighup" }); err != nil {
		return err
	}
	s.say("  and the app's process got SIGHUP")
	return nil
}

func describe(s *step, pod *corev1.Pod) {
	s.say("  pod %s is Ready; as admitted:", pod.Name)
	for _, c := range pod.Spec.InitContainers {
		kind := "init container"
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			kind = "native sidecar"
		}
		s.say("    %-15s %-22s image %s", kind, c.Name, c.Image)
	}
	for _, c := range pod.Spec.Containers {
		s.say("    %-15s %-22s image %s", "container", c.Name, c.Image)
	}
}

func job(ctx context.Context, s *step, st *stack.Stack) error {
	if _, err := st.Onboard(ctx, "nightly"); err != nil {
		return err
	}
	s.say("running nightly, an injected Job: the agent is a native sidecar, so the Job completes")
	start := time.Now()
	pod, err := st.RunJob(ctx, "nightly", st.AppTemplate("nightly", nil, "report", mutate.SecretsPath+"/db"))
	if err != nil {
		return err
	}
	s.say("  Job complete in %s (pod %s)", time.Since(start).Round(100*time.Millisecond), pod.Name)
	return nil
}

func refused(ctx context.Context, s *step, st *stack.Stack) error {
	if err := st.ServiceAccount(ctx, "bad"); err != nil {
		return err
	}
	tmpl := st.AppTemplate("bad", map[string]string{mutate.PrefixFile + "db": "../../etc/passwd"}, "sleep", "1m")
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	pod.Name, pod.Namespace = "bad", stack.AppsNamespace
	s.say("creating pod bad with blinkchamber.io/file-db: ../../etc/passwd")
	_, err := st.Node.Clientset.CoreV1().Pods(stack.AppsNamespace).Create(ctx, pod, metav1.CreateOptions{})
	if err == nil {
		return fmt.Errorf("the API server admitted a pod with a file name outside the secrets volume")
	}
	s.say("  refused, as kubectl prints it:\n    Error from server: %v", err)
	return nil
}
