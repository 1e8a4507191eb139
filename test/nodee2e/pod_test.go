package nodee2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	corev1 "k8s.io/api/core/v1"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/harness"
	"github.com/blinkchamber/blinkchamber/test/stack"
)

// The chart's injector.agentMetricsPort.
const agentMetricsPort = 9102

// TestSecretFilesModesOwnersAndIsolation: the secrets volume is a tmpfs of
// the size asked for; files get the configured modes and belong to the
// app's user, who reads them; a container of the pod that mounts the
// volume but runs as another user cannot read them; one without the mount
// (same user as the app) cannot see them; no app container sees the
// agent's Kubernetes token, nor a Vault token without the opt-in.
func TestSecretFilesModesOwnersAndIsolation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const app = "files"
	_, err := st.Onboard(ctx, app)
	must(t, err)
	vc, err := st.Vault(ctx)
	must(t, err)
	apiKey := randomSecret("files-api")
	put(t, ctx, vc, app, "api", map[string]any{"key": apiKey})
	db, api := mutate.SecretsPath+"/db", mutate.SecretsPath+"/api"
	k8sToken, vaultToken := mutate.TokenDir+"/"+mutate.TokenFile, mutate.SecretsPath+"/vault-token"
	tmpl := st.AppTemplate(app, map[string]string{
		mutate.AnnotationContainers: "app,peer",
		mutate.PrefixSecret + "api": stack.KVSecretPath(app, "api"),
		mutate.PrefixPerms + "api":  "0440",
		mutate.AnnotationVolumeSize: "1Mi",
	}, "watch", "-interval", "500ms", db, api, k8sToken, vaultToken)
	peer := *tmpl.Spec.Containers[0].DeepCopy()
	peer.Name, peer.Args = "peer", []string{"watch", db}
	peer.SecurityContext.RunAsUser, peer.SecurityContext.RunAsGroup = ptr.To[int64](1000), ptr.To[int64](1000)
	worker := *tmpl.Spec.Containers[0].DeepCopy()
	worker.Name, worker.Args = "worker", []string{"watch", db}
	tmpl.Spec.Containers = append(tmpl.Spec.Containers, peer, worker)
	pod := deploy(t, ctx, app, tmpl)

	want, err := stack.PasswordDigest(ctx, vc, app)
	must(t, err)
	read := func(e stack.Event) bool { return e.Error == "" && e.SHA256 != "" }
	for _, f := range []struct {
		event  stack.Event
		mode   string
		digest string
	}{
		{fileEvent(t, ctx, pod.Name, "app", db, read), "0400", want},
		{fileEvent(t, ctx, pod.Name, "app", api, read), "0440", digest("key: " + apiKey + "\n")},
	} {
		e := f.event
		if e.Mode != f.mode || e.UID != 65532 || e.GID != 65532 || e.SHA256 != f.digest {
			t.Errorf("%s: mode %s owner %d:%d digest %s; want %s 65532:65532 (the app's user) and Vault's value's digest %s",
				e.Path, e.Mode, e.UID, e.GID, e.SHA256, f.mode, f.digest)
		}
		if e.FS != "tmpfs" || e.FSSize != 1<<20 {
			t.Errorf("%s is on a %s of %d bytes; want a tmpfs of 1Mi", e.Path, e.FS, e.FSSize)
		}
	}
	for _, c := range []struct{ container, path, want string }{
		{"peer", db, "permission denied"},
		{"worker", db, "no such file or directory"},
		{"app", k8sToken, "no such file or directory"},
		{"app", vaultToken, "no such file or directory"},
	} {
		e := fileEvent(t, ctx, pod.Name, c.container, c.path, func(stack.Event) bool { return true })
		if !strings.Contains(e.Error, c.want) || e.SHA256 != "" {
			t.Errorf("container %s reading %s: %q (digest %q); want %q", c.container, c.path, e.Error, e.SHA256, c.want)
		}
	}
}

// TestAgentTokenFileOptIn: with blinkchamber.io/agent-token-file the agent
// writes its Vault token into the secrets volume, mode 0400 and the app's:
// the real Vault accepts it, from the app's container, as a token of the
// pod's role. (Without the opt-in there is no such file: see
// TestSecretFilesModesOwnersAndIsolation.)
func TestAgentTokenFileOptIn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const app = "tokfile"
	_, err := st.Onboard(ctx, app)
	must(t, err)
	addr, err := st.VaultAddr(ctx)
	must(t, err)
	file := mutate.SecretsPath + "/vault-token"
	tmpl := st.AppTemplate(app, map[string]string{mutate.AnnotationAgentTokenFile: "vault-token"}, "token", "-vault", addr, file)
	t.Cleanup(func() { deleteJob(app) })
	pod, err := st.RunJob(ctx, app, tmpl)
	must(t, err)
	e := fileEvent(t, ctx, pod.Name, "app", file, func(stack.Event) bool { return true })
	if e.Error != "" || e.Mode != "0400" || e.UID != 65532 {
		t.Errorf("the token file: mode %s uid %d error %q; want 0400 owned by the app's uid 65532", e.Mode, e.UID, e.Error)
	}
	tok, err := st.WaitEvent(ctx, pod.Name, "Vault's lookup of the token", func(e stack.Event) bool { return e.Event == "token" })
	must(t, err)
	vc, err := st.Vault(ctx)
	must(t, err)
	role, err := vc.Logical().ReadWithContext(ctx, "auth/kubernetes/role/"+app)
	must(t, err)
	want, _ := role.Data["token_policies"].([]any)
	if len(want) == 0 {
		t.Fatalf("role %s has no policies", app)
	}
	for _, p := range want {
		if !slices.Contains(tok.Policies, p.(string)) {
			t.Errorf("Vault gives the written token policies %v (error %q), want the pod's role's %v", tok.Policies, tok.Error, want)
		}
	}
}

// TestAgentMetricsOnPodIP: the injected agent declares the container port
// Prometheus selects (the chart's injector.agentMetricsPort) and serves
// its metrics on the pod's IP there, but not its health details; neither
// the metrics nor the agent's log hold the secret.
func TestAgentMetricsOnPodIP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const app = "metrics"
	_, err := st.Onboard(ctx, app)
	must(t, err)
	pod := deploy(t, ctx, app, st.AppTemplate(app, nil, "sleep", "1h"))
	if !declaresPort(pod, mutate.MetricsPortName, agentMetricsPort) {
		t.Fatalf("no agent container declares port %s %d", mutate.MetricsPortName, agentMetricsPort)
	}
	code, body, err := stack.PodGet(ctx, pod, agentMetricsPort, "/metrics")
	must(t, err)
	if code != http.StatusOK || !strings.Contains(body, `blinkchamber_agent_renders_total{secret="db"} 1`) {
		t.Fatalf("/metrics on %s:%d: %d, no render counted for secret db:\n%s", pod.Status.PodIP, agentMetricsPort, code, body)
	}
	code, _, err = stack.PodGet(ctx, pod, agentMetricsPort, "/readyz")
	must(t, err)
	if code != http.StatusNotFound {
		t.Errorf("/readyz on the metrics port: %d, want 404", code)
	}
	scan := harness.NewLeakScan(nil)
	registerPassword(t, ctx, scan, app)
	scan.Source("agent /metrics", func(context.Context) ([]byte, error) { return []byte(body), nil })
	scan.Source("agent log", func(ctx context.Context) ([]byte, error) {
		return st.ContainerLog(ctx, pod.Name, mutate.AgentContainer)
	})
	if err := scan.Check(ctx); err != nil {
		t.Error(err)
	}
}

func declaresPort(pod *corev1.Pod, name string, port int32) bool {
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, p := range c.Ports {
			if p.Name == name && p.ContainerPort == port {
				return true
			}
		}
	}
	return false
}

// registerPassword tells the scan the password Vault holds for app.
func registerPassword(t *testing.T, ctx context.Context, scan *harness.LeakScan, app string) {
	t.Helper()
	vc, err := st.Vault(ctx)
	must(t, err)
	sec, err := vc.Logical().ReadWithContext(ctx, stack.KVPath(app))
	must(t, err)
	data, _ := sec.Data["data"].(map[string]any)
	pw, _ := data["password"].(string)
	if len(pw) < 8 {
		t.Fatalf("%s holds no password long enough to scan for", stack.KVPath(app))
	}
	scan.Secret("the "+app+" password", pw)
	scan.Secret("Vault's root token", vc.Token())
}

// TestInjectedPodUnderRestrictedPodSecurity: the chart's apps namespace
// enforces Pod Security "restricted"; PodSecurity judges pods after the
// webhook injected them, so it judges the agent too. A non-compliant pod is
// refused (proof that the level is enforced); a compliant one is injected,
// admitted and runs. The secret is then in no log (agent, injectors), Event,
// annotation, pod status, /metrics output or argument list on the node.
func TestInjectedPodUnderRestrictedPodSecurity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const app = "psa"
	_, err := st.Onboard(ctx, app)
	must(t, err)
	scan := harness.NewLeakScan(&harness.Kube{Config: st.Node.Config, Client: st.Node.Client, Clientset: st.Node.Clientset})
	scan.Processes("blinkchamber-agent")

	loose := st.AppTemplate(app, nil, "sleep", "1m")
	loose.Spec.SecurityContext, loose.Spec.Containers[0].SecurityContext = nil, nil
	pod := &corev1.Pod{ObjectMeta: loose.ObjectMeta, Spec: loose.Spec}
	pod.Name, pod.Namespace = "loose", appsNS
	_, err = st.Node.Clientset.CoreV1().Pods(appsNS).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "restricted`) {
		t.Fatalf("want a PodSecurity refusal of a non-compliant pod, got %v", err)
	}

	tight := deploy(t, ctx, app, st.AppTemplate(app, nil, "watch", mutate.SecretsPath+"/db"))
	if tight.Annotations[mutate.AnnotationStatus] != mutate.StatusInjected {
		t.Fatal("the compliant pod was not injected")
	}
	fileEvent(t, ctx, tight.Name, "app", mutate.SecretsPath+"/db", func(e stack.Event) bool { return e.SHA256 != "" })
	registerPassword(t, ctx, scan, app)
	scan.Source("agent log", func(ctx context.Context) ([]byte, error) {
		return st.ContainerLog(ctx, tight.Name, mutate.AgentContainer)
	})
	scan.Source("injector logs", injectorLogs)
	scan.MetricsURL("agent /metrics", "http://"+tight.Status.PodIP+":9102/metrics")
	scan.Namespaces(appsNS, stack.Namespace)
	if err := scan.Check(ctx); err != nil {
		t.Error(err)
	}
	if scan.Sampled() == 0 {
		t.Error("the leak scan never saw the agent process: its argument list was not checked")
	}
}

// injectorLogs is the log of every injector pod.
func injectorLogs(ctx context.Context) ([]byte, error) {
	cs := st.Node.Clientset
	pods, err := cs.CoreV1().Pods(stack.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=blinkchamber-injector"})
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, p := range pods.Items {
		b, err := cs.CoreV1().Pods(stack.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}
