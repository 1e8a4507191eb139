package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// TestKustomizeBase renders deploy/ in-process, as `kubectl apply -k
// deploy/` would, and has the real API server accept every object
// (server-side dry run; the namespace is created for real so that the
// namespaced objects can be checked in it).
func TestKustomizeBase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	repo, err := toolchain.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(repo, "deploy"))
	if err != nil {
		t.Fatalf("kustomize build deploy/: %v", err)
	}
	kinds := map[string]int{}
	for _, r := range res.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(b, &obj.Object); err != nil {
			t.Fatal(err)
		}
		kinds[obj.GetKind()]++
		opts := []client.CreateOption{client.DryRunAll}
		if obj.GetKind() == "Namespace" {
			opts = nil
		}
		if err := kube.Client.Create(ctx, obj, opts...); err != nil && !(obj.GetKind() == "Namespace" && apierrors.IsAlreadyExists(err)) {
			t.Errorf("%s %s/%s refused by the API server: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
		"Deployment", "Service", "PodDisruptionBudget", "MutatingWebhookConfiguration"} {
		if kinds[k] == 0 {
			t.Errorf("deploy/ renders no %s", k)
		}
	}
}
