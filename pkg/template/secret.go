package template

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
	// Auth and WrapInfo stay so that templates testing them (and `toJSON .`)
	// behave as under consul-template, but their type has no field: an
	// answer's login block (a token and its accessor) and its wrapping
	// token can never reach a template, whatever endpoint answered.
	Auth     *Withheld
	WrapInfo *Withheld
}

// Withheld is the type of the parts of Vault's answer a template never
// sees; it holds nothing, and the agent leaves it nil.
type Withheld struct{}
