// Package agent holds the agent's configuration (shared with the injector,
// which writes it) and, from the agent issue on, its run loop.
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/blinkchamber/blinkchamber/pkg/template"
)

// ConfigEnv is the environment variable that carries the agent's whole
// configuration as JSON. The injector writes it; the agent reads it. There is
// no other source of these settings.
const ConfigEnv = "BLINKCHAMBER_AGENT_CONFIG"

// Mode is what one agent process does.
type Mode string

const (
	// ModeNative renders, then keeps the files fresh; it runs as a native
	// sidecar (init container with restartPolicy Always).
	ModeNative Mode = "native"
	// ModeInit renders once and exits, leaving its token and leases in the
	// state directory for a sidecar to resume from.
	ModeInit Mode = "init"
	// ModeSidecar resumes from the state an init container left, then keeps
	// the files fresh.
	ModeSidecar Mode = "sidecar"
)

// Config is the agent's configuration.
type Config struct {
	Mode  Mode  `json:"mode"`
	Vault Vault `json:"vault"`
	// TokenFile is the projected ServiceAccount token, re-read at each login.
	TokenFile string `json:"tokenFile"`
	// SecretsDir is the in-memory volume the files are rendered into.
	SecretsDir string `json:"secretsDir"`
	// StateDir keeps the Vault token and leases between an init container and
	// its sidecar; it is mounted in agent containers only. Empty: no state.
	StateDir string `json:"stateDir,omitempty"`
	// RenderInterval is how often static (KV) secrets are re-read.
	RenderInterval Duration `json:"renderInterval"`
	// HealthAddr is the localhost address of /healthz, /readyz, /startupz
	// and /metrics.
	HealthAddr string `json:"healthAddr"`
	// MetricsAddr, when set, also serves /metrics (and nothing else) on an
	// address other pods can reach, so Prometheus can scrape the agent; the
	// health endpoints stay on localhost.
	MetricsAddr string `json:"metricsAddr,omitempty"`
	// RevokeOnShutdown revokes the Vault token when the agent stops
	// (native and sidecar modes; an init agent hands its token on).
	RevokeOnShutdown bool `json:"revokeOnShutdown,omitempty"`
	// VaultTokenFile, when set, is the file in SecretsDir the agent writes
	// its own Vault token to (mode 0400), rewritten within a render
	// interval of each new login: the pod's explicit opt-in
	// (blinkchamber.io/agent-token-file) for an app that talks to Vault
	// itself. Without it the token never reaches the app.
	VaultTokenFile string   `json:"vaultTokenFile,omitempty"`
	Secrets        []Secret `json:"secrets"`
}

// Vault says where and how the agent logs in.
type Vault struct {
	Address string `json:"address"`
	// CACert is a PEM bundle; certificates are public, so it travels inline.
	CACert string `json:"caCert,omitempty"`
	// TLSSkipVerify turns off verification of Vault's certificate; the
	// agent warns at every start while it is set. For trials only.
	TLSSkipVerify bool   `json:"tlsSkipVerify,omitempty"`
	Namespace     string `json:"namespace,omitempty"`
	// AuthPath is the kubernetes auth mount, e.g. "auth/kubernetes".
	AuthPath string `json:"authPath"`
	Role     string `json:"role"`
}

// Secret is one rendered file.
type Secret struct {
	Name string `json:"name"`
	// Path is the Vault path the default template reads.
	Path     string   `json:"path,omitempty"`
	Template string   `json:"template"`
	File     string   `json:"file"`
	Perms    FileMode `json:"perms"`
	// Command runs (no shell) after the file changes.
	Command []string `json:"command,omitempty"`
	// Format "env" writes the template's JSON object as KEY='value' lines.
	Format Format `json:"format,omitempty"`
	// Signal is sent to the pod's processes of that name after a change.
	Signal *Signal `json:"signal,omitempty"`
	// ReloadURL (loopback only) is POSTed after a change.
	ReloadURL string `json:"reloadURL,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("5s").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	d.Duration = v
	return nil
}

// FileMode is a permission mode written as an octal string ("0400").
type FileMode uint32

// MarshalJSON writes the mode as an octal string.
func (m FileMode) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// UnmarshalJSON reads an octal string.
func (m *FileMode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("mode must be an octal string like \"0400\": %w", err)
	}
	v, err := ParseFileMode(s)
	if err != nil {
		return fmt.Errorf("perms: %w", err)
	}
	*m = v
	return nil
}

// ParseFileMode reads an octal permission mode: 3 or 4 digits, no special
// bits, readable by its owner.
func ParseFileMode(s string) (FileMode, error) {
	if len(s) < 3 || len(s) > 4 {
		return 0, fmt.Errorf("%q is not an octal mode such as 0400", s)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an octal mode such as 0400", s)
	}
	if v&^0o777 != 0 {
		return 0, fmt.Errorf("%q sets setuid, setgid or sticky bits; only permission bits (at most 0777) are allowed", s)
	}
	if v&0o400 == 0 {
		return 0, fmt.Errorf("%q does not let the owner read the file", s)
	}
	return FileMode(v), nil
}

// Decode reads a Config from JSON, refusing unknown fields, and validates it.
func Decode(data []byte) (*Config, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", ConfigEnv, err)
	}
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid %s: %w", ConfigEnv, errs.ToAggregate())
	}
	return &c, nil
}

// Encode writes the config as compact JSON.
func (c *Config) Encode() (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encoding agent config: %w", err)
	}
	return string(b), nil
}

// Validate checks every field; paths are JSON field paths.
func (c *Config) Validate() field.ErrorList {
	var errs field.ErrorList
	switch c.Mode {
	case ModeNative, ModeInit, ModeSidecar:
	default:
		errs = append(errs, field.NotSupported(field.NewPath("mode"), c.Mode, []Mode{ModeNative, ModeInit, ModeSidecar}))
	}
	errs = append(errs, c.Vault.validate(field.NewPath("vault"))...)
	for _, p := range []struct {
		name, value string
	}{{"tokenFile", c.TokenFile}, {"secretsDir", c.SecretsDir}} {
		if !path.IsAbs(p.value) {
			errs = append(errs, field.Invalid(field.NewPath(p.name), p.value, "must be an absolute path"))
		}
	}
	errs = append(errs, c.validateVaultTokenFile()...)
	errs = append(errs, c.validatePrograms()...)
	if c.StateDir != "" && !path.IsAbs(c.StateDir) {
		errs = append(errs, field.Invalid(field.NewPath("stateDir"), c.StateDir, "must be an absolute path"))
	}
	if c.Mode == ModeSidecar && c.StateDir == "" {
		errs = append(errs, field.Required(field.NewPath("stateDir"), "a sidecar resumes from the token and leases its init container left there"))
	}
	if d := c.RenderInterval.Duration; d < MinRenderInterval || d > MaxRenderInterval {
		errs = append(errs, field.Invalid(field.NewPath("renderInterval"), d.String(),
			fmt.Sprintf("must be between %s and %s", MinRenderInterval, MaxRenderInterval)))
	}
	if !strings.HasPrefix(c.HealthAddr, "127.0.0.1:") && !strings.HasPrefix(c.HealthAddr, "localhost:") {
		errs = append(errs, field.Invalid(field.NewPath("healthAddr"), c.HealthAddr, "must be a localhost address such as 127.0.0.1:8099"))
	}
	errs = append(errs, validateMetricsAddr(field.NewPath("metricsAddr"), c.MetricsAddr, c.HealthAddr)...)
	errs = append(errs, validateSecrets(field.NewPath("secrets"), c.Secrets)...)
	return errs
}

// Bounds of the render interval: below a second Vault sees a request storm;
// above a day a rotation is effectively never seen.
const (
	MinRenderInterval = time.Second
	MaxRenderInterval = 24 * time.Hour
)

func (v *Vault) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if err := ValidateVaultAddress(v.Address); err != nil {
		errs = append(errs, field.Invalid(p.Child("address"), v.Address, err.Error()))
	}
	if err := ValidateVaultPath(v.AuthPath); err != nil {
		errs = append(errs, field.Invalid(p.Child("authPath"), v.AuthPath, err.Error()))
	}
	if err := ValidateRole(v.Role); err != nil {
		errs = append(errs, field.Invalid(p.Child("role"), v.Role, err.Error()))
	}
	if strings.ContainsAny(v.Namespace, " \t\r\n\"") {
		errs = append(errs, field.Invalid(p.Child("namespace"), v.Namespace, "must not contain spaces or quotes"))
	}
	return errs
}

func validateSecrets(p *field.Path, secrets []Secret) field.ErrorList {
	var errs field.ErrorList
	files := map[string]bool{}
	names := map[string]bool{}
	for i, s := range secrets {
		sp := p.Index(i)
		if names[s.Name] {
			errs = append(errs, field.Duplicate(sp.Child("name"), s.Name))
		}
		names[s.Name] = true
		if err := ValidateFileName(s.File); err != nil {
			errs = append(errs, field.Invalid(sp.Child("file"), s.File, err.Error()))
		} else if files[s.File] {
			errs = append(errs, field.Duplicate(sp.Child("file"), s.File))
		}
		files[s.File] = true
		pathOK, pathRefused := false, false
		if s.Path != "" {
			if err := ValidateSecretPath(s.Path); err != nil {
				errs = append(errs, field.Invalid(sp.Child("path"), s.Path, err.Error()))
				// A token endpoint's path is otherwise well formed: its
				// default template would only repeat the refusal.
				pathRefused = errors.Is(err, template.ErrTokenEndpoint)
			} else {
				pathOK = true
			}
		}
		// The default template of a valid path is valid by construction
		// (TestDefaultTemplateIsValid): a fixed shape around a path whose
		// characters need no quoting. Parsing it for every secret of every
		// admission was the largest cost of injecting many secrets. Once
		// the path is refused, its default template says nothing more.
		byConstruction := pathOK && s.Template == DefaultTemplate(s.Path)
		if !byConstruction && !(pathRefused && s.Template == DefaultTemplate(s.Path)) {
			if err := template.Validate(s.Template); err != nil {
				// The template text itself may hold a literal value; the path
				// alone names it and the reason says what is wrong.
				errs = append(errs, field.Invalid(sp.Child("template"), "<template>", err.Error()))
			}
		}
		if _, err := ParseFileMode(s.Perms.String()); err != nil {
			errs = append(errs, field.Invalid(sp.Child("perms"), s.Perms.String(), err.Error()))
		}
		if s.Command != nil && (len(s.Command) == 0 || s.Command[0] == "") {
			errs = append(errs, field.Invalid(sp.Child("command"), s.Command, "must name a program"))
		}
		errs = append(errs, s.validateActions(sp)...)
	}
	return errs
}

// DefaultTemplate renders every key of the secret at path as "key: value"
// lines, sorted by key. For KV v2 (data under .Data.data) it renders the
// secret's data, not its metadata.
func DefaultTemplate(path string) string {
	return `{{ with secret "` + path + `" }}{{ range $k, $v := (or (index .Data "data") .Data) }}{{ $k }}: {{ $v }}
{{ end }}{{ end }}`
}

// ValidateFileName accepts a plain file name that stays inside the secrets
// volume: no separators, no "..", no NUL, not hidden (dot files are the
// agent's), at most 255 bytes.
func ValidateFileName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("must not be empty")
	case len(name) > 255:
		return fmt.Errorf("must be at most 255 bytes, not %d", len(name))
	case strings.ContainsAny(name, "/\\"):
		return fmt.Errorf("must be a plain file name without path separators")
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("must not contain NUL")
	case name == "." || name == ".." || strings.HasPrefix(name, "."):
		return fmt.Errorf("must not start with a dot")
	}
	return nil
}

// ValidateSecretPath accepts the Vault path of a secret declared by path
// alone: a valid Vault path that is not an endpoint answering with a token.
// Its default template is not parsed at admission, so its path is checked
// here as template.Validate checks a template's literal paths.
func ValidateSecretPath(p string) error {
	if err := ValidateVaultPath(p); err != nil {
		return err
	}
	return template.CheckTokenEndpoint(p)
}

// ValidateVaultPath accepts a relative Vault API path such as
// "secret/data/app/db": no leading slash, no "..", no quotes or template
// delimiters (paths are written into the default template).
func ValidateVaultPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("must not be empty")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("must be relative, like secret/data/app/db")
	case len(p) > 512:
		return fmt.Errorf("must be at most 512 bytes")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." || seg == "." {
			return fmt.Errorf("must not contain %q segments", seg)
		}
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/-_.+@=:", r)) {
			return fmt.Errorf("contains %q; only letters, digits and / - _ . + @ = : are allowed", r)
		}
	}
	return nil
}

// ValidateRole accepts a Vault role name.
func ValidateRole(r string) error {
	if r == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(r) > 128 {
		return fmt.Errorf("must be at most 128 bytes")
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("contains %q; only letters, digits, - _ and . are allowed", c)
		}
	}
	return nil
}

// ValidateVaultAddress accepts an http or https URL with a host and no path
// beyond "/".
func ValidateVaultAddress(a string) error {
	u, err := url.Parse(a)
	if err != nil {
		return fmt.Errorf("is not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("must start with https:// or http://")
	}
	if u.Host == "" {
		return fmt.Errorf("must name a host")
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials")
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return fmt.Errorf("must not have a path or query")
	}
	return nil
}

func validateMetricsAddr(p *field.Path, addr, health string) field.ErrorList {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return field.ErrorList{field.Invalid(p, addr, "must be host:port, such as :9102")}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return field.ErrorList{field.Invalid(p, addr, "the port must be between 1 and 65535")}
	}
	if _, hport, err := net.SplitHostPort(health); err == nil && hport == port {
		return field.ErrorList{field.Invalid(p, addr, "must not use the health endpoint's port "+hport)}
	}
	return nil
}

// validateVaultTokenFile checks the opt-in token file: a valid file name
// that no secret renders to.
func (c *Config) validateVaultTokenFile() field.ErrorList {
	if c.VaultTokenFile == "" {
		return nil
	}
	p := field.NewPath("vaultTokenFile")
	if err := ValidateFileName(c.VaultTokenFile); err != nil {
		return field.ErrorList{field.Invalid(p, c.VaultTokenFile, err.Error())}
	}
	for i, s := range c.Secrets {
		if s.File == c.VaultTokenFile {
			return field.ErrorList{field.Invalid(p, c.VaultTokenFile, fmt.Sprintf("is also the file of secrets[%d]", i))}
		}
	}
	return nil
}

// validatePrograms refuses a command whose program is a file the agent
// writes (the secrets or state volume): a template can render any bytes,
// and the agent would run them with its token in reach. A program is named
// by an absolute path or looked up in PATH, never relative to the working
// directory.
func (c *Config) validatePrograms() field.ErrorList {
	var errs field.ErrorList
	for i, s := range c.Secrets {
		if len(s.Command) == 0 || s.Command[0] == "" {
			continue
		}
		if err := ValidateProgram(s.Command[0], c.SecretsDir, c.StateDir); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("secrets").Index(i).Child("command").Index(0), s.Command[0], err.Error()))
		}
	}
	return errs
}

// ValidateProgram accepts a command's program: an absolute path outside
// the agent's volumes (dirs), or a name looked up in PATH.
func ValidateProgram(prog string, dirs ...string) error {
	if strings.Contains(prog, "/") && !path.IsAbs(prog) {
		return errors.New("must be an absolute path or a program name looked up in PATH")
	}
	for _, d := range dirs {
		if within(prog, d) {
			return errors.New("must not be a file of the agent's volumes: the agent runs only programs of its image")
		}
	}
	return nil
}

// within reports whether the absolute path p is dir or under it.
func within(p, dir string) bool {
	if dir == "" || !path.IsAbs(p) {
		return false
	}
	rel, ok := strings.CutPrefix(path.Clean(p), path.Clean(dir))
	return ok && (rel == "" || strings.HasPrefix(rel, "/"))
}
