package config

import (
	"crypto/rand"
	"fmt"
	"io"
)

// Charsets lists every charset.
func Charsets() []Charset {
	return []Charset{CharsetAlphanumeric, CharsetHex, CharsetBase64URL, CharsetASCIIPrintable}
}

const (
	upper  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lower  = "abcdefghijklmnopqrstuvwxyz"
	digits = "0123456789"
)

// alphabet is the characters of the charset, "" for an unknown one.
func (c Charset) alphabet() string {
	switch c {
	case CharsetAlphanumeric:
		return upper + lower + digits
	case CharsetHex:
		return digits + "abcdef"
	case CharsetBase64URL:
		return upper + lower + digits + "-_"
	case CharsetASCIIPrintable:
		b := make([]byte, 0, '~'-'!'+1)
		for r := byte('!'); r <= '~'; r++ {
			b = append(b, r)
		}
		return string(b)
	}
	return ""
}

// Generate draws a value of g.Length characters uniformly from g.Charset
// with crypto/rand. It applies no defaults: a Generator from Parse has them.
func Generate(g Generator) (string, error) { return generate(rand.Reader, g) }

// generate draws from r. Each random byte below the largest multiple of
// the alphabet size picks alphabet[b % size]; bytes above it are rejected,
// so every character is equally likely.
func generate(r io.Reader, g Generator) (string, error) {
	if g.Length < MinLength || g.Length > MaxLength {
		return "", fmt.Errorf("generating a value: length %d is not between %d and %d", g.Length, MinLength, MaxLength)
	}
	alphabet := g.Charset.alphabet()
	if alphabet == "" {
		return "", fmt.Errorf("generating a value: unknown charset %q (want one of %q)", g.Charset, Charsets())
	}
	n := len(alphabet)
	limit := 256 - 256%n
	out := make([]byte, 0, g.Length)
	// At most 27% of bytes are rejected (ascii-printable); draw a little extra.
	buf := make([]byte, g.Length+g.Length/2+8)
	for len(out) < g.Length {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("generating a value: reading random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, alphabet[int(b)%n])
			if len(out) == g.Length {
				break
			}
		}
	}
	return string(out), nil
}
