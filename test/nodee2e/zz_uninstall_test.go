package nodee2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/blinkchamber/blinkchamber/test/stack"
)

// keptOnUninstall is what `helm uninstall` leaves, as docs/chart.md says:
// the last bootstrap Job and its pod (Helm never deletes a hook; Kubernetes
// does, a day after it finished), Vault's data and audit claims
// (Kubernetes never deletes a StatefulSet's claims) and the unseal keys and
// root token the bootstrap stored (losing them would lose the data).
var keptOnUninstall = []string{
	"Job blinkchamber/bc-bootstrap",
	"PersistentVolumeClaim blinkchamber/audit-bc-vault-0",
	"PersistentVolumeClaim blinkchamber/data-bc-vault-0",
	"Pod blinkchamber/bc-bootstrap-*",
	"Secret blinkchamber/vault-unseal-keys",
}

// TestUninstallLeavesWhatTheDocsSay runs last (files run in name order):
// it uninstalls the release and lists what is left of it.
func TestUninstallLeavesWhatTheDocsSay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := st.Uninstall(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
	var left []string
	var err error
	for {
		if left, err = leftovers(ctx); err != nil {
			t.Fatal(err)
		}
		if slices.Equal(left, keptOnUninstall) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after helm uninstall:\n got %q\nwant %q", left, keptOnUninstall)
		case <-time.After(time.Second):
		}
	}
}

// leftovers lists the objects in the release's and apps' namespaces, and
// the cluster-wide ones of the release, but those every namespace has.
func leftovers(ctx context.Context) ([]string, error) {
	cs := st.Node.Clientset
	var out []string
	for _, ns := range []string{stack.Namespace, stack.AppsNamespace} {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, o := range pods.Items {
			name := o.Name
			// A controller's pods have random names: name them by it.
			if c := metav1.GetControllerOf(&o); c != nil {
				name = c.Name + "-*"
			}
			out = append(out, fmt.Sprintf("Pod %s/%s", ns, name))
		}
		jobs, err := cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, o := range jobs.Items {
			out = append(out, fmt.Sprintf("Job %s/%s", ns, o.Name))
		}
		secrets, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, o := range secrets.Items {
			out = append(out, fmt.Sprintf("Secret %s/%s", ns, o.Name))
		}
		cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, o := range cms.Items {
			if o.Name != "kube-root-ca.crt" {
				out = append(out, fmt.Sprintf("ConfigMap %s/%s", ns, o.Name))
			}
		}
		pvcs, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, o := range pvcs.Items {
			out = append(out, fmt.Sprintf("PersistentVolumeClaim %s/%s", ns, o.Name))
		}
		sas, err := cs.CoreV1().ServiceAccounts(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, o := range sas.Items {
			if o.Name != "default" {
				out = append(out, fmt.Sprintf("ServiceAccount %s/%s", ns, o.Name))
			}
		}
	}
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + stack.Release}
	whs, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, o := range whs.Items {
		out = append(out, "MutatingWebhookConfiguration "+o.Name)
	}
	crbs, err := cs.RbacV1().ClusterRoleBindings().List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, o := range crbs.Items {
		out = append(out, "ClusterRoleBinding "+o.Name)
	}
	sort.Strings(out)
	return out, nil
}
