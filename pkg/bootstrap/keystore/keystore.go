// Package keystore keeps what Vault's `sys/init` returns exactly once: the
// unseal (or recovery) keys and the root token. Bootstrap saves them before
// doing anything else after init, so a store is built to never lose keys:
// a save is atomic and durable, and never replaces keys already stored
// with different ones.
//
// No error or description from this package contains key material.
package keystore

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrNotFound is wrapped when the store holds no keys yet.
	ErrNotFound = errors.New("no Vault keys stored")
	// ErrExists is wrapped when Save is refused because the store already
	// holds different keys.
	ErrExists = errors.New("different Vault keys are already stored")
)

// Keys is what `sys/init` returned. UnsealKeysB64 holds the recovery keys
// when Vault auto-unseals.
type Keys struct {
	UnsealKeysB64 []string  `json:"unsealKeysB64"`
	RootToken     string    `json:"rootToken"`
	Threshold     int       `json:"threshold"`
	CreatedAt     time.Time `json:"createdAt"`
}

// String never shows key material, so Keys printed by mistake (with %v,
// %+v or %#v) leak nothing.
func (k Keys) String() string {
	return fmt.Sprintf("<%d keys, threshold %d, created %s>", len(k.UnsealKeysB64), k.Threshold, k.CreatedAt.Format(time.RFC3339))
}

// GoString is String, for %#v.
func (k Keys) GoString() string { return k.String() }

// Store keeps one set of keys.
type Store interface {
	// Load returns the stored keys; the error wraps ErrNotFound when there
	// are none. A store that exists but cannot be read is an error other
	// than ErrNotFound, so it is never mistaken for an empty one.
	Load(ctx context.Context) (*Keys, error)
	// Save stores k when the store is empty. When it holds the same keys
	// (CreatedAt aside) it returns nil; when it holds different ones it
	// returns an error wrapping ErrExists and changes nothing.
	Save(ctx context.Context, k *Keys) error
	// Describe names the store for messages, such as "file /path".
	Describe() string
}

// Same reports whether a and b hold the same keys, root token and
// threshold; CreatedAt is ignored, as a retried save stamps a new time.
func Same(a, b *Keys) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Threshold != b.Threshold || len(a.UnsealKeysB64) != len(b.UnsealKeysB64) || !equal(a.RootToken, b.RootToken) {
		return false
	}
	for i := range a.UnsealKeysB64 {
		if !equal(a.UnsealKeysB64[i], b.UnsealKeysB64[i]) {
			return false
		}
	}
	return true
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// check refuses only what cannot be keys at all. It is deliberately
// lenient: Save runs right after init, and refusing then would lose the
// only copy.
func check(k *Keys) error {
	if k == nil {
		return errors.New("no keys given")
	}
	if k.RootToken == "" && len(k.UnsealKeysB64) == 0 {
		return errors.New("the keys hold neither a root token nor any unseal key")
	}
	return nil
}

func encode(k *Keys) ([]byte, error) {
	b, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding keys: %w", err)
	}
	return append(b, '\n'), nil
}

// decode reads keys strictly. Its errors name the problem's position or
// field, never the bytes themselves, which may be key material.
func decode(b []byte) (*Keys, error) {
	var k Keys
	if err := json.Unmarshal(b, &k); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, fmt.Errorf("not valid JSON (at byte %d)", syn.Offset)
		case errors.As(err, &typ):
			// Value is "string", "number 5", ...: keep the kind only.
			kind, _, _ := strings.Cut(typ.Value, " ")
			return nil, fmt.Errorf("field %q holds a JSON %s, not a %s", typ.Field, kind, typ.Type)
		}
		return nil, errors.New("not valid JSON keys")
	}
	if err := check(&k); err != nil {
		return nil, err
	}
	return &k, nil
}
