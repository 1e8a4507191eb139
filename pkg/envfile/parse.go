package envfile

import (
	"fmt"
	"strings"
)

// Var is one variable of an env file.
type Var struct{ Name, Value string }

// Parse reads an env file: what Encode writes, and the usual hand-written
// subset of shell: blank lines, # comments, an optional "export ", and
// values made of unquoted words, '...' and "..." parts and backslash
// escapes. Expansion ($X, `cmd`) is refused rather than guessed at. A key
// given twice keeps its last value, as in a shell.
func Parse(data []byte) ([]Var, error) {
	p := &parser{s: string(data), line: 1}
	var vars []Var
	index := map[string]int{}
	for {
		p.skipBlank()
		if p.eof() {
			return vars, nil
		}
		v, err := p.assignment()
		if err != nil {
			return nil, err
		}
		if i, ok := index[v.Name]; ok {
			vars[i] = v
			continue
		}
		index[v.Name] = len(vars)
		vars = append(vars, v)
	}
}

type parser struct {
	s    string
	i    int
	line int
}

func (p *parser) eof() bool { return p.i >= len(p.s) }

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrSyntax, p.line, fmt.Sprintf(format, args...))
}

// skipBlank skips whitespace, newlines and comment lines.
func (p *parser) skipBlank() {
	for !p.eof() {
		switch c := p.s[p.i]; {
		case c == '\n':
			p.line++
			p.i++
		case c == ' ' || c == '\t' || c == '\r':
			p.i++
		case c == '#':
			for !p.eof() && p.s[p.i] != '\n' {
				p.i++
			}
		default:
			return
		}
	}
}

func (p *parser) assignment() (Var, error) {
	if strings.HasPrefix(p.s[p.i:], "export ") {
		p.i += len("export ")
		for !p.eof() && p.s[p.i] == ' ' {
			p.i++
		}
	}
	start := p.i
	for !p.eof() && p.s[p.i] != '=' && p.s[p.i] != '\n' {
		p.i++
	}
	name := p.s[start:p.i]
	if p.eof() || p.s[p.i] != '=' {
		// Without "=" the line may be a value on its own (a broken
		// multi-line value): do not quote it.
		return Var{}, p.errorf("expected NAME=value")
	}
	if ValidateName(name) != nil {
		// Not quoted: on a broken line this text may be part of a value.
		return Var{}, p.errorf("the text before = is not a variable name (letters, digits and _, not starting with a digit)")
	}
	p.i++ // =
	value, err := p.word(name)
	if err != nil {
		return Var{}, err
	}
	return Var{Name: name, Value: value}, p.endOfLine(name)
}

// endOfLine accepts trailing blanks and a comment after a value.
func (p *parser) endOfLine(name string) error {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\r') {
		p.i++
	}
	if p.eof() || p.s[p.i] == '\n' || p.s[p.i] == '#' {
		return nil
	}
	return p.errorf("key %s: unexpected text after the value (quote values that hold spaces)", name)
}

// word reads one shell word up to unquoted whitespace.
func (p *parser) word(name string) (string, error) {
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			return b.String(), nil
		case c == '\'':
			if err := p.single(&b, name); err != nil {
				return "", err
			}
		case c == '"':
			if err := p.double(&b, name); err != nil {
				return "", err
			}
		case c == '\\':
			p.i++
			if p.eof() {
				return "", p.errorf("key %s: the value ends with a lone backslash", name)
			}
			if p.s[p.i] == '\n' { // line continuation
				p.line++
			} else {
				b.WriteByte(p.s[p.i])
			}
			p.i++
		case strings.IndexByte("$`|&;<>()", c) >= 0:
			return "", p.errorf("key %s: unquoted %q in the value; quote the value with '...'", name, c)
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return b.String(), nil
}

func (p *parser) single(b *strings.Builder, name string) error {
	line := p.line
	p.i++
	for !p.eof() {
		c := p.s[p.i]
		p.i++
		if c == '\'' {
			return nil
		}
		if c == '\n' {
			p.line++
		}
		b.WriteByte(c)
	}
	p.line = line
	return p.errorf("key %s: the ' opened here is never closed", name)
}

func (p *parser) double(b *strings.Builder, name string) error {
	line := p.line
	p.i++
	for !p.eof() {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return nil
		case '$', '`':
			return p.errorf("key %s: %q inside \"...\" would expand; use '...' for a literal value", name, c)
		case '\\':
			if p.eof() {
				continue
			}
			n := p.s[p.i]
			p.i++
			switch n {
			case '\n':
				p.line++
			case '$', '`', '"', '\\':
				b.WriteByte(n)
			default:
				b.WriteByte('\\')
				b.WriteByte(n)
			}
			continue
		case '\n':
			p.line++
		}
		b.WriteByte(c)
	}
	p.line = line
	return p.errorf("key %s: the \" opened here is never closed", name)
}
