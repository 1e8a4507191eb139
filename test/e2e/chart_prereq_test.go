package e2e

import (
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestChartPrereqs: the bootstrap config of each environment lists what it
// needs from the cluster (as NOTES.txt says), and the bootstrap's
// ClusterRole may get exactly those objects, by name.
func TestChartPrereqs(t *testing.T) {
	ch := loadChart(t)
	cases := map[string][]string{
		"development": nil,
		"staging":     nil,
		"production": {
			"CustomResourceDefinition certificates.cert-manager.io",
			"CustomResourceDefinition clusterissuers.cert-manager.io",
			"ClusterIssuer letsencrypt",
			"IngressClass nginx",
			"ConfigMap chart-apps/vault-ca [ca.crt]",
		},
	}
	for env, want := range cases {
		t.Run(env, func(t *testing.T) {
			objs := render(t, ch, env)
			var got []string
			for _, p := range bootstrapConfig(t, objs).Prerequisites {
				s := p.Kind + " " + p.Name
				if p.Namespace != "" {
					s = p.Kind + " " + p.Namespace + "/" + p.Name
				}
				if len(p.Keys) > 0 {
					s += " [" + strings.Join(p.Keys, ",") + "]"
				}
				if p.For == "" {
					t.Errorf("%s: no reason given", s)
				}
				got = append(got, s)
			}
			if !slices.Equal(got, want) {
				t.Errorf("prerequisites\n got %q\nwant %q", got, want)
			}
			checkPrereqRules(t, objs, want)
		})
	}
}

// checkPrereqRules: every "get" rule with resourceNames in the bootstrap's
// ClusterRole names a prerequisite, and every prerequisite is covered.
func checkPrereqRules(t *testing.T, objs []*unstructured.Unstructured, want []string) {
	t.Helper()
	resources := map[string]string{"CustomResourceDefinition": "customresourcedefinitions", "ClusterIssuer": "clusterissuers",
		"IngressClass": "ingressclasses", "ConfigMap": "configmaps"}
	var granted []string
	for _, o := range objs {
		if o.GetKind() != "ClusterRole" || o.GetName() != "bc-bootstrap" {
			continue
		}
		var role rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
			t.Fatal(err)
		}
		for _, r := range role.Rules {
			if len(r.ResourceNames) == 0 || !slices.Equal(r.Verbs, []string{"get"}) {
				continue
			}
			for _, res := range r.Resources {
				for _, n := range r.ResourceNames {
					granted = append(granted, res+"/"+n)
				}
			}
		}
	}
	var needed []string
	for _, w := range want {
		kind, ref, _ := strings.Cut(w, " ")
		ref, _, _ = strings.Cut(ref, " ")
		_, name, found := strings.Cut(ref, "/")
		if !found {
			name = ref
		}
		needed = append(needed, resources[kind]+"/"+name)
	}
	slices.Sort(granted)
	slices.Sort(needed)
	if !slices.Equal(granted, needed) {
		t.Errorf("the bootstrap may get\n %q\nwant %q", granted, needed)
	}
}
