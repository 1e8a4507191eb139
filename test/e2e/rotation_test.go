package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

// The rotation actions themselves (signal, command, reload URL, exec with
// an env file) run on the real node: test/nodee2e. Only the webhook's
// refusal is here.

// rotationUID is the app's uid in the rotation pods.
const rotationUID = int64(4242)

// rotationPod is a pod of one app container running as rotationUID.
func rotationPod(ns, name, sa string, ann map[string]string, app corev1.Container) *corev1.Pod {
	app.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To(rotationUID), RunAsGroup: ptr.To(rotationUID)}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{app}},
	}
}

// TestRotationSignalRefusedForAnotherUID: the real webhook refuses a pod
// whose agent could not signal its app, saying what to set.
func TestRotationSignalRefusedForAnotherUID(t *testing.T) {
	e := agentEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	startAgentInjector(t, ctx, e)
	e.app(t, ctx, "rotate-uid", "web", nil)
	pod := rotationPod("rotate-uid", "web", "web", map[string]string{
		mutate.AnnotationInject: "true", mutate.PrefixSecret + "tls": "secret/data/rotate-uid/web/tls",
		mutate.PrefixSignal + "tls": "SIGHUP:nginx", mutate.AnnotationRunAsUser: "5000",
	}, corev1.Container{Name: "app", Image: "example/app:1.0"})
	err := kube.Client.Create(ctx, pod)
	if err == nil || !strings.Contains(err.Error(), "blinkchamber.io/signal-tls") || !strings.Contains(err.Error(), "runs as uid 5000") ||
		!strings.Contains(err.Error(), mutate.AnnotationRunAsUser) {
		t.Fatalf("create: %v; want a refusal naming signal-tls, the uids and %s", err, mutate.AnnotationRunAsUser)
	}
}
