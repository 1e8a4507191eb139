package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestGenerate(t *testing.T) {
	for _, cs := range Charsets() {
		for _, n := range []int{MinLength, 24, MaxLength} {
			v, err := Generate(Generator{Length: n, Charset: cs})
			if err != nil {
				t.Fatalf("%s/%d: %v", cs, n, err)
			}
			if len(v) != n {
				t.Errorf("%s: length %d, want %d", cs, len(v), n)
			}
			for _, r := range v {
				if !strings.ContainsRune(cs.alphabet(), r) {
					t.Errorf("%s: %q is not in the charset", cs, r)
				}
			}
		}
	}
}

func TestAlphabets(t *testing.T) {
	for cs, size := range map[Charset]int{CharsetAlphanumeric: 62, CharsetHex: 16, CharsetBase64URL: 64, CharsetASCIIPrintable: 94} {
		a := cs.alphabet()
		if len(a) != size {
			t.Errorf("%s has %d characters, want %d", cs, len(a), size)
		}
		seen := map[rune]bool{}
		for _, r := range a {
			if seen[r] || r <= ' ' || r > '~' {
				t.Errorf("%s: %q repeated or not printable", cs, r)
			}
			seen[r] = true
		}
	}
}

func TestGenerateRefuses(t *testing.T) {
	for _, g := range []Generator{
		{Length: MinLength - 1, Charset: CharsetHex},
		{Length: MaxLength + 1, Charset: CharsetHex},
		{Length: 0, Charset: CharsetHex},
		{Length: 32, Charset: "emoji"},
		{Length: 32},
	} {
		if v, err := Generate(g); err == nil {
			t.Errorf("%+v: generated %q", g, v)
		}
	}
	boom := errors.New("boom")
	if _, err := generate(iotest.ErrReader(boom), Generator{Length: 32, Charset: CharsetHex}); !errors.Is(err, boom) {
		t.Errorf("a failing random source: got %v", err)
	}
}

// TestGenerateRejectsBiasedBytes: with 62 characters, bytes 248..255 would
// favour the first 8; they are skipped, not folded in.
func TestGenerateRejectsBiasedBytes(t *testing.T) {
	src := bytes.Repeat([]byte{255, 248, 0, 61, 62, 247}, 100)
	v, err := generate(bytes.NewReader(src), Generator{Length: 8, Charset: CharsetAlphanumeric})
	if err != nil {
		t.Fatal(err)
	}
	// 0 -> 'A', 61 -> '9', 62 -> 'A' (62 % 62), 247 -> 247 % 62 = 61 -> '9'.
	if v != "A9A9A9A9" {
		t.Errorf("got %q", v)
	}
	// Only rejected bytes, then the end: an error, not a short value.
	if v, err := generate(bytes.NewReader(bytes.Repeat([]byte{250}, 1000)), Generator{Length: 8, Charset: CharsetAlphanumeric}); err == nil {
		t.Errorf("got %q from rejected bytes only", v)
	}
}

// TestGenerateUniform is a smoke check against bias: every character of
// each alphabet shows up close to equally often.
func TestGenerateUniform(t *testing.T) {
	for _, cs := range Charsets() {
		alphabet := cs.alphabet()
		const perChar = 2000
		counts := map[rune]int{}
		total := 0
		for total < perChar*len(alphabet) {
			v, err := Generate(Generator{Length: MaxLength, Charset: cs})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range v {
				counts[r]++
			}
			total += len(v)
		}
		expected := float64(total) / float64(len(alphabet))
		for _, r := range alphabet {
			// The standard deviation is about sqrt(2000) = 45; 15% is
			// 300, more than six of them.
			if got := float64(counts[r]); got < expected*0.85 || got > expected*1.15 {
				t.Errorf("%s: %q drawn %v times, expected about %.0f", cs, r, got, expected)
			}
		}
	}
}
