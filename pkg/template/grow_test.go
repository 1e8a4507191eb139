package template

import "testing"

// TestMultiplyingFunctionsBounded: functions whose result can be many times
// their arguments refuse, before building it, a result over MaxOutput
// (each case asked for 25 GB to 90 GB and crashed the agent out of memory),
// and still give sprig's and consul-template's results below it.
func TestMultiplyingFunctionsBounded(t *testing.T) {
	const ten = `{{ $a := sprig_replace "" "0123456789" "0123456789" }}`
	checkBounds(t, []boundCase{
		{"sprig_replace chained", ten + `{{ $b := sprig_replace "" $a $a }}{{ $c := sprig_replace "" $a $b }}{{ $d := sprig_replace "" $b $c }}{{ $d }}`, "", "sprig_replace: the replaced text"},
		{"sprig_regexReplaceAll chained", ten + `{{ $b := sprig_regexReplaceAll "" $a $a }}{{ $c := sprig_regexReplaceAll "" $b $b }}{{ $c }}`, "", "sprig_regexReplaceAll: the replaced text"},
		{"sprig_regexReplaceAllLiteral", ten + `{{ $b := sprig_regexReplaceAllLiteral "" (printf "%0100000d" 0) $a }}{{ $b | len }}`, "", "sprig_regexReplaceAllLiteral: the replaced text"},
		{"regexReplaceAll with references", `{{ regexReplaceAll "(.)" "$1$1$1$1$1$1$1$1$1$1$1$1" (printf "%0400000d" 0) | len }}`, "", "regexReplaceAll: the replaced text"},
		{"sprig_wrapWith", `{{ sprig_wrapWith 1 (printf "%010000d" 0) (printf "%01000d" 0) | len }}`, "", "sprig_wrapWith: the wrapped text"},
		{"sprig_join of many with a long separator", `{{ $l := sprig_splitList "" (printf "%090000d" 0) }}{{ sprig_join (printf "%01000000d" 0) $l | len }}`, "", "sprig_join: the joined text"},
		{"sprig_cat past the limit", `{{ sprig_cat (printf "%03000000d" 0) (printf "%03000000d" 0) | len }}`, "", "sprig_cat: the joined text"},
		{"below the limit, sprig's results", `{{ sprig_replace "a" "bb" "aXa" }}|{{ sprig_regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}|{{ sprig_regexReplaceAllLiteral "a" "aa" "$1" }}|{{ sprig_wrapWith 2 "#" "abcd" }}|{{ sprig_join "," (sprig_list 1 "b" nil) }}|{{ sprig_cat "a" nil 2 }}|{{ regexReplaceAll "(a)" "[$1]" "bab" }}`,
			"bbXbb|-W-xxW-|$1$1|ab#cd|1,b|a 2|b[a]b", ""},
	})
}

// TestPipedSecretArgumentIsComputed: a `secret` call given a value down its
// pipeline is a computed request (its error may not print it), whatever it
// writes out itself.
func TestPipedSecretArgumentIsComputed(t *testing.T) {
	for _, tc := range []struct {
		text    string
		literal bool
	}{
		{`{{ with secret "secret/data/a" }}{{ printf "k=%s" .Data.data.password | secret "secret/data/y" }}{{ end }}`, false},
		{`{{ "secret/data/y" | secret }}`, false},
		{`{{ with secret "secret/data/y" "k=v" }}{{ end }}`, true},
	} {
		tp, err := New("x", tc.text)
		if err != nil {
			t.Fatal(err)
		}
		lookup := lookupOf(map[string]any{"read secret/data/a": &Secret{Data: map[string]any{"data": map[string]any{"password": "s3cret-value"}}}})
		res, _ := tp.Execute(lookup)
		if res == nil || len(res.Missing) == 0 {
			t.Fatalf("%s: no request recorded", tc.text)
		}
		for _, r := range res.Missing {
			if r.Path == "secret/data/a" {
				continue
			}
			if r.Call.Literal != tc.literal {
				t.Errorf("%s: request %s literal %v, want %v", tc.text, r.Op, r.Call.Literal, tc.literal)
			}
		}
	}
}
