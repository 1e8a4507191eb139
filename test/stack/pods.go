package stack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// DeleteDeployment deletes the Deployment name in the apps namespace and,
// when wait is set, waits until no pod of it is left: its containers got
// SIGTERM and ended, as on any rollout or scale-down.
func (s *Stack) DeleteDeployment(ctx context.Context, name string, wait bool) error {
	err := s.Node.Clientset.AppsV1().Deployments(AppsNamespace).Delete(ctx, name,
		metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Deployment %s: %w", name, err)
	}
	if !wait {
		return nil
	}
	for {
		pods, err := s.Node.Clientset.CoreV1().Pods(AppsNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err == nil && len(pods.Items) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pods of Deployment %s still there: %s", name, DescribePods(pods))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// FailedPod creates a bare pod of tmpl (restartPolicy Never) in the apps
// namespace and waits for it to fail, as a pod whose init container fails
// does. A pod that succeeds instead is an error.
func (s *Stack) FailedPod(ctx context.Context, name string, tmpl corev1.PodTemplateSpec) (*corev1.Pod, error) {
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	pod.Name, pod.Namespace, pod.Spec.RestartPolicy = name, AppsNamespace, corev1.RestartPolicyNever
	pods := s.Node.Clientset.CoreV1().Pods(AppsNamespace)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating pod %s: %w", name, err)
	}
	var last corev1.PodList
	for {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last.Items = []corev1.Pod{*p}
			switch p.Status.Phase {
			case corev1.PodFailed:
				return p, nil
			case corev1.PodSucceeded:
				return p, fmt.Errorf("pod %s succeeded; want it to fail", name)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s did not fail: %s", name, DescribePods(&last))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Terminated is the state of a container of p that has ended (init
// containers included), or nil.
func Terminated(p *corev1.Pod, container string) *corev1.ContainerStateTerminated {
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if cs.Name != container {
			continue
		}
		if cs.State.Terminated != nil {
			return cs.State.Terminated
		}
		return cs.LastTerminationState.Terminated
	}
	return nil
}

// PodGet does an HTTP GET of path on the pod's IP at port, from the host
// (the node routes pod addresses to the host), as Prometheus scrapes it.
func PodGet(ctx context.Context, p *corev1.Pod, port int, path string) (int, string, error) {
	url := "http://" + p.Status.PodIP + ":" + strconv.Itoa(port) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
