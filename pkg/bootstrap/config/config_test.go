package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// base is a valid development config touching most features; each case
// edits it.
const base = `
environment: development
vault:
  address: http://127.0.0.1:8200
  seal:
    shamir:
      shares: 5
      threshold: 3
      keyStore: {type: file, path: ./keys.json}
  audit: {type: file, path: /vault/audit/audit.log}
apps:
  - name: shop
    secrets:
      - name: db
        data: {username: shop}
        generate: {password: {length: 24}}
        fromFile: {cert: ./shop.crt}
    postgres:
      connection: {host: 127.0.0.1, username: postgres, passwordFile: ./pg-pass}
      roles: [{name: shop-rw}]
  - name: billing
    namespace: money
`

// edit is one change to the YAML tree: set the value at a dotted path
// (list indexes are numbers), or delete the key when value is del.
type edit struct {
	path  string
	value any
}

type deleteKey struct{}

var del = deleteKey{}

func set(path string, value any) edit { return edit{path, value} }

func render(t *testing.T, src string, edits ...edit) []byte {
	t.Helper()
	var tree any
	if err := yaml.Unmarshal([]byte(src), &tree); err != nil {
		t.Fatalf("base: %v", err)
	}
	for _, e := range edits {
		tree = apply(t, tree, strings.Split(e.path, "."), e.value)
	}
	out, err := yaml.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func apply(t *testing.T, node any, path []string, value any) any {
	t.Helper()
	key := path[0]
	if l, ok := node.([]any); ok {
		i, err := strconv.Atoi(key)
		if err != nil || i > len(l) {
			t.Fatalf("bad index %q", key)
		}
		if i == len(l) {
			l = append(l, map[string]any{})
		}
		if len(path) == 1 {
			l[i] = value
		} else {
			l[i] = apply(t, l[i], path[1:], value)
		}
		return l
	}
	m, ok := node.(map[string]any)
	if !ok {
		m = map[string]any{}
	}
	switch {
	case len(path) > 1:
		m[key] = apply(t, m[key], path[1:], value)
	case value == del:
		delete(m, key)
	default:
		m[key] = value
	}
	return m
}

func mustParse(t *testing.T, data []byte) *Config {
	t.Helper()
	c, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse:\n%s\n%v", data, err)
	}
	return c
}

func TestParseValid(t *testing.T) {
	cases := []struct {
		name  string
		edits []edit
	}{
		{"base", nil},
		{"staging with shamir", []edit{set("environment", "staging")}},
		{"staging with transit", []edit{
			set("environment", "staging"),
			set("vault.seal", map[string]any{"transit": map[string]any{
				"address": "https://unsealer:8200", "key": "autounseal", "tokenFile": "./t"}}),
		}},
		{"production with awskms", []edit{
			set("environment", "production"),
			set("vault.address", "https://vault.example.com"),
			set("vault.seal", map[string]any{"awskms": map[string]any{"region": "us-gov-west-1", "kmsKeyId": "alias/v"}}),
		}},
		{"development with awskms", []edit{
			set("vault.seal", map[string]any{"awskms": map[string]any{"region": "eu-west-1", "kmsKeyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}}),
		}},
		{"kubernetes-secret key store in development", []edit{set("vault.seal.shamir.keyStore", map[string]any{"type": "kubernetes-secret"})}},
		{"one share", []edit{set("vault.seal.shamir.shares", 1), set("vault.seal.shamir.threshold", 1)}},
		{"ten shares, threshold ten", []edit{set("vault.seal.shamir.shares", 10), set("vault.seal.shamir.threshold", 10)}},
		{"audit to stdout", []edit{set("vault.audit.path", "stdout")}},
		{"audit socket", []edit{set("vault.audit", map[string]any{"type": "socket", "address": "127.0.0.1:9090"})}},
		{"audit none in development", []edit{set("vault.audit", map[string]any{"type": "none"})}},
		{"api server host", []edit{set("vault.kubernetesAuth.host", "https://127.0.0.1:6443")}},
		{"vault reviews with its own pod's token", []edit{set("vault.kubernetesAuth.reviewerToken", "vault-pod")}},
		{"minted reviewer token", []edit{set("vault.kubernetesAuth.reviewerToken", "minted")}},
		{"token TTL bounds", []edit{set("vault.tokenTTL", "24h")}},
		{"nested kv mount", []edit{set("vault.kvMount", "team/kv")}},
		{"secret name with dot and underscore", []edit{set("apps.0.secrets.0.name", "db_main.v2")}},
		{"two apps one namespace, own ServiceAccounts", []edit{set("apps.1.namespace", "shop")}},
		{"every charset", []edit{set("apps.0.secrets.0.generate", map[string]any{
			"a": map[string]any{"charset": "alphanumeric"}, "b": map[string]any{"charset": "hex"},
			"c": map[string]any{"charset": "base64url"}, "d": map[string]any{"charset": "ascii-printable", "length": 256},
			"e": map[string]any{"length": 8}})}},
		{"creation statements", []edit{set("apps.0.postgres.roles.0.creationStatements", `CREATE ROLE "{{name}}" LOGIN PASSWORD '{{password}}';`)}},
		{"vault access", []edit{set("apps.0.vaultAccess", []any{"metrics", "raft-snapshot"})}},
		{"onboarding keys", []edit{set("owner", "platform-team"), set("prune", true), set("apps.0.kvReadPaths", []any{"shared/tls/*", "shared/ca"}),
			set("apps.0.networkPolicies", false), set("apps.0.secrets.0.fromSecret", map[string]any{"api-key": map[string]any{"namespace": "ops", "name": "vendor", "key": "api-key"}})}},
		{"no apps", []edit{set("apps", del)}},
		{"empty document parts left to defaults", []edit{set("vault.kubernetesAuth", nil)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, render(t, base, tc.edits...))
			if errs := c.Validate(); len(errs) > 0 {
				t.Fatalf("Validate after Parse: %v", errs)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	transit := map[string]any{"transit": map[string]any{"address": "https://u:8200", "key": "k", "tokenFile": "./t"}}
	awskms := map[string]any{"region": "eu-west-1", "kmsKeyId": "alias/v"}
	cases := []struct {
		name  string
		edits []edit
		path  string // the error's field path
		want  string // a substring of the error
	}{
		{"environment missing", []edit{set("environment", del)}, "environment", "Required"},
		{"environment unknown", []edit{set("environment", "prod")}, "environment", `Unsupported value: "prod"`},
		{"unknown top-level key", []edit{set("vualt", map[string]any{})}, "vualt", "unknown key; known keys are apps, environment, owner, prerequisites, prune, vault"},
		{"owner not a name", []edit{set("owner", "Platform Team")}, "owner", "lower-case letters"},
		{"owner empty", []edit{set("owner", "")}, "owner", "Required"},
		{"KV read path leaving the mount", []edit{set("apps.0.kvReadPaths", []any{"shared/*", "../sys"})}, "apps[0].kvReadPaths[1]", "inside the KV mount"},
		{"fromSecret without a key", []edit{set("apps.0.secrets.0.fromSecret", map[string]any{"token": map[string]any{"namespace": "ops", "name": "t"}})}, "apps[0].secrets[0].fromSecret[token].key", "Required"},
		{"fromSecret key also generated", []edit{set("apps.0.secrets.0.fromSecret", map[string]any{"password": map[string]any{"namespace": "ops", "name": "t", "key": "pw"}})}, "apps[0].secrets[0].fromSecret[password]", "also in generate"},
		{"unknown nested key", []edit{set("vault.seal.shamir.treshold", 3)}, "vault.seal.shamir.treshold", "unknown key"},
		{"unknown key in a list item", []edit{set("apps.0.secret", 1)}, "apps[0].secret", "unknown key"},
		{"vault access outside the list", []edit{set("apps.0.vaultAccess", []any{"metrics", "sys/raw"})}, "apps[0].vaultAccess[1]", `Unsupported value: "sys/raw": supported values: "metrics", "raft-snapshot"`},
		{"unknown key in a generator", []edit{set("apps.0.secrets.0.generate.password.size", 3)}, "apps[0].secrets[0].generate[password].size", "unknown key"},
		{"prerequisite kind unknown", []edit{set("prerequisites", []any{map[string]any{"kind": "Deployment", "name": "x"}})}, "prerequisites[0].kind", `Unsupported value: "Deployment"`},
		{"prerequisite kind missing", []edit{set("prerequisites", []any{map[string]any{"name": "x"}})}, "prerequisites[0].kind", "Required"},
		{"prerequisite name bad", []edit{set("prerequisites", []any{map[string]any{"kind": "IngressClass", "name": "Nginx_1"}})}, "prerequisites[0].name", "RFC 1123"},
		{"prerequisite ConfigMap without namespace", []edit{set("prerequisites", []any{map[string]any{"kind": "ConfigMap", "name": "vault-ca"}})}, "prerequisites[0].namespace", "Required"},
		{"prerequisite cluster object with namespace", []edit{set("prerequisites", []any{map[string]any{"kind": "ClusterIssuer", "name": "le", "namespace": "x"}})}, "prerequisites[0].namespace", "cluster object"},
		{"prerequisite keys on a cluster object", []edit{set("prerequisites", []any{map[string]any{"kind": "IngressClass", "name": "nginx", "keys": []any{"a"}}})}, "prerequisites[0].keys", "only a ConfigMap or Secret"},
		{"prerequisite key bad", []edit{set("prerequisites", []any{map[string]any{"kind": "Secret", "namespace": "a", "name": "t", "keys": []any{"a/b"}}})}, "prerequisites[0].keys[0]", "Invalid value"},
		{"address missing", []edit{set("vault.address", del)}, "vault.address", "Required"},
		{"address with a path", []edit{set("vault.address", "http://127.0.0.1:8200/v1")}, "vault.address", "path"},
		{"address not http", []edit{set("vault.address", "ftp://vault")}, "vault.address", "https://"},
		{"no seal", []edit{set("vault.seal", map[string]any{})}, "vault.seal", "exactly one"},
		{"two seals", []edit{set("vault.seal.transit", transit["transit"])}, "vault.seal", `["shamir","transit"]`},
		{"shares zero (explicit, not defaulted)", []edit{set("vault.seal.shamir.shares", 0)}, "vault.seal.shamir.shares", "between 1 and 10"},
		{"shares above ten", []edit{set("vault.seal.shamir.shares", 11)}, "vault.seal.shamir.shares", "between 1 and 10"},
		{"shares not a number", []edit{set("vault.seal.shamir.shares", "five")}, "vault.seal.shamir.shares", "must be an integer, not a string"},
		{"shares fractional", []edit{set("vault.seal.shamir.shares", 2.5)}, "vault.seal.shamir.shares", "must be an integer, not a number"},
		{"threshold above shares", []edit{set("vault.seal.shamir.threshold", 6)}, "vault.seal.shamir.threshold", "Invalid value: 6: must be at most shares (5)"},
		{"threshold zero", []edit{set("vault.seal.shamir.threshold", 0)}, "vault.seal.shamir.threshold", "at least 1"},
		{"threshold one of several", []edit{set("vault.seal.shamir.threshold", 1)}, "vault.seal.shamir.threshold", "at least 2"},
		{"key store type unknown", []edit{set("vault.seal.shamir.keyStore.type", "vault")}, "vault.seal.shamir.keyStore.type", "Unsupported value"},
		{"key store file path empty", []edit{set("vault.seal.shamir.keyStore.path", "")}, "vault.seal.shamir.keyStore.path", "Required"},
		{"key store file with a secret name", []edit{set("vault.seal.shamir.keyStore.name", "x")}, "vault.seal.shamir.keyStore.name", "kubernetes-secret only"},
		{"key store secret with a path", []edit{set("vault.seal.shamir.keyStore.type", "kubernetes-secret")}, "vault.seal.shamir.keyStore.path", "file only"},
		{"key store secret bad namespace", []edit{set("vault.seal.shamir.keyStore", map[string]any{"type": "kubernetes-secret", "namespace": "Vault_NS"})},
			"vault.seal.shamir.keyStore.namespace", "RFC 1123"},
		{"key store secret in staging", []edit{set("environment", "staging"), set("vault.seal.shamir.keyStore", map[string]any{"type": "kubernetes-secret"})},
			"vault.seal.shamir.keyStore.type", "development only"},
		{"key store secret in production", []edit{
			set("environment", "production"), set("vault.address", "https://v"),
			set("vault.seal", map[string]any{"awskms": map[string]any{"region": "eu-west-1", "kmsKeyId": "k", "keyStore": map[string]any{"type": "kubernetes-secret"}}}),
		}, "vault.seal.awskms.keyStore.type", "development only"},
		{"production without awskms", []edit{set("environment", "production"), set("vault.address", "https://v")}, "vault.seal.awskms", "Required"},
		{"production over http", []edit{set("environment", "production"), set("vault.seal", map[string]any{"awskms": awskms})}, "vault.address", "https"},
		{"production without audit", []edit{
			set("environment", "production"), set("vault.address", "https://v"), set("vault.seal", map[string]any{"awskms": awskms}),
			set("vault.audit", map[string]any{"type": "none"}),
		}, "vault.audit.type", "audit trail"},
		{"staging with awskms", []edit{set("environment", "staging"), set("vault.seal", map[string]any{"awskms": awskms})}, "vault.seal.awskms", "Forbidden"},
		{"transit address missing", []edit{set("vault.seal", map[string]any{"transit": map[string]any{"key": "k", "tokenFile": "t"}})}, "vault.seal.transit.address", "Required"},
		{"transit key missing", []edit{set("vault.seal", map[string]any{"transit": map[string]any{"address": "http://u", "tokenFile": "t"}})}, "vault.seal.transit.key", "Required"},
		{"transit token file missing", []edit{set("vault.seal", map[string]any{"transit": map[string]any{"address": "http://u", "key": "k"}})}, "vault.seal.transit.tokenFile", "Required"},
		{"transit mount reserved", []edit{set("vault.seal", transit), set("vault.seal.transit.mount", "sys")}, "vault.seal.transit.mount", "reserved"},
		{"transit with no value", []edit{set("vault.seal", map[string]any{"transit": nil})}, "vault.seal.transit.address", "Required"},
		{"awskms region bad", []edit{set("vault.seal", map[string]any{"awskms": map[string]any{"region": "Europe", "kmsKeyId": "k"}})}, "vault.seal.awskms.region", "AWS region"},
		{"awskms key missing", []edit{set("vault.seal", map[string]any{"awskms": map[string]any{"region": "eu-west-1"}})}, "vault.seal.awskms.kmsKeyId", "Required"},
		{"audit type unknown", []edit{set("vault.audit.type", "syslog")}, "vault.audit.type", "Unsupported value"},
		{"audit path missing", []edit{set("vault.audit.path", del)}, "vault.audit.path", "Required"},
		{"audit path relative", []edit{set("vault.audit.path", "audit.log")}, "vault.audit.path", "absolute"},
		{"audit socket without address", []edit{set("vault.audit", map[string]any{"type": "socket"})}, "vault.audit.address", "Required"},
		{"audit socket type unknown", []edit{set("vault.audit", map[string]any{"type": "socket", "address": "a:1", "socketType": "sctp"})}, "vault.audit.socketType", "Unsupported"},
		{"audit socket with path", []edit{set("vault.audit", map[string]any{"type": "socket", "address": "a:1", "path": "/x"})}, "vault.audit.path", "file only"},
		{"audit none with path", []edit{set("vault.audit.type", "none")}, "vault.audit.path", "type none"},
		{"auth path with auth/", []edit{set("vault.kubernetesAuth.path", "auth/kubernetes")}, "vault.kubernetesAuth.path", `without "auth/"`},
		{"auth host not https", []edit{set("vault.kubernetesAuth.host", "http://127.0.0.1:6443")}, "vault.kubernetesAuth.host", "https URL"},
		{"reviewer token unknown", []edit{set("vault.kubernetesAuth.reviewerToken", "local")}, "vault.kubernetesAuth.reviewerToken", `supported values: "minted", "vault-pod"`},
		{"reviewer token empty", []edit{set("vault.kubernetesAuth.reviewerToken", "")}, "vault.kubernetesAuth.reviewerToken", "Unsupported value"},
		{"reviewer namespace bad", []edit{set("vault.kubernetesAuth.reviewerNamespace", "Bad")}, "vault.kubernetesAuth.reviewerNamespace", "RFC 1123"},
		{"reviewer service account empty", []edit{set("vault.kubernetesAuth.reviewerServiceAccount", "")}, "vault.kubernetesAuth.reviewerServiceAccount", "Required"},
		{"token TTL too short", []edit{set("vault.tokenTTL", "30s")}, "vault.tokenTTL", "between 1m0s and 24h0m0s"},
		{"token TTL too long", []edit{set("vault.tokenTTL", "25h")}, "vault.tokenTTL", "between"},
		{"token TTL not a duration", []edit{set("vault.tokenTTL", "1 hour")}, "vault.tokenTTL", `Invalid value: "1 hour": must be a duration`},
		{"token TTL a number", []edit{set("vault.tokenTTL", 3600)}, "vault.tokenTTL", "not an integer"},
		{"kv mount empty", []edit{set("vault.kvMount", "")}, "vault.kvMount", "Required"},
		{"kv mount trailing slash", []edit{set("vault.kvMount", "secret/")}, "vault.kvMount", "trailing"},
		{"kv mount reserved", []edit{set("vault.kvMount", "auth")}, "vault.kvMount", "reserved"},
		{"apps not a list", []edit{set("apps", "shop")}, "apps", "must be a list, not a string"},
		{"app name missing", []edit{set("apps.1.name", del)}, "apps[1].name", "Required"},
		{"app name missing, service account still checked", []edit{set("apps.1.name", del), set("apps.1.serviceAccount", "Bill")}, "apps[1].serviceAccount", "RFC 1123"},
		{"app name not a DNS label", []edit{set("apps.1.name", "Billing")}, "apps[1].name", "RFC 1123"},
		{"app name duplicate", []edit{set("apps.1.name", "shop")}, "apps[1].name", `Duplicate value: "shop"`},
		{"app namespace bad", []edit{set("apps.1.namespace", "money.bags")}, "apps[1].namespace", "must not contain dots"},
		{"app namespace explicitly empty", []edit{set("apps.1.namespace", "")}, "apps[1].namespace", "Required"},
		{"service account bad", []edit{set("apps.1.serviceAccount", "Bill")}, "apps[1].serviceAccount", "RFC 1123"},
		{"service account shared in one namespace", []edit{set("apps.1.namespace", "shop"), set("apps.1.serviceAccount", "shop")},
			"apps[1].serviceAccount", `app "shop" (in the same namespace)`},
		{"service account shared across namespaces", []edit{set("apps.1.serviceAccount", "shop")}, "apps[1].serviceAccount", "in namespace shop"},
		{"service account is the token reviewer", []edit{set("apps.1.namespace", "blinkchamber"), set("apps.1.serviceAccount", "vault-token-reviewer")},
			"apps[1].serviceAccount", "token reviewer"},
		{"secret name bad", []edit{set("apps.0.secrets.0.name", "-db")}, "apps[0].secrets[0].name", "lower-case"},
		{"secret name upper case", []edit{set("apps.0.secrets.0.name", "DB")}, "apps[0].secrets[0].name", "lower-case"},
		{"secret name duplicate", []edit{set("apps.0.secrets.1", map[string]any{"name": "db", "data": map[string]any{"a": "b"}})},
			"apps[0].secrets[1].name", "Duplicate"},
		{"secret without keys", []edit{set("apps.0.secrets.0", map[string]any{"name": "db"})}, "apps[0].secrets[0]", "at least one key"},
		{"key in data and generate", []edit{set("apps.0.secrets.0.generate.username", map[string]any{})},
			"apps[0].secrets[0].generate[username]", "also in data"},
		{"key in generate and fromFile", []edit{set("apps.0.secrets.0.fromFile.password", "./p")},
			"apps[0].secrets[0].fromFile[password]", "also in generate"},
		{"key name bad", []edit{set("apps.0.secrets.0.data", map[string]any{"user name": "x"})}, "apps[0].secrets[0].data[user name]", "alphanumeric"},
		{"data value a number", []edit{set("apps.0.secrets.0.data.port", 5432)}, "apps[0].secrets[0].data[port]", "must be a string (quote it), not an integer"},
		{"generator too short", []edit{set("apps.0.secrets.0.generate.password.length", 7)}, "apps[0].secrets[0].generate[password].length", "between 8 and 256"},
		{"generator too long", []edit{set("apps.0.secrets.0.generate.password.length", 257)}, "apps[0].secrets[0].generate[password].length", "between 8 and 256"},
		{"generator charset unknown", []edit{set("apps.0.secrets.0.generate.password.charset", "emoji")}, "apps[0].secrets[0].generate[password].charset", "Unsupported"},
		{"from file path empty", []edit{set("apps.0.secrets.0.fromFile.cert", "")}, "apps[0].secrets[0].fromFile[cert]", "Required"},
		{"postgres host missing", []edit{set("apps.0.postgres.connection.host", del)}, "apps[0].postgres.connection.host", "Required"},
		{"postgres port zero", []edit{set("apps.0.postgres.connection.port", 0)}, "apps[0].postgres.connection.port", "between 1 and 65535"},
		{"postgres port too big", []edit{set("apps.0.postgres.connection.port", 70000)}, "apps[0].postgres.connection.port", "between 1 and 65535"},
		{"postgres username missing", []edit{set("apps.0.postgres.connection.username", del)}, "apps[0].postgres.connection.username", "Required"},
		{"postgres password file missing", []edit{set("apps.0.postgres.connection.passwordFile", del)}, "apps[0].postgres.connection.passwordFile", "Required"},
		{"postgres ssl mode unknown", []edit{set("apps.0.postgres.connection.sslMode", "prefer")}, "apps[0].postgres.connection.sslMode", "Unsupported"},
		{"postgres without roles", []edit{set("apps.0.postgres.roles", []any{})}, "apps[0].postgres.roles", "Required"},
		{"postgres role name bad", []edit{set("apps.0.postgres.roles.0.name", "shop rw")}, "apps[0].postgres.roles[0].name", "letters, digits"},
		{"postgres role duplicate across apps", []edit{set("apps.1.postgres", map[string]any{
			"connection": map[string]any{"host": "h", "username": "u", "passwordFile": "p"}, "roles": []any{map[string]any{"name": "shop-rw"}}})},
			"apps[1].postgres.roles[0].name", "Duplicate"},
		{"postgres max TTL below default", []edit{set("apps.0.postgres.roles.0.maxTTL", "30m")}, "apps[0].postgres.roles[0].maxTTL", "at least defaultTTL (1h0m0s)"},
		{"postgres default TTL not a duration", []edit{set("apps.0.postgres.roles.0.defaultTTL", "soon")}, "apps[0].postgres.roles[0].defaultTTL", "duration"},
		{"postgres statements without {{name}}", []edit{set("apps.0.postgres.roles.0.creationStatements", "CREATE ROLE x;")},
			"apps[0].postgres.roles[0].creationStatements", "{{name}}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := render(t, base, tc.edits...)
			_, err := Parse(data)
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", data)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is not a *ValidationError: %v", err)
			}
			for _, fe := range ve.Errs {
				if fe.Field == tc.path && strings.Contains(fe.Error(), tc.want) {
					return
				}
			}
			t.Errorf("no error at %s containing %q; got:\n%v", tc.path, tc.want, err)
		})
	}
}

// TestErrorMessage pins the format of a refusal.
func TestErrorMessage(t *testing.T) {
	_, err := Parse(render(t, base, set("vault.seal.shamir.threshold", 6)))
	want := "invalid bootstrap config: vault.seal.shamir.threshold: Invalid value: 6: must be at most shares (5)"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	_, err = Parse(render(t, base, set("vault.seal.shamir.threshold", 6), set("apps.1.namespace", "Money")))
	if err == nil || !strings.HasPrefix(err.Error(), "invalid bootstrap config: 2 problems:\n  vault.seal.shamir.threshold: ") {
		t.Fatalf("got %v", err)
	}
}

// TestShapeErrorsHideTheirConsequences: a value of the wrong type is
// reported once, not again as missing.
func TestShapeErrorsHideTheirConsequences(t *testing.T) {
	_, err := Parse(render(t, base, set("apps.1.name", 12), set("vault.kvMount", []any{"a"}), set("bogus", 1)))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v", err)
	}
	var fields []string
	for _, fe := range ve.Errs {
		fields = append(fields, fe.Field)
	}
	// apps[1].name is not also Required, and the app's namespace and
	// ServiceAccount (defaulted from the name) are not reported.
	if want := []string{"apps[1].name", "bogus", "vault.kvMount"}; !reflect.DeepEqual(fields, want) {
		t.Errorf("fields %v, want %v\n%v", fields, want, err)
	}
	if strings.Contains(err.Error(), "12") {
		t.Errorf("a mistyped value is echoed: %v", err)
	}
}

func TestParseRefusesBadYAML(t *testing.T) {
	cases := map[string]string{
		"syntax":             "environment: [development\n",
		"duplicate key":      "environment: development\nenvironment: staging\n",
		"several documents":  "environment: development\n---\nenvironment: staging\n",
		"not a mapping":      "- environment\n",
		"a scalar":           "development\n",
		"nested duplicate":   "vault:\n  address: a\n  address: b\n",
		"too large":          "# " + strings.Repeat("x", MaxFileSize) + "\n",
		"tab indentation":    "vault:\n\taddress: a\n",
		"non-string map key": "apps:\n  - name: shop\n    secrets:\n      - name: db\n        data: {[a]: b}\n",
		"alias":              "environment: &e development\nvault: {address: *e}\n",
		"billion laughs": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n" +
			"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(doc))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if len(err.Error()) < 200 {
				t.Log(err)
			}
		})
	}
}

func TestParseAcceptsLeadingDocumentMarker(t *testing.T) {
	mustParse(t, append([]byte("# a comment\n---\n"), render(t, base)...))
	mustParse(t, append(render(t, base), []byte("---\n# only a comment\n")...))
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, []byte(`
environment: development
vault:
  address: http://127.0.0.1:8200
  seal:
    shamir:
  audit: {path: stdout}
apps:
  - name: shop
    secrets:
      - name: db
        generate: {password: }
    postgres:
      connection: {host: h, username: u, passwordFile: p}
      roles: [{name: r}]
`))
	want := Config{
		Environment: Development,
		Vault: Vault{
			Address: "http://127.0.0.1:8200",
			Seal: Seal{Shamir: &Shamir{Shares: 5, Threshold: 3,
				KeyStore: KeyStore{Type: KeyStoreFile, Path: DefaultKeyFile}}},
			Audit: Audit{Type: AuditFile, Path: "stdout"},
			KubernetesAuth: KubernetesAuth{Path: "kubernetes", ReviewerToken: ReviewerTokenMinted,
				ReviewerNamespace: "blinkchamber", ReviewerServiceAccount: "vault-token-reviewer"},
			TokenTTL: Duration{time.Hour},
			KVMount:  "secret",
		},
		Apps: []App{{
			Name: "shop", Namespace: "shop", ServiceAccount: "shop",
			Secrets: []Secret{{Name: "db", Generate: map[string]Generator{"password": {Length: 32, Charset: CharsetAlphanumeric}}}},
			Postgres: &Postgres{
				Connection: PostgresConnection{Host: "h", Port: 5432, Database: "postgres", Username: "u", PasswordFile: "p", SSLMode: SSLDisable},
				Roles:      []PostgresRole{{Name: "r", DefaultTTL: Duration{time.Hour}, MaxTTL: Duration{24 * time.Hour}}},
			},
		}},
		Owner: DefaultOwner,
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got  %+v\nwant %+v", *c, want)
	}
}

func TestDefaultsDependOnOtherKeys(t *testing.T) {
	for shares, threshold := range map[int]int{1: 1, 2: 2, 3: 3, 7: 3} {
		c := mustParse(t, render(t, base, set("vault.seal.shamir.shares", shares), set("vault.seal.shamir.threshold", del)))
		if got := c.Vault.Seal.Shamir.Threshold; got != threshold {
			t.Errorf("shares %d: default threshold %d, want %d", shares, got, threshold)
		}
	}
	c := mustParse(t, render(t, base, set("vault.seal.shamir.keyStore", map[string]any{"type": "kubernetes-secret"})))
	if ks := c.Vault.Seal.KeyStore(); ks != (KeyStore{Type: KeyStoreKubernetesSecret, Namespace: "blinkchamber", Name: "vault-unseal-keys"}) {
		t.Errorf("kubernetes-secret defaults: %+v", ks)
	}
	c = mustParse(t, render(t, base, set("vault.audit", map[string]any{"type": "socket", "address": "a:1"})))
	if c.Vault.Audit.SocketType != "tcp" {
		t.Errorf("socket type default: %q", c.Vault.Audit.SocketType)
	}
}

func TestHelpers(t *testing.T) {
	c := mustParse(t, render(t, base))
	shop, billing := c.Apps[0], c.Apps[1]
	for _, tc := range []struct{ got, want string }{
		{shop.KVPath("secret", "db"), "shop/shop/db"},
		{billing.KVPath("kv", "stripe"), "money/billing/stripe"},
		{billing.KVDataPath("kv", "stripe"), "kv/data/money/billing/stripe"},
		{shop.PolicyName(), "blinkchamber-shop-shop"},
		{billing.PolicyName(), "blinkchamber-money-billing"},
		{shop.RoleName(), "shop"},
		{billing.RoleName(), "billing"},
		{string(c.Vault.Seal.Kind()), "shamir"},
		{c.Vault.Seal.KeyStore().Path, "./keys.json"},
		{strings.Join(shop.Secrets[0].Keys(), ","), "cert,password,username"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if k := (Seal{}).Kind(); k != "" {
		t.Errorf("Kind of no seal: %q", k)
	}
	if k := (Seal{Shamir: &Shamir{}, AWSKMS: &AWSKMS{}}).Kind(); k != "" {
		t.Errorf("Kind of two seals: %q", k)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, DefaultFile)
	if err := os.WriteFile(good, render(t, base), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, render(t, base, set("vault.kvMount", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), bad+": invalid bootstrap config: vault.kvMount") {
		t.Errorf("got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("missing file: got %v", err)
	}
}
