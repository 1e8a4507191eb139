package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

// TestAgentMetricsOnPodIP: with --agent-metrics-port the injected agent
// declares the container port Prometheus selects and serves its metrics
// there, but not its health details; the metric labels carry no secret.
func TestAgentMetricsOnPodIP(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := injectorConfig()
	cfg.VaultAddr = e.vault.Addr()
	cfg.AgentMetricsPort = 9102
	startInjectorWith(t, ctx, cfg, "blinkchamber-e2e-metrics", nil)
	const value = "metrics-pw-8c1f"
	e.app(t, ctx, "metrics", "metrics", map[string]map[string]any{"db": {"password": value}})
	createPod(t, ctx, "metrics", "metrics", "metrics", map[string]string{
		mutate.AnnotationInject: "true", mutate.PrefixSecret + "db": "secret/data/metrics/metrics/db",
	})
	pod := &corev1.Pod{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: "metrics", Name: "metrics"}, pod); err != nil {
		t.Fatal(err)
	}
	if !declaresMetricsPort(pod, 9102) {
		t.Fatalf("no agent container declares port %s 9102", mutate.MetricsPortName)
	}
	out := &syncBuffer{}
	run, err := kube.RunPod(ctx, "metrics", "metrics", e.shim(out))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Stop() })
	code, body := get(t, run.MetricsAddr(), "/metrics")
	if code != http.StatusOK || !strings.Contains(body, `blinkchamber_agent_renders_total{secret="db"} 1`) {
		t.Fatalf("/metrics on the metrics port: %d, no render counted for secret db:\n%s", code, body)
	}
	if code, _ := get(t, run.MetricsAddr(), "/readyz"); code != http.StatusNotFound {
		t.Errorf("/readyz on the metrics port: %d, want 404", code)
	}
	assertNoLeak(t, body+out.String(), value)
}

func declaresMetricsPort(pod *corev1.Pod, port int32) bool {
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, p := range c.Ports {
			if p.Name == mutate.MetricsPortName && p.ContainerPort == port {
				return true
			}
		}
	}
	return false
}
