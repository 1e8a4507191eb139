package bootstrap

import (
	"strings"
	"testing"
)

func TestPolicyFor(t *testing.T) {
	spec := &Spec{KVMount: "secret"}
	cases := []struct {
		name      string
		app       App
		want, not []string
	}{
		{"own secrets only", App{Name: "web", Namespace: "shop"},
			[]string{`path "secret/data/shop/web/*"`, `path "secret/metadata/shop/web/*"`},
			[]string{"sys/", "database/"}},
		{"database roles", App{Name: "web", Namespace: "shop", Database: &Database{Roles: []DBRole{{Name: "shop-web"}}}},
			[]string{`path "database/creds/shop-web"`}, []string{"sys/"}},
		{"system endpoints read-only", App{Name: "backup", Namespace: "ops", ReadPaths: []string{"sys/storage/raft/snapshot"}},
			[]string{"path \"sys/storage/raft/snapshot\" {\n  capabilities = [\"read\"]\n}"}, []string{"update", "sudo"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := policyFor(spec, tc.app)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("policy lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("policy grants %q:\n%s", n, got)
				}
			}
		})
	}
}
