package template

import "testing"

// BenchmarkExecuteDefault renders the default template of a 10-key KV v2
// secret: the cost of measuring values (printed, ranged, passed) on an
// ordinary render.
func BenchmarkExecuteDefault(b *testing.B) {
	data := map[string]any{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		data[k] = "value-of-" + k
	}
	s := &Secret{Data: map[string]any{"data": data}}
	tp, err := New("x", `{{ with secret "secret/data/app/db" }}{{ range $k, $v := (or (index .Data "data") .Data) }}{{ $k }}: {{ $v }}
{{ end }}{{ end }}`)
	if err != nil {
		b.Fatal(err)
	}
	lookup := lookupOf(map[string]any{"read secret/data/app/db": s})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tp.Execute(lookup); err != nil {
			b.Fatal(err)
		}
	}
}
