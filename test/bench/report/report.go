// Package report lets several benchmark commands share one Markdown file:
// each owns a named section between marker comments and rewrites only that
// section, so running one benchmark never erases another's results.
package report

import (
	"bytes"
	"fmt"
	"os"
)

func markers(name string) (begin, end []byte) {
	return []byte(fmt.Sprintf("<!-- begin %s (generated; do not edit) -->\n", name)),
		[]byte(fmt.Sprintf("<!-- end %s -->\n", name))
}

// Replace returns doc with section name's body set to body. A section that
// is not there yet is appended at the end.
func Replace(doc []byte, name string, body []byte) ([]byte, error) {
	begin, end := markers(name)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		body = append(body, '\n')
	}
	section := append(append(append([]byte{}, begin...), body...), end...)
	i := bytes.Index(doc, begin)
	if i < 0 {
		out := append([]byte{}, doc...)
		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n\n")) {
			out = append(out, '\n')
		}
		return append(out, section...), nil
	}
	j := bytes.Index(doc[i:], end)
	if j < 0 {
		return nil, fmt.Errorf("section %q: begin marker without end marker", name)
	}
	out := append([]byte{}, doc[:i]...)
	out = append(out, section...)
	return append(out, doc[i+j+len(end):]...), nil
}

// WriteSection rewrites section name of the file at path, creating the file
// if needed.
func WriteSection(path, name string, body []byte) error {
	doc, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	out, err := Replace(doc, name, body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
