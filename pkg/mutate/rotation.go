package mutate

// What a pod asks the agent to do after a secret changes (signal-<name>,
// reload-url-<name>; command-<name> is in annotations.go) and how the file
// is written (format-<name>), and what that requires of the pod.

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
)

// secretActions parses a secret's signal, reload URL and format into s.
// It reports whether they were all valid.
func (p *parser) secretActions(name string, parts *secretParts, s *agent.Secret) bool {
	ok := true
	if parts.signal != nil {
		sig, err := agent.ParseSignal(*parts.signal)
		if err != nil {
			p.invalid(PrefixSignal+name, *parts.signal, err.Error())
			ok = false
		}
		s.Signal = sig
	}
	if parts.reloadURL != nil {
		if err := agent.ValidateReloadURL(*parts.reloadURL); err != nil {
			p.invalid(PrefixReloadURL+name, *parts.reloadURL, err.Error())
			ok = false
		}
		s.ReloadURL = *parts.reloadURL
	}
	if parts.format != nil {
		f, err := agent.ParseFormat(*parts.format)
		if err != nil {
			p.invalid(PrefixFormat+name, *parts.format, err.Error())
			ok = false
		}
		s.Format = f
		if f == agent.FormatEnv && parts.template == nil && s.Path != "" {
			s.Template = DefaultEnvTemplate(s.Path)
		}
	}
	return ok
}

// DefaultEnvTemplate renders the secret's data (KV v2: .Data.data) as one
// JSON object, which the agent writes as KEY='value' lines.
func DefaultEnvTemplate(path string) string {
	return `{{ with secret "` + path + `" }}{{ (or (index .Data "data") .Data) | toJSON }}{{ end }}`
}

// signals lists the secrets that signal a process.
func signals(spec *Spec) []agent.Secret {
	var out []agent.Secret
	for _, s := range spec.Secrets {
		if s.Signal != nil {
			out = append(out, s)
		}
	}
	return out
}

// checkSignals refuses a pod whose signal-<name> annotations cannot work:
// the pod turns process sharing off explicitly, or the agent (which has no
// CAP_KILL) runs as a uid that none of the app containers runs as. When an
// app container's uid comes from its image the injector cannot know it;
// then the user must make the two match (docs/rotation.md).
func checkSignals(pod *corev1.Pod, spec *Spec, agentUID int64) field.ErrorList {
	sig := signals(spec)
	if len(sig) == 0 {
		return nil
	}
	key := PrefixSignal + sig[0].Name
	var errs field.ErrorList
	if pod.Spec.ShareProcessNamespace != nil && !*pod.Spec.ShareProcessNamespace {
		errs = append(errs, field.Invalid(keyPath(key), sig[0].Signal.String(),
			"needs the pod's processes to be visible to the agent, but spec.shareProcessNamespace is false; remove it (the injector sets it to true)"))
	}
	uids, known := appUIDs(pod, spec)
	if known && !uids[agentUID] {
		errs = append(errs, field.Invalid(keyPath(key), sig[0].Signal.String(), fmt.Sprintf(
			"the agent runs as uid %d and has no CAP_KILL, so it can only signal processes of that uid, but the app containers run as %s; "+
				"set %s to the uid of the process to signal, or make the containers' runAsUser match (the agent never runs as root)",
			agentUID, uidList(uids), AnnotationRunAsUser)))
	}
	return errs
}

// appUIDs is the set of uids the targeted app containers run as; known is
// false when any of them takes its uid from its image.
func appUIDs(pod *corev1.Pod, spec *Spec) (uids map[int64]bool, known bool) {
	_, names := targets(pod, spec)
	uids = map[int64]bool{}
	for _, c := range pod.Spec.Containers {
		if !names[c.Name] {
			continue
		}
		uid := containerUID(pod, &c)
		if uid == nil {
			return nil, false
		}
		uids[*uid] = true
	}
	return uids, len(uids) > 0
}

func containerUID(pod *corev1.Pod, c *corev1.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return c.SecurityContext.RunAsUser
	}
	if pod.Spec.SecurityContext != nil {
		return pod.Spec.SecurityContext.RunAsUser
	}
	return nil
}

func uidList(uids map[int64]bool) string {
	var out []string
	for _, u := range slices.Sorted(maps.Keys(uids)) {
		out = append(out, strconv.FormatInt(u, 10))
	}
	return strings.Join(out, ", ")
}

// shareProcesses turns on process sharing when a secret signals a process,
// and only then.
func shareProcesses(pod *corev1.Pod, spec *Spec) {
	if len(signals(spec)) > 0 {
		pod.Spec.ShareProcessNamespace = ptr.To(true)
	}
}
