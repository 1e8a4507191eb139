package agent

import (
	"testing"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

func TestKVV2Path(t *testing.T) {
	cases := []struct {
		op          tmpl.Op
		mount, path string
		want        string
	}{
		{tmpl.OpRead, "secret/", "secret/app/db", "secret/data/app/db"},
		{tmpl.OpRead, "secret/", "secret/data/app/db", "secret/data/app/db"},
		{tmpl.OpList, "secret/", "secret/app", "secret/metadata/app"},
		{tmpl.OpList, "secret/", "secret/metadata/app", "secret/metadata/app"},
		{tmpl.OpRead, "team/kv/", "team/kv/app", "team/kv/data/app"},
		// A key that happens to be called "data" under a KV v2 mount is
		// read as Vault Agent reads it: through data/.
		{tmpl.OpRead, "secret/", "secret/metadata", "secret/data/metadata"},
	}
	for _, tc := range cases {
		if got := kvV2Path(tc.op, tc.mount, tc.path); got != tc.want {
			t.Errorf("%s %s on mount %s: got %s, want %s", tc.op, tc.path, tc.mount, got, tc.want)
		}
	}
}

func TestKVMountsAskOncePerPath(t *testing.T) {
	var m kvMounts
	m.remember("secret/a", mountInfo{path: "secret/", v2: true})
	if info, known := m.lookup("secret/b/c"); !known || !info.v2 || info.path != "secret/" {
		t.Errorf("a path under a known KV v2 mount: %+v known %v", info, known)
	}
	m.remember("kv/x", mountInfo{})
	if info, known := m.lookup("kv/x"); !known || info.v2 {
		t.Errorf("a path found not to be KV v2 must be remembered as such: %+v known %v", info, known)
	}
	if _, known := m.lookup("kv/y"); known {
		t.Error("an unasked path under an unknown mount is reported known")
	}
}

func TestNamesKVV2(t *testing.T) {
	for path, want := range map[string]bool{
		"secret/data/app/db": true, "secret/metadata/app": true,
		"secret/app/db": false, "kv/web/config": false, "secret/data": false, "database/creds/x": false,
	} {
		if got := namesKVV2(path); got != want {
			t.Errorf("namesKVV2(%q) = %v, want %v", path, got, want)
		}
	}
}
