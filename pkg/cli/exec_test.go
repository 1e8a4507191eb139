package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExec runs `blinkchamber exec` through Main with a real shell as the
// app: the env file's variable reaches the app's environment and the app's
// exit code is exec's.
func TestExec(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	env := filepath.Join(dir, "app.env")
	if err := os.WriteFile(env, []byte("CODE='5'\nTOKEN='s3cret value'\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"app exit code", []string{"exec", "--env-file", env, "--", sh, "-c", `test "$TOKEN" = "s3cret value" && exit "$CODE"`}, 5, ""},
		{"no env file", []string{"exec", "--", sh, "-c", "exit 0"}, ExitUsage, "--env-file"},
		{"no command", []string{"exec", "--env-file", env}, ExitUsage, "no command"},
		{"bad on-change", []string{"exec", "--env-file", env, "--on-change", "reload", "--", sh}, ExitUsage, "--on-change"},
		{"missing file", []string{"exec", "--env-file", filepath.Join(dir, "none"), "--", sh}, ExitFailed, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := Main(tc.args, &out, &errOut); code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut.String())
			}
			if !strings.Contains(errOut.String(), tc.msg) {
				t.Errorf("stderr does not say %q:\n%s", tc.msg, errOut.String())
			}
			if strings.Contains(out.String()+errOut.String(), "s3cret") {
				t.Errorf("a secret value was printed")
			}
		})
	}
}
