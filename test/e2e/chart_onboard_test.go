package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/config"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// onboardSnippet is the values snippet README's "Onboard an app" shows;
// TestReadmeShowsTheOnboardingSnippet keeps the two the same.
func onboardSnippet(t *testing.T) (string, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "onboard", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return string(b), v
}

func TestReadmeShowsTheOnboardingSnippet(t *testing.T) {
	snippet, _ := onboardSnippet(t)
	repo, err := toolchain.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+snippet+"```\n") {
		t.Errorf("README.md does not show test/e2e/testdata/onboard/values.yaml verbatim in a yaml block:\n%s", snippet)
	}
}

// bootstrapConfig renders the chart with edit and parses the bootstrap
// Job's config as the Job does.
func bootstrapConfig(t *testing.T, objs []*unstructured.Unstructured) *config.Config {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetName() == "bc-bootstrap-config" {
			data, _, _ := unstructured.NestedString(o.Object, "data", "blinkchamber.yaml")
			cfg, err := config.Parse([]byte(data))
			if err != nil {
				t.Fatalf("the bootstrap would refuse its config: %v\n%s", err, data)
			}
			return cfg
		}
	}
	t.Fatal("no bootstrap config rendered")
	return nil
}

// TestChartOnboardingMapsOntoTheBootstrapConfig: the README's entry
// becomes the bootstrap config's app, with the same keys and the
// Secret reference in the release namespace; the Job may read that Secret
// and no other; apps.kvMount is the mount the bootstrap writes to.
func TestChartOnboardingMapsOntoTheBootstrapConfig(t *testing.T) {
	ch := loadChart(t)
	_, snippet := onboardSnippet(t)
	for _, mount := range []string{"secret", "team/kv"} {
		t.Run(mount, func(t *testing.T) {
			objs := renderWith(t, ch, "development", edits(set("onboarding", snippet["onboarding"]), set("apps.kvMount", mount)))
			cfg := bootstrapConfig(t, objs)
			if cfg.Vault.KVMount != mount {
				t.Errorf("vault.kvMount = %q, want apps.kvMount %q", cfg.Vault.KVMount, mount)
			}
			if cfg.Owner != "helm."+chartNamespace+".bc" || cfg.Prune {
				t.Errorf("owner %q, prune %v; want the release's, false", cfg.Owner, cfg.Prune)
			}
			i := slices.IndexFunc(cfg.Apps, func(a config.App) bool { return a.Name == "shop" })
			if i < 0 {
				t.Fatalf("no app shop among %d", len(cfg.Apps))
			}
			shop := cfg.Apps[i]
			if shop.Namespace != "shop" || shop.ServiceAccount != "shop" || shop.ManagesNetworkPolicies() || len(shop.Secrets) != 2 {
				t.Fatalf("shop = %+v", shop)
			}
			db, pay := shop.Secrets[0], shop.Secrets[1]
			if db.Data["username"] != "shop" || db.Generate["password"] != (config.Generator{Length: 32, Charset: config.CharsetAlphanumeric}) {
				t.Errorf("secret db = %+v", db)
			}
			if want := (config.SecretKeyRef{Namespace: chartNamespace, Name: "shop-payments", Key: "api-key"}); pay.FromSecret["api-key"] != want {
				t.Errorf("secret payments = %+v, want fromSecret %+v", pay, want)
			}
			if got := shop.KVDataPath(cfg.Vault.KVMount, "db"); got != mount+"/data/shop/shop/db" {
				t.Errorf("the pod's path is %s", got)
			}
			checkSecretReader(t, objs, []any{"shop-payments"})
		})
	}
}

// checkSecretReader: the bootstrap's Role for onboarding reads exactly names.
func checkSecretReader(t *testing.T, objs []*unstructured.Unstructured, names []any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Role" && o.GetName() == "bc-bootstrap-onboarding" {
			rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
			if len(rules) != 1 {
				t.Fatalf("rules %v", rules)
			}
			got, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "resourceNames")
			verbs, _, _ := unstructured.NestedStringSlice(rules[0].(map[string]any), "verbs")
			if !slices.Equal(got, names) || !slices.Equal(verbs, []string{"get"}) {
				t.Errorf("the Role may %v Secrets %v, want get on %v", verbs, got, names)
			}
			return
		}
	}
	t.Error("no Role lets the bootstrap read the referenced Secrets")
}
