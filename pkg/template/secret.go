package template

import "time"

// Secret is what `secret` returns: Vault's answer in the shape
// consul-template gives templates (the same fields, names and order, so
// `.Data.data.password`, `.LeaseID` and `toJSON .` render as they do
// under consul-template and Vault Agent).
type Secret struct {
	RequestID     string
	LeaseID       string
	LeaseDuration int
	Renewable     bool
	// Data is the answer's data; for KV v2, data and metadata.
	Data     map[string]any
	Warnings []string
	// Auth and WrapInfo are never set by the agent (a template reads
	// secrets, not logins); they exist so that templates testing them
	// behave as under consul-template.
	Auth     *SecretAuth
	WrapInfo *SecretWrapInfo
}

// SecretAuth is the login part of an answer, as consul-template names it.
type SecretAuth struct {
	ClientToken   string
	Accessor      string
	Policies      []string
	Metadata      map[string]string
	LeaseDuration int
	Renewable     bool
}

// SecretWrapInfo is the response-wrapping part of an answer, as
// consul-template names it.
type SecretWrapInfo struct {
	Token           string
	TTL             int
	CreationTime    time.Time
	WrappedAccessor string
}
