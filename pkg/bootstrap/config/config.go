// Package config is blinkchamber's declarative bootstrap configuration: which
// Vault to provision and how it is sealed, audited and reached from
// Kubernetes, and which apps get which secrets. It is read from YAML
// (blinkchamber.yaml by default) strictly: an unknown key, a value of the
// wrong type or a value out of range is refused with the path of the
// offending key, before bootstrap touches anything.
//
// Defaults apply only to keys that are absent (or written with no value);
// a key given an explicit value, even 0 or "", is validated as written.
// Relative file paths are kept as written; nothing here reads them.
package config

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// DefaultFile is the config file read when none is named.
const DefaultFile = "blinkchamber.yaml"

// Environment is the kind of installation; it decides which seals and key
// stores are allowed.
type Environment string

const (
	Development Environment = "development"
	Staging     Environment = "staging"
	Production  Environment = "production"
)

// Config is the whole bootstrap configuration.
type Config struct {
	Environment Environment `json:"environment"`
	Vault       Vault       `json:"vault"`
	Apps        []App       `json:"apps,omitempty"`
	// Prerequisites are looked for before anything is changed.
	Prerequisites []Prerequisite `json:"prerequisites,omitempty"`
	// Owner names whoever keeps this config (the chart's bootstrap Job, a
	// platform team's CLI config). Bootstrap records each app it provisions
	// under its owner, so that two configs provisioning one Vault never
	// prune each other's apps.
	Owner string `json:"owner"`
	// Prune removes from Vault what bootstrap provisioned for an app that
	// was recorded under Owner and that the config no longer lists: its
	// policy, role, secrets and database roles. Off, they are kept and the
	// plan lists them: removing an entry by mistake never deletes a secret.
	Prune bool `json:"prune,omitempty"`
}

// Vault is the Vault server bootstrap provisions.
type Vault struct {
	// Address is Vault's http(s) URL, without a path.
	Address string `json:"address"`
	// CAFile is a PEM bundle to verify Vault's certificate; empty: system roots.
	CAFile         string         `json:"caFile,omitempty"`
	Seal           Seal           `json:"seal"`
	Audit          Audit          `json:"audit"`
	KubernetesAuth KubernetesAuth `json:"kubernetesAuth"`
	// TokenTTL is the TTL of the tokens the apps' kubernetes-auth roles issue.
	TokenTTL Duration `json:"tokenTTL"`
	// KVMount is the mount of the KV v2 engine holding the app secrets.
	KVMount string `json:"kvMount"`
}

// Seal says how Vault is unsealed. Exactly one kind is set.
type Seal struct {
	Shamir  *Shamir  `json:"shamir,omitempty"`
	Transit *Transit `json:"transit,omitempty"`
	AWSKMS  *AWSKMS  `json:"awskms,omitempty"`
}

// SealKind names a kind of seal; it is also the seal's YAML key.
type SealKind string

const (
	SealShamir  SealKind = "shamir"
	SealTransit SealKind = "transit"
	SealAWSKMS  SealKind = "awskms"
)

// kinds lists the kinds that are set, in a fixed order.
func (s Seal) kinds() []SealKind {
	var k []SealKind
	if s.Shamir != nil {
		k = append(k, SealShamir)
	}
	if s.Transit != nil {
		k = append(k, SealTransit)
	}
	if s.AWSKMS != nil {
		k = append(k, SealAWSKMS)
	}
	return k
}

// Kind is the seal in use, or "" unless exactly one is set (which Validate
// guarantees).
func (s Seal) Kind() SealKind {
	if k := s.kinds(); len(k) == 1 {
		return k[0]
	}
	return ""
}

// KeyStore is where the seal in use keeps what `sys/init` returns: the
// unseal keys (Shamir) or recovery keys (auto-unseal) and the root token.
// It is the zero KeyStore unless exactly one seal is set.
func (s Seal) KeyStore() KeyStore {
	switch s.Kind() {
	case SealShamir:
		return s.Shamir.KeyStore
	case SealTransit:
		return s.Transit.KeyStore
	case SealAWSKMS:
		return s.AWSKMS.KeyStore
	}
	return KeyStore{}
}

// Shamir is Vault's default seal: the master key split into Shares unseal
// keys, Threshold of which unseal it.
type Shamir struct {
	Shares    int      `json:"shares"`
	Threshold int      `json:"threshold"`
	KeyStore  KeyStore `json:"keyStore"`
}

// Transit auto-unseals through the transit engine of another Vault.
type Transit struct {
	// Address is the URL of the Vault that holds the transit key.
	Address string `json:"address"`
	// CAFile is a PEM bundle to verify that Vault's certificate; optional.
	CAFile string `json:"caFile,omitempty"`
	// Mount is the transit engine's mount on that Vault.
	Mount string `json:"mount"`
	// Key is the transit key's name.
	Key string `json:"key"`
	// TokenFile holds a token for that Vault allowed to use the key.
	TokenFile string `json:"tokenFile"`
	// KeyStore keeps the recovery keys and the root token from init.
	KeyStore KeyStore `json:"keyStore"`
}

// AWSKMS auto-unseals with a key in AWS KMS. Its config is generated and
// validated; it cannot be exercised without AWS.
type AWSKMS struct {
	Region   string `json:"region"`
	KMSKeyID string `json:"kmsKeyId"`
	// KeyStore keeps the recovery keys and the root token from init.
	KeyStore KeyStore `json:"keyStore"`
}

// KeyStoreType is where keys are kept.
type KeyStoreType string

const (
	// KeyStoreFile is a local file, mode 0600.
	KeyStoreFile KeyStoreType = "file"
	// KeyStoreKubernetesSecret is a Secret in the cluster Vault serves;
	// development only.
	KeyStoreKubernetesSecret KeyStoreType = "kubernetes-secret"
)

// KeyStore says where the keys from `sys/init` are kept.
type KeyStore struct {
	Type KeyStoreType `json:"type"`
	// Path is the key file (type file).
	Path string `json:"path,omitempty"`
	// Namespace and Name are the Secret's (type kubernetes-secret).
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// AuditType is the kind of Vault audit device.
type AuditType string

const (
	AuditFile   AuditType = "file"
	AuditSocket AuditType = "socket"
	AuditNone   AuditType = "none"
)

// Audit is the audit device bootstrap enables.
type Audit struct {
	Type AuditType `json:"type"`
	// Path is the log file on Vault's host, absolute, or "stdout" (type file).
	Path string `json:"path,omitempty"`
	// Address is host:port, or a socket path for unix (type socket).
	Address string `json:"address,omitempty"`
	// SocketType is tcp, udp or unix (type socket).
	SocketType string `json:"socketType,omitempty"`
}

// KubernetesAuth configures Vault's kubernetes auth method.
type KubernetesAuth struct {
	// Path is the auth mount, without "auth/".
	Path string `json:"path"`
	// Host is the API server Vault sends TokenReviews to; empty: the one of
	// the kubeconfig bootstrap uses.
	Host string `json:"host,omitempty"`
	// CAFile is the API server's CA bundle; empty: the kubeconfig's.
	CAFile string `json:"caFile,omitempty"`
	// ReviewerToken says whose token Vault sends its TokenReview requests
	// with.
	ReviewerToken ReviewerToken `json:"reviewerToken"`
	// ReviewerNamespace and ReviewerServiceAccount name the ServiceAccount
	// bound to system:auth-delegator whose token Vault reviews with: with
	// ReviewerTokenMinted one bootstrap creates and binds, with
	// ReviewerTokenVaultPod Vault's own.
	ReviewerNamespace      string `json:"reviewerNamespace"`
	ReviewerServiceAccount string `json:"reviewerServiceAccount"`
}

// ReviewerToken is the token Vault reviews ServiceAccount tokens with.
type ReviewerToken string

const (
	// ReviewerTokenMinted: bootstrap creates the reviewer ServiceAccount,
	// binds it to system:auth-delegator, and gives Vault a long-lived token
	// of it, refreshed a month before it expires. For a Vault outside the
	// cluster, which has no ServiceAccount token of its own.
	ReviewerTokenMinted ReviewerToken = "minted"
	// ReviewerTokenVaultPod: Vault runs in the cluster and reviews with its
	// own pod's ServiceAccount token, short-lived and rotated by the
	// kubelet (Vault re-reads it); no long-lived token exists. Whoever
	// deploys Vault binds its ServiceAccount (ReviewerNamespace/
	// ReviewerServiceAccount) to system:auth-delegator, as the chart does;
	// bootstrap checks that it may review tokens.
	ReviewerTokenVaultPod ReviewerToken = "vault-pod"
)

// ReviewerTokenValues are the supported ReviewerToken values.
var ReviewerTokenValues = []ReviewerToken{ReviewerTokenMinted, ReviewerTokenVaultPod}

// App is one application: its identity in Kubernetes and its secrets.
type App struct {
	Name string `json:"name"`
	// Namespace defaults to Name.
	Namespace string `json:"namespace"`
	// ServiceAccount defaults to Name. It is also the kubernetes-auth role
	// name (see RoleName), so it is unique across apps.
	ServiceAccount string    `json:"serviceAccount"`
	Secrets        []Secret  `json:"secrets,omitempty"`
	Postgres       *Postgres `json:"postgres,omitempty"`
	// VaultAccess grants read on named Vault system endpoints beyond the
	// app's own secrets; a closed list, so a config cannot widen a policy
	// to arbitrary paths.
	VaultAccess []VaultAccess `json:"vaultAccess,omitempty"`
	// KVReadPaths are paths inside the KV mount the app may also read, such
	// as shared/tls/* (a trailing * matches every path under it): secrets
	// that several apps share. They stay inside the KV mount.
	KVReadPaths []string `json:"kvReadPaths,omitempty"`
	// NetworkPolicies, unless false, puts a default-deny NetworkPolicy in
	// the app's namespace, plus egress to DNS and Vault. Set it false for a
	// namespace whose workloads need other flows.
	NetworkPolicies *bool `json:"networkPolicies,omitempty"`
}

// ManagesNetworkPolicies reports whether bootstrap puts its NetworkPolicies
// in the app's namespace (the default).
func (a App) ManagesNetworkPolicies() bool { return a.NetworkPolicies == nil || *a.NetworkPolicies }

// VaultAccess is a Vault system endpoint an app may read.
type VaultAccess string

const (
	// VaultAccessMetrics is sys/metrics, for a Prometheus that scrapes Vault
	// with its own token.
	VaultAccessMetrics VaultAccess = "metrics"
	// VaultAccessRaftSnapshot is sys/storage/raft/snapshot, for backups.
	VaultAccessRaftSnapshot VaultAccess = "raft-snapshot"
)

// VaultAccessValues are the supported VaultAccess values.
var VaultAccessValues = []VaultAccess{VaultAccessMetrics, VaultAccessRaftSnapshot}

// Path is the Vault API path read is granted on; "" for an unknown value.
func (v VaultAccess) Path() string {
	switch v {
	case VaultAccessMetrics:
		return "sys/metrics"
	case VaultAccessRaftSnapshot:
		return "sys/storage/raft/snapshot"
	}
	return ""
}

// KVPath is the path of one of the app's secrets inside the KV v2 mount,
// <namespace>/<app>/<secret>: the path KV v2 clients take together with the
// mount (vault kv get -mount=<kvMount> <path>). kvMount is not part of it;
// KVDataPath gives the full HTTP API path.
func (a App) KVPath(kvMount, secret string) string {
	return a.Namespace + "/" + a.Name + "/" + secret
}

// KVDataPath is the HTTP API path of one of the app's secrets,
// <kvMount>/data/<namespace>/<app>/<secret>, as a template or the agent's
// secret annotation names it.
func (a App) KVDataPath(kvMount, secret string) string {
	return kvMount + "/data/" + a.KVPath(kvMount, secret)
}

// PolicyName is the name of the app's read-only Vault policy.
func (a App) PolicyName() string { return "blinkchamber-" + a.Namespace + "-" + a.Name }

// RoleName is the app's kubernetes-auth role: its ServiceAccount name, which
// is what the agent uses when a pod sets no blinkchamber.io/role, so the
// app's pods need no role annotation.
func (a App) RoleName() string { return a.ServiceAccount }

// Secret is one KV v2 secret of an app. Each key comes from exactly one of
// Data, Generate, FromFile and FromSecret.
type Secret struct {
	Name string `json:"name"`
	// Data holds literal, non-secret values.
	Data map[string]string `json:"data,omitempty"`
	// Generate holds values generated once, when missing, and never
	// overwritten (rotation is explicit).
	Generate map[string]Generator `json:"generate,omitempty"`
	// FromFile maps a key to a local file whose content (trailing newline
	// trimmed) is imported.
	FromFile map[string]string `json:"fromFile,omitempty"`
	// FromSecret maps a key to one key of an existing Kubernetes Secret,
	// whose value is imported (and re-imported when it changes). A value
	// someone provides belongs in a Secret, not in this config: the config
	// is a ConfigMap or a file that many can read, and Helm keeps a
	// release's values in every revision.
	FromSecret map[string]SecretKeyRef `json:"fromSecret,omitempty"`
}

// SecretKeyRef names one key of a Kubernetes Secret.
type SecretKeyRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

// Keys lists every key of the secret, sorted.
func (s Secret) Keys() []string {
	var keys []string
	for k := range s.Data {
		keys = append(keys, k)
	}
	for k := range s.Generate {
		keys = append(keys, k)
	}
	for k := range s.FromFile {
		keys = append(keys, k)
	}
	for k := range s.FromSecret {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Charset is the alphabet a generated value is drawn from.
type Charset string

const (
	CharsetAlphanumeric Charset = "alphanumeric" // A-Z a-z 0-9
	CharsetHex          Charset = "hex"          // 0-9 a-f
	CharsetBase64URL    Charset = "base64url"    // A-Z a-z 0-9 - _
	// CharsetASCIIPrintable is every printable ASCII character but space.
	CharsetASCIIPrintable Charset = "ascii-printable"
)

// Generator says how a value is generated.
type Generator struct {
	Length  int     `json:"length"`
	Charset Charset `json:"charset"`
}

// Postgres asks for dynamic PostgreSQL credentials through Vault's database
// secrets engine.
type Postgres struct {
	Connection PostgresConnection `json:"connection"`
	Roles      []PostgresRole     `json:"roles"`
}

// SSLMode is libpq's sslmode, as Vault's connection URL carries it.
type SSLMode string

const (
	SSLDisable    SSLMode = "disable"
	SSLRequire    SSLMode = "require"
	SSLVerifyFull SSLMode = "verify-full"
)

// PostgresConnection is how Vault logs in to PostgreSQL as an admin.
type PostgresConnection struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Database string `json:"database"`
	Username string `json:"username"`
	// PasswordFile holds Username's password. Exactly one of PasswordFile
	// and PasswordFromSecret is set.
	PasswordFile string `json:"passwordFile,omitempty"`
	// PasswordFromSecret takes the password from a secret this config
	// generates, as "<app>/<secret>#<key>": the PostgreSQL the chart runs
	// gets its superuser password from Vault, and Vault's database engine
	// then logs in with the same value, with no file to keep.
	PasswordFromSecret string  `json:"passwordFromSecret,omitempty"`
	SSLMode            SSLMode `json:"sslMode"`
}

// PostgresRole is one Vault database role; its name is unique across apps.
type PostgresRole struct {
	Name       string   `json:"name"`
	DefaultTTL Duration `json:"defaultTTL"`
	MaxTTL     Duration `json:"maxTTL"`
	// CreationStatements is SQL using {{name}}, {{password}} and
	// {{expiration}}; empty: a LOGIN role granted CONNECT on the database.
	CreationStatements string `json:"creationStatements,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("1h").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"1h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	d.Duration = v
	return nil
}
