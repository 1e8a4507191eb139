// Package envfile writes and reads the agent's "env" output format:
// KEY='value' lines that a POSIX shell can source and `blinkchamber exec`
// reads. Every value is a secret: no error here ever quotes one; errors name
// the key and the line.
package envfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalidName is wrapped when a key is not a shell identifier.
var ErrInvalidName = errors.New("not a valid environment variable name")

// ErrInvalidValue is wrapped when a value cannot be an environment variable
// (a NUL byte, an object).
var ErrInvalidValue = errors.New("not a valid environment variable value")

// ErrSyntax is wrapped when a file cannot be read as an env file.
var ErrSyntax = errors.New("env file syntax")

// ValidateName accepts a shell identifier: letters, digits and _, not
// starting with a digit.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the key is empty", ErrInvalidName)
	}
	for i, r := range name {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			// The key is not a secret (it names one); quoting it helps the user find it.
			return fmt.Errorf("%w: key %q must be letters, digits and _ and must not start with a digit", ErrInvalidName, name)
		}
	}
	return nil
}

// Encode writes vars as KEY='value' lines sorted by key, each value single
// quoted; a quote inside is written as the four characters ' \ ' '
// (close, escaped quote, reopen).
func Encode(vars map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(vars))
	for k, v := range vars {
		if err := ValidateName(k); err != nil {
			return nil, err
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("%w: the value of key %q contains a NUL byte", ErrInvalidValue, k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString("='")
		b.WriteString(strings.ReplaceAll(vars[k], "'", `'\''`))
		b.WriteString("'\n")
	}
	return b.Bytes(), nil
}

// FromJSON turns a JSON object (what the env format's template renders)
// into an env file. Strings are taken as they are, numbers as written,
// booleans as true/false; null, objects and arrays are refused.
func FromJSON(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		// json's messages may quote a character of the input: say where
		// instead.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: the template's output is not a JSON object (error at byte %d)", ErrSyntax, se.Offset)
		}
		return nil, fmt.Errorf("%w: the template's output must be one JSON object of keys to values", ErrSyntax)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: the template's output holds more than one JSON value", ErrSyntax)
	}
	vars := make(map[string]string, len(obj))
	for k, v := range obj {
		switch v := v.(type) {
		case string:
			vars[k] = v
		case json.Number:
			vars[k] = v.String()
		case bool:
			vars[k] = fmt.Sprint(v)
		case nil:
			return nil, fmt.Errorf("%w: the value of key %q is null", ErrInvalidValue, k)
		default:
			return nil, fmt.Errorf("%w: the value of key %q is a JSON object or array; an env file holds strings", ErrInvalidValue, k)
		}
	}
	return Encode(vars)
}
