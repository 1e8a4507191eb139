package mutate

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/template"
)

// Prefix is the annotation prefix this injector owns. Every key under it must
// be known; a typo is refused rather than silently ignored.
const Prefix = "blinkchamber.io/"

// Pod-level annotations.
const (
	AnnotationInject         = Prefix + "inject"
	AnnotationStatus         = Prefix + "status"
	AnnotationRole           = Prefix + "role"
	AnnotationAuthPath       = Prefix + "auth-path"
	AnnotationMode           = Prefix + "mode"
	AnnotationContainers     = Prefix + "containers"
	AnnotationRenderInterval = Prefix + "render-interval"
	AnnotationCPURequest     = Prefix + "agent-cpu-request"
	AnnotationMemoryRequest  = Prefix + "agent-memory-request"
	AnnotationCPULimit       = Prefix + "agent-cpu-limit"
	AnnotationMemoryLimit    = Prefix + "agent-memory-limit"
	AnnotationRunAsUser      = Prefix + "agent-run-as-user"
	AnnotationRunAsGroup     = Prefix + "agent-run-as-group"
	AnnotationVaultAddr      = Prefix + "vault-addr"
	AnnotationVaultNamespace = Prefix + "vault-namespace"
	AnnotationTokenAudience  = Prefix + "token-audience"
	AnnotationVolumeSize     = Prefix + "volume-size"
	AnnotationRevoke         = Prefix + "revoke-on-shutdown"
	AnnotationMountPath      = Prefix + "mount-path"
	// AnnotationAgentTokenFile is the opt-in that gives the app the agent's
	// own Vault token, as a file in the secrets volume.
	AnnotationAgentTokenFile = Prefix + "agent-token-file"
)

// Per-secret annotation prefixes: <prefix><name>.
const (
	PrefixSecret   = Prefix + "secret-"
	PrefixTemplate = Prefix + "template-"
	PrefixFile     = Prefix + "file-"
	PrefixPerms    = Prefix + "perms-"
	PrefixCommand  = Prefix + "command-"
	// Rotation signals and formats (rotation.go).
	PrefixSignal    = Prefix + "signal-"
	PrefixReloadURL = Prefix + "reload-url-"
	PrefixFormat    = Prefix + "format-"
)

// StatusInjected is the value of AnnotationStatus on an injected pod.
const StatusInjected = "injected"

// Mode is how the agent is attached to the pod.
type Mode string

const (
	ModeNative   Mode = "native"
	ModeSidecar  Mode = "sidecar"
	ModeInitOnly Mode = "init-only"
)

// ParseMode accepts the three modes.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeNative, ModeSidecar, ModeInitOnly:
		return m, nil
	}
	return "", fmt.Errorf("must be one of %q, %q, %q", ModeNative, ModeSidecar, ModeInitOnly)
}

// DefaultPerms is the mode of a rendered file unless perms-<name> says
// otherwise: readable by the agent's user (which is the app's user) only.
const DefaultPerms agent.FileMode = 0o400

// Spec is what a pod's annotations ask for, parsed and validated once.
// Empty fields mean "use the injector's default".
type Spec struct {
	Inject           bool
	Injected         bool
	Role             string
	AuthPath         string
	Mode             Mode
	Containers       []string
	RenderInterval   time.Duration
	VaultAddr        string
	VaultNamespace   string
	TokenAudience    string
	VolumeSize       *resource.Quantity
	RunAsUser        *int64
	RunAsGroup       *int64
	Requests         corev1.ResourceList
	Limits           corev1.ResourceList
	RevokeOnShutdown bool
	Secrets          []agent.Secret
	// MountPath is where app containers see the files; empty means SecretsPath.
	MountPath string
	// AgentTokenFile, when set, is the file the agent writes its own Vault
	// token to: an explicit opt-in, for apps that talk to Vault themselves.
	AgentTokenFile string
	// VaultK8s says the Spec was read from vault.hashicorp.com/ annotations.
	VaultK8s bool
	// Warnings are annotations accepted with a caveat (vaultk8s.go).
	Warnings []Warning
}

// origins is, by secret name, the annotation its template came from
// (template- or secret-): what an error about the template names.
type origins map[string]string

var annotationsPath = field.NewPath("metadata", "annotations")

func keyPath(key string) *field.Path { return annotationsPath.Key(key) }

// Parse reads every blinkchamber.io/ annotation of a pod. It returns the
// problems it finds, each naming its annotation, so a user fixes them in one
// round: the first MaxListedErrors of them.
func Parse(pod *corev1.Pod) (*Spec, field.ErrorList) {
	spec, _, errs := parse(pod)
	return spec, errs.list
}

// parse reads the annotations with either prefix. Its cost is linear in
// the annotations: each key is looked at a bounded number of times, and
// the sort is over at most MaxAnnotationBytes of keys.
func parse(pod *corev1.Pod) (*Spec, origins, problems) {
	if !hasPrefixedKey(pod.Annotations) {
		return &Spec{}, nil, problems{}
	}
	if err := annotationsTooLarge(pod.Annotations); err != nil {
		var p problems
		p.add(err)
		return &Spec{}, nil, p
	}
	if usesVault(pod) {
		return parseVault(pod)
	}
	p := &parser{spec: &Spec{}, secrets: map[string]*secretParts{}, origins: origins{}}
	keys := make([]string, 0, len(pod.Annotations))
	for k := range pod.Annotations {
		if strings.HasPrefix(k, Prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // stable error order
	for _, k := range keys {
		p.annotation(k, pod.Annotations[k])
	}
	p.finishSecrets()
	p.checkContainers(pod, AnnotationContainers)
	p.checkResources(AnnotationCPULimit, AnnotationMemoryLimit)
	return p.spec, p.origins, p.errs
}

// hasPrefixedKey reports whether any annotation is for this injector or
// uses the Vault Agent Injector's prefix.
func hasPrefixedKey(annotations map[string]string) bool {
	for k := range annotations {
		if strings.HasPrefix(k, Prefix) || strings.HasPrefix(k, VaultPrefix) {
			return true
		}
	}
	return false
}

type secretParts struct {
	path, template, file, perms, command *string
	signal, reloadURL, format            *string
}

type parser struct {
	spec    *Spec
	errs    problems
	secrets map[string]*secretParts
	origins origins
}

func (p *parser) invalid(key, value, reason string) {
	p.errs.add(field.Invalid(keyPath(key), value, reason))
}

func (p *parser) annotation(key, value string) {
	s := p.spec
	switch key {
	case AnnotationInject:
		b, err := strconv.ParseBool(value)
		if err != nil {
			p.invalid(key, value, `must be "true" or "false"`)
		}
		s.Inject = b
	case AnnotationStatus:
		if value != StatusInjected {
			p.invalid(key, value, fmt.Sprintf("is written by the injector; the only value is %q", StatusInjected))
		}
		s.Injected = value == StatusInjected
	case AnnotationRole:
		p.check(key, value, agent.ValidateRole)
		s.Role = value
	case AnnotationAuthPath:
		p.check(key, value, agent.ValidateVaultPath)
		s.AuthPath = strings.TrimSuffix(value, "/")
	case AnnotationMode:
		m, err := ParseMode(value)
		if err != nil {
			p.invalid(key, value, err.Error())
		}
		s.Mode = m
	case AnnotationContainers:
		s.Containers = splitList(value)
		if len(s.Containers) == 0 {
			p.invalid(key, value, "must list at least one container name, separated by commas")
		}
	case AnnotationRenderInterval:
		p.renderInterval(key, value)
	case AnnotationVaultAddr:
		p.check(key, value, agent.ValidateVaultAddress)
		s.VaultAddr = strings.TrimSuffix(value, "/")
	case AnnotationVaultNamespace:
		if value == "" || strings.ContainsAny(value, " \t\r\n\"") {
			p.invalid(key, value, "must be a non-empty Vault namespace without spaces or quotes")
		}
		s.VaultNamespace = value
	case AnnotationTokenAudience:
		if value == "" || strings.ContainsAny(value, " \t\r\n,") {
			p.invalid(key, value, "must be one non-empty audience without spaces or commas")
		}
		s.TokenAudience = value
	case AnnotationVolumeSize:
		s.VolumeSize = p.quantity(key, value)
	case AnnotationCPURequest:
		p.resource(key, value, corev1.ResourceCPU, &s.Requests)
	case AnnotationMemoryRequest:
		p.resource(key, value, corev1.ResourceMemory, &s.Requests)
	case AnnotationCPULimit:
		p.resource(key, value, corev1.ResourceCPU, &s.Limits)
	case AnnotationMemoryLimit:
		p.resource(key, value, corev1.ResourceMemory, &s.Limits)
	case AnnotationRevoke:
		b, err := strconv.ParseBool(value)
		if err != nil {
			p.invalid(key, value, `must be "true" or "false"`)
		}
		s.RevokeOnShutdown = b
	case AnnotationRunAsUser:
		s.RunAsUser = p.id(key, value)
	case AnnotationRunAsGroup:
		s.RunAsGroup = p.id(key, value)
	case AnnotationMountPath:
		p.check(key, value, ValidateMountPath)
		s.MountPath = path.Clean(value)
	case AnnotationAgentTokenFile:
		p.check(key, value, agent.ValidateFileName)
		s.AgentTokenFile = value
	default:
		p.secretAnnotation(key, value)
	}
}

func (p *parser) check(key, value string, fn func(string) error) {
	if err := fn(value); err != nil {
		p.invalid(key, value, err.Error())
	}
}

func (p *parser) renderInterval(key, value string) {
	d, err := time.ParseDuration(value)
	if err != nil {
		p.invalid(key, value, `must be a duration such as "5s" or "1m"`)
		return
	}
	if d < agent.MinRenderInterval || d > agent.MaxRenderInterval {
		p.invalid(key, value, fmt.Sprintf("must be between %s and %s", agent.MinRenderInterval, agent.MaxRenderInterval))
		return
	}
	p.spec.RenderInterval = d
}

func (p *parser) quantity(key, value string) *resource.Quantity {
	q, err := resource.ParseQuantity(value)
	if err != nil {
		p.invalid(key, value, `must be a quantity such as "100m" or "64Mi"`)
		return nil
	}
	if q.Sign() <= 0 {
		p.invalid(key, value, "must be greater than zero")
		return nil
	}
	return &q
}

func (p *parser) resource(key, value string, name corev1.ResourceName, list *corev1.ResourceList) {
	q := p.quantity(key, value)
	if q == nil {
		return
	}
	if *list == nil {
		*list = corev1.ResourceList{}
	}
	(*list)[name] = *q
}

func (p *parser) id(key, value string) *int64 {
	v, err := strconv.ParseInt(value, 10, 64)
	if err != nil || v < 1 || v > 2147483647 {
		p.invalid(key, value, "must be a non-root numeric id between 1 and 2147483647")
		return nil
	}
	return &v
}

// secretSlots are the per-secret prefixes and where each value goes.
var secretSlots = []slot[secretParts]{
	{PrefixSecret, func(s *secretParts) **string { return &s.path }},
	{PrefixTemplate, func(s *secretParts) **string { return &s.template }},
	{PrefixFile, func(s *secretParts) **string { return &s.file }},
	{PrefixPerms, func(s *secretParts) **string { return &s.perms }},
	{PrefixCommand, func(s *secretParts) **string { return &s.command }},
	{PrefixSignal, func(s *secretParts) **string { return &s.signal }},
	{PrefixReloadURL, func(s *secretParts) **string { return &s.reloadURL }},
	{PrefixFormat, func(s *secretParts) **string { return &s.format }},
}

func (p *parser) secretAnnotation(key, value string) {
	if perSecret(p, key, value, p.secrets, secretSlots) {
		return
	}
	if p.errs.full() {
		// Listing the known keys costs more than the key itself.
		p.errs.count()
		return
	}
	p.errs.add(field.NotSupported(keyPath(key), key, knownKeys))
}

// knownKeys lists the accepted annotation keys for the "unknown key" error.
var knownKeys = []string{
	AnnotationInject, AnnotationStatus, AnnotationRole, AnnotationAuthPath, AnnotationMode,
	AnnotationContainers, AnnotationRenderInterval, AnnotationCPURequest, AnnotationMemoryRequest,
	AnnotationCPULimit, AnnotationMemoryLimit, AnnotationRunAsUser, AnnotationRunAsGroup,
	AnnotationVaultAddr, AnnotationVaultNamespace, AnnotationTokenAudience, AnnotationVolumeSize, AnnotationRevoke,
	AnnotationMountPath, AnnotationAgentTokenFile, PrefixSecret + "<name>", PrefixTemplate + "<name>", PrefixFile + "<name>",
	PrefixPerms + "<name>", PrefixCommand + "<name>",
	PrefixSignal + "<name>", PrefixReloadURL + "<name>", PrefixFormat + "<name>",
}

// finishSecrets turns the collected per-name annotations into secrets,
// sorted by name so the injected config is deterministic.
func (p *parser) finishSecrets() {
	names := make([]string, 0, len(p.secrets))
	for n := range p.secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	files := map[string]string{} // file -> the annotation that named it
	if f := p.spec.AgentTokenFile; f != "" {
		files[f] = AnnotationAgentTokenFile
	}
	for _, n := range names {
		parts := p.secrets[n]
		s, ok := p.secret(n, parts)
		if !ok {
			continue
		}
		fileKey := PrefixSecret + n // the file is named after the secret
		if parts.file != nil {
			fileKey = PrefixFile + n
		} else if parts.path == nil {
			fileKey = PrefixTemplate + n
		}
		if other, dup := files[s.File]; dup {
			p.invalid(fileKey, s.File, "renders to the same file as "+other)
			continue
		}
		files[s.File] = fileKey
		p.origins[n] = PrefixSecret + n
		if parts.template != nil {
			p.origins[n] = PrefixTemplate + n
		}
		p.spec.Secrets = append(p.spec.Secrets, s)
	}
}

func (p *parser) secret(name string, parts *secretParts) (agent.Secret, bool) {
	s := agent.Secret{Name: name, File: name, Perms: DefaultPerms}
	ok := true
	fail := func(key, value, reason string) {
		p.invalid(key, value, reason)
		ok = false
	}
	if parts.path == nil && parts.template == nil {
		for _, k := range []struct {
			prefix string
			v      *string
		}{{PrefixFile, parts.file}, {PrefixPerms, parts.perms}, {PrefixCommand, parts.command},
			{PrefixSignal, parts.signal}, {PrefixReloadURL, parts.reloadURL}, {PrefixFormat, parts.format}} {
			if k.v != nil {
				fail(k.prefix+name, *k.v, fmt.Sprintf("has no %s%s or %s%s to go with it", PrefixSecret, name, PrefixTemplate, name))
			}
		}
		return s, false
	}
	if parts.path != nil {
		s.Path = *parts.path
		if err := agent.ValidateSecretPath(s.Path); err != nil {
			fail(PrefixSecret+name, s.Path, err.Error())
		}
	}
	if parts.template != nil {
		s.Template = *parts.template
		if err := template.Validate(s.Template); err != nil {
			// The template is not echoed back: it may hold a literal value.
			fail(PrefixTemplate+name, "<template>", err.Error())
		}
	} else if ok {
		s.Template = DefaultTemplate(s.Path)
	}
	if parts.file != nil {
		s.File = *parts.file
	}
	if err := agent.ValidateFileName(s.File); err != nil {
		key := PrefixFile + name
		if parts.file == nil {
			key = PrefixSecret + name // the file name defaults to the secret's name
		}
		fail(key, s.File, err.Error())
	}
	if parts.perms != nil {
		m, err := agent.ParseFileMode(*parts.perms)
		if err != nil {
			fail(PrefixPerms+name, *parts.perms, err.Error())
		}
		s.Perms = m
	}
	if parts.command != nil {
		cmd, err := ParseCommand(*parts.command)
		if err != nil {
			fail(PrefixCommand+name, *parts.command, err.Error())
		}
		s.Command = cmd
	}
	ok = p.secretActions(name, parts, &s) && ok
	return s, ok
}

// DefaultTemplate is the template of a secret-<name> annotation without a
// template-<name>: agent.DefaultTemplate, which the agent's configuration
// check knows to be valid without parsing it.
func DefaultTemplate(path string) string { return agent.DefaultTemplate(path) }

// ParseCommand reads command-<name>: a JSON array of strings, or words
// separated by spaces. There is no shell in the agent's image.
func ParseCommand(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	var cmd []string
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal([]byte(s), &cmd); err != nil {
			return nil, fmt.Errorf(`must be a JSON array of strings such as ["/bin/kill","-HUP","1"], or words separated by spaces`)
		}
	} else {
		cmd = strings.Fields(s)
	}
	if len(cmd) == 0 || cmd[0] == "" {
		return nil, fmt.Errorf("must name a program to run")
	}
	// The agent's view of its volumes, whatever the app's mount path.
	if err := agent.ValidateProgram(cmd[0], SecretsPath, StatePath); err != nil {
		return nil, err
	}
	return cmd, nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// checkContainers refuses a containers annotation (key) naming a container
// the pod does not have.
func (p *parser) checkContainers(pod *corev1.Pod, key string) {
	if p.spec.Containers == nil {
		return
	}
	have := map[string]bool{}
	for _, c := range pod.Spec.InitContainers {
		have[c.Name] = true
	}
	for _, c := range pod.Spec.Containers {
		have[c.Name] = true
	}
	// The value is echoed once per missing name: joined once, not per name
	// (a long list of missing names would otherwise cost its square).
	value := ""
	for _, n := range p.spec.Containers {
		if have[n] {
			continue
		}
		if p.errs.full() {
			p.errs.count()
			continue
		}
		if value == "" {
			value = Truncate(strings.Join(p.spec.Containers, ","))
		}
		p.invalid(key, value, fmt.Sprintf("names container %q, which the pod does not have", Truncate(n)))
	}
}

// checkResources refuses a request above its limit, as the API server would,
// but naming the limit annotations.
func (p *parser) checkResources(cpuLimitKey, memoryLimitKey string) {
	for name, limitKey := range map[corev1.ResourceName]string{
		corev1.ResourceCPU: cpuLimitKey, corev1.ResourceMemory: memoryLimitKey,
	} {
		req, hasReq := p.spec.Requests[name]
		lim, hasLim := p.spec.Limits[name]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			p.invalid(limitKey, lim.String(), fmt.Sprintf("is below the %s request %s", name, req.String()))
		}
	}
}
