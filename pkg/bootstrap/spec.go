package bootstrap

import (
	"context"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/keystore"
)

// Spec is everything the steps need, resolved from the config once: file
// contents read, defaults applied. Steps never read the config themselves.
type Spec struct {
	Environment string
	Seal        Seal
	Keys        keystore.Store
	// AdminKeys holds the admin token that replaces the root token in
	// production (see adminSteps); nil elsewhere.
	AdminKeys keystore.Store
	Audit     Audit
	KubeAuth  KubeAuth
	KVMount   string
	TokenTTL  time.Duration
	Apps      []App
	// Owner names whose apps these are: each app's record is kept under
	// it, and prune only looks at the owner's records.
	Owner string
	// Prune removes what was provisioned for the owner's recorded apps that
	// Apps no longer lists.
	Prune bool
	// VaultAddr is Vault's address, handed to the apps' release.
	VaultAddr string
	// Release is where the apps phase installs the chart.
	Release Release
	// Prerequisites are checked before anything is changed.
	Prerequisites []Prerequisite
}

// Seal says how Vault is initialised and unsealed.
type Seal struct {
	// Kind is "shamir", "transit" or "awskms".
	Kind      string
	Shares    int
	Threshold int
	Transit   *TransitSeal
	AWSKMS    *AWSKMSSeal
}

// TransitSeal is auto-unseal through another Vault's transit engine.
type TransitSeal struct {
	Address string
	CAFile  string
	Mount   string
	Key     string
	// Client talks to the transit Vault with the configured token.
	Client *api.Client
}

// AWSKMSSeal is auto-unseal through AWS KMS (configuration only: no KMS
// can be reached from here).
type AWSKMSSeal struct {
	Region   string
	KMSKeyID string
}

// AutoUnseal reports whether Vault unseals itself (transit, awskms): init
// then returns recovery keys, and bootstrap only verifies the seal.
func (s Seal) AutoUnseal() bool { return s.Kind != "shamir" }

// Audit is the audit device.
type Audit struct {
	// Type is "file", "socket" or "none".
	Type string
	Path string
}

// KubeAuth is the kubernetes auth method.
type KubeAuth struct {
	Path  string // mount, e.g. "kubernetes"
	Host  string
	CAPEM string
	// VaultPodReviewer: Vault runs in the cluster and sends TokenReviews
	// with its own pod's ServiceAccount token (ReviewerNamespace/
	// ReviewerServiceAccount), which whoever deployed Vault bound to
	// system:auth-delegator; bootstrap only checks that binding, and mints
	// nothing (ReviewerJWT is not called).
	VaultPodReviewer bool
	// ReviewerJWT mints the token Vault uses for TokenReview calls and says
	// when it expires (a Vault outside the cluster).
	ReviewerJWT            func(ctx context.Context) (jwt string, expires time.Time, err error)
	ReviewerNamespace      string
	ReviewerServiceAccount string
}

// App is one application's Vault identity and secrets.
type App struct {
	Name           string
	Namespace      string
	ServiceAccount string
	Policy         string
	Role           string
	Secrets        []Secret
	Database       *Database
	// ReadPaths are Vault paths the app's policy may also read: system
	// endpoints, and the KV paths it shares with other apps.
	ReadPaths []string
	// SkipNetworkPolicies leaves the app's namespace without bootstrap's
	// NetworkPolicies.
	SkipNetworkPolicies bool
}

// Secret is one KV v2 secret of an app.
type Secret struct {
	Name string
	// Path is the KV v2 path inside the mount: <namespace>/<app>/<name>.
	Path string
	// Literal values are owned by the config: drift is repaired.
	Literal map[string]string
	// Imported values come from files or Kubernetes Secrets: drift is
	// repaired.
	Imported map[string]string
	// Generate makes the values generated once; they are never overwritten
	// (only `secrets rotate` replaces them).
	Generate map[string]func() (string, error)
}

// Database is an app's dynamic PostgreSQL credentials.
type Database struct {
	Connection    string // Vault connection name
	ConnectionURL string // with {{username}}/{{password}} templating
	Username      string
	// Password, or PasswordKV (a KV v2 path and key that an earlier step
	// wrote), is Username's password.
	Password   string
	PasswordKV *KVRef
	Roles      []DBRole
}

// KVRef is one key of a KV v2 secret.
type KVRef struct {
	Path string
	Key  string
}

// DBRole is one database secrets engine role.
type DBRole struct {
	Name               string
	DefaultTTL         time.Duration
	MaxTTL             time.Duration
	CreationStatements string
}
