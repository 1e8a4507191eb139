// Package podreview builds the AdmissionReview a kube-apiserver sends the
// injector for a pod that a Deployment's ReplicaSet creates, so the Go
// benchmark of one admission and the load generator measure the same
// request.
package podreview

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

// Namespace and ServiceAccount of the generated pods.
const (
	Namespace      = "shop"
	ServiceAccount = "shop"
)

// SecretName is the name of the i-th secret annotation of a generated pod.
func SecretName(i int) string { return fmt.Sprintf("s%02d", i) }

// Pod is a pod as the injector sees it when a ReplicaSet creates it: named
// by generateName, owned by the ReplicaSet, two containers, every field the
// API server defaults already set and the kube-api-access projected volume
// that ServiceAccount admission adds (it runs before webhooks), and the
// managedFields the API server records before admission. It asks for
// secrets KV v2 secrets.
func Pod(secrets int) *corev1.Pod {
	ann := map[string]string{mutate.AnnotationInject: "true"}
	for i := range secrets {
		ann[mutate.PrefixSecret+SecretName(i)] = fmt.Sprintf("secret/data/shop/app/%s", SecretName(i))
	}
	const apiAccess = "kube-api-access-7qk2m"
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "shop-7d9f8b6c5d-",
			Namespace:    Namespace,
			Labels:       map[string]string{"app": "shop", "pod-template-hash": "7d9f8b6c5d"},
			Annotations:  ann,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "shop-7d9f8b6c5d",
				UID: "3f1e2d4c-0000-4000-8000-000000000001", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: apiAccess, VolumeSource: corev1.VolumeSource{Projected: apiAccessVolume()}}},
			Containers: []corev1.Container{
				container("app", "registry.example.com/shop/app:1.4.2", 8080, apiAccess,
					[]corev1.EnvVar{{Name: "LISTEN_ADDR", Value: ":8080"}, {Name: "LOG_LEVEL", Value: "info"}}),
				container("nginx", "nginx:1.27", 80, apiAccess, nil),
			},
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptr.To(int64(30)),
			DNSPolicy:                     corev1.DNSClusterFirst,
			ServiceAccountName:            ServiceAccount,
			DeprecatedServiceAccount:      ServiceAccount,
			SecurityContext:               &corev1.PodSecurityContext{},
			SchedulerName:                 corev1.DefaultSchedulerName,
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(int64(300))},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(int64(300))},
			},
			Priority:           ptr.To(int32(0)),
			EnableServiceLinks: ptr.To(true),
			PreemptionPolicy:   ptr.To(corev1.PreemptLowerPriority),
		},
	}
	pod.ManagedFields = managedFields(pod)
	return pod
}

// apiAccessVolume is the projected volume ServiceAccount admission adds.
func apiAccessVolume() *corev1.ProjectedVolumeSource {
	return &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To(int64(3607)), Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
			}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
				Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
			}}}},
		},
		DefaultMode: ptr.To(int32(0o644)),
	}
}

// container is an app container with the API server's defaults filled in.
func container(name, image string, port int32, apiAccess string, env []corev1.EnvVar) corev1.Container {
	return corev1.Container{
		Name:  name,
		Image: image,
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port, Protocol: corev1.ProtocolTCP}},
		Env:   env,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: apiAccess, ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:   corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(port), Scheme: corev1.URISchemeHTTP}},
			TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
		},
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy:          corev1.PullIfNotPresent,
	}
}

// Review is the JSON AdmissionReview (v1) for creating pod, as the
// ReplicaSet controller's request reaches the webhook.
func Review(pod *corev1.Pod, uid types.UID) ([]byte, error) {
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, fmt.Errorf("encoding the pod: %w", err)
	}
	podKind := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	podResource := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: uid, Kind: podKind, Resource: podResource, RequestKind: &podKind, RequestResource: &podResource,
			Namespace: pod.Namespace, Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{
				Username: "system:serviceaccount:kube-system:replicaset-controller",
				UID:      "9b2c1a4e-0000-4000-8000-000000000002",
				Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
			},
			Object:  runtime.RawExtension{Raw: raw},
			DryRun:  ptr.To(false),
			Options: runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}`)},
		},
	}
	return json.Marshal(review)
}

// ErrNotInjected is wrapped by Check when a response is not the injection
// of the pod it answers.
var ErrNotInjected = errors.New("response is not an injection of the pod")

// Check decodes the webhook's answer to Review(pod, uid), applies its JSON
// patch to the pod and checks the result: the agent added with one
// configured secret per annotation and every app container given the
// secrets mount.
func Check(body []byte, pod *corev1.Pod, uid types.UID) error {
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return fmt.Errorf("%w: decoding: %w", ErrNotInjected, err)
	}
	r := review.Response
	switch {
	case r == nil:
		return fmt.Errorf("%w: no response", ErrNotInjected)
	case r.UID != uid:
		return fmt.Errorf("%w: uid %q, want %q", ErrNotInjected, r.UID, uid)
	case !r.Allowed:
		return fmt.Errorf("%w: not allowed: %v", ErrNotInjected, r.Result)
	case r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch:
		return fmt.Errorf("%w: no JSON patch", ErrNotInjected)
	}
	patched, err := apply(pod, r.Patch)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotInjected, err)
	}
	return checkInjected(pod, patched)
}

func apply(pod *corev1.Pod, patch []byte) (*corev1.Pod, error) {
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, fmt.Errorf("decoding the patch: %w", err)
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	out, err := p.Apply(raw)
	if err != nil {
		return nil, fmt.Errorf("applying the patch: %w", err)
	}
	var patched corev1.Pod
	if err := json.Unmarshal(out, &patched); err != nil {
		return nil, fmt.Errorf("decoding the patched pod: %w", err)
	}
	return &patched, nil
}

func checkInjected(pod, patched *corev1.Pod) error {
	agentC := findContainer(append(patched.Spec.InitContainers, patched.Spec.Containers...), mutate.AgentContainer)
	if agentC == nil {
		return fmt.Errorf("%w: no %s container", ErrNotInjected, mutate.AgentContainer)
	}
	var cfg agent.Config
	for _, e := range agentC.Env {
		if e.Name == agent.ConfigEnv {
			if err := json.Unmarshal([]byte(e.Value), &cfg); err != nil {
				return fmt.Errorf("%w: agent config: %w", ErrNotInjected, err)
			}
		}
	}
	want := 0
	for k := range pod.Annotations {
		if strings.HasPrefix(k, mutate.PrefixSecret) {
			want++
		}
	}
	if len(cfg.Secrets) != want {
		return fmt.Errorf("%w: agent config has %d secrets, the pod asks for %d", ErrNotInjected, len(cfg.Secrets), want)
	}
	for _, c := range pod.Spec.Containers {
		pc := findContainer(patched.Spec.Containers, c.Name)
		if pc == nil || !slices.ContainsFunc(pc.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == mutate.SecretsVolume }) {
			return fmt.Errorf("%w: container %s has no %s mount", ErrNotInjected, c.Name, mutate.SecretsVolume)
		}
	}
	return nil
}

func findContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}
