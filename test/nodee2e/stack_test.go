package nodee2e

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
	"github.com/blinkchamber/blinkchamber/test/stack"
)

// TestChartRunsOnTheNode: what `helm install` made is running: the
// injector's two replicas behind a webhook with its CA bundle, Vault as a
// StatefulSet, and the bootstrap Job complete (helm waited for it). Vault
// reviews pod tokens with its own pod's service account token: no
// long-lived reviewer token is configured.
func TestChartRunsOnTheNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := st.Node.Clientset
	dep, err := cs.AppsV1().Deployments(stack.Namespace).Get(ctx, stack.Release+"-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Status.ReadyReplicas != 2 {
		t.Errorf("injector: %d of 2 replicas ready", dep.Status.ReadyReplicas)
	}
	whs, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkCABundles(t, whs.Items)
	sts, err := cs.AppsV1().StatefulSets(stack.Namespace).Get(ctx, stack.Release+"-vault", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sts.Status.ReadyReplicas != 1 {
		t.Errorf("vault: %d of 1 replicas ready", sts.Status.ReadyReplicas)
	}
	jobs, err := cs.BatchV1().Jobs(stack.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(jobs.Items, func(j batchv1.Job) bool { return stack.JobComplete(&j) }) {
		t.Errorf("no complete bootstrap Job among %d", len(jobs.Items))
	}
	vc, err := st.Vault(ctx)
	must(t, err)
	cfg, err := vc.Logical().ReadWithContext(ctx, "auth/kubernetes/config")
	if err != nil || cfg == nil {
		t.Fatalf("reading auth/kubernetes/config: %v", err)
	}
	if set, _ := cfg.Data["token_reviewer_jwt_set"].(bool); set {
		t.Error("auth/kubernetes/config has a reviewer token; the in-cluster Vault should review with its own pod's token")
	}
}

func checkCABundles(t *testing.T, whs []admissionregistrationv1.MutatingWebhookConfiguration) {
	t.Helper()
	found := false
	for _, w := range whs {
		for _, h := range w.Webhooks {
			if strings.HasSuffix(h.Name, "blinkchamber.io") {
				found = true
				if len(h.ClientConfig.CABundle) == 0 {
					t.Errorf("webhook %s has no caBundle", h.Name)
				}
			}
		}
	}
	if !found {
		t.Error("no blinkchamber webhook is registered")
	}
}

// TestDeploymentSecretFollowsRotation: an annotated Deployment's pod gets
// the agent as a native sidecar; the app reads its secret from the
// in-memory volume, mode 0400 and owned by its uid, with Vault's value;
// `blinkchamber secrets rotate` changes the file in the running pod and the
// app's process gets SIGHUP.
func TestDeploymentSecretFollowsRotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const app = "shop"
	cfg, err := st.Onboard(ctx, app)
	must(t, err)
	tmpl := st.AppTemplate(app, map[string]string{mutate.PrefixSignal + "db": "SIGHUP:testapp"},
		"watch", "-interval", "500ms", mutate.SecretsPath+"/db")
	pod := deploy(t, ctx, app, tmpl)
	if !stack.NativeSidecar(pod) {
		t.Errorf("pod %s has no native sidecar; init containers: %d", pod.Name, len(pod.Spec.InitContainers))
	}
	vc, err := st.Vault(ctx)
	must(t, err)
	want, err := stack.PasswordDigest(ctx, vc, app)
	must(t, err)
	first := fileEvent(t, ctx, pod.Name, "app", mutate.SecretsPath+"/db", func(e stack.Event) bool { return e.SHA256 != "" })
	if first.SHA256 != want {
		t.Errorf("the file's digest %s is not that of Vault's password %s", first.SHA256, want)
	}
	if first.Mode != "0400" || first.UID != 65532 {
		t.Errorf("the file is mode %s owned by uid %d; want 0400 owned by the app's uid 65532", first.Mode, first.UID)
	}
	_, err = st.CLI(cfg, "secrets", "rotate", app+"/db")
	must(t, err)
	rotated, err := stack.PasswordDigest(ctx, vc, app)
	must(t, err)
	if rotated == want {
		t.Fatal("rotate left the password as it was")
	}
	fileEvent(t, ctx, pod.Name, "app", mutate.SecretsPath+"/db", func(e stack.Event) bool { return e.SHA256 == rotated })
	_, err = st.WaitEvent(ctx, pod.Name, "a SIGHUP", func(e stack.Event) bool { return e.Event == "sighup" })
	must(t, err)
}

// TestJobRunsToCompletion: an injected Job finishes; the agent, a native
// sidecar, does not keep it running.
func TestJobRunsToCompletion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const app = "nightly"
	_, err := st.Onboard(ctx, app)
	must(t, err)
	t.Cleanup(func() { deleteJob(app) })
	pod, err := st.RunJob(ctx, app, st.AppTemplate(app, nil, "report", mutate.SecretsPath+"/db"))
	must(t, err)
	vc, err := st.Vault(ctx)
	must(t, err)
	want, err := stack.PasswordDigest(ctx, vc, app)
	must(t, err)
	fileEvent(t, ctx, pod.Name, "app", mutate.SecretsPath+"/db", func(e stack.Event) bool { return e.SHA256 == want })
}

// deleteJob deletes a Job of the apps namespace and its pod.
func deleteJob(name string) {
	_ = st.Node.Clientset.BatchV1().Jobs(appsNS).Delete(context.Background(), name,
		metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
}

// TestRefusedPodNamesTheAnnotation: a pod the injector must refuse is
// refused at admission, and the message names the annotation.
func TestRefusedPodNamesTheAnnotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must(t, st.ServiceAccount(ctx, "refused"))
	tmpl := st.AppTemplate("refused", map[string]string{mutate.AnnotationRenderInterval: "soon"}, "sleep", "1m")
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	pod.Name, pod.Namespace = "refused", appsNS
	_, err := st.Node.Clientset.CoreV1().Pods(appsNS).Create(ctx, pod, metav1.CreateOptions{})
	if err == nil {
		st.Node.Clientset.CoreV1().Pods(appsNS).Delete(context.Background(), pod.Name, metav1.DeleteOptions{})
		t.Fatal("the pod was admitted")
	}
	if !strings.Contains(err.Error(), mutate.AnnotationRenderInterval) {
		t.Errorf("the refusal does not name %s: %v", mutate.AnnotationRenderInterval, err)
	}
}

// TestAdmissionSurvivesLosingAnInjectorPod: with one injector pod killed,
// pods are still admitted (and injected) through the other replica.
func TestAdmissionSurvivesLosingAnInjectorPod(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := st.Node.Clientset
	pods, err := cs.CoreV1().Pods(stack.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=blinkchamber-injector"})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("want 2 injector pods: %v %s", err, stack.DescribePods(pods))
	}
	victim := pods.Items[0].Name
	if err := cs.CoreV1().Pods(stack.Namespace).Delete(ctx, victim, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	must(t, st.ServiceAccount(ctx, "failover"))
	tmpl := st.AppTemplate("failover", nil, "sleep", "1m")
	var failures []error
	for i := 0; i < 20; i++ {
		pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
		pod.GenerateName, pod.Namespace = "failover-", appsNS
		got, err := cs.CoreV1().Pods(appsNS).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case err != nil:
			failures = append(failures, err)
		case got.Annotations[mutate.AnnotationStatus] != "injected":
			failures = append(failures, errors.New("admitted but not injected: "+got.Annotations[mutate.AnnotationStatus]))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(failures) > 0 {
		t.Errorf("%d of 20 admissions after losing injector pod %s failed: %v", len(failures), victim, failures)
	}
}
