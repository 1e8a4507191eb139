package agent

// What an error, a log line, readiness or a metric label may say about a
// Vault request. A template may build a path or a `secret` argument from
// secret data (`secret (print "secret/data/x/" .Data.data.password)`), so
// the request itself is printed only when the template wrote it out in full
// (every argument of the call a string constant: it is already in the pod
// spec). Otherwise the message gives the call's position and source text
// and a fingerprint: a keyed hash with a key drawn at each start, which
// tells "same request or not" within one agent's log, and cannot be used
// to test guesses of a secret offline (the key never leaves the process).
// Vault's error strings and the API library's errors quote the path (and
// the request URL): they are kept only for requests that may be printed.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"

	"github.com/hashicorp/vault/api"

	tmpl "github.com/blinkchamber/blinkchamber/pkg/template"
)

// describer prints requests under the rule above.
type describer struct{ key [32]byte }

func newDescriber() (*describer, error) {
	d := &describer{}
	if _, err := rand.Read(d.key[:]); err != nil {
		return nil, fmt.Errorf("drawing the fingerprint key: %w", err)
	}
	return d, nil
}

// printable reports whether r's path and arguments are the template's own
// literal text.
func printable(r tmpl.Request) bool { return r.Call.Literal }

// fingerprint is a short keyed hash of r's identity.
func (d *describer) fingerprint(r tmpl.Request) string {
	m := hmac.New(sha256.New, d.key[:])
	m.Write([]byte(r.Key()))
	return hex.EncodeToString(m.Sum(nil)[:6])
}

// request names r for a message: `read "secret/data/app"`, or, for a
// computed request, `read at db:1:10 secret (print ...) [computed, fingerprint 0a1b2c3d4e5f]`.
func (d *describer) request(r tmpl.Request) string {
	if printable(r) {
		s := fmt.Sprintf("%s %q", r.Op, r.Path)
		for _, k := range sortedKeys(r.Data) {
			s += fmt.Sprintf(" %q", k+"="+r.Data[k])
		}
		return s
	}
	where := "of a computed path"
	if r.Call.Pos != "" {
		where = "at " + r.Call.Pos + " {{ " + r.Call.Text + " }}"
	}
	return fmt.Sprintf("%s %s [computed, fingerprint %s]", r.Op, where, d.fingerprint(r))
}

// label is r's value for a metric label: the path when printable, else the
// fingerprint.
func (d *describer) label(r tmpl.Request) string {
	if printable(r) {
		return r.Path
	}
	return "computed:" + d.fingerprint(r)
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// classifyRequest turns a failed request into a typed error whose text
// obeys the rule: what names the request (describer.request), and Vault's
// words or the library's message are kept only when show is true.
func classifyRequest(err error, what string, show bool) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		reason := statusReason(re, show)
		switch {
		case re.StatusCode == http.StatusForbidden:
			return &PermanentError{fmt.Errorf("%w: %s: %s", ErrDenied, what, reason)}
		case re.StatusCode == http.StatusNotFound:
			return &PermanentError{fmt.Errorf("%w: %s", ErrNotFound, what)}
		case permanentStatus(re.StatusCode):
			return &PermanentError{&requestError{msg: what + ": " + reason, err: err}}
		}
		return &requestError{msg: what + ": " + reason, err: err}
	}
	if show {
		return fmt.Errorf("%s: %w", what, err)
	}
	return &requestError{msg: what + ": " + transportReason(err), err: err}
}

// statusReason is Vault's status code, and its error strings when they may
// be shown (they often quote the path: "no handler for route ...").
func statusReason(re *api.ResponseError, show bool) string {
	if show {
		return vaultReason(re)
	}
	return fmt.Sprintf("HTTP %d %s (Vault's message is not shown: it may quote the computed path)", re.StatusCode, http.StatusText(re.StatusCode))
}

// transportReason says why a request got no answer without the library's
// message, which quotes the request URL: a timeout, a cancellation, or a
// network error's operation, Vault's address and the system error.
func transportReason(err error) string {
	var op *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &op):
		addr := ""
		if op.Addr != nil {
			addr = " " + op.Addr.String()
		}
		return fmt.Sprintf("network error: %s %s%s: %s", op.Op, op.Net, addr, sysReason(op.Err))
	}
	return "request failed (the message is not shown: it quotes the request URL)"
}

// sysReason keeps a network error's cause when it is the system's (a
// refused connection, a reset, a name not found), nothing else.
func sysReason(err error) string {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return "DNS: " + dns.Err
	case err == nil:
		return "failed"
	}
	msg := err.Error()
	// *os.SyscallError reads "connect: connection refused".
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	for _, r := range msg {
		if !(r >= 'a' && r <= 'z' || r == ' ' || r == '-') {
			return "failed"
		}
	}
	return msg
}

// requestError is a failed request whose text was chosen by the rule; it
// still wraps the cause, for errors.Is and errors.As.
type requestError struct {
	msg string
	err error
}

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return e.err }
