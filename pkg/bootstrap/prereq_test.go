package bootstrap_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap"
	"github.com/blinkchamber/blinkchamber/test/harness"
)

// production is what the chart's production values need from the cluster.
var production = []bootstrap.Prerequisite{
	{Kind: "CustomResourceDefinition", Name: "certificates.cert-manager.io", For: "the webhook's certificate"},
	{Kind: "CustomResourceDefinition", Name: "clusterissuers.cert-manager.io", For: "the Ingresses' certificates"},
	{Kind: "ClusterIssuer", Name: "letsencrypt", For: "the Ingresses' certificates"},
	{Kind: "IngressClass", Name: "nginx", For: "the Ingresses"},
	{Kind: "ConfigMap", Namespace: "prereq-apps", Name: "vault-ca", Keys: []string{"ca.crt"}, For: "the backups"},
	{Kind: "Secret", Namespace: "prereq-apps", Name: "vault-transit-token", Keys: []string{"token"}, For: "the transit seal"},
}

// TestPrerequisites against a real API server: with everything present the
// check passes; without each one in turn it fails with an error naming
// that one (kind, name, what needs it, how to get it) and no other.
func TestPrerequisites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kube := harness.KubeForTest(t)
	k := kube.Client
	if err := k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prereq-apps"}}); err != nil {
		t.Fatal(err)
	}
	// Before cert-manager's API exists, the ClusterIssuer is missing too.
	err := bootstrap.CheckPrerequisites(ctx, k, production[2:3])
	checkMissing(t, err, "ClusterIssuer letsencrypt is missing: the cluster has no cert-manager.io/v1 API")

	present := map[string]client.Object{
		"certificates.cert-manager.io":   crd("certificates", "Certificate"),
		"clusterissuers.cert-manager.io": crd("clusterissuers", "ClusterIssuer"),
		"letsencrypt":                    clusterIssuer("letsencrypt"),
		"nginx": &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
			Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}},
		"vault-ca": &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vault-ca", Namespace: "prereq-apps"},
			Data: map[string]string{"ca.crt": "not a real CA"}},
		"vault-transit-token": &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vault-transit-token", Namespace: "prereq-apps"},
			Data: map[string][]byte{"token": []byte("not-a-real-token")}},
	}
	for _, p := range production {
		create(t, ctx, k, present[p.Name])
		if p.Kind == "CustomResourceDefinition" {
			waitEstablished(t, ctx, k, p.Name)
		}
	}
	if err := bootstrap.CheckPrerequisites(ctx, k, production); err != nil {
		t.Fatalf("all present: %v", err)
	}
	wants := map[string]string{
		"certificates.cert-manager.io":   "CustomResourceDefinition certificates.cert-manager.io is missing (needed for the webhook's certificate); install cert-manager",
		"clusterissuers.cert-manager.io": "CustomResourceDefinition clusterissuers.cert-manager.io is missing (needed for the Ingresses' certificates); install cert-manager",
		"letsencrypt":                    "ClusterIssuer letsencrypt is missing (needed for the Ingresses' certificates); create a cert-manager ClusterIssuer named letsencrypt",
		"nginx":                          "IngressClass nginx is missing (needed for the Ingresses); install an ingress controller",
		"vault-ca":                       "ConfigMap prereq-apps/vault-ca is missing (needed for the backups); create it: kubectl -n prereq-apps create configmap vault-ca --from-file=ca.crt=<file>",
		"vault-transit-token":            "Secret prereq-apps/vault-transit-token is missing (needed for the transit seal); create it: kubectl -n prereq-apps create secret generic vault-transit-token --from-file=token=<file>",
	}
	// Each missing in turn: the CRD last, since the ClusterIssuer goes with it.
	for _, name := range []string{"letsencrypt", "nginx", "vault-ca", "vault-transit-token", "certificates.cert-manager.io"} {
		t.Run(name, func(t *testing.T) {
			obj := present[name]
			if err := k.Delete(ctx, obj); err != nil {
				t.Fatal(err)
			}
			waitGone(t, ctx, k, obj)
			checkMissing(t, bootstrap.CheckPrerequisites(ctx, k, production), wants[name])
			obj.SetResourceVersion("")
			create(t, ctx, k, obj)
		})
	}
	t.Run("a key missing", func(t *testing.T) {
		cm := present["vault-ca"].(*corev1.ConfigMap)
		cm.Data = map[string]string{"tls.crt": "x"}
		if err := k.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		checkMissing(t, bootstrap.CheckPrerequisites(ctx, k, production), "ConfigMap prereq-apps/vault-ca has no key ca.crt")
	})
}

// checkMissing: err is exactly one PrerequisiteError, whose message starts
// with want, and that holds no secret value.
func checkMissing(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, bootstrap.ErrPrerequisiteMissing) {
		t.Fatalf("err = %v, want a missing prerequisite", err)
	}
	var pe *bootstrap.PrerequisiteError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v is no PrerequisiteError", err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
		t.Errorf("%d problems reported, want 1: %v", n, err)
	}
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q\nwant it to start with %q", err, want)
	}
	if strings.Contains(err.Error(), "not-a-real-token") {
		t.Errorf("the error holds the Secret's value: %v", err)
	}
}

func create(t *testing.T, ctx context.Context, k client.Client, obj client.Object) {
	t.Helper()
	if err := k.Create(ctx, obj); err != nil {
		t.Fatalf("creating %s: %v", obj.GetName(), err)
	}
}

func crd(plural, kind string) *apiextensionsv1.CustomResourceDefinition {
	preserve := true
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + ".cert-manager.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "cert-manager.io",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Kind: kind},
			Scope: apiextensionsv1.ClusterScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &preserve}}}},
		},
	}
}

func clusterIssuer(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"selfSigned": map[string]any{}}}}
	u.SetAPIVersion("cert-manager.io/v1")
	u.SetKind("ClusterIssuer")
	u.SetName(name)
	return u
}

func waitEstablished(t *testing.T, ctx context.Context, k client.Client, name string) {
	t.Helper()
	for {
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := k.Get(ctx, client.ObjectKey{Name: name}, c); err == nil {
			for _, cond := range c.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("CRD %s never established", name)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitGone(t *testing.T, ctx context.Context, k client.Client, obj client.Object) {
	t.Helper()
	for {
		probe := obj.DeepCopyObject().(client.Object)
		if err := k.Get(ctx, client.ObjectKeyFromObject(obj), probe); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s was never deleted", obj.GetName())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
