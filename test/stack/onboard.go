package stack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap/keystore"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/images"
)

// Onboard provisions an app the way a platform engineer does with the CLI:
// its Vault policy, role and a secret "db" (a literal username and a
// generated password), through `blinkchamber bootstrap base secrets` with
// the chart's config plus the app, and its ServiceAccount. It returns the
// config's path, for later CLI commands (secrets rotate).
func (s *Stack) Onboard(ctx context.Context, name string) (string, error) {
	app := map[string]any{
		"name": name, "namespace": AppsNamespace, "serviceAccount": name,
		"secrets": []any{map[string]any{
			"name":     "db",
			"data":     map[string]any{"username": name},
			"generate": map[string]any{"password": map[string]any{"length": 24, "charset": "alphanumeric"}},
		}},
	}
	cfg, err := s.Config(ctx, app)
	if err != nil {
		return "", err
	}
	if _, err := s.CLI(cfg, "bootstrap", "base", "secrets"); err != nil {
		return "", err
	}
	return cfg, s.ServiceAccount(ctx, name)
}

// ServiceAccount makes sure the apps namespace has a ServiceAccount name:
// the API server refuses pods naming a missing one before any webhook runs.
func (s *Stack) ServiceAccount(ctx context.Context, name string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: AppsNamespace}}
	_, err := s.Node.Clientset.CoreV1().ServiceAccounts(AppsNamespace).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ServiceAccount %s: %w", name, err)
	}
	return nil
}

// KVPath is where bootstrap keeps an onboarded app's secret.
func KVPath(app string) string { return KVSecretPath(app, "db") }

// KVSecretPath is the path of an app's secret name, under the prefix its
// policy reads.
func KVSecretPath(app, name string) string {
	return "secret/data/" + AppsNamespace + "/" + app + "/" + name
}

// AppTemplate is the pod template of an onboarded app: the annotations a
// platform team writes, and the restricted security context Pod Security
// enforces in the apps namespace. The agent renders the password alone, so
// the file can be compared with Vault while its content never leaves the
// pod: the test app reports a digest. args are the test app's.
func (s *Stack) AppTemplate(app string, extra map[string]string, args ...string) corev1.PodTemplateSpec {
	ann := map[string]string{
		mutate.AnnotationInject:         "true",
		mutate.AnnotationRole:           app,
		mutate.PrefixSecret + "db":      KVPath(app),
		mutate.PrefixTemplate + "db":    `{{ with secret "` + KVPath(app) + `" }}{{ .Data.data.password }}{{ end }}`,
		mutate.AnnotationRenderInterval: "2s",
	}
	for k, v := range extra {
		ann[k] = v
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}, Annotations: ann},
		Spec: corev1.PodSpec{
			ServiceAccountName: app,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](65532),
				RunAsGroup:     ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            "app",
				Image:           s.Ref(images.TestApp),
				ImagePullPolicy: corev1.PullIfNotPresent,
				Args:            args,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// Event is one line the test app printed (see test/images/testapp).
type Event struct {
	Event  string `json:"event"`
	Path   string `json:"path"`
	Mode   string `json:"mode"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	SHA256 string `json:"sha256"`
	Error  string `json:"error"`
	Count  int    `json:"count"`
	// FS and FSSize: the file system a file is on ("tmpfs") and its size.
	FS     string `json:"fs"`
	FSSize int64  `json:"fsSize"`
	// The start line's: the app's pid, the processes it sees and those
	// whose environment it can read.
	PID      int      `json:"pid"`
	Procs    []string `json:"procs"`
	Readable []string `json:"readable"`
	// An env line's variable, and whether its value is in the argument list.
	Name   string `json:"name"`
	InArgs bool   `json:"inArgs"`
	// A token line's: the policies Vault gave the token.
	Policies []string `json:"policies"`
}

// Events reads the log lines of the test app in container "app" of pod.
func (s *Stack) Events(ctx context.Context, pod string) ([]Event, error) {
	return s.EventsIn(ctx, pod, "app")
}

// EventsIn reads the test app's log lines of one container from the
// kubelet.
func (s *Stack) EventsIn(ctx context.Context, pod, container string) ([]Event, error) {
	b, err := s.ContainerLog(ctx, pod, container)
	if err != nil {
		return nil, err
	}
	var out []Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// ContainerLog is the log of one container of a pod in the apps namespace.
func (s *Stack) ContainerLog(ctx context.Context, pod, container string) ([]byte, error) {
	return s.Node.Clientset.CoreV1().Pods(AppsNamespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
}

// WaitEvent waits until the app in pod has printed an event ok accepts.
func (s *Stack) WaitEvent(ctx context.Context, pod, what string, ok func(Event) bool) (Event, error) {
	return s.WaitEventIn(ctx, pod, "app", what, ok)
}

// WaitEventIn waits until the test app in one container of pod has
// printed an event ok accepts.
func (s *Stack) WaitEventIn(ctx context.Context, pod, container, what string, ok func(Event) bool) (Event, error) {
	var last []Event
	for {
		if evs, err := s.EventsIn(ctx, pod, container); err == nil {
			last = evs
			for _, e := range evs {
				if ok(e) {
					return e, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return Event{}, fmt.Errorf("container %s of pod %s never showed %s; its events: %+v", container, pod, what, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Vault is an administrator's client of the in-cluster Vault, with the root
// token the development key store keeps.
func (s *Stack) Vault(ctx context.Context) (*vaultapi.Client, error) {
	addr, err := s.VaultAddr(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := keystore.NewKubernetesSecret(s.Node.Client, Namespace, "vault-unseal-keys").Load(ctx)
	if err != nil {
		return nil, err
	}
	cfg := vaultapi.DefaultConfig()
	cfg.Address = addr
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(keys.RootToken)
	return c, nil
}

// PasswordDigest is the SHA-256 of the password Vault holds for app.
func PasswordDigest(ctx context.Context, vc *vaultapi.Client, app string) (string, error) {
	sec, err := vc.Logical().ReadWithContext(ctx, KVPath(app))
	if err != nil || sec == nil {
		return "", fmt.Errorf("reading %s: %v", KVPath(app), err)
	}
	data, _ := sec.Data["data"].(map[string]any)
	pw, _ := data["password"].(string)
	if pw == "" {
		return "", fmt.Errorf("%s has no password", KVPath(app))
	}
	sum := sha256.Sum256([]byte(pw))
	return hex.EncodeToString(sum[:]), nil
}

// ReadyPod waits for a Ready pod labelled app=name.
func (s *Stack) ReadyPod(ctx context.Context, name string) (*corev1.Pod, error) {
	var pods *corev1.PodList
	for {
		var err error
		pods, err = s.Node.Clientset.CoreV1().Pods(AppsNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err == nil {
			for i := range pods.Items {
				if p := &pods.Items[i]; p.DeletionTimestamp == nil && Ready(p) {
					return p, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no Ready pod of %s: %s", name, DescribePods(pods))
		case <-time.After(time.Second):
		}
	}
}

// Ready reports the pod's Ready condition.
func Ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// DescribePods says, per pod, the phase and every container's state.
func DescribePods(pods *corev1.PodList) string {
	if pods == nil {
		return "(none listed)"
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "\n%s %s", p.Name, p.Status.Phase)
		for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			fmt.Fprintf(&b, "\n  %s ready=%v restarts=%d state=%+v", cs.Name, cs.Ready, cs.RestartCount, cs.State)
		}
	}
	return b.String()
}

// NativeSidecar reports whether the pod runs an init container that keeps
// running (restartPolicy Always): the agent as a native sidecar.
func NativeSidecar(p *corev1.Pod) bool {
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			return true
		}
	}
	return false
}

// Deploy creates a one-replica Deployment of tmpl in the apps namespace and
// waits for its pod to be Ready.
func (s *Stack) Deploy(ctx context.Context, name string, tmpl corev1.PodTemplateSpec) (*corev1.Pod, error) {
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: AppsNamespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels},
			Template: tmpl,
		},
	}
	if _, err := s.Node.Clientset.AppsV1().Deployments(AppsNamespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating Deployment %s: %w", name, err)
	}
	return s.ReadyPod(ctx, name)
}

// RunJob creates a Job of tmpl (restartPolicy Never, no retries) in the
// apps namespace, waits for it to complete and returns its pod.
func (s *Stack) RunJob(ctx context.Context, name string, tmpl corev1.PodTemplateSpec) (*corev1.Pod, error) {
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: AppsNamespace},
		Spec:       batchv1.JobSpec{Template: tmpl, BackoffLimit: ptr.To[int32](0)},
	}
	jobs := s.Node.Clientset.BatchV1().Jobs(AppsNamespace)
	if _, err := jobs.Create(ctx, job, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating Job %s: %w", name, err)
	}
	sel := metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + name}
	for {
		j, err := jobs.Get(ctx, name, metav1.GetOptions{})
		if err == nil && JobComplete(j) {
			pods, err := s.Node.Clientset.CoreV1().Pods(AppsNamespace).List(ctx, sel)
			if err != nil || len(pods.Items) == 0 {
				return nil, fmt.Errorf("finding the pod of Job %s: %v", name, err)
			}
			return &pods.Items[0], nil
		}
		select {
		case <-ctx.Done():
			pods, _ := s.Node.Clientset.CoreV1().Pods(AppsNamespace).List(context.Background(), sel)
			return nil, fmt.Errorf("Job %s did not complete: %s", name, DescribePods(pods))
		case <-time.After(time.Second):
		}
	}
}

// JobComplete reports the Job's Complete condition.
func JobComplete(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
