package config

import (
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary documents to Parse: never a panic; a refusal
// wraps ErrInvalid; an accepted config validates and survives a round trip
// through YAML.
//
// The seeds are small on purpose: the engine minimizes every new input it
// finds (for up to a minute each by default), and minimizing a whole
// example file costs more than a short `make fuzz` run has. The examples
// are checked by TestExamples.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte("environment: development\nvault: {address: http://a, seal: {shamir: }, audit: {path: stdout}}\n"))
	f.Add([]byte("vault:\n  seal:\n    shamir: {shares: 0, threshold: x}\n"))
	f.Add([]byte("apps: [~, {name: a, secrets: [{name: b, generate: {k: }}]}]\n"))
	f.Add([]byte("environment: staging\nvault: {tokenTTL: 1h1m, kvMount: a/b}\n"))
	f.Add([]byte("---\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal does not wrap ErrInvalid: %v", err)
			}
			var ve *ValidationError
			if errors.As(err, &ve) && len(ve.Errs) == 0 {
				t.Fatalf("a ValidationError without errors")
			}
			return
		}
		if errs := c.Validate(); len(errs) > 0 {
			t.Fatalf("Parse accepted a config Validate refuses: %v", errs)
		}
		assertRoundTrip(t, c)
	})
}
