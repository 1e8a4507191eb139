package config

import (
	"bytes"
	"encoding/json"
	"time"
)

// Defaults. Each applies only when its key is absent or has no value.
const (
	DefaultShares                 = 5
	DefaultThreshold              = 3 // or Shares, when fewer
	DefaultKeyFile                = "./blinkchamber-vault-keys.json"
	DefaultKeySecretNamespace     = "blinkchamber"
	DefaultKeySecretName          = "vault-unseal-keys"
	DefaultTransitMount           = "transit"
	DefaultAuditType              = AuditFile
	DefaultSocketType             = "tcp"
	DefaultKubernetesAuthPath     = "kubernetes"
	DefaultReviewerToken          = ReviewerTokenMinted
	DefaultReviewerNamespace      = "blinkchamber"
	DefaultReviewerServiceAccount = "vault-token-reviewer"
	DefaultTokenTTL               = time.Hour
	DefaultKVMount                = "secret"
	DefaultLength                 = 32
	DefaultCharset                = CharsetAlphanumeric
	DefaultPostgresPort           = 5432
	DefaultPostgresDatabase       = "postgres"
	DefaultSSLMode                = SSLDisable
	DefaultRoleTTL                = time.Hour
	DefaultRoleMaxTTL             = 24 * time.Hour
	DefaultOwner                  = "blinkchamber"
)

// Each type with defaults decodes into a copy of itself pre-filled with
// them (the "plain" type, which has the fields but not the method), so an
// absent key keeps its default and a present one, even 0 or "", replaces it.

// decodeObject decodes one JSON object into dst, refusing unknown keys, and
// reports which keys carry a value other than null. null decodes as {}.
func decodeObject(data []byte, dst any) (map[string]bool, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	given := make(map[string]bool, len(raw))
	for k, v := range raw {
		if !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			given[k] = true
		}
	}
	if raw == nil {
		return given, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return given, dec.Decode(dst)
}

func defaultConfig() Config { return Config{Vault: defaultVault(), Owner: DefaultOwner} }

func defaultVault() Vault {
	return Vault{
		Audit:          defaultAudit(),
		KubernetesAuth: defaultKubernetesAuth(),
		TokenTTL:       Duration{DefaultTokenTTL},
		KVMount:        DefaultKVMount,
	}
}

// UnmarshalJSON decodes with defaults.
func (v *Vault) UnmarshalJSON(b []byte) error {
	type plain Vault
	p := plain(defaultVault())
	if _, err := decodeObject(b, &p); err != nil {
		return err
	}
	*v = Vault(p)
	return nil
}

// UnmarshalJSON decodes with defaults; the threshold defaults to 3, or to
// the number of shares when there are fewer.
func (s *Shamir) UnmarshalJSON(b []byte) error {
	type plain Shamir
	p := plain{Shares: DefaultShares, KeyStore: defaultKeyStore()}
	given, err := decodeObject(b, &p)
	if err != nil {
		return err
	}
	if !given["threshold"] {
		p.Threshold = max(1, min(DefaultThreshold, p.Shares))
	}
	*s = Shamir(p)
	return nil
}

// UnmarshalJSON decodes with defaults.
func (t *Transit) UnmarshalJSON(b []byte) error {
	type plain Transit
	p := plain{Mount: DefaultTransitMount, KeyStore: defaultKeyStore()}
	if _, err := decodeObject(b, &p); err != nil {
		return err
	}
	*t = Transit(p)
	return nil
}

// UnmarshalJSON decodes with defaults.
func (a *AWSKMS) UnmarshalJSON(b []byte) error {
	type plain AWSKMS
	p := plain{KeyStore: defaultKeyStore()}
	if _, err := decodeObject(b, &p); err != nil {
		return err
	}
	*a = AWSKMS(p)
	return nil
}

func defaultKeyStore() KeyStore { return KeyStore{Type: KeyStoreFile, Path: DefaultKeyFile} }

// UnmarshalJSON decodes with the defaults of the store's type.
func (k *KeyStore) UnmarshalJSON(b []byte) error {
	type plain KeyStore
	p := plain{Type: KeyStoreFile}
	given, err := decodeObject(b, &p)
	if err != nil {
		return err
	}
	switch p.Type {
	case KeyStoreFile:
		if !given["path"] {
			p.Path = DefaultKeyFile
		}
	case KeyStoreKubernetesSecret:
		if !given["namespace"] {
			p.Namespace = DefaultKeySecretNamespace
		}
		if !given["name"] {
			p.Name = DefaultKeySecretName
		}
	}
	*k = KeyStore(p)
	return nil
}

func defaultAudit() Audit { return Audit{Type: DefaultAuditType} }

// UnmarshalJSON decodes with defaults.
func (a *Audit) UnmarshalJSON(b []byte) error {
	type plain Audit
	p := plain(defaultAudit())
	given, err := decodeObject(b, &p)
	if err != nil {
		return err
	}
	if p.Type == AuditSocket && !given["socketType"] {
		p.SocketType = DefaultSocketType
	}
	*a = Audit(p)
	return nil
}

func defaultKubernetesAuth() KubernetesAuth {
	return KubernetesAuth{
		Path:                   DefaultKubernetesAuthPath,
		ReviewerToken:          DefaultReviewerToken,
		ReviewerNamespace:      DefaultReviewerNamespace,
		ReviewerServiceAccount: DefaultReviewerServiceAccount,
	}
}

// UnmarshalJSON decodes with defaults.
func (k *KubernetesAuth) UnmarshalJSON(b []byte) error {
	type plain KubernetesAuth
	p := plain(defaultKubernetesAuth())
	if _, err := decodeObject(b, &p); err != nil {
		return err
	}
	*k = KubernetesAuth(p)
	return nil
}

// UnmarshalJSON decodes; namespace and serviceAccount default to the name.
func (a *App) UnmarshalJSON(b []byte) error {
	type plain App
	var p plain
	given, err := decodeObject(b, &p)
	if err != nil {
		return err
	}
	if !given["namespace"] {
		p.Namespace = p.Name
	}
	if !given["serviceAccount"] {
		p.ServiceAccount = p.Name
	}
	*a = App(p)
	return nil
}

// UnmarshalJSON decodes with defaults.
func (g *Generator) UnmarshalJSON(b []byte) error {
	type plain Generator
	p := plain{Length: DefaultLength, Charset: DefaultCharset}
	if _, err := decodeObject(b, &p); err != nil {
		return err
	}
	*g = Generator(p)
	return nil
}

func defaultConnection() PostgresConnection {
	return PostgresConnection{Port: DefaultPostgresPort, Database: DefaultPostgresDatabase, SSLMode: DefaultSSLMode}
}

// UnmarshalJSON decodes with defaults.
func (p *Postgres) UnmarshalJSON(b []byte) error {
	type plain Postgres
	v := plain{Connection: defaultConnection()}
	if _, err := decodeObject(b, &v); err != nil {
		return err
	}
	*p = Postgres(v)
	return nil
}

// UnmarshalJSON decodes with defaults.
func (c *PostgresConnection) UnmarshalJSON(b []byte) error {
	type plain PostgresConnection
	p := plain(defaultConnection())
	if _, err := decodeObject(b, &p); err != nil {
		return err
	}
	*c = PostgresConnection(p)
	return nil
}

// UnmarshalJSON decodes with defaults.
func (r *PostgresRole) UnmarshalJSON(b []byte) error {
	type plain PostgresRole
	p := plain{DefaultTTL: Duration{DefaultRoleTTL}, MaxTTL: Duration{DefaultRoleMaxTTL}}
	if _, err := decodeObject(b, &p); err != nil {
		return err
	}
	*r = PostgresRole(p)
	return nil
}
