package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
)

// Bounds.
const (
	MinShares      = 1
	MaxShares      = 10
	MinTokenTTL    = time.Minute
	MaxTokenTTL    = 24 * time.Hour
	MinLength      = 8
	MaxLength      = 256
	MinRoleTTL     = time.Minute
	MaxRoleTTL     = 768 * time.Hour // Vault's default system max lease TTL
	maxNameLength  = 128
	maxValueLength = 4096
)

var (
	secretNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$`)
	vaultNameRE  = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	awsRegionRE  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

// Validate checks every field and every rule across fields; paths are the
// YAML key paths. It reads no file and reaches no server.
func (c *Config) Validate() field.ErrorList {
	var errs field.ErrorList
	env := c.Environment
	switch env {
	case Development, Staging, Production:
	case "":
		errs = append(errs, field.Required(field.NewPath("environment"), "one of development, staging, production"))
	default:
		errs = append(errs, field.NotSupported(field.NewPath("environment"), env, []Environment{Development, Staging, Production}))
	}
	errs = append(errs, c.Vault.validate(field.NewPath("vault"), env)...)
	if op := field.NewPath("owner"); c.Owner == "" {
		errs = append(errs, field.Required(op, "who keeps this config, such as platform-team"))
	} else if len(c.Owner) > maxNameLength || !secretNameRE.MatchString(c.Owner) {
		errs = append(errs, field.Invalid(op, c.Owner, fmt.Sprintf(
			"must be lower-case letters, digits, '-', '_' or '.', start and end with a letter or digit, at most %d characters", maxNameLength)))
	}
	errs = append(errs, validateApps(field.NewPath("apps"), c.Apps, c.Vault.KubernetesAuth)...)
	errs = append(errs, validatePrerequisites(field.NewPath("prerequisites"), c.Prerequisites)...)
	return errs
}

func (v *Vault) validate(p *field.Path, env Environment) field.ErrorList {
	errs := validateURL(p.Child("address"), v.Address, true)
	if env == Production && strings.HasPrefix(v.Address, "http://") {
		errs = append(errs, field.Invalid(p.Child("address"), v.Address, "production reaches Vault over https"))
	}
	errs = append(errs, validateFile(p.Child("caFile"), v.CAFile, false)...)
	errs = append(errs, v.Seal.validate(p.Child("seal"), env)...)
	errs = append(errs, v.Audit.validate(p.Child("audit"), env)...)
	errs = append(errs, v.KubernetesAuth.validate(p.Child("kubernetesAuth"))...)
	if d := v.TokenTTL.Duration; d < MinTokenTTL || d > MaxTokenTTL {
		errs = append(errs, field.Invalid(p.Child("tokenTTL"), d.String(), fmt.Sprintf("must be between %s and %s", MinTokenTTL, MaxTokenTTL)))
	}
	errs = append(errs, validateMount(p.Child("kvMount"), v.KVMount)...)
	return errs
}

func (s Seal) validate(p *field.Path, env Environment) field.ErrorList {
	var errs field.ErrorList
	switch kinds := s.kinds(); len(kinds) {
	case 0:
		errs = append(errs, field.Required(p, "set exactly one of shamir, transit, awskms"))
	case 1:
	default:
		errs = append(errs, field.Invalid(p, kinds, "set exactly one of shamir, transit, awskms"))
	}
	switch env {
	case Production:
		if s.AWSKMS == nil {
			errs = append(errs, field.Required(p.Child("awskms"), "production auto-unseals with AWS KMS"))
		}
	case Staging:
		if s.AWSKMS != nil {
			errs = append(errs, field.Forbidden(p.Child("awskms"), "staging uses transit or shamir; awskms is for production"))
		}
	}
	if s.Shamir != nil {
		errs = append(errs, s.Shamir.validate(p.Child("shamir"), env)...)
	}
	if s.Transit != nil {
		errs = append(errs, s.Transit.validate(p.Child("transit"), env)...)
	}
	if s.AWSKMS != nil {
		errs = append(errs, s.AWSKMS.validate(p.Child("awskms"), env)...)
	}
	return errs
}

func (s *Shamir) validate(p *field.Path, env Environment) field.ErrorList {
	var errs field.ErrorList
	if s.Shares < MinShares || s.Shares > MaxShares {
		errs = append(errs, field.Invalid(p.Child("shares"), s.Shares, fmt.Sprintf("must be between %d and %d", MinShares, MaxShares)))
	}
	switch tp := p.Child("threshold"); {
	case s.Threshold < 1:
		errs = append(errs, field.Invalid(tp, s.Threshold, "must be at least 1"))
	case s.Threshold > s.Shares:
		errs = append(errs, field.Invalid(tp, s.Threshold, fmt.Sprintf("must be at most shares (%d)", s.Shares)))
	case s.Threshold == 1 && s.Shares > 1:
		errs = append(errs, field.Invalid(tp, s.Threshold, "must be at least 2 when there are several shares (Vault refuses 1)"))
	}
	return append(errs, s.KeyStore.validate(p.Child("keyStore"), env)...)
}

func (t *Transit) validate(p *field.Path, env Environment) field.ErrorList {
	errs := validateURL(p.Child("address"), t.Address, true)
	errs = append(errs, validateFile(p.Child("caFile"), t.CAFile, false)...)
	errs = append(errs, validateMount(p.Child("mount"), t.Mount)...)
	errs = append(errs, validateVaultName(p.Child("key"), t.Key)...)
	errs = append(errs, validateFile(p.Child("tokenFile"), t.TokenFile, true)...)
	return append(errs, t.KeyStore.validate(p.Child("keyStore"), env)...)
}

func (a *AWSKMS) validate(p *field.Path, env Environment) field.ErrorList {
	var errs field.ErrorList
	switch rp := p.Child("region"); {
	case a.Region == "":
		errs = append(errs, field.Required(rp, "the AWS region of the KMS key, such as eu-west-1"))
	case !awsRegionRE.MatchString(a.Region):
		errs = append(errs, field.Invalid(rp, a.Region, "must be an AWS region such as eu-west-1"))
	}
	switch kp := p.Child("kmsKeyId"); {
	case a.KMSKeyID == "":
		errs = append(errs, field.Required(kp, "a key ID, key ARN, alias/<name> or alias ARN"))
	case len(a.KMSKeyID) > 2048 || strings.ContainsAny(a.KMSKeyID, " \t\r\n\"'"):
		errs = append(errs, field.Invalid(kp, a.KMSKeyID, "must be a key ID, key ARN, alias/<name> or alias ARN"))
	}
	return append(errs, a.KeyStore.validate(p.Child("keyStore"), env)...)
}

func (k *KeyStore) validate(p *field.Path, env Environment) field.ErrorList {
	var errs field.ErrorList
	switch k.Type {
	case KeyStoreFile:
		errs = append(errs, validateFile(p.Child("path"), k.Path, true)...)
		errs = append(errs, forbidSet(p, map[string]string{"namespace": k.Namespace, "name": k.Name}, "applies to type kubernetes-secret only")...)
	case KeyStoreKubernetesSecret:
		if env != Development {
			errs = append(errs, field.Forbidden(p.Child("type"),
				"kubernetes-secret keeps the root token inside the cluster Vault protects; it is allowed in development only"))
		}
		errs = append(errs, validateDNSLabel(p.Child("namespace"), k.Namespace)...)
		errs = append(errs, validateDNSSubdomain(p.Child("name"), k.Name)...)
		errs = append(errs, forbidSet(p, map[string]string{"path": k.Path}, "applies to type file only")...)
	case "":
		errs = append(errs, field.Required(p.Child("type"), "file or kubernetes-secret"))
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), k.Type, []KeyStoreType{KeyStoreFile, KeyStoreKubernetesSecret}))
	}
	return errs
}

// forbidSet refuses each of the keys that has a value.
func forbidSet(p *field.Path, set map[string]string, detail string) field.ErrorList {
	var errs field.ErrorList
	for _, k := range sortedKeys(set) {
		if set[k] != "" {
			errs = append(errs, field.Forbidden(p.Child(k), detail))
		}
	}
	return errs
}

func (a *Audit) validate(p *field.Path, env Environment) field.ErrorList {
	var errs field.ErrorList
	switch a.Type {
	case AuditFile:
		pp := p.Child("path")
		switch {
		case a.Path == "":
			errs = append(errs, field.Required(pp, `an absolute path on Vault's host, or "stdout"`))
		case a.Path != "stdout" && !strings.HasPrefix(a.Path, "/"):
			errs = append(errs, field.Invalid(pp, a.Path, `must be an absolute path on Vault's host, or "stdout"`))
		}
		errs = append(errs, forbidSet(p, map[string]string{"address": a.Address, "socketType": a.SocketType}, "applies to type socket only")...)
	case AuditSocket:
		if a.Address == "" {
			errs = append(errs, field.Required(p.Child("address"), "host:port, or a socket path for socketType unix"))
		}
		switch a.SocketType {
		case "tcp", "udp", "unix":
		default:
			errs = append(errs, field.NotSupported(p.Child("socketType"), a.SocketType, []string{"tcp", "udp", "unix"}))
		}
		errs = append(errs, forbidSet(p, map[string]string{"path": a.Path}, "applies to type file only")...)
	case AuditNone:
		if env == Production {
			errs = append(errs, field.Forbidden(p.Child("type"), "production keeps an audit trail"))
		}
		errs = append(errs, forbidSet(p, map[string]string{"path": a.Path, "address": a.Address, "socketType": a.SocketType},
			"there is no audit device with type none")...)
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), a.Type, []AuditType{AuditFile, AuditSocket, AuditNone}))
	}
	return errs
}

func (k *KubernetesAuth) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if strings.HasPrefix(k.Path, "auth/") {
		errs = append(errs, field.Invalid(p.Child("path"), k.Path, `give the mount without "auth/", such as kubernetes`))
	} else {
		errs = append(errs, validateMount(p.Child("path"), k.Path)...)
	}
	if k.Host != "" {
		errs = append(errs, validateAPIServer(p.Child("host"), k.Host)...)
	}
	errs = append(errs, validateFile(p.Child("caFile"), k.CAFile, false)...)
	if !slices.Contains(ReviewerTokenValues, k.ReviewerToken) {
		errs = append(errs, field.NotSupported(p.Child("reviewerToken"), k.ReviewerToken, ReviewerTokenValues))
	}
	errs = append(errs, validateDNSLabel(p.Child("reviewerNamespace"), k.ReviewerNamespace)...)
	errs = append(errs, validateDNSSubdomain(p.Child("reviewerServiceAccount"), k.ReviewerServiceAccount)...)
	return errs
}

func validateAPIServer(p *field.Path, host string) field.ErrorList {
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return field.ErrorList{field.Invalid(p, host, "must be an https URL such as https://kubernetes.default.svc")}
	}
	return nil
}

// appsState carries what must be unique across apps.
type appsState struct {
	names, roles map[string]int      // app name, ServiceAccount (role) -> app index
	dbRoles      map[string]struct{} // database role names
}

func validateApps(p *field.Path, apps []App, auth KubernetesAuth) field.ErrorList {
	var errs field.ErrorList
	st := appsState{names: map[string]int{}, roles: map[string]int{}, dbRoles: map[string]struct{}{}}
	for i := range apps {
		errs = append(errs, apps[i].validate(p.Index(i), i, apps, &st, auth)...)
	}
	return errs
}

func (a *App) validate(p *field.Path, i int, apps []App, st *appsState, auth KubernetesAuth) field.ErrorList {
	errs := validateDNSLabel(p.Child("name"), a.Name)
	if _, dup := st.names[a.Name]; dup && a.Name != "" {
		errs = append(errs, field.Duplicate(p.Child("name"), a.Name))
	}
	st.names[a.Name] = i
	// Namespace and ServiceAccount default to the name: when both are
	// empty, the error on the name says it all.
	if a.Namespace != "" || a.Name != "" {
		errs = append(errs, validateDNSLabel(p.Child("namespace"), a.Namespace)...)
	}
	if a.ServiceAccount != "" || a.Name != "" {
		errs = append(errs, a.validateServiceAccount(p.Child("serviceAccount"), apps, st, auth)...)
		st.roles[a.ServiceAccount] = i
	}
	names := map[string]bool{}
	for j := range a.Secrets {
		sp := p.Child("secrets").Index(j)
		if n := a.Secrets[j].Name; names[n] && n != "" {
			errs = append(errs, field.Duplicate(sp.Child("name"), n))
		}
		names[a.Secrets[j].Name] = true
		errs = append(errs, a.Secrets[j].validate(sp)...)
	}
	if a.Postgres != nil {
		errs = append(errs, a.Postgres.validate(p.Child("postgres"), st.dbRoles)...)
	}
	for j, v := range a.VaultAccess {
		if v.Path() == "" {
			supported := make([]string, len(VaultAccessValues))
			for k, s := range VaultAccessValues {
				supported[k] = string(s)
			}
			errs = append(errs, field.NotSupported(p.Child("vaultAccess").Index(j), v, supported))
		}
	}
	for j, kp := range a.KVReadPaths {
		errs = append(errs, validateKVReadPath(p.Child("kvReadPaths").Index(j), kp)...)
	}
	return errs
}

// validateKVReadPath checks a path inside the KV mount: segments of
// letters, digits, '-', '_' and '.', optionally ending in "/*" or "*", and
// no way out of the mount ("..", a leading "/", Vault's "+" wildcard).
func validateKVReadPath(p *field.Path, v string) field.ErrorList {
	base := strings.TrimSuffix(v, "*")
	base = strings.TrimSuffix(base, "/")
	ok := base != "" && len(v) <= maxNameLength
	for _, seg := range strings.Split(base, "/") {
		ok = ok && vaultNameRE.MatchString(seg) && seg != ".." && seg != "."
	}
	if !ok {
		return field.ErrorList{field.Invalid(p, v, fmt.Sprintf(
			"must be a path inside the KV mount such as shared/tls or shared/*: segments of letters, digits, '-', '_' or '.' separated by '/', optionally ending in *, at most %d characters", maxNameLength))}
	}
	return nil
}

// validateServiceAccount checks the ServiceAccount, which also names the
// app's kubernetes-auth role: roles live in one auth mount, so two apps
// with the same ServiceAccount name, in one namespace or in two, would
// share (and overwrite) one role.
func (a *App) validateServiceAccount(p *field.Path, apps []App, st *appsState, auth KubernetesAuth) field.ErrorList {
	errs := validateDNSSubdomain(p, a.ServiceAccount)
	if j, dup := st.roles[a.ServiceAccount]; dup && a.ServiceAccount != "" {
		where := "in namespace " + apps[j].Namespace
		if apps[j].Namespace == a.Namespace {
			where = "in the same namespace"
		}
		errs = append(errs, field.Invalid(p, a.ServiceAccount, fmt.Sprintf(
			"is also the ServiceAccount of app %q (%s); it names the app's Vault role, so each app needs its own", apps[j].Name, where)))
	}
	if a.Namespace == auth.ReviewerNamespace && a.ServiceAccount == auth.ReviewerServiceAccount {
		errs = append(errs, field.Forbidden(p, "is the token reviewer's ServiceAccount (bound to system:auth-delegator); an app must not run as it"))
	}
	return errs
}

func (s *Secret) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch np := p.Child("name"); {
	case s.Name == "":
		errs = append(errs, field.Required(np, "the secret's name, the last segment of its KV path"))
	case len(s.Name) > maxNameLength || !secretNameRE.MatchString(s.Name):
		errs = append(errs, field.Invalid(np, s.Name, fmt.Sprintf(
			"must be lower-case letters, digits, '-', '_' or '.', start and end with a letter or digit, at most %d characters", maxNameLength)))
	}
	source := map[string]string{} // key -> where it was first given
	add := func(from, key string) {
		kp := p.Child(from).Key(key)
		for _, msg := range validation.IsConfigMapKey(key) {
			errs = append(errs, field.Invalid(kp, key, msg))
		}
		if first, dup := source[key]; dup {
			errs = append(errs, field.Forbidden(kp, fmt.Sprintf("key %q is also in %s; each key comes from one of data, generate, fromFile, fromSecret", key, first)))
			return
		}
		source[key] = from
	}
	for _, k := range sortedKeys(s.Data) {
		add("data", k)
		if len(s.Data[k]) > maxValueLength {
			errs = append(errs, field.TooLong(p.Child("data").Key(k), "", maxValueLength))
		}
	}
	for _, k := range sortedKeys(s.Generate) {
		add("generate", k)
		errs = append(errs, s.Generate[k].validate(p.Child("generate").Key(k))...)
	}
	for _, k := range sortedKeys(s.FromFile) {
		add("fromFile", k)
		errs = append(errs, validateFile(p.Child("fromFile").Key(k), s.FromFile[k], true)...)
	}
	for _, k := range sortedKeys(s.FromSecret) {
		add("fromSecret", k)
		errs = append(errs, s.FromSecret[k].validate(p.Child("fromSecret").Key(k))...)
	}
	if len(source) == 0 {
		errs = append(errs, field.Required(p, "at least one key in data, generate, fromFile or fromSecret"))
	}
	return errs
}

func (r SecretKeyRef) validate(p *field.Path) field.ErrorList {
	errs := validateDNSLabel(p.Child("namespace"), r.Namespace)
	errs = append(errs, validateDNSSubdomain(p.Child("name"), r.Name)...)
	if r.Key == "" {
		return append(errs, field.Required(p.Child("key"), "a key of the Secret's data"))
	}
	for _, msg := range validation.IsConfigMapKey(r.Key) {
		errs = append(errs, field.Invalid(p.Child("key"), r.Key, msg))
	}
	return errs
}

func (g Generator) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if g.Length < MinLength || g.Length > MaxLength {
		errs = append(errs, field.Invalid(p.Child("length"), g.Length, fmt.Sprintf("must be between %d and %d", MinLength, MaxLength)))
	}
	if g.Charset.alphabet() == "" {
		errs = append(errs, field.NotSupported(p.Child("charset"), g.Charset, Charsets()))
	}
	return errs
}

func (pg *Postgres) validate(p *field.Path, dbRoles map[string]struct{}) field.ErrorList {
	errs := pg.Connection.validate(p.Child("connection"))
	if len(pg.Roles) == 0 {
		errs = append(errs, field.Required(p.Child("roles"), "at least one role"))
	}
	for i := range pg.Roles {
		rp := p.Child("roles").Index(i)
		r := &pg.Roles[i]
		errs = append(errs, r.validate(rp)...)
		if _, dup := dbRoles[r.Name]; dup && r.Name != "" {
			errs = append(errs, field.Duplicate(rp.Child("name"), r.Name))
		}
		dbRoles[r.Name] = struct{}{}
	}
	return errs
}

func (c *PostgresConnection) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch hp := p.Child("host"); {
	case c.Host == "":
		errs = append(errs, field.Required(hp, "PostgreSQL's host name or address"))
	case strings.ContainsAny(c.Host, " \t\r\n/?#@"):
		errs = append(errs, field.Invalid(hp, c.Host, "must be a host name or address"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, field.Invalid(p.Child("port"), c.Port, "must be between 1 and 65535"))
	}
	errs = append(errs, validatePlainName(p.Child("database"), c.Database)...)
	errs = append(errs, validatePlainName(p.Child("username"), c.Username)...)
	switch {
	case c.PasswordFile != "" && c.PasswordFromSecret != "":
		errs = append(errs, field.Forbidden(p.Child("passwordFromSecret"), "set passwordFile or passwordFromSecret, not both"))
	case c.PasswordFromSecret != "":
		if _, _, _, err := ParseSecretRef(c.PasswordFromSecret); err != nil {
			errs = append(errs, field.Invalid(p.Child("passwordFromSecret"), c.PasswordFromSecret, err.Error()))
		}
	default:
		errs = append(errs, validateFile(p.Child("passwordFile"), c.PasswordFile, true)...)
	}
	switch c.SSLMode {
	case SSLDisable, SSLRequire, SSLVerifyFull:
	default:
		errs = append(errs, field.NotSupported(p.Child("sslMode"), c.SSLMode, []SSLMode{SSLDisable, SSLRequire, SSLVerifyFull}))
	}
	return errs
}

func (r *PostgresRole) validate(p *field.Path) field.ErrorList {
	errs := validateVaultName(p.Child("name"), r.Name)
	def, maxTTL := r.DefaultTTL.Duration, r.MaxTTL.Duration
	if def < MinRoleTTL || def > MaxRoleTTL {
		errs = append(errs, field.Invalid(p.Child("defaultTTL"), def.String(), fmt.Sprintf("must be between %s and %s", MinRoleTTL, MaxRoleTTL)))
	}
	switch mp := p.Child("maxTTL"); {
	case maxTTL < def:
		errs = append(errs, field.Invalid(mp, maxTTL.String(), fmt.Sprintf("must be at least defaultTTL (%s)", def)))
	case maxTTL > MaxRoleTTL:
		errs = append(errs, field.Invalid(mp, maxTTL.String(), fmt.Sprintf("must be at most %s", MaxRoleTTL)))
	}
	if s := r.CreationStatements; s != "" && !strings.Contains(s, "{{name}}") {
		errs = append(errs, field.Invalid(p.Child("creationStatements"), field.OmitValueType{},
			`must create the role named {{name}} (and use {{password}} and {{expiration}})`))
	}
	return errs
}

// validateURL checks an http(s) URL without a path.
func validateURL(p *field.Path, v string, required bool) field.ErrorList {
	if v == "" {
		if required {
			return field.ErrorList{field.Required(p, "an http(s) URL such as https://vault.example.com:8200")}
		}
		return nil
	}
	if err := agent.ValidateVaultAddress(v); err != nil {
		return field.ErrorList{field.Invalid(p, v, err.Error())}
	}
	return nil
}

// validateFile checks a local file path without reading the file.
func validateFile(p *field.Path, v string, required bool) field.ErrorList {
	switch {
	case v == "" && required:
		return field.ErrorList{field.Required(p, "a file path")}
	case strings.ContainsRune(v, 0):
		return field.ErrorList{field.Invalid(p, v, "must not contain NUL")}
	case len(v) > maxValueLength:
		return field.ErrorList{field.TooLong(p, "", maxValueLength)}
	}
	return nil
}

// validateMount checks a Vault mount path such as "secret" or "team/kv".
func validateMount(p *field.Path, v string) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "a Vault mount path such as secret")}
	}
	for _, seg := range strings.Split(v, "/") {
		if !vaultNameRE.MatchString(seg) || len(v) > maxNameLength {
			return field.ErrorList{field.Invalid(p, v, fmt.Sprintf(
				"must be segments of letters, digits, '-', '_' or '.' separated by '/', without a leading or trailing '/', at most %d characters", maxNameLength))}
		}
	}
	switch first, _, _ := strings.Cut(v, "/"); first {
	case "sys", "auth", "cubbyhole", "identity":
		return field.ErrorList{field.Invalid(p, v, fmt.Sprintf("%s/ is reserved by Vault", first))}
	}
	return nil
}

// validateVaultName checks a Vault object name (role, key).
func validateVaultName(p *field.Path, v string) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "a name of letters, digits, '-', '_' and '.'")}
	}
	if len(v) > maxNameLength || !vaultNameRE.MatchString(v) {
		return field.ErrorList{field.Invalid(p, v, fmt.Sprintf(
			"must be letters, digits, '-', '_' or '.', start and end with a letter or digit, at most %d characters", maxNameLength))}
	}
	return nil
}

// validatePlainName checks a PostgreSQL identifier written into a URL.
func validatePlainName(p *field.Path, v string) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "a PostgreSQL name")}
	}
	if len(v) > 63 || strings.ContainsAny(v, " \t\r\n/?#@:%\"'\\") {
		return field.ErrorList{field.Invalid(p, v, "must be at most 63 characters without spaces, quotes or any of / ? # @ : %")}
	}
	return nil
}

func validateDNSLabel(p *field.Path, v string) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "a DNS label such as shop")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

func validateDNSSubdomain(p *field.Path, v string) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "a Kubernetes object name such as shop")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

// ParseSecretRef reads "<app>/<secret>#<key>".
func ParseSecretRef(ref string) (app, secret, key string, err error) {
	path, key, ok := strings.Cut(ref, "#")
	app, secret, ok2 := strings.Cut(path, "/")
	if !ok || !ok2 || app == "" || secret == "" || key == "" || strings.Contains(secret, "/") {
		return "", "", "", fmt.Errorf("must be <app>/<secret>#<key>, naming a secret of this config")
	}
	return app, secret, key, nil
}
