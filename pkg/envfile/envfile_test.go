package envfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string
		err  error
	}{
		{"sorted and quoted", map[string]string{"B": "two words", "A": "x"}, "A='x'\nB='two words'\n", nil},
		{"single quote", map[string]string{"P": "it's"}, "P='it'\\''s'\n", nil},
		{"newline kept", map[string]string{"PEM": "a\nb"}, "PEM='a\nb'\n", nil},
		{"empty value", map[string]string{"E": ""}, "E=''\n", nil},
		{"dash in key", map[string]string{"db-password": "s3cret"}, "", ErrInvalidName},
		{"leading digit", map[string]string{"1X": "hunter2"}, "", ErrInvalidName},
		{"empty key", map[string]string{"": "hunter2"}, "", ErrInvalidName},
		{"NUL in value", map[string]string{"K": "a\x00b"}, "", ErrInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Encode(tc.vars)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			for _, v := range tc.vars {
				if err != nil && v != "" && strings.Contains(err.Error(), v) {
					t.Errorf("error %q quotes the value", err)
				}
			}
		})
	}
}

func TestEncodeErrorNamesKey(t *testing.T) {
	_, err := Encode(map[string]string{"db-password": "hunter2"})
	if err == nil || !strings.Contains(err.Error(), `"db-password"`) {
		t.Fatalf("error %v does not name the key", err)
	}
}

func TestFromJSON(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            error
	}{
		{"strings numbers booleans", `{"USER":"app","PORT":5432,"TLS":true,"RATIO":1.50}`, "PORT='5432'\nRATIO='1.50'\nTLS='true'\nUSER='app'\n", nil},
		{"empty object", `{}`, "", nil},
		{"null", `{"A":null}`, "", ErrInvalidValue},
		{"nested", `{"A":{"b":"c"}}`, "", ErrInvalidValue},
		{"array", `{"A":["x"]}`, "", ErrInvalidValue},
		{"bad key", `{"a.b":"c"}`, "", ErrInvalidName},
		{"not JSON", `password: hunter2`, "", ErrSyntax},
		{"two values", `{"A":"x"} {"B":"y"}`, "", ErrSyntax},
		{"not an object", `["hunter2"]`, "", ErrSyntax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromJSON([]byte(tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q quotes the input", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Var
		err      error
	}{
		{"encoded", "A='x'\nB='it'\\''s'\n", []Var{{"A", "x"}, {"B", "it's"}}, nil},
		{"comments blanks export", "# c\n\n  export A=plain # trailing\nB=\n", []Var{{"A", "plain"}, {"B", ""}}, nil},
		{"double quotes", `A="a \"b\" \$ \\ \n"` + "\n", []Var{{"A", `a "b" $ \ \n`}}, nil},
		{"multi-line single", "A='l1\nl2'\nB=x", []Var{{"A", "l1\nl2"}, {"B", "x"}}, nil},
		{"concatenated parts", `A=a'b'"c"\d`, []Var{{"A", "abcd"}}, nil},
		{"last wins", "A=1\nB=2\nA=3\n", []Var{{"A", "3"}, {"B", "2"}}, nil},
		{"CRLF", "A=x\r\nB='y'\r\n", []Var{{"A", "x"}, {"B", "y"}}, nil},
		{"expansion refused", "A=$HOME\n", nil, ErrSyntax},
		{"expansion in double quotes refused", `A="$HOME"`, nil, ErrSyntax},
		{"command refused", "A=`id`\n", nil, ErrSyntax},
		{"unterminated", "A='hunter2\n", nil, ErrSyntax},
		{"space in value", "A=hunter2 hunter3\n", nil, ErrSyntax},
		{"no equals", "hunter2\n", nil, ErrSyntax},
		{"bad name", "my-var=x\n", nil, ErrSyntax},
		{"lone backslash", `A=x\`, nil, ErrSyntax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err != nil {
				if strings.Contains(err.Error(), "hunter") {
					t.Errorf("error %q quotes the value", err)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseErrorLine(t *testing.T) {
	_, err := Parse([]byte("A=1\n\nB='x\ny'\nC=$X\n"))
	if err == nil || !strings.Contains(err.Error(), "line 5") || !strings.Contains(err.Error(), "key C") {
		t.Fatalf("error %v does not say line 5, key C", err)
	}
}

// TestShellAgrees sources what Encode writes with a real /bin/sh and checks
// the shell sees the same values.
func TestShellAgrees(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	vars := map[string]string{
		"QUOTE": `it's "quoted" \ $HOME ` + "`id`", "NL": "line1\nline2\n", "SPACE": "  a  b ", "EMPTY": "", "UTF8": "ключ→値",
	}
	data, err := Encode(vars)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, want := range vars {
		// The file path and the name travel as arguments, not in the script.
		out, err := exec.Command(sh, "-c", `. "$1"; eval "printf %s \"\$$2\""`, "sh", f, name).Output()
		if err != nil {
			t.Fatalf("sourcing: %v", err)
		}
		if string(out) != want {
			t.Errorf("sh sees %s=%q, want %q", name, out, want)
		}
	}
	parsed, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range parsed {
		if vars[v.Name] != v.Value {
			t.Errorf("Parse: %s=%q, want %q", v.Name, v.Value, vars[v.Name])
		}
	}
	if len(parsed) != len(vars) {
		t.Errorf("Parse found %d variables, want %d", len(parsed), len(vars))
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("KEY", "value")
	f.Add("A_1", "it's\n\"x\" $y `z` \\")
	f.Add("_", "")
	f.Fuzz(func(t *testing.T, name, value string) {
		data, err := Encode(map[string]string{name: value})
		if err != nil {
			// A long value cannot appear in the message by chance.
			if errors.Is(err, ErrInvalidValue) && len(value) >= 16 && strings.Contains(err.Error(), value) && !strings.Contains(name, value) {
				t.Fatalf("error %q quotes the value", err)
			}
			return
		}
		vars, err := Parse(data)
		if err != nil {
			t.Fatalf("Parse(Encode) failed: %v", err)
		}
		if len(vars) != 1 || vars[0].Name != name || vars[0].Value != value {
			t.Fatalf("round trip: got %q, want %s=%q", vars, name, value)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("A='x'\nexport B=\"y\" # c\n"))
	f.Add([]byte("A=a\\\nb\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := Parse(data)
		if err != nil {
			return
		}
		// What Parse accepts, Encode writes back and Parse reads the same.
		m := map[string]string{}
		for _, v := range vars {
			if strings.IndexByte(v.Value, 0) >= 0 {
				return
			}
			m[v.Name] = v.Value
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode of parsed vars: %v", err)
		}
		again, err := Parse(enc)
		if err != nil || len(again) != len(m) {
			t.Fatalf("re-parse: %v, %d vars, want %d", err, len(again), len(m))
		}
		for _, v := range again {
			if m[v.Name] != v.Value {
				t.Fatalf("re-parse: %s=%q, want %q", v.Name, v.Value, m[v.Name])
			}
		}
	})
}
