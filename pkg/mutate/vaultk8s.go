package mutate

// Drop-in for the Vault Agent Injector (vault-k8s). A pod annotated with
// vault.hashicorp.com/ keys is parsed here, once, into the same Spec the
// blinkchamber.io/ annotations produce; nothing downstream knows where the
// Spec came from, except for the mount path and the default template, which
// are part of what vault-k8s users rely on.

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/template"
)

// VaultPrefix is the Vault Agent Injector's annotation prefix.
const VaultPrefix = "vault.hashicorp.com/"

// The vault-k8s annotations blinkchamber reads.
const (
	VaultInject             = VaultPrefix + "agent-inject"
	VaultStatus             = VaultPrefix + "agent-inject-status"
	VaultRole               = VaultPrefix + "role"
	VaultAuthPath           = VaultPrefix + "auth-path"
	VaultAuthType           = VaultPrefix + "auth-type"
	VaultNamespace          = VaultPrefix + "namespace"
	VaultService            = VaultPrefix + "service"
	VaultTLSSkipVerify      = VaultPrefix + "tls-skip-verify"
	VaultPrePopulate        = VaultPrefix + "agent-pre-populate"
	VaultPrePopulateOnly    = VaultPrefix + "agent-pre-populate-only"
	VaultInitFirst          = VaultPrefix + "agent-init-first"
	VaultContainers         = VaultPrefix + "agent-inject-containers"
	VaultDefaultTemplate    = VaultPrefix + "agent-inject-default-template"
	VaultLimitsCPU          = VaultPrefix + "agent-limits-cpu"
	VaultLimitsMem          = VaultPrefix + "agent-limits-mem"
	VaultRequestsCPU        = VaultPrefix + "agent-requests-cpu"
	VaultRequestsMem        = VaultPrefix + "agent-requests-mem"
	VaultRunAsUser          = VaultPrefix + "agent-run-as-user"
	VaultRunAsGroup         = VaultPrefix + "agent-run-as-group"
	VaultRunAsSameUser      = VaultPrefix + "agent-run-as-same-user"
	VaultSetSecurityContext = VaultPrefix + "agent-set-security-context"
	VaultRenderInterval     = VaultPrefix + "template-static-secret-render-interval"
	VaultRevokeOnShutdown   = VaultPrefix + "agent-revoke-on-shutdown"
	VaultSecretVolumePath   = VaultPrefix + "secret-volume-path"
	VaultPreserveCase       = VaultPrefix + "preserve-secret-case"
	VaultInjectToken        = VaultPrefix + "agent-inject-token"
	VaultCacheEnable        = VaultPrefix + "agent-cache-enable"
)

// vaultTokenFile is where vault-k8s's agent-inject-token puts the token.
const vaultTokenFile = "token"

// Per-secret vault-k8s prefixes: <prefix><name>. Longer prefixes that share
// a beginning with a shorter one come first (template-file- before template-).
const (
	VaultPrefixTemplateFile = VaultPrefix + "agent-inject-template-file-"
	VaultPrefixSecret       = VaultPrefix + "agent-inject-secret-"
	VaultPrefixTemplate     = VaultPrefix + "agent-inject-template-"
	VaultPrefixFile         = VaultPrefix + "agent-inject-file-"
	VaultPrefixPerms        = VaultPrefix + "agent-inject-perms-"
	VaultPrefixCommand      = VaultPrefix + "agent-inject-command-"
	VaultPrefixMissingKey   = VaultPrefix + "error-on-missing-key-"
	VaultPrefixPreserveCase = VaultPrefix + "preserve-secret-case-"
	VaultPrefixVolumePath   = VaultPrefix + "secret-volume-path-"
	VaultPrefixAuthConfig   = VaultPrefix + "auth-config-"
	VaultPrefixTelemetry    = VaultPrefix + "agent-telemetry-"
)

// VaultSecretsPath is where vault-k8s mounts the rendered files in app
// containers, unless secret-volume-path says otherwise.
const VaultSecretsPath = "/vault/secrets"

// VaultDefaultPerms is Vault Agent's file mode. vault-k8s runs its agent as
// uid 100 and apps read the files whatever their uid (often only set in
// their image), so a stricter default would break them; perms-<name> or
// blinkchamber.io/ annotations tighten it.
const VaultDefaultPerms agent.FileMode = 0o644

// VaultMapTemplate is vault-k8s's default template ("map"): one "key: value"
// line per key of the secret's Data. For KV v2 that is a "data: map[...]"
// line and a "metadata: map[...]" line, which is what vault-k8s users get.
func VaultMapTemplate(p string) string {
	return `{{ with secret "` + p + `" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}
{{ end }}{{ end }}`
}

// VaultJSONTemplate is vault-k8s's "json" default template.
func VaultJSONTemplate(p string) string {
	return `{{ with secret "` + p + `" }}{{ .Data | toJSON }}
{{ end }}`
}

// Warning is an annotation accepted with a caveat. The webhook returns it in
// the admission response; migrate prints it.
type Warning struct {
	Field  *field.Path
	Reason string
}

func (w Warning) String() string { return w.Field.String() + ": " + w.Reason }

// vaultIgnored are vault-k8s annotations that configure Vault Agent itself
// (its image, config map, cache, logging, HTTP client) and have no meaning
// for blinkchamber's agent. Ignoring them weakens nothing, so they are
// accepted with a warning saying so.
var vaultIgnored = map[string]string{
	"agent-image":                             "the injector's agent image is used",
	"agent-cache-use-auto-auth-token":         "the agent has no cache listener",
	"agent-cache-listener-port":               "the agent has no cache listener",
	"agent-cache-exit-on-err":                 "the agent has no persistent cache",
	"agent-request-namespace":                 "written by vault-k8s; the pod's namespace is used",
	"agent-limits-ephemeral":                  "the agent writes nothing to disk",
	"agent-requests-ephemeral":                "the agent writes nothing to disk",
	"agent-revoke-grace":                      "revoke-on-shutdown runs within the pod's termination grace period",
	"agent-extra-secret":                      "the agent reads no files besides its token",
	"agent-copy-volume-mounts":                "the agent mounts only its secrets and token volumes",
	"agent-share-process-namespace":           "commands run in the agent container; the pod's process namespace is left as it is",
	"agent-enable-quit":                       "the agent stops with its pod",
	"agent-auto-auth-exit-on-err":             "the agent retries logins with backoff and reports through readiness",
	"agent-disable-idle-connections":          "not a setting of the agent",
	"agent-disable-keep-alives":               "not a setting of the agent",
	"agent-metrics-listener-port":             "the agent serves metrics on the injector's health port",
	"agent-service-account-token-volume-name": "the agent uses its own projected token",
	"auth-min-backoff":                        "the agent's login backoff is fixed",
	"auth-max-backoff":                        "the agent's login backoff is fixed",
	"ca-cert":                                 "the agent verifies Vault with the CA the injector was given (--vault-ca-file)",
	"ca-key":                                  "the agent verifies Vault with the CA the injector was given (--vault-ca-file)",
	"tls-secret":                              "the agent verifies Vault with the CA the injector was given (--vault-ca-file)",
	"tls-server-name":                         "the agent checks the certificate against the Vault address's host",
	"client-cert":                             "the agent does not present client certificates",
	"client-key":                              "the agent does not present client certificates",
	"client-max-retries":                      "the agent retries with its own backoff",
	"client-timeout":                          "the agent uses its own request timeouts",
	"proxy-address":                           "the agent connects to Vault directly",
	"log-level":                               "the agent logs JSON at info level",
	"log-format":                              "the agent logs JSON at info level",
	"go-max-procs":                            "not a setting of the agent",
	"template-config-exit-on-retry-failure":   "the agent keeps the last files and reports through readiness",
	"template-max-connections-per-host":       "not a setting of the agent",
}

// vaultRefused are vault-k8s annotations blinkchamber cannot honour: ignoring
// them would change what the pod gets or how safely it gets it.
var vaultRefused = map[string]string{
	"agent-configmap":       "a Vault Agent configuration cannot be run by blinkchamber's agent; declare each file with agent-inject-secret-<name> and agent-inject-template-<name>",
	"agent-json-patch":      "patches to the agent container are not applied: its security context is fixed",
	"agent-init-json-patch": "patches to the agent container are not applied: its security context is fixed",
}

// usesVault reports whether a pod carries any vault.hashicorp.com/ key.
func usesVault(pod *corev1.Pod) bool {
	for k := range pod.Annotations {
		if strings.HasPrefix(k, VaultPrefix) {
			return true
		}
	}
	return false
}

type vaultSecret struct {
	parts        secretParts
	missingKey   *string
	preserveCase *string
	volumePath   *string
	templateFile *string
}

type vaultParser struct {
	*parser
	secrets map[string]*vaultSecret // by raw name, as written in the key
}

// parseVault reads a pod's vault.hashicorp.com/ annotations into a Spec.
// Annotations of a pod vault-k8s would not inject are not checked, as
// vault-k8s does not read them either.
func parseVault(pod *corev1.Pod) (*Spec, origins, problems) {
	p := &vaultParser{
		parser:  &parser{spec: &Spec{VaultK8s: true, MountPath: VaultSecretsPath}, origins: origins{}},
		secrets: map[string]*vaultSecret{},
	}
	p.mixedPrefixes(pod)
	p.injectAndStatus(pod)
	if p.spec.Injected {
		p.remountOnly(pod)
	}
	if !p.spec.Inject || p.spec.Injected || p.errs.total > 0 {
		return p.spec, p.origins, p.errs
	}
	keys := make([]string, 0, len(pod.Annotations))
	for k := range pod.Annotations {
		if strings.HasPrefix(k, VaultPrefix) && k != VaultInject && k != VaultStatus {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // stable error order
	for _, k := range keys {
		p.annotation(k, pod.Annotations[k])
	}
	p.finish(pod)
	return p.spec, p.origins, p.errs
}

// mixedPrefixes refuses a pod annotated for both injectors: which of two
// sets of instructions wins would be a guess. Our own status annotation is
// not an instruction.
func (p *vaultParser) mixedPrefixes(pod *corev1.Pod) {
	var ours []string
	for k := range pod.Annotations {
		if strings.HasPrefix(k, Prefix) && k != AnnotationStatus {
			ours = append(ours, k)
		}
	}
	sort.Strings(ours)
	for _, k := range ours {
		if p.errs.full() {
			p.errs.count()
			continue
		}
		p.errs.add(field.Forbidden(keyPath(k),
			"the pod also has "+VaultPrefix+" annotations; use one prefix: blinkchamber migrate rewrites the "+VaultPrefix+" ones"))
	}
}

func (p *vaultParser) injectAndStatus(pod *corev1.Pod) {
	if v, ok := pod.Annotations[VaultInject]; ok {
		p.spec.Inject = p.boolean(VaultInject, v)
	}
	if v, ok := pod.Annotations[VaultStatus]; ok {
		if v != StatusInjected {
			p.invalid(VaultStatus, v, fmt.Sprintf("is written by the injector; the only value is %q", StatusInjected))
		}
		// Injected by vault-k8s, or by us: either way, not again.
		p.spec.Injected = v == StatusInjected
	}
}

// remountOnly reads, from an injected pod, what a re-invocation needs to
// mount new containers: which ones, and where. Nothing is refused: the pod
// may be vault-k8s's, carrying annotations only it understands.
func (p *vaultParser) remountOnly(pod *corev1.Pod) {
	if names := splitList(pod.Annotations[VaultContainers]); len(names) > 0 {
		p.spec.Containers = names
	}
	if v, ok := pod.Annotations[VaultSecretVolumePath]; ok && ValidateMountPath(v) == nil {
		p.spec.MountPath = path.Clean(v)
	}
}

func (p *vaultParser) warn(key, reason string) {
	p.spec.Warnings = append(p.spec.Warnings, Warning{Field: keyPath(key), Reason: reason})
}

// boolean parses a vault-k8s boolean (Go's ParseBool, as vault-k8s uses).
func (p *vaultParser) boolean(key, value string) bool {
	b, err := strconv.ParseBool(value)
	if err != nil {
		p.invalid(key, value, `must be "true" or "false"`)
	}
	return b
}

func (p *vaultParser) annotation(key, value string) {
	if p.podLevel(key, value) || p.behaviour(key, value) {
		return
	}
	short := strings.TrimPrefix(key, VaultPrefix)
	if why, ok := vaultIgnored[short]; ok {
		p.warn(key, "ignored: "+why)
		return
	}
	if strings.HasPrefix(key, VaultPrefixTelemetry) {
		p.warn(key, "ignored: the agent serves Prometheus metrics on the injector's health port")
		return
	}
	if why, ok := vaultRefused[short]; ok {
		p.errs.add(field.Forbidden(keyPath(key), why))
		return
	}
	if strings.HasPrefix(key, VaultPrefixAuthConfig) {
		p.errs.add(field.Forbidden(keyPath(key),
			"the agent logs in with the pod's projected ServiceAccount token and the role; other login parameters are not supported"))
		return
	}
	p.secretAnnotation(key, value)
}

// podLevel handles the annotations that map onto Spec fields.
func (p *vaultParser) podLevel(key, value string) bool {
	s := p.spec
	switch key {
	case VaultRole:
		p.check(key, value, agent.ValidateRole)
		s.Role = value
	case VaultAuthPath:
		p.check(key, value, agent.ValidateVaultPath)
		s.AuthPath = strings.TrimSuffix(value, "/")
	case VaultNamespace:
		if value == "" || strings.ContainsAny(value, " \t\r\n\"") {
			p.invalid(key, value, "must be a non-empty Vault namespace without spaces or quotes")
		}
		s.VaultNamespace = value
	case VaultService:
		p.check(key, value, agent.ValidateVaultAddress)
		s.VaultAddr = strings.TrimSuffix(value, "/")
	case VaultContainers:
		s.Containers = splitList(value)
		if len(s.Containers) == 0 {
			p.invalid(key, value, "must list at least one container name, separated by commas")
		}
	case VaultLimitsCPU:
		p.resource(key, value, corev1.ResourceCPU, &s.Limits)
	case VaultLimitsMem:
		p.resource(key, value, corev1.ResourceMemory, &s.Limits)
	case VaultRequestsCPU:
		p.resource(key, value, corev1.ResourceCPU, &s.Requests)
	case VaultRequestsMem:
		p.resource(key, value, corev1.ResourceMemory, &s.Requests)
	case VaultRunAsUser:
		s.RunAsUser = p.id(key, value)
	case VaultRunAsGroup:
		s.RunAsGroup = p.id(key, value)
	case VaultRenderInterval:
		p.renderInterval(key, value)
	case VaultRevokeOnShutdown:
		s.RevokeOnShutdown = p.boolean(key, value)
	case VaultSecretVolumePath:
		if err := ValidateMountPath(value); err != nil {
			p.invalid(key, value, err.Error())
		}
		s.MountPath = path.Clean(value)
	default:
		return false
	}
	return true
}

// behaviour handles the annotations about how the agent runs, which either
// match what blinkchamber always does or are refused.
func (p *vaultParser) behaviour(key, value string) bool {
	switch key {
	case VaultPrePopulateOnly:
		if p.boolean(key, value) {
			p.spec.Mode = ModeInitOnly
		}
	case VaultPrePopulate:
		if !p.boolean(key, value) {
			p.warn(key, "ignored: the agent always renders every file before the app containers start")
		}
	case VaultInitFirst:
		// The agent always runs before the other init containers, which
		// therefore see the files too: a superset of both values.
		p.boolean(key, value)
	case VaultRunAsSameUser:
		// The agent runs as the app's uid unless agent-run-as-user says
		// otherwise, whatever this says.
		p.boolean(key, value)
	case VaultSetSecurityContext:
		if !p.boolean(key, value) {
			p.warn(key, "ignored: the agent always runs non-root, read-only, without capabilities")
		}
	case VaultCacheEnable:
		if p.boolean(key, value) {
			p.warn(key, "ignored: the agent has no cache listener for the app; the app reads the rendered files")
		}
	case VaultTLSSkipVerify:
		if p.boolean(key, value) {
			p.errs.add(field.Forbidden(keyPath(key), "the agent always verifies Vault's certificate; give the injector Vault's CA (--vault-ca-file)"))
		}
	case VaultAuthType:
		if value != "kubernetes" {
			p.invalid(key, value, `only "kubernetes" is supported: the agent logs in with the pod's projected ServiceAccount token`)
		}
	case VaultInjectToken:
		if p.boolean(key, value) {
			// vault-k8s writes the token to <volume>/token.
			p.spec.AgentTokenFile = vaultTokenFile
		}
	case VaultDefaultTemplate:
		if value != "map" && value != "json" {
			p.invalid(key, value, `must be "map" or "json"`)
		}
	case VaultPreserveCase:
		p.boolean(key, value)
	default:
		return false
	}
	return true
}

// vaultSlots are the per-secret prefixes and where each value goes.
var vaultSlots = []slot[vaultSecret]{
	{VaultPrefixTemplateFile, func(s *vaultSecret) **string { return &s.templateFile }},
	{VaultPrefixSecret, func(s *vaultSecret) **string { return &s.parts.path }},
	{VaultPrefixTemplate, func(s *vaultSecret) **string { return &s.parts.template }},
	{VaultPrefixFile, func(s *vaultSecret) **string { return &s.parts.file }},
	{VaultPrefixPerms, func(s *vaultSecret) **string { return &s.parts.perms }},
	{VaultPrefixCommand, func(s *vaultSecret) **string { return &s.parts.command }},
	{VaultPrefixMissingKey, func(s *vaultSecret) **string { return &s.missingKey }},
	{VaultPrefixPreserveCase, func(s *vaultSecret) **string { return &s.preserveCase }},
	{VaultPrefixVolumePath, func(s *vaultSecret) **string { return &s.volumePath }},
}

func (p *vaultParser) secretAnnotation(key, value string) {
	if perSecret(p.parser, key, value, p.secrets, vaultSlots) {
		return
	}
	if p.errs.full() {
		// Listing the known keys costs more than the key itself.
		p.errs.count()
		return
	}
	p.errs.add(field.NotSupported(keyPath(key), key, vaultKnownKeys()))
}

// slot is a per-secret annotation prefix and the field of T it fills.
type slot[T any] struct {
	prefix string
	field  func(*T) **string
}

// perSecret stores value in the slot whose prefix key has, for the secret
// named by the rest of the key. It reports false when no prefix matches.
func perSecret[T any](p *parser, key, value string, secrets map[string]*T, slots []slot[T]) bool {
	for _, sl := range slots {
		name, ok := strings.CutPrefix(key, sl.prefix)
		if !ok {
			continue
		}
		if name == "" {
			p.invalid(key, value, "needs a secret name after the prefix, e.g. "+sl.prefix+"db")
			return true
		}
		s := secrets[name]
		if s == nil {
			s = new(T)
			secrets[name] = s
		}
		v := value
		*sl.field(s) = &v
		return true
	}
	return false
}

// vaultKnownKeys lists every accepted key for the "unknown key" error.
func vaultKnownKeys() []string {
	out := []string{
		VaultInject, VaultStatus, VaultRole, VaultAuthPath, VaultAuthType, VaultNamespace, VaultService,
		VaultTLSSkipVerify, VaultPrePopulate, VaultPrePopulateOnly, VaultInitFirst, VaultContainers,
		VaultDefaultTemplate, VaultLimitsCPU, VaultLimitsMem, VaultRequestsCPU, VaultRequestsMem,
		VaultRunAsUser, VaultRunAsGroup, VaultRunAsSameUser, VaultSetSecurityContext, VaultRenderInterval,
		VaultRevokeOnShutdown, VaultSecretVolumePath, VaultPreserveCase, VaultInjectToken, VaultCacheEnable,
		VaultPrefixSecret + "<name>", VaultPrefixTemplate + "<name>", VaultPrefixFile + "<name>",
		VaultPrefixPerms + "<name>", VaultPrefixCommand + "<name>", VaultPrefixMissingKey + "<name>",
		VaultPrefixPreserveCase + "<name>",
	}
	for k := range vaultIgnored {
		out = append(out, VaultPrefix+k)
	}
	sort.Strings(out)
	return out
}

// finish builds the secrets and runs the checks that need the whole pod.
func (p *vaultParser) finish(pod *corev1.Pod) {
	raws := make([]string, 0, len(p.secrets))
	for r := range p.secrets {
		raws = append(raws, r)
	}
	sort.Strings(raws)
	files := map[string]string{} // file -> the annotation that named it
	if p.spec.AgentTokenFile != "" {
		files[p.spec.AgentTokenFile] = VaultInjectToken
	}
	names := map[string]string{} // secret name -> raw name
	for _, raw := range raws {
		vs := p.secrets[raw]
		s, ok := p.secret(pod, raw, vs)
		if !ok {
			continue
		}
		key := VaultPrefixSecret + raw
		if vs.parts.path == nil {
			key = VaultPrefixTemplate + raw
		}
		if other, dup := names[s.Name]; dup {
			// vault-k8s lower-cases names: DB and db are one secret.
			p.invalid(key, s.Name, fmt.Sprintf("names the same secret as the annotations for %q (names are lower-cased unless %s is true)",
				Truncate(other), VaultPreserveCase))
			continue
		}
		fileKey := key
		if vs.parts.file != nil {
			fileKey = VaultPrefixFile + raw
		}
		if other, dup := files[s.File]; dup {
			p.invalid(fileKey, s.File, "renders to the same file as "+other)
			continue
		}
		names[s.Name] = raw
		files[s.File] = fileKey
		p.origins[s.Name] = VaultPrefixSecret + raw
		if vs.parts.template != nil {
			p.origins[s.Name] = VaultPrefixTemplate + raw
		}
		p.spec.Secrets = append(p.spec.Secrets, s)
	}
	sort.Slice(p.spec.Secrets, func(i, j int) bool { return p.spec.Secrets[i].Name < p.spec.Secrets[j].Name })
	p.checkContainers(pod, VaultContainers)
	p.checkResources(VaultLimitsCPU, VaultLimitsMem)
	if len(p.spec.Secrets) == 0 && p.errs.total == 0 {
		p.errs.add(field.Required(keyPath(VaultPrefixSecret+"<name>"),
			"an injected pod needs at least one "+VaultPrefixSecret+"<name> or "+VaultPrefixTemplate+"<name> annotation"))
	}
}

// secretName is vault-k8s's: the raw name lower-cased unless
// preserve-secret-case (per secret, else pod-wide) is true.
func (p *vaultParser) secretName(pod *corev1.Pod, raw string, s *vaultSecret) string {
	preserve := pod.Annotations[VaultPreserveCase]
	if s.preserveCase != nil {
		preserve = *s.preserveCase
		p.boolean(VaultPrefixPreserveCase+raw, preserve)
	}
	if b, _ := strconv.ParseBool(preserve); b {
		return raw
	}
	return strings.ToLower(raw)
}

func (p *vaultParser) secret(pod *corev1.Pod, raw string, vs *vaultSecret) (agent.Secret, bool) {
	name := p.secretName(pod, raw, vs)
	s := agent.Secret{Name: name, File: name, Perms: VaultDefaultPerms}
	errsBefore := p.errs.total
	if vs.templateFile != nil {
		p.errs.add(field.Forbidden(keyPath(VaultPrefixTemplateFile+raw),
			"the agent reads no template files; put the template in "+VaultPrefixTemplate+raw))
	}
	parts := vs.parts
	if parts.path == nil && parts.template == nil {
		p.orphans(raw, vs)
		return s, false
	}
	if parts.path != nil {
		s.Path = *parts.path
		p.check(VaultPrefixSecret+raw, s.Path, agent.ValidateSecretPath)
	}
	switch {
	case parts.template != nil:
		s.Template = *parts.template
		if err := template.Validate(s.Template); err != nil {
			// Not echoed back: a template may hold a literal value.
			p.invalid(VaultPrefixTemplate+raw, "<template>", err.Error())
		}
	case pod.Annotations[VaultDefaultTemplate] == "json":
		s.Template = VaultJSONTemplate(s.Path)
	default:
		s.Template = VaultMapTemplate(s.Path)
	}
	p.fileAndPerms(raw, vs, &s)
	p.secretOptions(pod, raw, vs, &s)
	return s, p.errs.total == errsBefore
}

func (p *vaultParser) orphans(raw string, vs *vaultSecret) {
	for _, k := range []struct {
		prefix string
		v      *string
	}{{VaultPrefixFile, vs.parts.file}, {VaultPrefixPerms, vs.parts.perms}, {VaultPrefixCommand, vs.parts.command},
		{VaultPrefixMissingKey, vs.missingKey}, {VaultPrefixVolumePath, vs.volumePath}} {
		if k.v != nil {
			p.invalid(k.prefix+raw, *k.v, fmt.Sprintf("has no %s%s or %s%s to go with it", VaultPrefixSecret, raw, VaultPrefixTemplate, raw))
		}
	}
}

func (p *vaultParser) fileAndPerms(raw string, vs *vaultSecret, s *agent.Secret) {
	if f := vs.parts.file; f != nil {
		s.File = *f
		if strings.Contains(s.File, "/") {
			p.invalid(VaultPrefixFile+raw, s.File, "must be a plain file name: the agent renders every file at the top of the secrets volume")
		} else {
			p.check(VaultPrefixFile+raw, s.File, agent.ValidateFileName)
		}
	} else {
		p.check(VaultPrefixSecret+raw, s.File, agent.ValidateFileName)
	}
	if pm := vs.parts.perms; pm != nil {
		m, err := agent.ParseFileMode(*pm)
		if err != nil {
			p.invalid(VaultPrefixPerms+raw, *pm, err.Error())
		}
		s.Perms = m
	}
}

func (p *vaultParser) secretOptions(pod *corev1.Pod, raw string, vs *vaultSecret, s *agent.Secret) {
	if c := vs.parts.command; c != nil {
		key := VaultPrefixCommand + raw
		if strings.ContainsAny(*c, "|&;<>()$`\\\"'*?#~\n") {
			p.invalid(key, *c, "uses shell syntax; the agent has no shell and runs the command's words directly")
		} else if cmd, err := ParseCommand(*c); err != nil {
			p.invalid(key, *c, err.Error())
		} else {
			s.Command = cmd
		}
	}
	if mk := vs.missingKey; mk != nil && !p.boolean(VaultPrefixMissingKey+raw, *mk) {
		p.warn(VaultPrefixMissingKey+raw, "ignored: a missing key is always an error, never an empty value in a file")
	}
	if vp := vs.volumePath; vp != nil && path.Clean(*vp) != p.spec.MountPath {
		p.invalid(VaultPrefixVolumePath+raw, *vp, "must be the pod's secret-volume-path ("+p.spec.MountPath+"): the agent renders every file into one volume")
	}
}

// ValidateMountPath accepts an absolute, clean directory other than "/".
func ValidateMountPath(v string) error {
	switch {
	case !strings.HasPrefix(v, "/"):
		return fmt.Errorf("must be an absolute path such as %s", VaultSecretsPath)
	case path.Clean(v) == "/":
		return fmt.Errorf("must not be the root directory")
	case strings.Contains(v, ".."):
		return fmt.Errorf(`must not contain ".."`)
	case strings.ContainsAny(v, ":\x00\n"):
		return fmt.Errorf("must not contain ':', NUL or newlines")
	case len(v) > 255:
		return fmt.Errorf("must be at most 255 bytes")
	}
	return nil
}

// mountPath is where app containers mount the secrets volume.
func (s *Spec) mountPath() string {
	if s.MountPath != "" {
		return s.MountPath
	}
	return SecretsPath
}
