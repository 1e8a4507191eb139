package mutate

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/blinkchamber/blinkchamber/pkg/template"
)

func vaultPod(kv ...string) *corev1.Pod {
	m := map[string]string{VaultInject: "true", VaultRole: "app", VaultPrefixSecret + "db": "secret/data/ns/app/db"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return annotatedPod(m)
}

// TestVaultRefused checks that each vault-k8s annotation blinkchamber cannot
// honour is refused with an error naming that annotation, and that the pod
// is left untouched.
func TestVaultRefused(t *testing.T) {
	cases := []struct {
		name string
		pod  *corev1.Pod
		key  string
		typ  field.ErrorType
		is   error
	}{
		{"configmap", vaultPod(VaultPrefix+"agent-configmap", "agent-config"), VaultPrefix + "agent-configmap", field.ErrorTypeForbidden, nil},
		{"json patch", vaultPod(VaultPrefix+"agent-json-patch", `[{"op":"remove","path":"/securityContext"}]`), VaultPrefix + "agent-json-patch", field.ErrorTypeForbidden, nil},
		{"init json patch", vaultPod(VaultPrefix+"agent-init-json-patch", `[]`), VaultPrefix + "agent-init-json-patch", field.ErrorTypeForbidden, nil},
		{"tls skip verify", vaultPod(VaultTLSSkipVerify, "true"), VaultTLSSkipVerify, field.ErrorTypeForbidden, nil},
		{"auth type", vaultPod(VaultAuthType, "jwt"), VaultAuthType, field.ErrorTypeInvalid, nil},
		{"auth config", vaultPod(VaultPrefixAuthConfig+"token_path", "/var/run/token"), VaultPrefixAuthConfig + "token_path", field.ErrorTypeForbidden, nil},
		{"template file", vaultPod(VaultPrefixTemplateFile+"db", "/vault/configs/db.ctmpl"), VaultPrefixTemplateFile + "db", field.ErrorTypeForbidden, nil},
		{"file in a sub-directory", vaultPod(VaultPrefixFile+"db", "conf/db.env"), VaultPrefixFile + "db", field.ErrorTypeInvalid, nil},
		{"file with dotdot", vaultPod(VaultPrefixFile+"db", ".."), VaultPrefixFile + "db", field.ErrorTypeInvalid, nil},
		{"command with shell syntax", vaultPod(VaultPrefixCommand+"db", "kill -HUP $(pidof app)"), VaultPrefixCommand + "db", field.ErrorTypeInvalid, nil},
		{"command with a pipe", vaultPod(VaultPrefixCommand+"db", "cat x | sh"), VaultPrefixCommand + "db", field.ErrorTypeInvalid, nil},
		{"perms setuid", vaultPod(VaultPrefixPerms+"db", "4755"), VaultPrefixPerms + "db", field.ErrorTypeInvalid, nil},
		{"template plugin", vaultPod(VaultPrefixTemplate+"db", `{{ plugin "/bin/sh" }}`), VaultPrefixTemplate + "db", field.ErrorTypeInvalid, template.ErrDenied},
		{"template env", vaultPod(VaultPrefixTemplate+"db", `{{ env "VAULT_TOKEN" }}`), VaultPrefixTemplate + "db", field.ErrorTypeInvalid, template.ErrDenied},
		{"secret path with quote", vaultPod(VaultPrefixSecret+"db", `x" }}{{ plugin "sh`), VaultPrefixSecret + "db", field.ErrorTypeInvalid, nil},
		{"run as root", vaultPod(VaultRunAsUser, "0"), VaultRunAsUser, field.ErrorTypeInvalid, nil},
		{"limit below request", vaultPod(VaultRequestsMem, "64Mi", VaultLimitsMem, "32Mi"), VaultLimitsMem, field.ErrorTypeInvalid, nil},
		{"volume path relative", vaultPod(VaultSecretVolumePath, "secrets"), VaultSecretVolumePath, field.ErrorTypeInvalid, nil},
		{"volume path root", vaultPod(VaultSecretVolumePath, "/"), VaultSecretVolumePath, field.ErrorTypeInvalid, nil},
		{"per-secret volume path", vaultPod(VaultPrefixVolumePath+"db", "/other"), VaultPrefixVolumePath + "db", field.ErrorTypeInvalid, nil},
		{"render interval", vaultPod(VaultRenderInterval, "5 minutes"), VaultRenderInterval, field.ErrorTypeInvalid, nil},
		{"default template", vaultPod(VaultDefaultTemplate, "yaml"), VaultDefaultTemplate, field.ErrorTypeInvalid, nil},
		{"inject not a bool", annotatedPod(map[string]string{VaultInject: "yes"}), VaultInject, field.ErrorTypeInvalid, nil},
		{"status forged", vaultPod(VaultStatus, "skip"), VaultStatus, field.ErrorTypeInvalid, nil},
		{"unknown key", vaultPod(VaultPrefix+"agent-injct-secret-db", "x"), VaultPrefix + "agent-injct-secret-db", field.ErrorTypeNotSupported, nil},
		{"both prefixes", vaultPod(AnnotationRenderInterval, "1s"), AnnotationRenderInterval, field.ErrorTypeForbidden, nil},
		{"containers names unknown", vaultPod(VaultContainers, "ghost"), VaultContainers, field.ErrorTypeInvalid, nil},
		{"two secrets, one file", vaultPod(VaultPrefixSecret+"DB", "secret/data/x"), VaultPrefixSecret + "db", field.ErrorTypeInvalid, nil},
		{"file without secret", vaultPod(VaultPrefixFile+"orphan", "x"), VaultPrefixFile + "orphan", field.ErrorTypeInvalid, nil},
		{"no secrets", annotatedPod(map[string]string{VaultInject: "true", VaultRole: "app"}), VaultPrefixSecret + "<name>", field.ErrorTypeRequired, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.pod.DeepCopy()
			_, err := Mutate(tc.pod, goldenOptions())
			var inv *InvalidError
			if !errors.As(err, &inv) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("want an InvalidError, got %v", err)
			}
			want := keyPath(tc.key).String()
			found := false
			for _, e := range inv.Errs {
				if e.Field == want && e.Type == tc.typ {
					found = true
				}
			}
			if !found {
				t.Errorf("no %s error on %s in %v", tc.typ, want, inv.Errs)
			}
			if tc.is != nil && !strings.Contains(err.Error(), tc.is.Error()) {
				t.Errorf("error %q does not give the reason %q", err, tc.is)
			}
			if !reflect.DeepEqual(tc.pod, before) {
				t.Errorf("a refused pod was changed")
			}
		})
	}
}

// TestVaultWarnings checks that annotations that make no sense for the
// agent are accepted, injected, and reported once each, naming the key.
func TestVaultWarnings(t *testing.T) {
	cases := []struct {
		key, value string
	}{
		{VaultPrefix + "agent-image", "hashicorp/vault:1.21.1"},
		{VaultCacheEnable, "true"},
		{VaultPrefix + "agent-cache-use-auto-auth-token", "force"},
		{VaultPrefix + "agent-cache-listener-port", "8200"},
		{VaultPrefix + "ca-cert", "/vault/tls/ca.crt"},
		{VaultPrefix + "tls-secret", "vault-tls"},
		{VaultPrefix + "log-level", "debug"},
		{VaultPrefix + "agent-limits-ephemeral", "128Mi"},
		{VaultPrefix + "agent-telemetry-prometheus_retention_time", "30s"},
		{VaultPrePopulate, "false"},
		{VaultSetSecurityContext, "false"},
		{VaultPrefixMissingKey + "db", "false"},
	}
	for _, tc := range cases {
		t.Run(strings.TrimPrefix(tc.key, VaultPrefix), func(t *testing.T) {
			pod := vaultPod(tc.key, tc.value)
			out, err := Mutate(pod, goldenOptions())
			if err != nil || !out.Injected {
				t.Fatalf("want injected, got %+v, %v", out, err)
			}
			want := "metadata.annotations[" + tc.key + "]: "
			if len(out.Warnings) != 1 || !strings.HasPrefix(out.Warnings[0], want) {
				t.Errorf("warnings %q, want one starting %q", out.Warnings, want)
			}
		})
	}
	t.Run("values that change nothing are not warned about", func(t *testing.T) {
		out, err := Mutate(vaultPod(VaultCacheEnable, "false", VaultPrePopulate, "true", VaultInitFirst, "false",
			VaultTLSSkipVerify, "false", VaultPrefixMissingKey+"db", "true", VaultAuthType, "kubernetes"), goldenOptions())
		if err != nil || len(out.Warnings) != 0 {
			t.Errorf("got warnings %q, error %v", out.Warnings, err)
		}
	})
}

// TestVaultNotInjected: vault-k8s reads nothing else on a pod it does not
// inject, and neither does blinkchamber.
func TestVaultNotInjected(t *testing.T) {
	for name, ann := range map[string]map[string]string{
		"inject false": {VaultInject: "false", VaultPrefix + "agent-configmap": "x"},
		"inject unset": {VaultPrefixSecret + "db": "secret/data/x"},
		"injected by vault-k8s": {VaultInject: "true", VaultStatus: StatusInjected,
			VaultPrefix + "agent-configmap": "x"},
	} {
		t.Run(name, func(t *testing.T) {
			pod := annotatedPod(ann)
			before := pod.DeepCopy()
			out, err := Mutate(pod, goldenOptions())
			if err != nil || out.Injected {
				t.Fatalf("got %+v, %v", out, err)
			}
			if !reflect.DeepEqual(pod, before) {
				t.Errorf("the pod was changed")
			}
		})
	}
}

// TestVaultSecretNames follows vault-k8s: names are lower-cased unless
// preserve-secret-case says otherwise, per secret or for the pod.
func TestVaultSecretNames(t *testing.T) {
	cases := []struct {
		name string
		pod  *corev1.Pod
		want []string
	}{
		{"lower-cased", vaultPod(VaultPrefixSecret+"AppConfig", "secret/data/a"), []string{"appconfig", "db"}},
		{"per secret", vaultPod(VaultPrefixSecret+"AppConfig", "secret/data/a", VaultPrefixPreserveCase+"AppConfig", "true"), []string{"AppConfig", "db"}},
		{"pod-wide", vaultPod(VaultPrefixSecret+"AppConfig", "secret/data/a", VaultPreserveCase, "true"), []string{"AppConfig", "db"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, errs := Parse(tc.pod)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			var got []string
			for _, s := range spec.Secrets {
				got = append(got, s.File)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("files %q, want %q", got, tc.want)
			}
		})
	}
}

// TestVaultDefaultTemplates renders vault-k8s's default templates against
// KV v1 and v2 answers shaped as Vault returns them, and compares with the
// text the Vault Agent Injector documents.
func TestVaultDefaultTemplates(t *testing.T) {
	kv1 := map[string]any{"password": "s3cr3t", "username": "app"}
	kv2 := map[string]any{
		"data": map[string]any{"password": "s3cr3t", "username": "app"},
		"metadata": map[string]any{"created_time": "2026-11-27T18:00:00.5Z", "custom_metadata": nil,
			"deletion_time": "", "destroyed": false, "version": jsonNumber("1")},
	}
	cases := []struct {
		name string
		tpl  string
		data map[string]any
		want string
	}{
		{"map KV v1", VaultMapTemplate("kv/app"), kv1, "password: s3cr3t\nusername: app\n"},
		{"map KV v2", VaultMapTemplate("secret/data/app"), kv2,
			"data: map[password:s3cr3t username:app]\n" +
				"metadata: map[created_time:2026-11-27T18:00:00.5Z custom_metadata:<nil> deletion_time: destroyed:false version:1]\n"},
		{"json KV v1", VaultJSONTemplate("kv/app"), kv1, `{"password":"s3cr3t","username":"app"}` + "\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := renderWith(t, tc.tpl, tc.data)
			if got != tc.want {
				t.Errorf("rendered\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestVaultTranslation: for every vault-k8s golden case, the blinkchamber.io/
// annotations migrate writes parse back into the same Spec, and inject the
// same containers, volumes and mounts.
func TestVaultTranslation(t *testing.T) {
	inputs, err := filepath.Glob("testdata/vaultk8s-*.yaml")
	if err != nil || len(inputs) < 5 {
		t.Fatalf("want at least 5 vaultk8s golden cases, found %d (%v)", len(inputs), err)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			orig := readPod(t, in)
			spec, errs := Parse(orig)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			migrated := orig.DeepCopy()
			migrated.Annotations = spec.Annotations()
			again, errs := Parse(migrated)
			if len(errs) > 0 {
				t.Fatalf("the translated annotations do not parse: %v", errs)
			}
			// Where each value came from differs by design.
			spec.VaultK8s, spec.Warnings = false, nil
			if !reflect.DeepEqual(spec, again) {
				t.Errorf("specs differ:\nvault-k8s   %+v\nblinkchamber %+v", spec, again)
			}
			if _, err := Mutate(orig, goldenOptions()); err != nil {
				t.Fatal(err)
			}
			if _, err := Mutate(migrated, goldenOptions()); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(orig.Spec, migrated.Spec) {
				t.Errorf("the migrated pod is injected differently")
			}
		})
	}
}

func TestValidateMountPath(t *testing.T) {
	for v, ok := range map[string]bool{
		"/vault/secrets": true, "/etc/app/secrets": true, "/": false, "//": false, "relative": false,
		"/a/../b": false, "/a:b": false, "/" + strings.Repeat("a", 300): false,
	} {
		if err := ValidateMountPath(v); (err == nil) != ok {
			t.Errorf("ValidateMountPath(%q) = %v, want ok=%v", v, err, ok)
		}
	}
}

func jsonNumber(s string) json.Number { return json.Number(s) }

// renderWith runs a template through the agent's renderer, with data as
// Vault's answer to every read.
func renderWith(t *testing.T, text string, data map[string]any) string {
	t.Helper()
	tpl, err := template.New("t", text)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tpl.Execute(func(template.Request) (any, bool) { return &template.Secret{Data: data}, true })
	if err != nil {
		t.Fatal(err)
	}
	return string(res.Output)
}
