package template

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func lookupOf(m map[string]any) Lookup {
	return func(r Request) (any, bool) {
		v, ok := m[r.Key()]
		return v, ok
	}
}

func TestExecute(t *testing.T) {
	kv := &Secret{Data: map[string]any{"data": map[string]any{"user": "app", "password": "s3cret-value"}}}
	creds := &Secret{LeaseID: "database/creds/app/x", Data: map[string]any{"username": "v-app-1", "password": "pw-123456"}}
	cases := []struct {
		name, text string
		known      map[string]any
		want       string
		missing    []string
		wantErr    error
	}{
		{"kv v2 field", `{{ with secret "secret/data/a" }}{{ .Data.data.user }}{{ end }}`,
			map[string]any{"read secret/data/a": kv}, "app", nil, nil},
		{"missing secret reported, not an error", `{{ with secret "secret/data/a" }}{{ .Data.data.user }}{{ end }}`,
			map[string]any{}, "", []string{"read secret/data/a"}, nil},
		{"missing secret used without with", `{{ (secret "secret/data/a").Data.data.user }}`,
			map[string]any{}, "", []string{"read secret/data/a"}, nil},
		{"write with arguments", `{{ with secret "pki/issue/web" "common_name=a.example" "ttl=1h" }}{{ .Data.username }}{{ end }}`,
			map[string]any{"write pki/issue/web common_name=a.example ttl=1h": creds}, "v-app-1", nil, nil},
		{"list", `{{ range secrets "secret/metadata/" }}{{ . }},{{ end }}`,
			map[string]any{"list secret/metadata/": []string{"a", "b"}}, "a,b,", nil, nil},
		{"missing key is an error", `{{ with secret "secret/data/a" }}{{ .Data.data.nope }}{{ end }}`,
			map[string]any{"read secret/data/a": kv}, "", nil, errAny},
		{"chained secret path", `{{ with secret "secret/data/a" }}{{ with secret (printf "x/%s" .Data.data.user) }}{{ .Data.username }}{{ end }}{{ end }}`,
			map[string]any{"read secret/data/a": kv}, "", []string{"read x/app"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := New(tc.name, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			res, err := tp.Execute(lookupOf(tc.known))
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("want an error, got output %q", res.Output)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var missing []string
			for _, m := range res.Missing {
				missing = append(missing, m.Key())
			}
			if strings.Join(missing, "|") != strings.Join(tc.missing, "|") {
				t.Fatalf("missing = %v, want %v", missing, tc.missing)
			}
			if len(tc.missing) == 0 && string(res.Output) != tc.want {
				t.Fatalf("output %q, want %q", res.Output, tc.want)
			}
		})
	}
}

var errAny = errors.New("any error")

// TestExecuteRedactsValues: an execution error must not carry a secret
// value into a log line.
func TestExecuteRedactsValues(t *testing.T) {
	kv := &Secret{Data: map[string]any{"data": map[string]any{"password": "s3cret-value"}}}
	tp, err := New("x", `{{ with secret "secret/data/a" }}{{ index .Data.data.password 99 }}{{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tp.Execute(lookupOf(map[string]any{"read secret/data/a": kv}))
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), "s3cret-value") {
		t.Fatalf("error leaks the value: %v", err)
	}
}

func TestNewRefusesSandboxEscapes(t *testing.T) {
	for _, text := range []string{`{{ plugin "x" }}`, `{{ writeToFile "/x" "" "" "0644" "y" }}`, `{{ env "HOME" }}`, `{{ file "/etc/passwd" }}`, `{{ pkiCert "pki/issue/x" }}`} {
		if _, err := New("x", text); !errors.Is(err, ErrDenied) {
			t.Errorf("New(%q) = %v, want ErrDenied", text, err)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	changed, err := WriteFile(dir, "db", []byte("a: 1\n"), 0o440)
	if err != nil || !changed {
		t.Fatalf("first write: changed=%v err=%v", changed, err)
	}
	st, err := os.Stat(filepath.Join(dir, "db"))
	if err != nil || st.Mode().Perm() != 0o440 {
		t.Fatalf("mode = %v, err = %v", st.Mode(), err)
	}
	before := st.ModTime()
	changed, err = WriteFile(dir, "db", []byte("a: 1\n"), 0o440)
	if err != nil || changed {
		t.Fatalf("same content: changed=%v err=%v", changed, err)
	}
	if st2, _ := os.Stat(filepath.Join(dir, "db")); !st2.ModTime().Equal(before) {
		t.Fatal("unchanged file was rewritten")
	}
	if changed, err = WriteFile(dir, "db", []byte("a: 1\n"), 0o400); err != nil || !changed {
		t.Fatalf("mode change: changed=%v err=%v", changed, err)
	}
	if changed, err = WriteFile(dir, "db", []byte("a: 2\n"), 0o400); err != nil || !changed {
		t.Fatalf("content change: changed=%v err=%v", changed, err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "db"))
	if string(got) != "a: 2\n" {
		t.Fatalf("content %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

// TestWriteFileReplacesSymlink: a symlink planted where a secret goes is
// replaced by the file, and its target is never written.
func TestWriteFileReplacesSymlink(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "db")); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFile(dir, "db", []byte("secret"), 0o400); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(victim); string(got) != "keep" {
		t.Fatalf("symlink target was written: %q", got)
	}
	st, err := os.Lstat(filepath.Join(dir, "db"))
	if err != nil || !st.Mode().IsRegular() {
		t.Fatalf("db is not a regular file: %v %v", st.Mode(), err)
	}
}
