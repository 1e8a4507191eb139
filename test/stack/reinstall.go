package stack

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reinstall runs `helm install` of the release again, with the same
// values, after an uninstall: what the uninstall kept (Vault's claims, the
// key store, the apps namespace) is found and adopted again.
func (s *Stack) Reinstall(ctx context.Context) error {
	s.say("helm install %s charts/blinkchamber -n %s again", Release, Namespace)
	return s.helmInstall(ctx)
}

// BootstrapLog is the log of the bootstrap Job's pods (the last run's).
func (s *Stack) BootstrapLog(ctx context.Context) (string, error) {
	cs := s.Node.Clientset
	sel := metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + Release + "-bootstrap"}
	pods, err := cs.CoreV1().Pods(Namespace).List(ctx, sel)
	if err != nil {
		return "", fmt.Errorf("listing the bootstrap Job's pods: %w", err)
	}
	var b strings.Builder
	for _, p := range pods.Items {
		out, err := cs.CoreV1().Pods(Namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			return "", fmt.Errorf("reading the log of %s: %w", p.Name, err)
		}
		b.Write(out)
	}
	return b.String(), nil
}
