// Package mutate turns a pod's blinkchamber.io/ annotations into a typed,
// validated Spec and mutates the typed *corev1.Pod to carry the agent, the
// in-memory secrets volume and the projected Vault token. The webhook
// framework computes the JSON patch; nothing here builds one.
package mutate

import (
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
)

// Names and paths of what the injector adds; they are the pod contract.
const (
	SecretsVolume   = "blinkchamber-secrets"
	TokenVolume     = "blinkchamber-token"
	StateVolume     = "blinkchamber-state"
	AgentContainer  = "blinkchamber-agent"
	InitContainer   = "blinkchamber-agent-init"
	SecretsPath     = "/blinkchamber/secrets"
	TokenDir        = "/var/run/secrets/blinkchamber.io"
	TokenFile       = "token"
	StatePath       = "/blinkchamber/state"
	AgentBinary     = "/usr/local/bin/blinkchamber-agent"
	TokenExpiration = int64(3600)
)

// Options are the injector-wide defaults that annotations may override.
type Options struct {
	AgentImage     string
	VaultAddr      string
	VaultCACert    string
	Mode           Mode
	AuthPath       string
	TokenAudience  string
	RenderInterval time.Duration
	VolumeSize     resource.Quantity
	Requests       corev1.ResourceList
	Limits         corev1.ResourceList
	// RunAsUser is the agent's uid when neither the annotation nor the app's
	// securityContext names one.
	RunAsUser int64
	// HealthPort is the agent's localhost port for health and metrics.
	HealthPort int
	// MetricsPort, when not 0, also serves the long-running agent's
	// /metrics on the pod IP (container port MetricsPortName) so that
	// Prometheus can scrape it.
	MetricsPort int
}

// MetricsPortName names the agent's metrics container port; scrape
// configurations select agents by it.
const MetricsPortName = "bc-metrics"

// DefaultOptions are the documented defaults; the agent needs about 10 MiB.
func DefaultOptions() Options {
	return Options{
		Mode:           ModeNative,
		AuthPath:       "auth/kubernetes",
		TokenAudience:  "vault",
		RenderInterval: 5 * time.Second,
		VolumeSize:     resource.MustParse("16Mi"),
		Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("24Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
		},
		RunAsUser:  65532,
		HealthPort: 8099,
	}
}

// ErrAgentConfig is wrapped when the injector's own settings make an
// agent configuration the agent would refuse: a fault of the injector, not
// of the pod.
var ErrAgentConfig = errors.New("the injector's settings make an invalid agent configuration")

// ErrInvalid is wrapped by Mutate when the pod's annotations are invalid;
// errors.As to *InvalidError gives the field errors.
var ErrInvalid = errors.New("invalid blinkchamber.io annotations")

// InvalidError is a pod refused for what it holds: its annotations, or
// what its spec does with the injector's volumes. Every path starts with
// metadata.annotations or spec.
type InvalidError struct {
	// Errs are the first MaxListedErrors problems, each bounded (MaxEcho).
	Errs field.ErrorList
	// Total is how many problems there are, at least len(Errs).
	Total int
}

// Error lists the problems kept, in a string linear in their number
// (field.ErrorList.ToAggregate joins with += and dedups: quadratic).
func (e *InvalidError) Error() string { return Summary(e.Errs, e.Total) }
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Outcome says what Mutate did, for logs and metrics.
type Outcome struct {
	Injected bool
	Reason   Reason
	// Warnings are for the admission response: annotations accepted with
	// a caveat.
	Warnings []string
}

// Mutate injects the agent into pod, in place. On error the pod is left as
// it was: everything is built first and applied only when valid.
func Mutate(pod *corev1.Pod, o Options) (Outcome, error) {
	spec, orig, errs := parse(pod)
	out, err := mutate(pod, spec, orig, errs, o)
	out.Warnings = warnings(spec.Warnings)
	return out, err
}

// warnings are the first MaxListedErrors warnings, each cut to MaxEcho,
// and a count of the rest: a pod may carry thousands of accepted keys.
func warnings(ws []Warning) []string {
	out := make([]string, 0, min(len(ws), MaxListedErrors+1))
	for _, w := range ws[:min(len(ws), MaxListedErrors)] {
		out = append(out, Truncate(w.String()))
	}
	if rest := len(ws) - MaxListedErrors; rest > 0 {
		out = append(out, fmt.Sprintf("and %d more warnings", rest))
	}
	return out
}

func mutate(pod *corev1.Pod, spec *Spec, orig origins, errs problems, o Options) (Outcome, error) {
	if err := errs.err(); err != nil {
		return Outcome{Reason: ReasonInvalid}, err
	}
	if spec.Injected {
		if err := checkAgentVolumes(pod, true); err != nil {
			return Outcome{Reason: ReasonInvalid}, err
		}
		remount(pod, spec)
		return Outcome{Reason: ReasonAlreadyInjected}, nil
	}
	if !spec.Inject {
		if _, set := pod.Annotations[AnnotationInject]; set || pod.Annotations[VaultInject] != "" {
			return Outcome{Reason: ReasonDisabled}, nil
		}
		return Outcome{Reason: ReasonNotAnnotated}, nil
	}
	if len(spec.Secrets) == 0 {
		return Outcome{Reason: ReasonInvalid}, invalid(field.Required(keyPath(PrefixSecret+"<name>"),
			"an injected pod needs at least one "+PrefixSecret+"<name> or "+PrefixTemplate+"<name> annotation"))
	}
	if err := checkAgentVolumes(pod, false); err != nil {
		return Outcome{Reason: ReasonInvalid}, err
	}
	plan, err := newPlan(pod, spec, orig, o)
	if err != nil {
		return Outcome{Reason: ReasonInvalid}, err
	}
	plan.apply(pod)
	return Outcome{Injected: true, Reason: ReasonInjected}, nil
}

// plan is everything to add, computed before the pod is touched.
type plan struct {
	spec       *Spec
	mode       Mode
	volumes    []corev1.Volume
	initFirst  []corev1.Container // prepended to initContainers
	sidecars   []corev1.Container // appended to containers
	targetInit map[string]bool
	target     map[string]bool
}

func newPlan(pod *corev1.Pod, spec *Spec, orig origins, o Options) (*plan, error) {
	p := &plan{spec: spec, mode: spec.Mode}
	if p.mode == "" {
		p.mode = o.Mode
	}
	base := agentConfig(pod, spec, o)
	sc := securityContext(pod, spec, o)
	if errs := checkSignals(pod, spec, *sc.RunAsUser); len(errs) > 0 {
		return nil, invalid(errs...)
	}
	if err := checkInput(pod, spec, base); err != nil {
		return nil, err
	}
	res := resources(spec, o)
	switch p.mode {
	case ModeNative:
		c, err := container(AgentContainer, base, agent.ModeNative, o, sc, res)
		if err != nil {
			return nil, err
		}
		c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
		c.StartupProbe = startupProbe()
		p.initFirst = []corev1.Container{c}
	case ModeSidecar:
		base.StateDir = StatePath
		ic, err := container(InitContainer, base, agent.ModeInit, o, sc, res)
		if err != nil {
			return nil, err
		}
		c, err := container(AgentContainer, base, agent.ModeSidecar, o, sc, res)
		if err != nil {
			return nil, err
		}
		p.initFirst = []corev1.Container{ic}
		p.sidecars = []corev1.Container{c}
	case ModeInitOnly:
		ic, err := container(InitContainer, base, agent.ModeInit, o, sc, res)
		if err != nil {
			return nil, err
		}
		p.initFirst = []corev1.Container{ic}
	default:
		// An injector setting, not the pod's: a fault of the injector.
		return nil, fmt.Errorf("%w: default mode %q is not one of native, sidecar, init-only", ErrAgentConfig, p.mode)
	}
	if err := checkConfigSize(spec, orig, append(p.initFirst, p.sidecars...)); err != nil {
		return nil, err
	}
	p.volumes = volumes(spec, o, p.mode == ModeSidecar)
	p.targetInit, p.target = targets(pod, spec)
	return p, nil
}

func (p *plan) apply(pod *corev1.Pod) {
	for i := range pod.Spec.InitContainers {
		if p.targetInit[pod.Spec.InitContainers[i].Name] {
			addMount(&pod.Spec.InitContainers[i], p.spec.mountPath())
		}
	}
	for i := range pod.Spec.Containers {
		if p.target[pod.Spec.Containers[i].Name] {
			addMount(&pod.Spec.Containers[i], p.spec.mountPath())
		}
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, p.volumes...)
	pod.Spec.InitContainers = append(p.initFirst, pod.Spec.InitContainers...)
	pod.Spec.Containers = append(pod.Spec.Containers, p.sidecars...)
	shareProcesses(pod, p.spec)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationStatus] = StatusInjected
	if p.spec.VaultK8s {
		// vault-k8s skips a pod marked so: the two injectors can run side
		// by side during a migration without injecting twice.
		pod.Annotations[VaultStatus] = StatusInjected
	}
}

// remount handles re-invocation: another webhook may have added containers
// after us. They get the secrets mount (when targeted); nothing else changes.
func remount(pod *corev1.Pod, spec *Spec) {
	if !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == SecretsVolume }) {
		// Marked injected but without our volume (annotations copied from
		// another pod): a mount would point at nothing.
		return
	}
	initNames, names := targets(pod, spec)
	for i := range pod.Spec.InitContainers {
		if initNames[pod.Spec.InitContainers[i].Name] {
			addMount(&pod.Spec.InitContainers[i], spec.mountPath())
		}
	}
	for i := range pod.Spec.Containers {
		if names[pod.Spec.Containers[i].Name] {
			addMount(&pod.Spec.Containers[i], spec.mountPath())
		}
	}
}

// targets are the names of the app containers that get the secrets mount:
// those named by the containers annotation, else all but the agent's own.
// Sets, not lists: a pod may have thousands of containers, and a lookup
// per container must not cost a scan of them all.
func targets(pod *corev1.Pod, spec *Spec) (initNames, names map[string]bool) {
	var wanted map[string]bool
	if spec.Containers != nil {
		wanted = make(map[string]bool, len(spec.Containers))
		for _, n := range spec.Containers {
			wanted[n] = true
		}
	}
	pick := func(cs []corev1.Container) map[string]bool {
		out := map[string]bool{}
		for _, c := range cs {
			if c.Name == AgentContainer || c.Name == InitContainer {
				continue
			}
			if wanted == nil || wanted[c.Name] {
				out[c.Name] = true
			}
		}
		return out
	}
	return pick(pod.Spec.InitContainers), pick(pod.Spec.Containers)
}

func addMount(c *corev1.Container, mountPath string) {
	for _, m := range c.VolumeMounts {
		if m.Name == SecretsVolume {
			return
		}
	}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: SecretsVolume, MountPath: mountPath, ReadOnly: true})
}

func agentConfig(pod *corev1.Pod, spec *Spec, o Options) agent.Config {
	c := agent.Config{
		Vault: agent.Vault{
			Address:   firstNonEmpty(spec.VaultAddr, o.VaultAddr),
			CACert:    o.VaultCACert,
			Namespace: spec.VaultNamespace,
			AuthPath:  firstNonEmpty(spec.AuthPath, o.AuthPath),
			Role:      firstNonEmpty(spec.Role, pod.Spec.ServiceAccountName, "default"),
		},
		TokenFile:        TokenDir + "/" + TokenFile,
		SecretsDir:       SecretsPath,
		RenderInterval:   agent.Duration{Duration: o.RenderInterval},
		HealthAddr:       fmt.Sprintf("127.0.0.1:%d", o.HealthPort),
		RevokeOnShutdown: spec.RevokeOnShutdown,
		VaultTokenFile:   spec.AgentTokenFile,
		Secrets:          spec.Secrets,
	}
	if spec.RenderInterval != 0 {
		c.RenderInterval.Duration = spec.RenderInterval
	}
	return c
}

func container(name string, cfg agent.Config, mode agent.Mode, o Options, sc *corev1.SecurityContext, res corev1.ResourceRequirements) (corev1.Container, error) {
	cfg.Mode = mode
	if mode == agent.ModeNative {
		cfg.StateDir = ""
	}
	var ports []corev1.ContainerPort
	// An init agent exits before the app starts: nothing to scrape.
	if o.MetricsPort != 0 && mode != agent.ModeInit {
		cfg.MetricsAddr = fmt.Sprintf(":%d", o.MetricsPort)
		ports = []corev1.ContainerPort{{Name: MetricsPortName, ContainerPort: int32(o.MetricsPort), Protocol: corev1.ProtocolTCP}}
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		// Parse and checkInput refuse every pod input the agent's check
		// would (FuzzParse holds them to it), so this is an injector
		// setting (for example --vault-addr) that does not fit: a 500.
		return corev1.Container{}, fmt.Errorf("%w: %s", ErrAgentConfig, Summary(errs, len(errs)))
	}
	enc, err := cfg.Encode()
	if err != nil {
		return corev1.Container{}, fmt.Errorf("%w: %w", ErrAgentConfig, err)
	}
	mounts := []corev1.VolumeMount{
		{Name: SecretsVolume, MountPath: SecretsPath},
		{Name: TokenVolume, MountPath: TokenDir, ReadOnly: true},
	}
	if cfg.StateDir != "" {
		mounts = append(mounts, corev1.VolumeMount{Name: StateVolume, MountPath: StatePath})
	}
	return corev1.Container{
		Name:            name,
		Image:           o.AgentImage,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         []string{AgentBinary},
		Args:            []string{"run"},
		Env: []corev1.EnvVar{
			{Name: agent.ConfigEnv, Value: enc},
			// Keep the Go heap well inside the container's memory limit.
			{Name: "GOMEMLIMIT", Value: goMemLimit(res)},
		},
		Ports:                    ports,
		Resources:                res,
		SecurityContext:          sc,
		VolumeMounts:             mounts,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}, nil
}

func goMemLimit(res corev1.ResourceRequirements) string {
	lim := res.Limits[corev1.ResourceMemory]
	return fmt.Sprintf("%dMiB", lim.Value()*8/10>>20)
}

// startupProbe passes once the first render is complete; until then the
// kubelet holds back the app containers (native sidecar ordering).
func startupProbe() *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{AgentBinary, "probe"}}},
		PeriodSeconds:    1,
		TimeoutSeconds:   2,
		FailureThreshold: 120,
	}
}

func volumes(spec *Spec, o Options, withState bool) []corev1.Volume {
	size := o.VolumeSize
	if spec.VolumeSize != nil {
		size = *spec.VolumeSize
	}
	vs := []corev1.Volume{
		{Name: SecretsVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: &size}}},
		{Name: TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: firstNonEmpty(spec.TokenAudience, o.TokenAudience), ExpirationSeconds: ptr.To(TokenExpiration), Path: TokenFile,
			}}},
			// The kubelet leaves the token owned by root unless every
			// container of the pod runs as one uid (or the pod has an
			// fsGroup), and the app's uid often comes from its image. Only
			// agent containers mount this volume, so "others" are the
			// agent: 0444 is what lets it read the token under any uid.
			DefaultMode: ptr.To(int32(0o444)),
		}}},
	}
	if withState {
		vs = append(vs, corev1.Volume{Name: StateVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("1Mi"))}}})
	}
	return vs
}

// securityContext runs the agent as the app's user so that 0400 files are
// readable by the app and nobody else; the annotation overrides.
func securityContext(pod *corev1.Pod, spec *Spec, o Options) *corev1.SecurityContext {
	uid, gid := appIDs(pod, spec)
	if spec.RunAsUser != nil {
		uid = spec.RunAsUser
	}
	if spec.RunAsGroup != nil {
		gid = spec.RunAsGroup
	}
	if uid == nil || *uid == 0 {
		uid = ptr.To(o.RunAsUser)
	}
	if gid == nil || *gid == 0 {
		gid = uid
	}
	return &corev1.SecurityContext{
		RunAsUser:                uid,
		RunAsGroup:               gid,
		RunAsNonRoot:             ptr.To(true),
		ReadOnlyRootFilesystem:   ptr.To(true),
		AllowPrivilegeEscalation: ptr.To(false),
		Privileged:               ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// appIDs is the uid/gid of the first targeted app container, falling back
// to the pod's securityContext.
func appIDs(pod *corev1.Pod, spec *Spec) (uid, gid *int64) {
	if psc := pod.Spec.SecurityContext; psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
	}
	_, names := targets(pod, spec)
	for _, c := range pod.Spec.Containers {
		if !names[c.Name] {
			continue
		}
		if sc := c.SecurityContext; sc != nil {
			if sc.RunAsUser != nil {
				uid = sc.RunAsUser
			}
			if sc.RunAsGroup != nil {
				gid = sc.RunAsGroup
			}
		}
		break
	}
	return uid, gid
}

// resources merges annotation overrides onto the defaults. A request raised
// above the default limit raises the limit with it; an explicit limit below
// an explicit request was already refused by Parse.
func resources(spec *Spec, o Options) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{Requests: o.Requests.DeepCopy(), Limits: o.Limits.DeepCopy()}
	for k, v := range spec.Requests {
		r.Requests[k] = v
	}
	for k, v := range spec.Limits {
		r.Limits[k] = v
	}
	for k, req := range r.Requests {
		if lim, ok := r.Limits[k]; ok && req.Cmp(lim) > 0 {
			if _, explicit := spec.Limits[k]; !explicit {
				r.Limits[k] = req
			}
		}
	}
	return r
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
