package template

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated section of docs/templates.md")

const sandboxDocPath = "../../docs/templates.md"

// TestSandboxDoc: the function and endpoint lists in docs/templates.md are
// exactly what the code allows and refuses (go generate ./pkg/template
// rewrites them).
func TestSandboxDoc(t *testing.T) {
	raw, err := os.ReadFile(sandboxDocPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	begin, end := strings.Index(doc, SandboxDocBegin), strings.Index(doc, SandboxDocEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the generated section's markers", sandboxDocPath)
	}
	got, want := doc[begin:end+len(SandboxDocEnd)], SandboxDoc()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(sandboxDocPath, []byte(doc[:begin]+want+doc[end+len(SandboxDocEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s differs from what the code allows; run go generate ./pkg/template", sandboxDocPath)
}

// TestAllowedPromises: no allowed function reads a clock (but timestamp,
// documented), a random source, the network, the environment or files.
func TestAllowedPromises(t *testing.T) {
	// These take a date and read no clock.
	givenDate := setOf("sprig_toDate", "sprig_mustToDate", "sprig_mustDateModify", "sprig_must_date_modify")
	bad := []string{"rand", "uuid", "shuffle", "gen", "bcrypt", "htpasswd", "encrypt", "now", "date", "ago",
		"getHost", "env", "file", "plugin", "sockaddr", "until", "seq", "repeat", "durationRound"}
	for _, n := range Functions() {
		for _, b := range bad {
			if strings.Contains(strings.ToLower(n), strings.ToLower(b)) && !givenDate[n] {
				t.Errorf("%s is allowed, and its name says it breaks a promise (%s)", n, b)
			}
		}
		if !Allowed(n) {
			t.Errorf("%s listed but not allowed", n)
		}
	}
	for _, r := range Refused() {
		if Allowed(r[0]) {
			t.Errorf("%s both refused and allowed", r[0])
		}
	}
}
