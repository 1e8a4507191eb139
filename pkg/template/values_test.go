package template

import (
	"errors"
	"strings"
	"testing"
)

// selfRef builds a map that holds itself, the way each of sprig's and
// consul-template's map functions can.
const selfRef = `{{ $m := sprig_dict "a" "1" }}{{ $_ := sprig_set $m "self" $m }}`

// TestCyclicAndHugeValuesRefused: every way a template can build a value
// that holds itself, is deeper than MaxDepth or unfolds to more than
// MaxValueElems, and every way to walk one (print, the encoders, deepCopy,
// DeepEqual, merges, the escapers, range), ends in a render error naming
// the bound, never a crash; and ranges over integers share loop's budget.
func TestCyclicAndHugeValuesRefused(t *testing.T) {
	cases := []struct{ name, text, reason string }{
		{"self-referencing dict printed", selfRef + `{{ $m }}`, "printing a value: a value is nested more than 100 levels deep, or holds itself"},
		{"printed through a field", selfRef + `{{ $m.self }}`, "holds itself"},
		{"printf %v", selfRef + `{{ printf "%v" $m }}`, "printf: a value is nested"},
		{"print", selfRef + `{{ print $m }}`, "print: a value is nested"},
		{"toJSON", selfRef + `{{ toJSON $m }}`, "toJSON: a value is nested"},
		{"toJSONPretty", selfRef + `{{ toJSONPretty $m }}`, "toJSONPretty"},
		{"toUnescapedJSON", selfRef + `{{ toUnescapedJSON $m }}`, "toUnescapedJSON"},
		{"toYAML", selfRef + `{{ toYAML $m }}`, "toYAML"},
		{"toTOML", selfRef + `{{ toTOML $m }}`, "toTOML"},
		{"sprig_toJson", selfRef + `{{ sprig_toJson $m }}`, "sprig_toJson"},
		{"sprig_toPrettyJson", selfRef + `{{ sprig_toPrettyJson $m }}`, "sprig_toPrettyJson"},
		{"sprig_deepCopy", selfRef + `{{ $c := sprig_deepCopy $m }}`, "sprig_deepCopy"},
		{"sprig_merge", selfRef + `{{ $c := sprig_merge (sprig_dict) $m }}`, "sprig_merge"},
		{"sprig_mergeOverwrite", selfRef + `{{ $c := sprig_mergeOverwrite (sprig_dict) $m }}`, "sprig_mergeOverwrite"},
		{"mergeMap", selfRef + `{{ $c := mergeMap (sprig_dict) $m }}`, "mergeMap"},
		{"sprig_has (DeepEqual)", selfRef + `{{ sprig_has $m (sprig_list 1) }}`, "sprig_has"},
		{"sprig_uniq", selfRef + `{{ sprig_uniq (sprig_list $m $m) }}`, "sprig_list: a value is nested"},
		{"sprig_pluck", selfRef + `{{ sprig_pluck "self" $m }}`, "sprig_pluck"},
		{"sprig_dig", selfRef + `{{ sprig_dig "self" "self" "x" $m }}`, "sprig_dig"},
		{"sprig_cat", selfRef + `{{ sprig_cat $m }}`, "sprig_cat"},
		{"sprig_toString", selfRef + `{{ sprig_toString $m }}`, "sprig_toString"},
		{"sprig_join", selfRef + `{{ sprig_join "," $m }}`, "sprig_join"},
		{"sprig_sortAlpha", selfRef + `{{ sprig_sortAlpha $m }}`, "sprig_sortAlpha"},
		{"html", selfRef + `{{ html $m }}`, "html"},
		{"js", selfRef + `{{ js $m }}`, "js"},
		{"urlquery", selfRef + `{{ urlquery $m }}`, "urlquery"},
		{"executeTemplate data", selfRef + `{{ define "t" }}{{ . }}{{ end }}{{ executeTemplate "t" $m }}`, "executeTemplate"},
		{"eq", selfRef + `{{ if eq $m $m }}{{ end }}`, "printing a value: a value is nested"},
		{"ne through a field", selfRef + `{{ if ne $m.self $m }}{{ end }}`, "holds itself"},
		{"eq piped", selfRef + `{{ $m | eq $m }}`, "holds itself"},
		{"eq inside with", selfRef + `{{ with $m }}{{ if eq . "x" }}{{ end }}{{ end }}`, "holds itself"},
		{"range", selfRef + `{{ range $k, $v := $m }}{{ end }}`, "range: a value is nested"},
		{"mergeMap cycle", `{{ $d := sprig_dict "a" "1" }}{{ $_ := mergeMap $d (sprig_dict "x" $d) }}{{ toJSON $d }}`, "toJSON: a value is nested"},
		{"sprig_merge cycle", `{{ $d := sprig_dict "a" "1" }}{{ $_ := sprig_merge $d (sprig_dict "x" $d) }}{{ $d }}`, "holds itself"},
		{"a cycle through two maps", `{{ $a := sprig_dict }}{{ $b := sprig_dict "a" $a }}{{ $_ := sprig_set $a "b" $b }}{{ toYAML $b }}`, "holds itself"},
		{"a cycle through a list", `{{ $a := sprig_dict }}{{ $_ := sprig_set $a "l" (sprig_list 1 $a) }}{{ $a }}`, "holds itself"},
		{"scratch map holding itself", `{{ scratch.MapSet "a" "b" "1" }}{{ scratch.MapSet "a" "self" (scratch.Get "a") }}{{ scratch.Get "a" }}`, "holds itself"},
		{"scratch printed whole", `{{ scratch.MapSet "a" "b" "1" }}{{ scratch.MapSet "a" "self" (scratch.Get "a") }}{{ scratch }}`, "holds itself"},
		{"deep nesting refused as it is built", `{{ $d := sprig_dict }}{{ range loop 1000 }}{{ $d = sprig_dict "x" $d }}{{ end }}`, "sprig_dict: a value is nested more than 100 levels"},
		{"deep lists", `{{ $d := sprig_list }}{{ range loop 1000 }}{{ $d = sprig_list $d }}{{ end }}`, "sprig_list: a value is nested"},
		{"a map doubled unfolds exponentially", `{{ $d := sprig_dict "x" "y" }}{{ range loop 60 }}{{ $d = sprig_dict "l" $d "r" $d }}{{ end }}{{ toJSON $d }}`, "sprig_dict: a value has more than 100000 elements"},
		{"a list doubled", `{{ $l := sprig_list 1 }}{{ range loop 60 }}{{ $l = sprig_concat $l $l }}{{ end }}`, "sprig_concat: a value has more than 100000 elements"},
		{"text held many times", `{{ $s := printf "%04000000d" 0 }}{{ $l := sprig_list $s $s $s $s $s }}`, "sprig_list: a value holds more than 16777216 bytes"},
		{"quadratic work", `{{ $l := sprig_list }}{{ range loop 50000 }}{{ $l = sprig_append $l 1 }}{{ end }}`, "the values of one render add up to more than 10000000 elements"},
		{"range over a huge integer", `{{ range $i := 1000000000 }}{{ end }}`, "range: the loops of one render would run more than 100000 iterations"},
		{"range over an integer from a string", `{{ range parseInt "9000000000000000000" }}{{ end }}`, "100000 iterations"},
		{"nested integer ranges", `{{ range 1000 }}{{ range 1000 }}{{ end }}{{ end }}`, "100000 iterations"},
		{"integer ranges and loop share the budget", `{{ range loop 60000 }}{{ end }}{{ range 60000 }}{{ end }}`, "100000 iterations"},
		{"printf width", `{{ printf "%1000000000d" 1 }}`, "printf: a width or precision would exceed"},
		{"printf precision", `{{ printf "%.1000000000f" 1.0 }}`, "printf: a width or precision"},
		{"printf star width", `{{ printf "%*d" 1000000000 1 }}`, "printf: a width or precision"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := New("x", tc.text)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tp.Execute(lookupOf(nil))
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Execute = %v, want ErrLimit saying %q", err, tc.reason)
			}
			if !strings.Contains(err.Error(), ":1:") {
				t.Errorf("the error lacks the template position: %v", err)
			}
			// The measuring steps are the agent's, not the author's.
			if strings.Contains(err.Error(), printGuard) || strings.Contains(err.Error(), rangeGuard) {
				t.Errorf("the error names an added measuring step: %v", err)
			}
		})
	}
}

// TestGuardsChangeNoOutput: measured values print exactly as before
// (pointers, nil, maps, integers, ranges over integers and lists).
func TestGuardsChangeNoOutput(t *testing.T) {
	s := &Secret{Data: map[string]any{"n": nil, "m": map[string]any{"b": 2, "a": 1}, "l": []any{"x", 1}}}
	cases := []struct{ text, want string }{
		{`{{ with secret "s" }}{{ .Data.n }}|{{ .Data.m }}|{{ .Data.l }}|{{ .Auth }}|{{ toJSON .Data.m }}{{ end }}`, "<no value>|map[a:1 b:2]|[x 1]|<nil>|{\"a\":1,\"b\":2}"},
		{`{{ range 3 }}{{ . }}{{ end }}|{{ range $i, $v := sprig_list "a" "b" }}{{ $i }}{{ $v }}{{ end }}|{{ range $k, $v := sprig_dict "k" "v" }}{{ $k }}={{ $v }}{{ end }}`, "012|0a1b|k=v"},
		{`{{ printf "%5d|%-3s|%.2f|%%" 7 "a" 1.5 }}|{{ html "<a>" }}|{{ urlquery "a b" }}|{{ js "'" }}`, "    7|a  |1.50|%|&lt;a&gt;|a+b|\\'"},
		{`{{ $m := sprig_dict "a" (sprig_dict "b" "c") }}{{ $m }}|{{ $m.a.b }}|{{ sprig_deepCopy $m | toJSON }}`, "map[a:map[b:c]]|c|{\"a\":{\"b\":\"c\"}}"},
		{`{{ if eq "a" "a" }}y{{ end }}{{ if ne 1 2 }}y{{ end }}{{ if eq 3 1 2 3 }}y{{ end }}{{ with secret "s" }}{{ if eq .Data.n nil }}nil{{ end }}{{ end }}`, "yyynil"},
		{`{{ with secret "s" }}{{ . | toJSON }}{{ end }}`, `{"RequestID":"","LeaseID":"","LeaseDuration":0,"Renewable":false,"Data":{"l":["x",1],"m":{"a":1,"b":2},"n":null},"Warnings":null,"Auth":null,"WrapInfo":null}`},
	}
	for _, tc := range cases {
		tp, err := New("x", tc.text)
		if err != nil {
			t.Fatal(err)
		}
		res, err := tp.Execute(lookupOf(map[string]any{"read s": s}))
		if err != nil || string(res.Output) != tc.want {
			t.Errorf("%s:\n got %q, %v\nwant %q", tc.text, resOut(res), err, tc.want)
		}
	}
}

func resOut(r *Result) string {
	if r == nil {
		return ""
	}
	return string(r.Output)
}
