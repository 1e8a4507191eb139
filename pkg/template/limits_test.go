package template

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSandboxEscapesRefused: every way out of the sandbox a template
// author might try is refused before anything renders, naming the reason.
func TestSandboxEscapesRefused(t *testing.T) {
	cases := []struct {
		name, text string
		want       error
		reason     string
	}{
		{"plugin", `{{ plugin "/bin/sh" "-c" "id" }}`, ErrDenied, "runs an arbitrary command"},
		{"writeToFile", `{{ "x" | writeToFile "/etc/cron.d/x" "" "" "0644" }}`, ErrDenied, "writes arbitrary files"},
		{"env", `{{ env "VAULT_TOKEN" }}`, ErrDenied, "environment"},
		{"file outside the volume", `{{ file "/var/run/secrets/kubernetes.io/serviceaccount/token" }}`, ErrDenied, "reads local files"},
		{"file with dot-dot", `{{ file "../../etc/passwd" }}`, ErrDenied, "reads local files"},
		{"sprig until", `{{ range sprig_until 1000000000 }}{{ end }}`, ErrDenied, "unbounded"},
		{"sprig seq", `{{ sprig_seq 1 1000000000 }}`, ErrDenied, "unbounded"},
		{"sprig repeat", `{{ sprig_repeat 1000000000 "x" }}`, ErrDenied, "unbounded"},
		{"huge template", "{{/* */}}" + strings.Repeat("x", MaxSize), ErrSyntax, "more than the limit"},
		{"direct recursion", `{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}`, ErrDenied, `"r" calls itself`},
		{"branching recursion", `{{ define "r" }}{{ if lt . 40 }}{{ template "r" (add . 1) }}{{ template "r" (add . 1) }}{{ end }}{{ end }}{{ template "r" 0 }}`, ErrDenied, "recursion"},
		{"mutual recursion", `{{ define "a" }}{{ template "b" }}{{ end }}{{ define "b" }}{{ template "a" }}{{ end }}{{ template "a" }}`, ErrDenied, "recursion"},
		{"top level calls itself", `x{{ template "" . }}`, ErrDenied, "recursion"},
		{"executeTemplate recursion", `{{ define "r" }}{{ executeTemplate "r" }}{{ end }}{{ executeTemplate "r" }}`, ErrDenied, "recursion"},
		{"executeTemplate computed name", `{{ define "r" }}x{{ end }}{{ executeTemplate (printf "%s" "r") }}`, ErrDenied, "constant string"},
		{"recursion through block", `{{ block "b" . }}{{ template "b" . }}{{ end }}`, ErrDenied, "recursion"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New("x", tc.text)
			if !errors.Is(err, tc.want) {
				t.Fatalf("New = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error %q does not say %q", err, tc.reason)
			}
		})
	}
}

// TestNonRecursiveCallsAllowed: calling named templates, several times
// and from each other, is not recursion.
func TestNonRecursiveCallsAllowed(t *testing.T) {
	text := `{{ define "a" }}A{{ end }}{{ define "b" }}{{ template "a" }}B{{ end }}{{ template "b" }}{{ template "a" }}{{ executeTemplate "b" }}`
	tp, err := New("x", text)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tp.Execute(lookupOf(nil))
	if err != nil || string(res.Output) != "ABAAB" {
		t.Fatalf("output %q, err %v", res.Output, err)
	}
}

// TestRenderBounds: loops are bounded in total iterations, output in
// bytes, and each error names the bound.
// boundCase is a template rendered without secrets: its output, or the
// render limit it hits.
type boundCase struct {
	name, text string
	want       string // output when no error
	reason     string // error text when the bound is hit
}

// checkBounds renders each case and checks its output or its ErrLimit.
func checkBounds(t *testing.T, cases []boundCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := New("x", tc.text)
			if err != nil {
				t.Fatal(err)
			}
			res, err := tp.Execute(lookupOf(nil))
			if tc.reason == "" {
				if err != nil || string(res.Output) != tc.want {
					t.Fatalf("Execute = %v; want the output %q", err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Execute = %v, want ErrLimit saying %q", err, tc.reason)
			}
		})
	}
}

func TestRenderBounds(t *testing.T) {
	cases := []boundCase{
		{"small loop", `{{ range loop 3 }}{{ . }}{{ end }}{{ range loop 5 7 }}{{ . }}{{ end }}{{ range loop "2" }}{{ . }}{{ end }}`, "0125601", ""},
		{"huge loop", `{{ range loop 1000000000 }}{{ end }}`, "", ":1:9: executing \"\" at <loop 1000000000>: error calling loop: loop: the loops of one render would run more than 100000 iterations"},
		{"huge loop from a string", `{{ range loop "0" "9000000000000000000" }}x{{ end }}`, "", "iterations"},
		{"nested loops multiply", `{{ range loop 1000 }}{{ range loop 1000 }}{{ end }}{{ end }}`, "", "would run more than 100000 iterations"},
		{"output too large", `{{ range loop 100 }}{{ printf "%99999d" 1 }}{{ end }}`, "", "output: the rendered text would exceed the output limit of 4194304 bytes"},
		{"indent within the limit", "{{ indent 3 \"a\\n\\nb\" }}|{{ indent 0 (sprig_cat (printf \"%02000000d\" 0) (printf \"%02000000d\" 0)) | len }}", "   a\n\n   b|4000001", ""},
		{"indent count too large", `{{ indent 50000000 "x" }}`, "", ":1:3: executing \"\" at <indent 50000000 \"x\">: error calling indent: indent: the indented text would exceed the output limit of 4194304 bytes"},
		{"indent of many lines", `{{ indent 100 (printf "%050000d" 0 | replaceAll "0" "a\n") }}`, "", "indent: the indented text would exceed"},
		{"sprig_indent count too large", `{{ sprig_indent 50000000 "x" }}`, "", "sprig_indent: the indented text would exceed"},
		{"sprig_nindent count too large", `{{ sprig_nindent 50000000 "x" }}`, "", "sprig_nindent: the indented text would exceed"},
		{"print, println, printf within the limit", `{{ print "a" 1 }}{{ println "b" }}{{ printf "%d-%s" 2 "c" }}`, "a1b\n2-c", ""},
		{"a value doubled with print", `{{ $s := "xxxxxxxx" }}{{ range loop 22 }}{{ $s = print $s $s }}{{ end }}{{ len $s }}`, "", "error calling print: print: the result would exceed the output limit"},
		{"a value doubled with println", `{{ $s := "xxxxxxxx" }}{{ range loop 22 }}{{ $s = println $s $s }}{{ end }}{{ len $s }}`, "", "println: the result would exceed"},
		{"a value doubled with printf", `{{ $s := "xxxxxxxx" }}{{ range loop 22 }}{{ $s = printf "%s%s" $s $s }}{{ end }}{{ len $s }}`, "", "printf: the result would exceed"},
		{"print of large arguments", `{{ $s := printf "%04000000d" 0 }}{{ print $s $s }}`, "", "print: the result would exceed"},
		{"output refused as it grows", `{{ range loop 40 }}{{ printf "%999999d" 1 }}{{ end }}`, "", "output: the rendered text would exceed"},
		{"executeTemplate output refused as it grows", `{{ define "t" }}{{ range loop 40 }}{{ printf "%999999d" 1 }}{{ end }}{{ end }}{{ executeTemplate "t" | len }}`, "", "error calling executeTemplate: output: the rendered text would exceed"},
		{"join and replaceAll within the limit", `{{ split "," "a,b" | join "+" }} {{ "a-b" | replaceAll "-" "--" }} {{ "abc" | replaceAll "" "." }}`, "a+b a--b .a.b.c.", ""},
		{"join too large", `{{ $s := printf "%03000000d" 0 }}{{ sprig_list $s $s | sprig_toStrings | join "" }}`, "", "join: the joined text would exceed"},
		{"replaceAll too large", `{{ printf "%03000000d" 0 | replaceAll "0" "00" }}`, "", "replaceAll: the replaced text would exceed"},
		{"replaceAll of the empty string too large", `{{ printf "%01000000d" 0 | replaceAll "" "xyzw" }}`, "", "replaceAll: the replaced text would exceed"},
		{"sprig_indent within the limit", `{{ sprig_indent 2 "a\n\nb" }}|{{ sprig_nindent 1 "a" }}`, "  a\n  \n  b|\n a", ""},
	}
	checkBounds(t, cases)
}

// TestRenderTimeout: an execution that runs past RenderTimeout (here
// shortened) returns ErrLimit instead of stalling the agent, and the
// template refuses to start again until the runaway execution has ended.
// Nested ranges over a split string use no loop, and walk 8 million
// elements, within MaxWalk, so only the timeout stops them.
func TestRenderTimeout(t *testing.T) {
	defer func(d time.Duration) { RenderTimeout = d }(RenderTimeout)
	RenderTimeout = time.Millisecond
	text := `{{ $s := split "" (printf "%0200d" 1) }}{{ range $s }}{{ range $s }}{{ range $s }}{{ end }}{{ end }}{{ end }}done`
	tp, err := New("x", text)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tp.Execute(lookupOf(nil))
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "ran longer than 1ms") {
		t.Fatalf("Execute = %v, want ErrLimit naming the timeout", err)
	}
	// Until the runaway ends, no second execution starts; once it has,
	// executions work again.
	RenderTimeout = time.Minute
	for tp.overrun.Load() {
		if _, err := tp.Execute(lookupOf(nil)); !errors.Is(err, ErrLimit) && tp.overrun.Load() {
			t.Fatalf("a second execution started during the overrun: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	res, err := tp.Execute(lookupOf(nil))
	if err != nil || string(res.Output) != "done" {
		t.Fatalf("after the overrun: %v %v", res, err)
	}
}

// TestWriteFileRefusesBadNames: a name that would leave the directory or
// cannot be a file name is refused before anything is created.
func TestWriteFileRefusesBadNames(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "secrets")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", ".", "..", "../escaped", "a/b", "/etc/x", `a\b`, "a\x00b", strings.Repeat("n", 300)} {
		if _, err := WriteFile(dir, name, []byte("secret"), 0o400); !errors.Is(err, ErrFileName) {
			t.Errorf("WriteFile(%q) = %v, want ErrFileName", name, err)
		}
	}
	for _, d := range []string{dir, parent} {
		if entries, _ := os.ReadDir(d); len(entries) != map[string]int{dir: 0, parent: 1}[d] {
			t.Errorf("%s holds %v after refused writes", d, entries)
		}
	}
	// The longest valid name works, temporary file included.
	long := strings.Repeat("n", 255)
	if _, err := WriteFile(dir, long, []byte("secret"), 0o400); err != nil {
		t.Fatalf("255-byte name: %v", err)
	}
}

// TestIndentRefusedBeforeAllocating: an indent whose result would exceed
// the output limit fails before it builds the result (50 000 000 spaces
// took about 190 MiB, three times the agent's memory limit, before the
// output check refused the file). Bytes allocated, not time, are measured.
func TestIndentRefusedBeforeAllocating(t *testing.T) {
	cases := map[string]func() error{
		"indent": func() error { _, err := indent(50_000_000, "x"); return err },
		"sprig_indent": func() error {
			_, err := boundedSprig["indent"].(func(int, string) (string, error))(50_000_000, "x")
			return err
		},
		"sprig_nindent": func() error {
			_, err := boundedSprig["nindent"].(func(int, string) (string, error))(50_000_000, "x")
			return err
		},
	}
	for name, call := range cases {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := call()
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrLimit) {
				t.Fatalf("%s = %v, want ErrLimit", name, err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Fatalf("%s allocated %d bytes before refusing", name, grew)
			}
		})
	}
}

// TestRenderMemoryBounded: renders that grow a value or the output past
// MaxOutput stop near the limit, not when they are done (the doubling
// took 174 MiB without an error, and 40 lines of 1 MB 322 MiB, when the
// output was checked only at the end; the agent's memory limit is 64 Mi).
// Bytes allocated are measured, not time.
func TestRenderMemoryBounded(t *testing.T) {
	for name, text := range map[string]string{
		"doubling with print": `{{ $s := "xxxxxxxx" }}{{ range loop 22 }}{{ $s = print $s $s }}{{ end }}{{ len $s }}`,
		"output of 40 MB":     `{{ range loop 40 }}{{ printf "%999999d" 1 }}{{ end }}`,
	} {
		t.Run(name, func(t *testing.T) {
			tp, err := New("x", text)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = tp.Execute(lookupOf(nil))
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrLimit) {
				t.Fatalf("Execute = %v, want ErrLimit", err)
			}
			// All bytes allocated, garbage included (about 22 and 31 MiB
			// here), under the agent's memory limit; the live heap is less.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Fatalf("the render allocated %d MiB before it was refused", grew>>20)
			}
		})
	}
}
