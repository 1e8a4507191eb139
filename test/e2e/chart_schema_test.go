package e2e

import (
	"strings"
	"testing"
)

// set returns an edit that puts value at the dotted path of the values,
// creating the maps on the way, as `helm install --set path=value` does.
func set(path string, value any) func(user map[string]any) {
	return func(user map[string]any) {
		keys := strings.Split(path, ".")
		m := user
		for _, k := range keys[:len(keys)-1] {
			m = valuesMap(m, k)
		}
		m[keys[len(keys)-1]] = value
	}
}

// edits applies several edits in order.
func edits(es ...func(user map[string]any)) func(user map[string]any) {
	return func(user map[string]any) {
		for _, e := range es {
			e(user)
		}
	}
}

// TestChartRefusesBadValues: each bad value fails `helm install` (the
// values' schema check, then the render) with a message that names the
// value, and says what is wrong where the schema alone cannot. Values as
// `--set` gives them: "abc" and "nope" are strings.
func TestChartRefusesBadValues(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		name string
		edit func(user map[string]any)
		// names is the value the message must name; also, more words it
		// must contain, and words it must not.
		names   string
		also    []string
		notAlso []string
	}{
		// The schema's checks.
		{"replicas not a number", set("injector.replicas", "abc"), "injector.replicas", []string{"want integer"}, nil},
		{"unknown failurePolicy", set("injector.failurePolicy", "Sometimes"), "injector.failurePolicy", []string{"'Fail', 'Ignore'"}, nil},
		{"unknown agent mode", set("injector.defaultMode", "nativ"), "injector.defaultMode", []string{"'native'"}, nil},
		{"external Vault without a scheme", edits(set("vault.enabled", false), set("vault.externalAddress", "vault.example.com:8200")), "vault.externalAddress", []string{"does not match"}, nil},
		{"external Vault without an address", set("vault.enabled", false), "vault.externalAddress", []string{"minLength"}, nil},
		{"typo'd top-level key", set("injectr.replicas", 2), "injectr", []string{"additional properties"}, nil},
		{"typo'd nested key", set("vault.storage.sise", "2Gi"), "sise", []string{"/vault/storage", "additional properties"}, nil},
		{"enabled not a boolean", set("apps.postgresql.enabled", "nope"), "apps.postgresql.enabled", []string{"want boolean"}, nil},
		{"unknown environment", set("global.environment", "prod"), "global.environment", []string{"'development', 'staging', 'production'"}, []string{"keyStore"}},
		{"webhook timeout above 30 s", set("injector.timeoutSeconds", 60), "injector.timeoutSeconds", nil, nil},
		{"unknown seal", set("vault.seal.type", "aws"), "vault.seal.type", []string{"'shamir', 'transit', 'awskms'"}, nil},
		{"transit seal without an address", set("vault.seal.type", "transit"), "vault.seal.transit.address", nil, nil},
		{"transit address without a scheme", set("vault.seal.transit.address", "vault-transit:8200"), "vault.seal.transit.address", nil, nil},
		{"unknown storage type", set("vault.storage.type", "consul"), "vault.storage.type", nil, nil},
		{"unknown key store", set("bootstrap.keyStore.type", "vault"), "bootstrap.keyStore.type", nil, nil},
		{"memory not a quantity", set("injector.resources.limits.memory", "1Gb"), "injector.resources.limits.memory", []string{"does not match"}, nil},
		{"typo'd resource name", set("vault.resources.limits.memroy", "1Gi"), "memroy", []string{"/vault/resources/limits"}, nil},
		{"volume size not a quantity", set("vault.storage.size", "ten gigs"), "vault.storage.size", nil, nil},
		{"TTL not a duration", set("apps.zitadel.database.adminTTL", "1 hour"), "apps.zitadel.database.adminTTL", nil, nil},
		{"retention not a duration", set("apps.prometheus.retention", "two weeks"), "apps.prometheus.retention", nil, nil},
		{"digest not sha256", set("injector.agentImage.digest", "sha256:abc"), "injector.agentImage.digest", nil, nil},
		{"unknown toleration operator", set("vault.tolerations", []any{map[string]any{"operator": "Sometimes"}}), "vault.tolerations/0/operator", nil, nil},
		{"node selector value not a string", set("bootstrap.nodeSelector", map[string]any{"pool": true}), "bootstrap.nodeSelector/pool", []string{"want string"}, nil},
		{"label value with a space", set("apps.minio.podLabels", map[string]any{"team": "a b"}), "apps.minio.podLabels/team", nil, nil},
		{"priority class not a name", set("injector.priorityClassName", "High Priority"), "injector.priorityClassName", nil, nil},
		{"typo'd affinity", set("injector.affinity", map[string]any{"nodeAffinty": map[string]any{}}), "nodeAffinty", nil, nil},
		{"ingress host with a scheme", set("apps.ingress.hosts.grafana", "https://grafana.example.com"), "apps.ingress.hosts.grafana", nil, nil},
		{"cron schedule of one word", set("apps.vaultBackup.schedule", "daily"), "apps.vaultBackup.schedule", nil, nil},
		{"port out of range", set("apps.networkPolicy.vault.port", 82000), "apps.networkPolicy.vault.port", nil, nil},
		{"apps namespace not a name", set("apps.namespace", "Blinkchamber_Apps"), "apps.namespace", nil, nil},
		{"onboarded app name not a DNS label", set("onboarding.apps", []any{map[string]any{"name": "Shop_1"}}), "onboarding.apps/0/name", nil, nil},
		{"onboarded secret with no value source", set("onboarding.apps", []any{map[string]any{"name": "shop", "secrets": []any{map[string]any{"name": "db"}}}}), "onboarding.apps/0/secrets/0", []string{"generate", "fromSecret"}, nil},
		{"fromSecret without the Secret's key", set("onboarding.apps", []any{map[string]any{"name": "shop", "secrets": []any{map[string]any{"name": "db",
			"fromSecret": map[string]any{"token": map[string]any{"name": "shop-token"}}}}}}), "onboarding.apps/0/secrets/0/fromSecret/token", []string{"key"}, nil},
		{"typo'd onboarding key", set("onboarding.apps", []any{map[string]any{"name": "shop", "namespce": "shop"}}), "namespce", []string{"/onboarding/apps/0"}, nil},
		// The templates' checks: more than one value, or a rule a schema
		// cannot say.
		{"Shamir threshold above shares", set("vault.seal.shamir", map[string]any{"shares": 1, "threshold": 3}), "vault.seal.shamir.threshold", []string{"never be unsealed"}, nil},
		{"key store in a Secret outside development", set("global.environment", "staging"), "bootstrap.keyStore.type", []string{"development only", "staging"}, nil},
		{"latest tag", set("apps.grafana.image.tag", "latest"), "apps.grafana.image.tag", []string{"latest is refused"}, nil},
		{"reserved annotation", set("injector.podAnnotations", map[string]any{"prometheus.io/port": "1"}), "injector.podAnnotations", []string{"prometheus.io/port", "reserved"}, nil},
		{"reserved label", set("apps.grafana.podLabels", map[string]any{"app.kubernetes.io/name": "x"}), "apps.grafana.podLabels", []string{"app.kubernetes.io/name"}, nil},
		{"duplicate onboarded app", set("onboarding.apps", []any{map[string]any{"name": "shop"}, map[string]any{"name": "shop", "namespace": "shop2"}}),
			"onboarding.apps[1].name", []string{"unique", "onboarding.apps[0]"}, nil},
		{"onboarded app named as a stack app", edits(set("apps.grafana.enabled", true), set("onboarding.apps", []any{map[string]any{"name": "grafana"}})),
			"onboarding.apps[0].name", []string{"app stack"}, nil},
		{"KV mount reserved by Vault", set("apps.kvMount", "sys"), "apps.kvMount", []string{"reserved"}, nil},
		{"backups without raft", set("apps.vaultBackup.enabled", true), "apps.vaultBackup.enabled", []string{"raft"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := renderErr(t, ch, tc.edit)
			if !namesValue(err, tc.names) {
				t.Fatalf("error = %v, want one naming %s", err, tc.names)
			}
			for _, w := range tc.also {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %v, want it to say %q", err, w)
				}
			}
			for _, w := range tc.notAlso {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error = %v, which is not about %q", err, w)
				}
			}
		})
	}
}

// TestChartTemplateChecksWithoutSchema: with the schema check skipped
// (`helm install --skip-schema-validation`), the templates still refuse
// what the chart cannot run, and an unknown environment is reported as
// such, with the valid ones, not as a key store it would refuse.
func TestChartTemplateChecksWithoutSchema(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		name  string
		edit  func(user map[string]any)
		names string
		also  string
	}{
		{"unknown environment", set("global.environment", "prod"), "global.environment", "must be development, staging or production"},
		{"external Vault without an address", set("vault.enabled", false), "vault.externalAddress", "required"},
		{"transit seal without an address", set("vault.seal.type", "transit"), "vault.seal.transit.address", "required"},
		{"unknown seal", set("vault.seal.type", "aws"), "vault.seal.type", "must be shamir, transit or awskms"},
		{"digest not sha256", set("vault.image.digest", "sha256:abc"), "vault.image.digest", "64 lower-case hex digits"},
		{"unknown pull policy", set("tests.image.pullPolicy", "Sometimes"), "tests.image.pullPolicy", "Always, IfNotPresent or Never"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := renderValuesErr(ch, tc.edit, true)
			if err == nil || !strings.Contains(err.Error(), tc.names) || !strings.Contains(err.Error(), tc.also) {
				t.Fatalf("error = %v, want one naming %s and saying %q", err, tc.names, tc.also)
			}
			if strings.Contains(err.Error(), "keyStore") {
				t.Errorf("error = %v, which is not about the key store", err)
			}
		})
	}
}
