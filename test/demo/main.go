// Command demo runs blinkchamber end to end on loopback: real etcd,
// kube-apiserver and Vault built from Go modules; `blinkchamber bootstrap`
// initialises, unseals and provisions Vault from examples/demo.yaml; the
// injector runs behind a real MutatingWebhookConfiguration over TLS; a pod
// is created through the API server and its injected agent, run by the
// kubelet shim, renders the app's secret; `blinkchamber secrets rotate`
// rotates it and the file follows. It prints what happens and leaves no
// process behind.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/injector"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

type step struct {
	out   io.Writer
	start time.Time
}

func (s *step) say(format string, a ...any) {
	fmt.Fprintf(s.out, "[%5.1fs] %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, a...))
}

func run(ctx context.Context, out io.Writer) error {
	s := &step{out: out, start: time.Now()}
	crlog.SetLogger(logr.Discard())
	s.say("starting etcd and kube-apiserver on loopback (built from Go modules on first use)")
	kube, err := harness.StartKube(ctx, out)
	if err != nil {
		return err
	}
	defer func() {
		s.say("stopping the control plane")
		if err := kube.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping control plane:", err)
		}
	}()
	s.say("kube-apiserver is up at %s", kube.Config.Host)

	work, err := os.MkdirTemp("", "blinkchamber-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	vault, err := harness.StartVaultServer(ctx, out, filepath.Join(work, "vault"), "")
	if err != nil {
		return err
	}
	defer func() {
		s.say("stopping Vault")
		_ = vault.Stop()
	}()
	s.say("Vault server (file storage, not initialised, sealed) is up at %s", vault.Addr())
	agentBin, cleanup, err := buildAgent(ctx)
	if err != nil {
		return err
	}
	defer cleanup()

	inj, err := startInjector(ctx, s, kube, vault.Addr())
	if err != nil {
		return err
	}
	defer func() {
		s.say("stopping the injector")
		_ = inj.Stop()
	}()

	boot, err := newBootstrapper(work, kube, vault)
	if err != nil {
		return err
	}
	s.say("running: blinkchamber bootstrap base vault secrets  (config: examples/demo.yaml)")
	if err := boot.run(out, "bootstrap", "base", "vault", "secrets"); err != nil {
		return err
	}
	s.say("running it again: a second bootstrap changes nothing")
	if err := boot.run(out, "bootstrap", "base", "vault", "secrets"); err != nil {
		return err
	}
	if err := kube.Namespace(ctx, "legacy", false, "shop"); err != nil {
		return err
	}
	s.say("namespace shop was labelled %s=enabled by bootstrap; namespace legacy is not", harness.InjectionLabel)
	if err := injectedPod(ctx, s, kube); err != nil {
		return err
	}
	if err := runAgent(ctx, s, kube, boot, agentBin); err != nil {
		return err
	}
	if err := refusedPod(ctx, s, kube); err != nil {
		return err
	}
	if err := untouchedPod(ctx, s, kube); err != nil {
		return err
	}
	s.say("demo complete")
	return nil
}

func startInjector(ctx context.Context, s *step, kube *harness.Kube, vaultAddr string) (*harness.Injector, error) {
	cfg := injector.NewConfig()
	cfg.AgentImage = agentImage
	cfg.VaultAddr = vaultAddr
	cfg.MetricsBindAddress, cfg.HealthProbeBindAddress = "0", "0"
	dir, err := os.MkdirTemp("", "blinkchamber-demo-certs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // the injector has read them by the time it serves
	cfg.CertDir = dir
	caPEM, err := harness.ServingCertDir(dir)
	if err != nil {
		return nil, err
	}
	inj, err := kube.StartInjector(cfg, logr.Discard())
	if err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := inj.WaitServing(waitCtx, caPEM); err != nil {
		_ = inj.Stop()
		return nil, err
	}
	mwc := harness.WebhookConfig("blinkchamber-injector", inj.URL(), caPEM, nil)
	if err := kube.Client.Create(ctx, mwc); err != nil {
		_ = inj.Stop()
		return nil, err
	}
	s.say("injector serving TLS at %s; MutatingWebhookConfiguration registered (failurePolicy Fail, reinvocation IfNeeded)", inj.URL())
	return inj, nil
}

func demoPod(name string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: corev1.PodSpec{
			ServiceAccountName: "shop",
			Containers:         []corev1.Container{{Name: "shop", Image: "example/shop:1.0"}},
		},
	}
}

func injectedPod(ctx context.Context, s *step, kube *harness.Kube) error {
	pod := demoPod("shop", map[string]string{
		mutate.AnnotationInject:          "true",
		mutate.PrefixSecret + "db":       "secret/data/shop/shop/db",
		mutate.PrefixTemplate + "db-url": `{{ with secret "secret/data/shop/shop/db" }}postgres://{{ .Data.data.username }}:{{ .Data.data.password }}@db/shop{{ end }}`,
		mutate.PrefixPerms + "db-url":    "0440",
		mutate.AnnotationRenderInterval:  "1s",
		mutate.AnnotationMemoryLimit:     "32Mi",
	})
	pod.Namespace = "shop"
	s.say("creating pod shop/shop with blinkchamber.io/inject: \"true\" and two secrets")
	if err := kube.Client.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating the annotated pod: %w", err)
	}
	s.say("stored pod, as the API server returned it:")
	for _, c := range pod.Spec.InitContainers {
		policy := "runs to completion"
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			policy = "native sidecar (restartPolicy Always), startup probe gates the app"
		}
		s.say("  init container %-22s %s; uid %d, read-only root, caps dropped; requests %s/%s, limits %s/%s",
			c.Name, policy, *c.SecurityContext.RunAsUser,
			c.Resources.Requests.Cpu(), c.Resources.Requests.Memory(), c.Resources.Limits.Cpu(), c.Resources.Limits.Memory())
	}
	for _, c := range pod.Spec.Containers {
		var mounts []string
		for _, m := range c.VolumeMounts {
			mounts = append(mounts, fmt.Sprintf("%s at %s (read-only %v)", m.Name, m.MountPath, m.ReadOnly))
		}
		s.say("  container      %-22s mounts %s", c.Name, strings.Join(mounts, "; "))
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.EmptyDir != nil:
			s.say("  volume %-22s emptyDir medium=%s sizeLimit=%s", v.Name, v.EmptyDir.Medium, v.EmptyDir.SizeLimit)
		case v.Projected != nil && v.Projected.Sources[0].ServiceAccountToken != nil:
			t := v.Projected.Sources[0].ServiceAccountToken
			s.say("  volume %-22s projected ServiceAccount token, audience %q, expires in %ds", v.Name, t.Audience, *t.ExpirationSeconds)
		}
	}
	s.say("  annotation %s: %s", mutate.AnnotationStatus, pod.Annotations[mutate.AnnotationStatus])
	return printAgentConfig(s, pod)
}

func printAgentConfig(s *step, pod *corev1.Pod) error {
	for _, e := range pod.Spec.InitContainers[0].Env {
		if e.Name != agent.ConfigEnv {
			continue
		}
		cfg, err := agent.Decode([]byte(e.Value))
		if err != nil {
			return fmt.Errorf("the injected agent config does not decode: %w", err)
		}
		pretty, _ := json.MarshalIndent(cfg, "    ", "  ")
		s.say("  the agent's whole configuration, one typed JSON env var (%s):\n    %s", agent.ConfigEnv, pretty)
		return nil
	}
	return fmt.Errorf("no %s in the agent container", agent.ConfigEnv)
}

func refusedPod(ctx context.Context, s *step, kube *harness.Kube) error {
	pod := demoPod("bad", map[string]string{
		mutate.AnnotationInject:        "true",
		mutate.PrefixSecret + "db":     "secret/data/shop/shop/db",
		mutate.PrefixFile + "db":       "../../etc/passwd",
		mutate.PrefixTemplate + "leak": `{{ plugin "/bin/sh" "-c" "env" }}`,
	})
	pod.Namespace = "shop"
	s.say("creating pod shop/bad with a file name that escapes the volume and a template that runs a command")
	err := kube.Client.Create(ctx, pod)
	if err == nil {
		return fmt.Errorf("the API server admitted a pod with bad annotations")
	}
	s.say("  refused, as kubectl would print it:\n    Error from server: %v", err)
	return nil
}

func untouchedPod(ctx context.Context, s *step, kube *harness.Kube) error {
	pod := demoPod("legacy", map[string]string{mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/legacy/db"})
	pod.Namespace = "legacy"
	if err := kube.Client.Create(ctx, pod); err != nil {
		return err
	}
	s.say("pod legacy/legacy (namespace not opted in): %d init containers, status annotation %q: untouched",
		len(pod.Spec.InitContainers), pod.Annotations[mutate.AnnotationStatus])
	return nil
}
