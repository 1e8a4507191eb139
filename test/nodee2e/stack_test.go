package nodee2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
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
	if !anyComplete(jobs.Items) {
		t.Errorf("no complete bootstrap Job among %d", len(jobs.Items))
	}
	cfg, err := vaultClient(t, ctx).Logical().ReadWithContext(ctx, "auth/kubernetes/config")
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

func anyComplete(jobs []batchv1.Job) bool {
	for _, j := range jobs {
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return true
			}
		}
	}
	return false
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
	cfg := onboard(t, ctx, app)
	tmpl := st.AppTemplate(app, map[string]string{mutate.PrefixSignal + "db": "SIGHUP:testapp"},
		"watch", "-interval", "500ms", mutate.SecretsPath+"/db")
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: appsNS},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Template: tmpl,
		},
	}
	if _, err := st.Node.Clientset.AppsV1().Deployments(appsNS).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer st.Node.Clientset.AppsV1().Deployments(appsNS).Delete(context.Background(), app, metav1.DeleteOptions{})
	pod := runningPod(t, ctx, app)
	if !stack.NativeSidecar(pod) {
		t.Errorf("pod %s has no native sidecar; init containers: %d", pod.Name, len(pod.Spec.InitContainers))
	}
	vc := vaultClient(t, ctx)
	want := passwordDigest(t, ctx, vc, app)
	first := waitEvent(t, ctx, pod.Name, "the rendered secret", func(e stack.Event) bool { return e.Event == "file" && e.SHA256 != "" })
	if first.SHA256 != want {
		t.Errorf("the file's digest %s is not that of Vault's password %s", first.SHA256, want)
	}
	if first.Mode != "0400" || first.UID != 65532 {
		t.Errorf("the file is mode %s owned by uid %d; want 0400 owned by the app's uid 65532", first.Mode, first.UID)
	}
	if _, err := st.CLI(cfg, "secrets", "rotate", app+"/db"); err != nil {
		t.Fatal(err)
	}
	rotated := passwordDigest(t, ctx, vc, app)
	if rotated == want {
		t.Fatal("rotate left the password as it was")
	}
	waitEvent(t, ctx, pod.Name, "the rotated secret", func(e stack.Event) bool { return e.Event == "file" && e.SHA256 == rotated })
	waitEvent(t, ctx, pod.Name, "a SIGHUP", func(e stack.Event) bool { return e.Event == "sighup" })
}

// TestJobRunsToCompletion: an injected Job finishes; the agent, a native
// sidecar, does not keep it running.
func TestJobRunsToCompletion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const app = "nightly"
	onboard(t, ctx, app)
	tmpl := st.AppTemplate(app, nil, "report", mutate.SecretsPath+"/db")
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: appsNS},
		Spec:       batchv1.JobSpec{Template: tmpl, BackoffLimit: ptr.To[int32](0)},
	}
	jobs := st.Node.Clientset.BatchV1().Jobs(appsNS)
	if _, err := jobs.Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer jobs.Delete(context.Background(), app, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
	for {
		j, err := jobs.Get(ctx, app, metav1.GetOptions{})
		if err == nil && anyComplete([]batchv1.Job{*j}) {
			break
		}
		select {
		case <-ctx.Done():
			pods, _ := st.Node.Clientset.CoreV1().Pods(appsNS).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
			t.Fatalf("the Job did not complete: %+v%s", j.Status, stack.DescribePods(pods))
		case <-time.After(time.Second):
		}
	}
	pods, err := st.Node.Clientset.CoreV1().Pods(appsNS).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("the Job's pod: %v", err)
	}
	want := passwordDigest(t, ctx, vaultClient(t, ctx), app)
	waitEvent(t, ctx, pods.Items[0].Name, "the secret's report", func(e stack.Event) bool { return e.Event == "file" && e.SHA256 == want })
}

// TestRefusedPodNamesTheAnnotation: a pod the injector must refuse is
// refused at admission, and the message names the annotation.
func TestRefusedPodNamesTheAnnotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	serviceAccount(t, ctx, "refused")
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
	serviceAccount(t, ctx, "failover")
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
