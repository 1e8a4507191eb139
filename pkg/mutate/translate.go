package mutate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Annotations writes a Spec as blinkchamber.io/ annotations that Parse reads
// back into the same Spec (less its origin and warnings). migrate uses it to
// turn vault.hashicorp.com/ annotations into ours: everything a vault-k8s
// default differs in (mount path, template, file mode) is written out, so
// the rewritten pod gets the very files it got before.
func (s *Spec) Annotations() map[string]string {
	a := map[string]string{AnnotationInject: strconv.FormatBool(s.Inject)}
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	set(AnnotationRole, s.Role)
	set(AnnotationAuthPath, s.AuthPath)
	set(AnnotationMode, string(s.Mode))
	set(AnnotationContainers, strings.Join(s.Containers, ","))
	set(AnnotationVaultAddr, s.VaultAddr)
	set(AnnotationVaultNamespace, s.VaultNamespace)
	set(AnnotationTokenAudience, s.TokenAudience)
	set(AnnotationMountPath, s.MountPath)
	set(AnnotationAgentTokenFile, s.AgentTokenFile)
	if s.RenderInterval != 0 {
		a[AnnotationRenderInterval] = s.RenderInterval.String()
	}
	if s.VolumeSize != nil {
		a[AnnotationVolumeSize] = s.VolumeSize.String()
	}
	if s.RunAsUser != nil {
		a[AnnotationRunAsUser] = strconv.FormatInt(*s.RunAsUser, 10)
	}
	if s.RunAsGroup != nil {
		a[AnnotationRunAsGroup] = strconv.FormatInt(*s.RunAsGroup, 10)
	}
	for k, q := range map[string]corev1.ResourceList{
		AnnotationCPURequest: s.Requests, AnnotationCPULimit: s.Limits,
	} {
		if v, ok := q[corev1.ResourceCPU]; ok {
			a[k] = v.String()
		}
	}
	for k, q := range map[string]corev1.ResourceList{
		AnnotationMemoryRequest: s.Requests, AnnotationMemoryLimit: s.Limits,
	} {
		if v, ok := q[corev1.ResourceMemory]; ok {
			a[k] = v.String()
		}
	}
	if s.RevokeOnShutdown {
		a[AnnotationRevoke] = "true"
	}
	for _, sec := range s.Secrets {
		n := sec.Name
		set(PrefixSecret+n, sec.Path)
		a[PrefixTemplate+n] = sec.Template
		if sec.File != n {
			a[PrefixFile+n] = sec.File
		}
		a[PrefixPerms+n] = fmt.Sprintf("%04o", uint32(sec.Perms))
		if len(sec.Command) > 0 {
			// JSON keeps words with spaces intact; it cannot fail for strings.
			b, _ := json.Marshal(sec.Command)
			a[PrefixCommand+n] = string(b)
		}
	}
	return a
}
