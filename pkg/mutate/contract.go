package mutate

// What a pod may do with the injector's volumes and names, and the pod
// input the agent's configuration check would otherwise be the first to
// refuse. Every refusal here is an InvalidError whose path names the
// annotation or the container, so the API server answers 422, never 500.

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
)

// AgentOnlyVolumes are the volumes the injector adds for the agent alone,
// and what each holds. No other container may mount them: through either,
// the app would get a Vault token with the agent's policies.
var AgentOnlyVolumes = map[string]string{
	TokenVolume: "holds the ServiceAccount token the agent logs in to Vault with",
	StateVolume: "holds the agent's Vault token and leases (sidecar mode)",
}

// injectorVolume reports whether name is one the injector gives a volume.
func injectorVolume(name string) bool {
	_, private := AgentOnlyVolumes[name]
	return private || name == SecretsVolume
}

func agentName(name string) bool { return name == AgentContainer || name == InitContainer }

// checkAgentVolumes refuses a pod in which a container other than the
// agent's mounts an agent-only volume, or mounts the secrets volume
// read-write, or uses one of them as a block device. Before injection
// (injected false) it also refuses the injector's volume and container
// names: taking them over would hand the pod author's own volume or
// container the agent's place. In an injected pod the agent's containers
// are the ones with the agent's names where the injector puts them.
func checkAgentVolumes(pod *corev1.Pod, injected bool) error {
	var errs problems
	if !injected {
		for i, v := range pod.Spec.Volumes {
			if injectorVolume(v.Name) {
				errs.add(field.Duplicate(field.NewPath("spec", "volumes").Index(i).Child("name"), v.Name))
			}
		}
	}
	initPath := field.NewPath("spec", "initContainers")
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		// In an injected pod the agent's init containers go by its names;
		// any other init container is the app's.
		checkContainer(&errs, initPath.Index(i), c.Name, c.VolumeMounts, c.VolumeDevices, injected && agentName(c.Name))
	}
	path := field.NewPath("spec", "containers")
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		// In an injected pod only the sidecar-mode agent is among the
		// containers; its init container never is.
		checkContainer(&errs, path.Index(i), c.Name, c.VolumeMounts, c.VolumeDevices, injected && c.Name == AgentContainer)
	}
	ephPath := field.NewPath("spec", "ephemeralContainers")
	for i := range pod.Spec.EphemeralContainers {
		c := &pod.Spec.EphemeralContainers[i]
		// Never the agent, whatever its name.
		checkContainer(&errs, ephPath.Index(i), "", c.VolumeMounts, c.VolumeDevices, false)
		if !injected && agentName(c.Name) {
			errs.add(field.Duplicate(ephPath.Index(i).Child("name"), c.Name))
		}
	}
	return errs.err()
}

// CheckAddedContainers checks a pod to which containers are being added
// after admission (ephemeral containers): in an injected pod none of them
// may mount the agent's volumes. A pod that was not injected has none.
func CheckAddedContainers(pod *corev1.Pod) error {
	// Injected is read from the volumes, not the status annotation, which
	// the pod's author can remove after admission.
	if pod.Annotations[AnnotationStatus] != StatusInjected && !hasAgentVolume(pod) {
		return nil
	}
	return checkAgentVolumes(pod, true)
}

// hasAgentVolume reports whether pod has one of the AgentOnlyVolumes.
func hasAgentVolume(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if _, private := AgentOnlyVolumes[v.Name]; private {
			return true
		}
	}
	return false
}

// checkContainer checks one container's mounts and devices. isAgent says
// the container is the injected agent, which mounts what it needs. Before
// injection (isAgent false, name given) an agent name is refused.
func checkContainer(errs *problems, path *field.Path, name string, mounts []corev1.VolumeMount, devices []corev1.VolumeDevice, isAgent bool) {
	if isAgent {
		return
	}
	if name != "" && agentName(name) {
		// Outside an injected pod this is a container posing as the agent;
		// in one, an app container added under the agent's name.
		errs.add(field.Duplicate(path.Child("name"), name))
	}
	for j, m := range mounts {
		if !injectorVolume(m.Name) {
			continue
		}
		if errs.full() {
			errs.count()
			continue
		}
		if why, private := AgentOnlyVolumes[m.Name]; private {
			errs.add(field.Forbidden(path.Child("volumeMounts").Index(j), fmt.Sprintf(
				"mounts %s, which %s: only the agent's containers may mount it", m.Name, why)))
		} else if !m.ReadOnly {
			errs.add(field.Forbidden(path.Child("volumeMounts").Index(j).Child("readOnly"), fmt.Sprintf(
				"mounts %s read-write: an app container must mount it with readOnly: true (the agent alone writes the files)", m.Name)))
		}
	}
	for j, d := range devices {
		if injectorVolume(d.Name) {
			errs.add(field.Forbidden(path.Child("volumeDevices").Index(j), fmt.Sprintf(
				"uses %s as a block device: only the agent's containers use the injector's volumes", d.Name)))
		}
	}
}

// maxConfigEnv is the longest agent configuration the environment variable
// can carry: Linux refuses to exec a program with any one environment
// string ("NAME=value" and its NUL) over MAX_ARG_STRLEN, 128 KiB, and the
// agent would never start.
const maxConfigEnv = 128<<10 - len(agent.ConfigEnv) - 2

// checkInput refuses what the pod gives the agent's configuration that the
// agent would refuse, naming where it came from: the role taken from the
// ServiceAccount name, and a mount path an app container already uses.
func checkInput(pod *corev1.Pod, spec *Spec, cfg agent.Config) error {
	var errs problems
	if spec.Role == "" && pod.Spec.ServiceAccountName != "" {
		if err := agent.ValidateRole(cfg.Vault.Role); err != nil {
			errs.add(field.Invalid(field.NewPath("spec", "serviceAccountName"), pod.Spec.ServiceAccountName, fmt.Sprintf(
				"is the Vault role when %s is not set, and %v", spec.roleKey(), err)))
		}
	}
	initNames, names := targets(pod, spec)
	mountPath := spec.mountPath()
	check := func(list string, cs []corev1.Container, targeted map[string]bool) {
		for i, c := range cs {
			if !targeted[c.Name] {
				continue
			}
			for j, m := range c.VolumeMounts {
				if m.MountPath == mountPath && m.Name != SecretsVolume {
					errs.add(field.Invalid(keyPath(spec.mountPathKey()), mountPath, fmt.Sprintf(
						"is where the secrets are mounted, but spec.%s[%d].volumeMounts[%d] (container %q) already mounts %s there; set %s to another directory",
						list, i, j, Truncate(c.Name), Truncate(m.Name), spec.mountPathKey())))
				}
			}
		}
	}
	check("initContainers", pod.Spec.InitContainers, initNames)
	check("containers", pod.Spec.Containers, names)
	return errs.err()
}

// checkConfigSize refuses a configuration too long for its environment
// variable, naming the secret whose template is the longest.
func checkConfigSize(spec *Spec, orig origins, cs []corev1.Container) error {
	for _, c := range cs {
		for _, e := range c.Env {
			if e.Name != agent.ConfigEnv || len(e.Value) <= maxConfigEnv {
				continue
			}
			longest := spec.Secrets[0]
			for _, s := range spec.Secrets {
				if len(s.Template) > len(longest.Template) {
					longest = s
				}
			}
			return invalid(field.Invalid(keyPath(orig.templateKey(longest.Name)), "<template>", fmt.Sprintf(
				"the agent's configuration built from the annotations is %d bytes, more than the %d an environment variable can carry; "+
					"this is the longest template: shorten the templates or split the secrets over pods", len(e.Value), maxConfigEnv)))
		}
	}
	return nil
}

func (s *Spec) roleKey() string {
	if s.VaultK8s {
		return VaultRole
	}
	return AnnotationRole
}

func (s *Spec) mountPathKey() string {
	if s.VaultK8s {
		return VaultSecretVolumePath
	}
	return AnnotationMountPath
}

// templateKey is the annotation a secret's template came from.
func (o origins) templateKey(name string) string {
	if k, ok := o[name]; ok {
		return k
	}
	return PrefixTemplate + name
}
