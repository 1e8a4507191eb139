package template

import (
	"errors"
	"strings"
	"testing"
)

// fuzzArgs are the arguments FuzzRender picks from: values of every shape,
// the maps and lists the prelude builds (which statements may make hold
// themselves), and a token endpoint.
var fuzzArgs = []string{
	`$m`, `$l`, `$s`, `$v`, `$n`, `.`, `"a"`, `"a=b"`, `1`, `1000000000`, `-1`, `2.5`, `true`,
	`(sprig_dict "k" $m "l" $l)`, `(sprig_list $m $l $v)`, `(scratch.Get "k")`, `(secret "s")`,
	`"auth/token/lookup-self"`, `(print "auth/" "token/lookup-self")`, `"%v"`, `"%*d"`, `"k"`,
}

const fuzzPrelude = `{{ $m := sprig_dict "a" "1" }}{{ $l := sprig_list 1 "x" }}{{ $s := "str" }}{{ $v := $m }}{{ $n := 3 }}`

// fuzzTemplate turns data into a template: each byte pair is one statement
// (a call assigned to $v, a value stored into $m, $l or scratch, a
// print, a range) of a function from the sandbox's list with arguments
// from fuzzArgs.
func fuzzTemplate(data []byte) string {
	fns := Functions()
	var b strings.Builder
	b.WriteString(fuzzPrelude)
	arg := func(x byte) string { return fuzzArgs[int(x)%len(fuzzArgs)] }
	for i := 0; i+2 < len(data) && i < 48; i += 3 {
		fn, a, c := fns[int(data[i])*7%len(fns)], arg(data[i+1]), arg(data[i+2])
		switch data[i] % 7 {
		case 0, 1:
			b.WriteString(`{{ $v = ` + fn + ` ` + a + ` ` + c + ` }}`)
		case 2:
			b.WriteString(`{{ $_ := sprig_set $m "` + fn + `" ` + a + ` }}`)
		case 3:
			b.WriteString(`{{ scratch.MapSet "k" "` + fn + `" ` + a + ` }}{{ $l = sprig_append $l ` + c + ` }}`)
		case 4:
			b.WriteString(`{{ ` + a + ` }}`)
		case 5:
			b.WriteString(`{{ range $i, $e := ` + a + ` }}{{ $v = ` + fn + ` $e }}{{ end }}`)
		case 6:
			b.WriteString(`{{ range ` + a + ` }}{{ ` + c + ` }}{{ end }}`)
		}
	}
	return b.String()
}

// FuzzRender renders random templates of the sandbox's functions, with
// values that hold themselves, under the agent's bounds: a render may fail,
// but never panics or dies (a Go fatal error, such as a stack overflow,
// ends the fuzzing process), never asks Vault for a token endpoint, and
// every error is the render's own.
func FuzzRender(f *testing.F) {
	f.Add([]byte{2, 0, 0, 4, 0, 0})        // a map holding itself, printed
	f.Add([]byte{6, 9, 9})                 // range over a huge integer
	f.Add([]byte{3, 0, 0, 4, 15, 0})       // scratch holding itself
	f.Add([]byte{0, 17, 17, 0, 18, 18})    // token endpoints
	f.Add([]byte{2, 13, 0, 5, 0, 0, 0, 0}) // nested self-references ranged
	s := &Secret{Data: map[string]any{"data": map[string]any{"p": "auth/token/lookup-self"}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		text := fuzzTemplate(data)
		tp, err := New("x", text)
		if err != nil {
			return // refused at admission: a safe outcome
		}
		lookup := func(r Request) (any, bool) {
			if checkTokenEndpoint(r.Path) != nil {
				t.Fatalf("asked for a token endpoint: %s", text)
			}
			return s, true
		}
		_, err = tp.Execute(lookup)
		if err != nil && !strings.HasPrefix(err.Error(), "rendering x: ") {
			t.Fatalf("%s: an error not the render's own: %v", text, err)
		}
		if errors.Is(err, ErrLimit) && strings.Contains(err.Error(), "ran longer than") {
			t.Fatalf("%s: only the timeout stopped it", text)
		}
	})
}
