package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/config"
)

// valuesMap returns user[key] as a map, creating it when absent, so that a
// test edits one value without dropping the environment file's others.
func valuesMap(user map[string]any, key string) map[string]any {
	m, _ := user[key].(map[string]any)
	if m == nil {
		m = map[string]any{}
		user[key] = m
	}
	return m
}

// agentImageFlag is the injector Deployment's --agent-image value.
func agentImageFlag(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != "Deployment" || o.GetName() != "bc-injector" {
			continue
		}
		var dep appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &dep); err != nil {
			t.Fatal(err)
		}
		for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
			if v, ok := strings.CutPrefix(a, "--agent-image="); ok {
				return v
			}
		}
	}
	t.Fatal("no injector Deployment with --agent-image rendered")
	return ""
}

// TestChartImageRegistryAndPullSecrets: with global.imageRegistry and
// global.imagePullSecrets set, every pod the chart renders, in every
// environment (and with every optional component on), pulls every image
// from that registry with those secrets, and the agent image the injector
// puts into pods comes from it too; unset, images are as written and no
// pod names a pull secret.
func TestChartImageRegistryAndPullSecrets(t *testing.T) {
	ch := loadChart(t)
	const registry = "registry.test:5000/mirror"
	secrets := []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "other-cred"}}
	for _, env := range renderCases {
		t.Run(env, func(t *testing.T) {
			objs := renderWith(t, ch, env, func(user map[string]any) {
				g := valuesMap(user, "global")
				// A trailing slash is tolerated; the list takes names and
				// Kubernetes' own {name: ...} form.
				g["imageRegistry"] = registry + "/"
				g["imagePullSecrets"] = []any{"regcred", map[string]any{"name": "other-cred"}}
			})
			pods := podSpecs(t, objs)
			if len(pods) < 5 {
				t.Fatalf("only %d pods rendered", len(pods))
			}
			for owner, pod := range pods {
				if !slices.Equal(pod.Spec.ImagePullSecrets, secrets) {
					t.Errorf("%s: imagePullSecrets %v, want %v", owner, pod.Spec.ImagePullSecrets, secrets)
				}
				for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
					if !strings.HasPrefix(c.Image, registry+"/") {
						t.Errorf("%s container %s: image %q is not pulled from %s", owner, c.Name, c.Image, registry)
					}
					if c.ImagePullPolicy != corev1.PullIfNotPresent {
						t.Errorf("%s container %s: imagePullPolicy %q, want IfNotPresent", owner, c.Name, c.ImagePullPolicy)
					}
				}
			}
			if got, want := agentImageFlag(t, objs), registry+"/blinkchamber/agent:v0.1.0"; got != want {
				t.Errorf("--agent-image=%s, want %s", got, want)
			}
		})
	}

	t.Run("registry host replaced or added", func(t *testing.T) {
		objs := renderWith(t, ch, "development", func(user map[string]any) {
			valuesMap(user, "global")["imageRegistry"] = "localhost:5001"
		})
		images := map[string]bool{}
		for _, pod := range podSpecs(t, objs) {
			for _, c := range pod.Spec.Containers {
				images[c.Image] = true
			}
		}
		for _, want := range []string{
			"localhost:5001/blinkchamber/injector:v0.1.0", // ghcr.io replaced
			"localhost:5001/hashicorp/vault:1.21.0",       // Docker Hub, no host written
			"localhost:5001/postgres:17.2",                // Docker Hub official image
			"localhost:5001/busybox:1.37.0",               // helm test pods
		} {
			if !images[want] {
				t.Errorf("no container runs %s; images: %v", want, images)
			}
		}
	})

	t.Run("unset: images as written, no pull secrets", func(t *testing.T) {
		objs := render(t, ch, "development")
		for owner, pod := range podSpecs(t, objs) {
			if len(pod.Spec.ImagePullSecrets) > 0 {
				t.Errorf("%s names pull secrets %v", owner, pod.Spec.ImagePullSecrets)
			}
		}
		if got := agentImageFlag(t, objs); got != "ghcr.io/blinkchamber/agent:v0.1.0" {
			t.Errorf("--agent-image=%s", got)
		}
	})

	t.Run("pullPolicy per image", func(t *testing.T) {
		objs := renderWith(t, ch, "development", func(user map[string]any) {
			valuesMap(valuesMap(user, "vault"), "image")["pullPolicy"] = "Always"
		})
		for owner, pod := range podSpecs(t, objs) {
			for _, c := range pod.Spec.Containers {
				want := corev1.PullIfNotPresent
				if strings.Contains(c.Image, "/vault:") {
					want = corev1.PullAlways
				}
				if c.ImagePullPolicy != want {
					t.Errorf("%s container %s (%s): imagePullPolicy %q, want %q", owner, c.Name, c.Image, c.ImagePullPolicy, want)
				}
			}
		}
	})

	for _, tc := range []struct {
		name  string
		edit  func(user map[string]any)
		wants string
	}{
		{"registry with a scheme", func(u map[string]any) { valuesMap(u, "global")["imageRegistry"] = "https://registry.test" }, "global.imageRegistry"},
		{"pull secret without a name", func(u map[string]any) { valuesMap(u, "global")["imagePullSecrets"] = []any{map[string]any{}} }, "global.imagePullSecrets"},
		{"unknown pull policy", func(u map[string]any) {
			valuesMap(valuesMap(u, "bootstrap"), "image")["pullPolicy"] = "Sometimes"
		}, "bootstrap.image.pullPolicy"},
		{"latest tag", func(u map[string]any) {
			valuesMap(valuesMap(valuesMap(u, "apps"), "grafana"), "image")["tag"] = "latest"
		}, "apps.grafana.image.tag"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			err := renderErr(t, ch, tc.edit)
			if !namesValue(err, tc.wants) {
				t.Fatalf("render error = %v, want one naming %s", err, tc.wants)
			}
		})
	}
}

// renderErr renders the default values with edit applied, as `helm
// install` does (the values checked against values.schema.json first), and
// returns the first error.
func renderErr(t *testing.T, ch *chart.Chart, edit func(user map[string]any)) error {
	t.Helper()
	return renderValuesErr(ch, edit, false)
}

// renderValuesErr is renderErr, without the schema check when skipSchema
// (as `helm install --skip-schema-validation`), so that a test reaches the
// templates' own checks. The Helm SDK's values and render calls of the
// error tests are here and nowhere else.
func renderValuesErr(ch *chart.Chart, edit func(user map[string]any), skipSchema bool) error {
	user := map[string]any{}
	edit(user)
	vals, err := chartutil.ToRenderValuesWithSchemaValidation(ch, user,
		common.ReleaseOptions{Name: "bc", Namespace: chartNamespace, IsInstall: true}, common.DefaultCapabilities, skipSchema)
	if err != nil {
		return err
	}
	_, err = engine.Render(ch, vals)
	return err
}

// namesValue reports whether err names the value at path (dotted, as in
// values.yaml): the templates name it so, the schema check as a JSON
// pointer (/injector/replicas).
func namesValue(err error, path string) bool {
	return err != nil && (strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "/"+strings.ReplaceAll(path, ".", "/")))
}

// addrSetting matches an api_addr or cluster_addr setting in Vault's config.
var addrSetting = regexp.MustCompile(`(?m)^\s*(api_addr|cluster_addr)\s*=`)

// TestChartVaultRunsWithoutShell: Vault's container runs `vault server`
// itself, found on the image's PATH, with no shell or entrypoint script
// (the image need not have one), reads its config straight from the
// ConfigMap, and gets its pod IP as api_addr and cluster_addr from the
// environment, which the kubelet expands ($(POD_IP) after POD_IP). In HA
// mode the config still joins every replica.
func TestChartVaultRunsWithoutShell(t *testing.T) {
	ch := loadChart(t)
	cases := slices.Clone(renderCases)
	cases = append(cases, "development+ha") // production is HA already
	for _, env := range cases {
		t.Run(env, func(t *testing.T) {
			base, ha := strings.CutSuffix(env, "+ha")
			objs := renderWith(t, ch, base, func(user map[string]any) {
				if ha {
					v := valuesMap(user, "vault")
					v["mode"], v["replicas"], v["storage"] = "ha", 5, map[string]any{"type": "raft"}
				}
			})
			var sts appsv1.StatefulSet
			var hcl string
			for _, o := range objs {
				switch {
				case o.GetKind() == "StatefulSet" && o.GetName() == "bc-vault":
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &sts); err != nil {
						t.Fatal(err)
					}
				case o.GetKind() == "ConfigMap" && o.GetName() == "bc-vault-config":
					hcl, _, _ = unstructured.NestedString(o.Object, "data", "vault.hcl")
				}
			}
			pod := sts.Spec.Template.Spec
			if len(pod.Containers) != 1 || hcl == "" {
				t.Fatalf("Vault StatefulSet (%d containers) or its config (%d bytes) not rendered", len(pod.Containers), len(hcl))
			}
			c := pod.Containers[0]
			if want := []string{"vault", "server", "-config=/vault/config/vault.hcl"}; !slices.Equal(c.Command, want) || len(c.Args) > 0 {
				t.Errorf("command %q args %q, want %q and no args", c.Command, c.Args, want)
			}
			if addrSetting.MatchString(hcl) {
				t.Errorf("the config still carries an address to fill in:\n%s", hcl)
			}
			scheme := "http"
			if base == "production" {
				scheme = "https" // vault.tls.enabled there
			}
			want := map[string]string{"VAULT_API_ADDR": scheme + "://$(POD_IP):8200", "VAULT_CLUSTER_ADDR": "https://$(POD_IP):8201"}
			podIP := -1
			for i, e := range c.Env {
				if e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP" {
					podIP = i
				}
				if w, ok := want[e.Name]; ok {
					if e.Value != w {
						t.Errorf("%s=%q, want %q", e.Name, e.Value, w)
					}
					// The kubelet expands $(VAR) only from variables
					// defined earlier in the list.
					if podIP < 0 || podIP > i {
						t.Errorf("%s comes before POD_IP: $(POD_IP) would stay literal", e.Name)
					}
					delete(want, e.Name)
				}
			}
			if len(want) > 0 {
				t.Errorf("env lacks %v", want)
			}
			var mounted bool
			for _, m := range c.VolumeMounts {
				if m.MountPath == "/vault/config" {
					mounted = m.ReadOnly && slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
						return v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == "bc-vault-config"
					})
				}
			}
			if !mounted {
				t.Error("/vault/config is not the ConfigMap bc-vault-config, read-only")
			}
			joins, wantJoins := strings.Count(hcl, "retry_join {"), 0
			if ha || base == "production" {
				wantJoins = int(*sts.Spec.Replicas)
			}
			if joins != wantJoins || ha && wantJoins != 5 {
				t.Errorf("%d retry_join blocks, want %d", joins, wantJoins)
			}
			for i := 0; i < joins; i++ {
				if addr := fmt.Sprintf("%s://bc-vault-%d.bc-vault-internal:8200", scheme, i); !strings.Contains(hcl, addr) {
					t.Errorf("no retry_join to %s", addr)
				}
			}
		})
	}
}

// TestChartVaultReviewerToken: with the chart's Vault, the bootstrap config
// has Vault review tokens with its own pod's ServiceAccount token, and the
// chart binds that ServiceAccount (the one Vault's pod runs as, with its
// token mounted) to system:auth-delegator; no long-lived reviewer token is
// minted (the bootstrap may not even request one). With an external Vault,
// the reviewer ServiceAccount and the right to mint its token are there.
func TestChartVaultReviewerToken(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		name     string
		external bool
	}{{"vault in the cluster", false}, {"external vault", true}} {
		t.Run(tc.name, func(t *testing.T) {
			objs := renderWith(t, ch, "development", func(user map[string]any) {
				if tc.external {
					v := valuesMap(user, "vault")
					v["enabled"], v["externalAddress"] = false, "https://vault.example.com:8200"
				}
			})
			var cfg *config.Config
			var delegator *rbacv1.ClusterRoleBinding
			var reviewerSA, mintsTokens, asksSAR bool
			var vaultPod *corev1.PodSpec
			for _, o := range objs {
				switch {
				case o.GetKind() == "ConfigMap" && o.GetName() == "bc-bootstrap-config":
					data, _, _ := unstructured.NestedString(o.Object, "data", "blinkchamber.yaml")
					var err error
					if cfg, err = config.Parse([]byte(data)); err != nil {
						t.Fatal(err)
					}
				case o.GetKind() == "ClusterRoleBinding" && o.GetName() == "bc-vault-auth-delegator":
					delegator = &rbacv1.ClusterRoleBinding{}
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, delegator); err != nil {
						t.Fatal(err)
					}
				case o.GetKind() == "ServiceAccount" && o.GetName() == "bc-vault-token-reviewer":
					reviewerSA = true
				case o.GetKind() == "ClusterRole" && o.GetName() == "bc-bootstrap":
					var role rbacv1.ClusterRole
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
						t.Fatal(err)
					}
					for _, r := range role.Rules {
						mintsTokens = mintsTokens || slices.Contains(r.Resources, "serviceaccounts/token")
						asksSAR = asksSAR || slices.Contains(r.Resources, "subjectaccessreviews")
					}
				case o.GetKind() == "StatefulSet" && o.GetName() == "bc-vault":
					var sts appsv1.StatefulSet
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &sts); err != nil {
						t.Fatal(err)
					}
					vaultPod = &sts.Spec.Template.Spec
				}
			}
			if cfg == nil {
				t.Fatal("no bootstrap config rendered")
			}
			ka := cfg.Vault.KubernetesAuth
			if tc.external {
				if ka.ReviewerToken != config.ReviewerTokenMinted || ka.ReviewerServiceAccount != "bc-vault-token-reviewer" ||
					!reviewerSA || !mintsTokens || asksSAR || delegator != nil || vaultPod != nil {
					t.Errorf("reviewerToken %s as %s, reviewer ServiceAccount rendered %v, bootstrap may mint tokens %v, may ask SubjectAccessReviews %v, Vault binding %v, Vault pod %v",
						ka.ReviewerToken, ka.ReviewerServiceAccount, reviewerSA, mintsTokens, asksSAR, delegator != nil, vaultPod != nil)
				}
				return
			}
			if ka.ReviewerToken != config.ReviewerTokenVaultPod || ka.ReviewerNamespace != chartNamespace || ka.ReviewerServiceAccount != "bc-vault" {
				t.Errorf("bootstrap config kubernetesAuth %+v, want reviewerToken vault-pod as %s/bc-vault", ka, chartNamespace)
			}
			if reviewerSA || mintsTokens || !asksSAR {
				t.Errorf("reviewer ServiceAccount rendered %v, bootstrap may mint tokens %v, may ask SubjectAccessReviews %v", reviewerSA, mintsTokens, asksSAR)
			}
			if vaultPod == nil || vaultPod.ServiceAccountName != "bc-vault" ||
				vaultPod.AutomountServiceAccountToken != nil && !*vaultPod.AutomountServiceAccountToken {
				t.Fatal("Vault's pod does not run as bc-vault with its token mounted")
			}
			if delegator == nil || delegator.RoleRef.Name != "system:auth-delegator" || delegator.RoleRef.Kind != "ClusterRole" ||
				!slices.Equal(delegator.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "bc-vault", Namespace: chartNamespace}}) {
				t.Errorf("binding of Vault's ServiceAccount: %+v", delegator)
			}
		})
	}
}
