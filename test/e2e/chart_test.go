package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	helmkube "helm.sh/helm/v4/pkg/kube"
	helmrelease "helm.sh/helm/v4/pkg/release"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/config"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

const chartNamespace = "blinkchamber"

var environments = []string{"development", "staging", "production"}

// renderCases are the environments, and development with every optional
// component on, so that templates off by default are checked too.
var renderCases = append(slices.Clone(environments), "development+all")

func chartDir(t *testing.T) string {
	t.Helper()
	repo, err := toolchain.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(repo, "charts", "blinkchamber")
}

// envValues is values-<env>.yaml, as `helm install -f` would pass it.
func envValues(t *testing.T, env string) map[string]any {
	t.Helper()
	v, err := common.ReadValuesFile(filepath.Join(chartDir(t), "values-"+env+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return v.AsMap()
}

// render renders the chart for one environment and returns its objects.
func render(t *testing.T, ch *chart.Chart, env string) []*unstructured.Unstructured {
	t.Helper()
	return renderWith(t, ch, env, nil)
}

// renderWith renders like render, with edit applied to the user-supplied
// values first (when it is not nil).
func renderWith(t *testing.T, ch *chart.Chart, env string, edit func(user map[string]any)) []*unstructured.Unstructured {
	t.Helper()
	files := renderFiles(t, ch, env, edit)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var objs []*unstructured.Unstructured
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(files[n], "\n---") {
			if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
				continue
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatalf("%s (%s) is not YAML: %v\n%s", n, env, err, doc)
			}
			if len(u.Object) == 0 {
				continue
			}
			objs = append(objs, u)
		}
	}
	return objs
}

// renderFiles renders the chart's templates for env (with edit applied to
// the values) and returns them by file name, NOTES.txt included.
func renderFiles(t *testing.T, ch *chart.Chart, env string, edit func(user map[string]any)) map[string]string {
	t.Helper()
	base, all := strings.CutSuffix(env, "+all")
	user := envValues(t, base)
	apps, _ := user["apps"].(map[string]any)
	if apps == nil {
		apps = map[string]any{}
	}
	// An apps namespace of its own: other tests install and delete the
	// default one, and no namespace controller here finishes a deletion.
	apps["namespace"] = "chart-apps"
	if all {
		user["vault"] = map[string]any{"storage": map[string]any{"type": "raft"}}
		apps["mailu"] = map[string]any{"enabled": true}
		apps["vaultBackup"] = map[string]any{"enabled": true}
		apps["ingress"] = map[string]any{"enabled": true, "certManager": map[string]any{"enabled": true},
			"hosts": map[string]any{"minioConsole": "console.example.com", "mailu": "mail.example.com"}}
	}
	user["apps"] = apps
	if edit != nil {
		edit(user)
	}
	vals, err := chartutil.ToRenderValues(ch, user,
		common.ReleaseOptions{Name: "bc", Namespace: chartNamespace, IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("rendering for %s: %v", env, err)
	}
	return files
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestChartLintsWithoutWarnings(t *testing.T) {
	for _, env := range environments {
		linter := lint.RunAll(chartDir(t), envValues(t, env), chartNamespace)
		for _, m := range linter.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("%s: %s", env, m)
			}
		}
	}
}

// TestChartRendersObjectsTheAPIServerAccepts: every rendered object of every
// environment passes the real API server's validation (server-side dry
// run), CRD-backed ones (cert-manager) aside.
func TestChartRendersObjectsTheAPIServerAccepts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ch := loadChart(t)
	// The release namespace with its "default" ServiceAccount, as a real
	// cluster's controller-manager would make it (the helm test pods use
	// it), and the PriorityClass everyKnob names (admission refuses a pod
	// naming one that does not exist).
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: chartNamespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: chartNamespace}},
		&schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "platform-critical"}, Value: 1000},
	} {
		if err := kube.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	// +knobs: every scheduling, metadata and digest value set (everyKnob).
	for _, env := range append(slices.Clone(renderCases), "development+all+knobs") {
		t.Run(env, func(t *testing.T) {
			base, knobs := strings.CutSuffix(env, "+knobs")
			var edit func(user map[string]any)
			if knobs {
				edit = everyKnob
			}
			objs := renderWith(t, ch, base, edit)
			if len(objs) < 10 {
				t.Fatalf("only %d objects rendered", len(objs))
			}
			for _, o := range objs {
				if strings.HasPrefix(o.GetAPIVersion(), "cert-manager.io/") {
					continue
				}
				// Namespaces are created for real, so that the namespaced
				// objects after them can be admitted into them.
				opts := []client.CreateOption{client.DryRunAll}
				if o.GetKind() == "Namespace" {
					opts = nil
				}
				err := kube.Client.Create(ctx, o.DeepCopy(), opts...)
				if err != nil && !apierrors.IsAlreadyExists(err) {
					t.Errorf("%s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
			}
		})
	}
}

// podSpecs returns every pod template (or pod) in the objects, by owner.
func podSpecs(t *testing.T, objs []*unstructured.Unstructured) map[string]*corev1.Pod {
	t.Helper()
	out := map[string]*corev1.Pod{}
	for _, o := range objs {
		var path []string
		switch o.GetKind() {
		case "Deployment", "StatefulSet", "Job", "DaemonSet":
			path = []string{"spec", "template"}
		case "CronJob":
			path = []string{"spec", "jobTemplate", "spec", "template"}
		case "Pod":
			path = nil
		default:
			continue
		}
		raw := o.Object
		if path != nil {
			m, ok, _ := unstructured.NestedMap(o.Object, path...)
			if !ok {
				t.Fatalf("%s %s has no pod template", o.GetKind(), o.GetName())
			}
			raw = m
		}
		pod := &corev1.Pod{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, pod); err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		pod.Namespace = o.GetNamespace()
		out[fmt.Sprintf("%s/%s", o.GetKind(), o.GetName())] = pod
	}
	return out
}

// TestChartPolicies: every container has requests and limits, runs
// non-root, drops all capabilities, never uses a latest tag; no Secret is
// rendered (credentials come from Vault); every pod in an injected
// namespace asks for injection and its annotations pass the injector's own
// validation.
func TestChartPolicies(t *testing.T) {
	ch := loadChart(t)
	for _, env := range renderCases {
		t.Run(env, func(t *testing.T) {
			objs := render(t, ch, env)
			injectedNS := map[string]bool{}
			for _, o := range objs {
				if o.GetKind() == "Secret" {
					t.Errorf("the chart renders Secret %s/%s; credentials must come from Vault", o.GetNamespace(), o.GetName())
				}
				if o.GetKind() == "Namespace" && o.GetLabels()["blinkchamber.io/injection"] == "enabled" {
					injectedNS[o.GetName()] = true
				}
			}
			accounts := map[string]bool{}
			for owner, pod := range podSpecs(t, objs) {
				accounts[pod.Spec.ServiceAccountName] = true
				checkPod(t, owner, pod)
				if injectedNS[pod.Namespace] {
					if pod.Annotations[mutate.AnnotationInject] != "true" {
						t.Errorf("%s runs in an injected namespace without %s", owner, mutate.AnnotationInject)
					}
					if _, errs := mutate.Parse(pod); len(errs) > 0 {
						t.Errorf("%s: the injector would refuse it: %v", owner, errs.ToAggregate())
					}
				}
			}
			// The app stack components on by default are all there.
			for _, app := range []string{"postgresql", "minio", "grafana", "prometheus"} {
				if !accounts[app] {
					t.Errorf("no %s workload rendered", app)
				}
			}
		})
	}
}

func checkPod(t *testing.T, owner string, pod *corev1.Pod) {
	t.Helper()
	podNonRoot := pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.RunAsNonRoot != nil && *pod.Spec.SecurityContext.RunAsNonRoot
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		where := owner + " container " + c.Name
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() ||
			c.Resources.Limits.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s lacks cpu/memory requests or limits", where)
		}
		sc := c.SecurityContext
		nonRoot := podNonRoot || sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot
		if !nonRoot {
			t.Errorf("%s may run as root", where)
		}
		if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s does not drop all capabilities", where)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s allows privilege escalation", where)
		}
		for _, line := range secretArguments(slices.Concat(c.Command, c.Args)) {
			t.Errorf("%s puts a file of %s into a command's arguments: %q", where, mutate.SecretsPath, line)
		}
		_, tag, ok := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":")
		if !ok || tag == "" || tag == "latest" {
			t.Errorf("%s image %q has no pinned tag", where, c.Image)
		}
	}
}

// TestChartInstallUpgradeUninstall installs, upgrades and uninstalls the
// development release through the Helm SDK against the real API server, and
// checks that nothing of it is left. Hooks are off: there is no kubelet to
// run the bootstrap Job or the test pods here.
func TestChartInstallUpgradeUninstall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kube.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	const ns, release = "bc-sdk", "sdk"
	cfg := helmConfig(t, kubeconfig, ns)
	if err := kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	ch := loadChart(t)
	vals := envValues(t, "development")
	// Its own apps namespace: Helm adopts nothing it did not create.
	vals["apps"] = map[string]any{"namespace": "sdk-apps"}
	// As `helm install`/`helm upgrade` of Helm 4 without --wait: server-side
	// apply, and only hooks (none here) waited for.
	install := action.NewInstall(cfg)
	install.ReleaseName, install.Namespace, install.DisableHooks = release, ns, true
	install.WaitStrategy = helmkube.HookOnlyStrategy
	rel := releaseOf(t, "install")(install.RunWithContext(ctx, ch, vals))
	if rel.Info.Status != "deployed" {
		t.Fatalf("install status %s", rel.Info.Status)
	}
	upgrade := action.NewUpgrade(cfg)
	upgrade.Namespace, upgrade.DisableHooks, upgrade.WaitStrategy = ns, true, helmkube.HookOnlyStrategy
	vals["injector"] = map[string]any{"replicas": 2}
	if rel = releaseOf(t, "upgrade")(upgrade.RunWithContext(ctx, release, ch, vals)); rel.Version != 2 {
		t.Fatalf("upgrade: revision %d, want 2", rel.Version)
	}
	uninstallRelease(t, kubeconfig, ns, release)
	// Nothing labelled with the release is left, in any kind the chart
	// makes, but the apps namespace, kept for the data in it.
	left := leftovers(t, ctx, release)
	if want := []string{"*v1.Namespace /sdk-apps"}; !slices.Equal(left, want) {
		t.Errorf("left after uninstall: %q, want %q", left, want)
	}
}

func leftovers(t *testing.T, ctx context.Context, release string) []string {
	t.Helper()
	sel := client.MatchingLabels{"app.kubernetes.io/instance": release}
	var out []string
	for _, l := range []client.ObjectList{&corev1.ServiceList{}, &corev1.ConfigMapList{}, &corev1.ServiceAccountList{},
		&corev1.NamespaceList{}, &appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &rbacv1.ClusterRoleList{},
		&admissionregistrationv1.MutatingWebhookConfigurationList{}} {
		if err := kube.Client.List(ctx, l, sel); err != nil {
			t.Fatal(err)
		}
		err := meta.EachListItem(l, func(o runtime.Object) error {
			if ns, ok := o.(*corev1.Namespace); ok && ns.Status.Phase == corev1.NamespaceTerminating {
				return nil // no namespace controller runs here to finish the deletion
			}
			m, err := meta.Accessor(o)
			if err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("%T %s/%s", o, m.GetNamespace(), m.GetName()))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }

// releaseOf is the release an action returned, in Helm's v1 release
// format (the one of apiVersion v2 charts); it fails the test on err.
func releaseOf(t *testing.T, what string) func(helmrelease.Releaser, error) *releasev1.Release {
	return func(r helmrelease.Releaser, err error) *releasev1.Release {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		rel, ok := r.(*releasev1.Release)
		if !ok {
			t.Fatalf("%s: release of type %T, want %T", what, r, rel)
		}
		return rel
	}
}

// helmConfig is the Helm SDK's configuration for namespace ns.
func helmConfig(t *testing.T, kubeconfig, ns string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &kubeconfig, ptrTo(ns)
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// uninstallRelease removes a release without running hooks (no kubelet).
func uninstallRelease(t *testing.T, kubeconfig, ns, release string) {
	t.Helper()
	uninstall := action.NewUninstall(helmConfig(t, kubeconfig, ns))
	uninstall.DisableHooks, uninstall.WaitStrategy = true, helmkube.HookOnlyStrategy
	if _, err := uninstall.Run(release); err != nil {
		t.Errorf("uninstalling %s/%s: %v", ns, release, err)
	}
}

// TestChartBootstrapConfigIsValid: the config the chart generates for its
// bootstrap Job is one the bootstrap accepts, in every environment.
func TestChartBootstrapConfigIsValid(t *testing.T) {
	ch := loadChart(t)
	for _, env := range renderCases {
		t.Run(env, func(t *testing.T) {
			found := false
			for _, o := range render(t, ch, env) {
				if o.GetKind() != "ConfigMap" || o.GetName() != "bc-bootstrap-config" {
					continue
				}
				found = true
				data, _, _ := unstructured.NestedString(o.Object, "data", "blinkchamber.yaml")
				cfg, err := config.Parse([]byte(data))
				if err != nil {
					t.Fatalf("the bootstrap would refuse its config: %v\n%s", err, data)
				}
				if base, _, _ := strings.Cut(env, "+"); string(cfg.Environment) != base {
					t.Errorf("environment %s, want %s", cfg.Environment, base)
				}
				checkVaultAccess(t, cfg)
			}
			if !found {
				t.Fatal("no bootstrap config rendered")
			}
		})
	}
}

// checkVaultAccess: only the components that need a Vault system endpoint
// get one, and the backup role can read snapshots and nothing else.
func checkVaultAccess(t *testing.T, cfg *config.Config) {
	t.Helper()
	want := map[string][]config.VaultAccess{
		"prometheus":   {config.VaultAccessMetrics},
		"vault-backup": {config.VaultAccessRaftSnapshot},
	}
	for _, a := range cfg.Apps {
		if !slices.Equal(a.VaultAccess, want[a.Name]) {
			t.Errorf("app %s has vaultAccess %v, want %v", a.Name, a.VaultAccess, want[a.Name])
		}
	}
}

// secretsVolumeRead matches a shell command substitution that reads a file
// of the secrets volume.
var secretsVolumeRead = regexp.MustCompile(`\$\(\s*(cat|<)[^)]*` + regexp.QuoteMeta(mutate.SecretsPath))

// secretArguments returns the shell lines that read a file of the secrets
// volume into a command's arguments, which every process on the node can
// list. Reading one into a variable (VAR="$(cat ...)") is fine: it stays
// in the environment.
func secretArguments(argv []string) []string {
	var bad []string
	for _, arg := range argv {
		for _, line := range strings.Split(arg, "\n") {
			line = strings.TrimSpace(line)
			loc := secretsVolumeRead.FindStringIndex(line)
			if loc != nil && !assignment.MatchString(line[:loc[0]]) {
				bad = append(bad, line)
			}
		}
	}
	return bad
}

// assignment is what may precede a secret read: NAME=" or export NAME=".
var assignment = regexp.MustCompile(`^(export\s+)?[A-Za-z_][A-Za-z0-9_]*="?$`)

func TestSecretArguments(t *testing.T) {
	cases := []struct {
		line string
		bad  bool
	}{
		{`VAULT_TOKEN="$(cat /blinkchamber/secrets/vault-token)"`, false},
		{`export PW="$(cat /blinkchamber/secrets/pw)"`, false},
		{`flask mailu admin admin example.com "$(cat /blinkchamber/secrets/admin-password)"`, true},
		{`psql -c "ALTER ROLE x PASSWORD '$(< /blinkchamber/secrets/pw)'"`, true},
		{`cat /blinkchamber/secrets/pw | app --password-stdin`, false},
	}
	for _, tc := range cases {
		got := secretArguments([]string{"set -e\n" + tc.line})
		if (len(got) > 0) != tc.bad {
			t.Errorf("%q: flagged %v, want %v", tc.line, got, tc.bad)
		}
	}
}

// TestChartScrapesAgents: the injector is told to open the agents' metrics
// port, Prometheus has a job for that port, and the apps namespace's
// NetworkPolicies let Prometheus (and only it) reach it.
func TestChartScrapesAgents(t *testing.T) {
	ch := loadChart(t)
	for _, env := range environments {
		t.Run(env, func(t *testing.T) {
			var flag, job, policy bool
			for _, o := range render(t, ch, env) {
				switch {
				case o.GetKind() == "Deployment" && o.GetName() == "bc-injector":
					args, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
					flag = strings.Contains(fmt.Sprint(args), "--agent-metrics-port=9102")
				case o.GetKind() == "ConfigMap" && o.GetName() == "prometheus-config":
					cfg, _, _ := unstructured.NestedString(o.Object, "data", "prometheus.yml")
					job = strings.Contains(cfg, "job_name: blinkchamber-agents") && strings.Contains(cfg, "regex: "+mutate.MetricsPortName)
				case o.GetKind() == "NetworkPolicy" && o.GetName() == "allow-agent-metrics":
					np := &networkingv1.NetworkPolicy{}
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, np); err != nil {
						t.Fatal(err)
					}
					in := np.Spec.Ingress
					policy = len(in) == 1 && len(in[0].Ports) == 1 && in[0].Ports[0].Port.IntValue() == 9102 &&
						len(in[0].From) == 1 && in[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] == "prometheus"
				}
			}
			if !flag || !job || !policy {
				t.Errorf("injector flag %v, Prometheus job %v, NetworkPolicy to port 9102 from Prometheus only %v", flag, job, policy)
			}
		})
	}
}

// TestChartInjectorGoMemoryLimit: the injector's GOMEMLIMIT follows its
// memory limit in every environment (80 %), and a limit the chart cannot
// take 80 % of fails the render naming the value to set.
func TestChartInjectorGoMemoryLimit(t *testing.T) {
	ch := loadChart(t)
	want := map[string]string{"development": "51MiB", "staging": "", "production": ""}
	for _, env := range environments {
		t.Run(env, func(t *testing.T) {
			var dep appsv1.Deployment
			for _, u := range render(t, ch, env) {
				if u.GetKind() == "Deployment" && u.GetName() == "bc-injector" {
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &dep); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(dep.Spec.Template.Spec.Containers) == 0 {
				t.Fatal("no injector Deployment rendered")
			}
			c := dep.Spec.Template.Spec.Containers[0]
			lim := c.Resources.Limits[corev1.ResourceMemory]
			expect := want[env]
			if expect == "" {
				expect = fmt.Sprintf("%dMiB", lim.Value()*8/10>>20)
			}
			var got string
			for _, e := range c.Env {
				if e.Name == "GOMEMLIMIT" {
					got = e.Value
				}
			}
			if got != expect {
				t.Errorf("GOMEMLIMIT = %q, want %q (80 %% of %s)", got, expect, lim.String())
			}
		})
	}
	t.Run("limit in bytes", func(t *testing.T) {
		vals, err := chartutil.ToRenderValues(ch, map[string]any{"injector": map[string]any{
			"resources": map[string]any{"limits": map[string]any{"memory": "134217728"}}}},
			common.ReleaseOptions{Name: "bc", Namespace: chartNamespace, IsInstall: true}, common.DefaultCapabilities)
		if err != nil {
			t.Fatal(err)
		}
		_, err = engine.Render(ch, vals)
		if err == nil || !strings.Contains(err.Error(), "injector.goMemoryLimit") {
			t.Fatalf("render error = %v, want one naming injector.goMemoryLimit", err)
		}
	})
}
