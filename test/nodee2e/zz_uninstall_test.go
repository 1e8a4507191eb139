package nodee2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/blinkchamber/blinkchamber/test/stack"
)

// keptOnUninstall is what `helm uninstall` leaves, as docs/chart.md says:
// the last bootstrap Job and its pod (Helm never deletes a hook; Kubernetes
// does, a day after it finished), Vault's data and audit claims (retained
// by the StatefulSet's policy), the unseal keys and root token the
// bootstrap stored (losing them would lose the data), and the apps
// namespace (kept: it holds the app stack's data), with what is in it that
// Helm did not make.
var keptOnUninstall = []string{
	"Job blinkchamber/bc-bootstrap",
	"Namespace blinkchamber-apps",
	"PersistentVolumeClaim blinkchamber/audit-bc-vault-0",
	"PersistentVolumeClaim blinkchamber/data-bc-vault-0",
	"Pod blinkchamber/bc-bootstrap-*",
	"Secret blinkchamber/vault-unseal-keys",
}

// TestUninstallKeepsVaultData runs last (files run in name order): it
// writes a secret, uninstalls the release, lists what is left of it, and
// installs it again: Vault opens with its old data and keys, and the
// bootstrap does not initialise it again.
func TestUninstallKeepsVaultData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const probe = "blinkchamber-apps/uninstall/probe"
	value := rand.Text()
	vc, err := st.Vault(ctx)
	must(t, err)
	if _, err := vc.KVv2("secret").Put(ctx, probe, map[string]any{"value": value}); err != nil {
		t.Fatal(err)
	}
	keys, err := st.Node.Clientset.CoreV1().Secrets(stack.Namespace).Get(ctx, "vault-unseal-keys", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	if err := st.Uninstall(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
	waitLeftovers(t, ctx, keptOnUninstall)

	if err := st.Reinstall(ctx); err != nil {
		t.Fatal(err)
	}
	log, err := st.BootstrapLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\[vault\s*\] ok\s+initialise: already initialised$`).MatchString(log) {
		t.Errorf("the bootstrap after the reinstall did not find Vault initialised:\n%s", log)
	}
	again, err := st.Node.Clientset.CoreV1().Secrets(stack.Namespace).Get(ctx, "vault-unseal-keys", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.UID != keys.UID || again.ResourceVersion != keys.ResourceVersion {
		t.Error("the key store Secret was replaced or changed by the reinstall")
	}
	// A client of the reinstalled Vault (its Service is new), with the
	// kept root token.
	vc, err = st.Vault(ctx)
	must(t, err)
	got, err := vc.KVv2("secret").Get(ctx, probe)
	if err != nil {
		t.Fatalf("reading %s after the reinstall: %v", probe, err)
	}
	if got.Data["value"] != value {
		t.Errorf("%s after the reinstall is not the value written before the uninstall", probe)
	}
}

// waitLeftovers waits until what is left of the release is want.
func waitLeftovers(t *testing.T, ctx context.Context, want []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		left, err := leftovers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(left, want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after helm uninstall:\n got %q\nwant %q", left, want)
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
			// The apps namespace is kept with what the tests onboarded
			// into it (the apps' ServiceAccounts): those are the user's.
			if o.Name != "default" && ns != stack.AppsNamespace {
				out = append(out, fmt.Sprintf("ServiceAccount %s/%s", ns, o.Name))
			}
		}
	}
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + stack.Release}
	nss, err := cs.CoreV1().Namespaces().List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, o := range nss.Items {
		out = append(out, "Namespace "+o.Name)
	}
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
