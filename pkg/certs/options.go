// Package certs manages the webhook's serving TLS without an external
// certificate manager: the leader issues a CA and a serving certificate into
// a Secret and keeps the MutatingWebhookConfiguration's caBundle in step with
// it; every replica loads the serving pair from that Secret into a Store that
// the TLS server reads on each handshake.
package certs

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Defaults for the zero values of Options.
const (
	DefaultCAValidity    = 10 * 365 * 24 * time.Hour
	DefaultCertValidity  = 365 * 24 * time.Hour
	DefaultCheckInterval = time.Minute
	DefaultPollInterval  = 5 * time.Second
)

// Options configure both the Issuer and the Loader; they must agree on the
// Secret, so they share one value.
type Options struct {
	// Namespace and SecretName locate the Secret holding the CA and the
	// serving pair.
	Namespace  string
	SecretName string
	// WebhookConfigName is the MutatingWebhookConfiguration whose webhooks
	// get the CA bundle.
	WebhookConfigName string
	// Hosts are the serving certificate's DNS names and IP addresses; the
	// first is also its CommonName.
	Hosts []string
	// CAValidity and CertValidity default to DefaultCAValidity and
	// DefaultCertValidity.
	CAValidity   time.Duration
	CertValidity time.Duration
	// RenewBefore is how long before expiry a certificate (CA or serving) is
	// replaced; it defaults to CertValidity/3.
	RenewBefore time.Duration
	// CheckInterval is how often the Issuer re-checks; default 1m.
	CheckInterval time.Duration
	// PollInterval is how often the Loader re-reads the Secret; default 5s.
	PollInterval time.Duration
}

// ErrInvalidOptions is wrapped by every error Options.Validate returns.
var ErrInvalidOptions = errors.New("invalid certificate options")

// OptionError names the Options field that is unusable.
type OptionError struct {
	Field  string
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrInvalidOptions, e.Field, e.Reason)
}

// Unwrap lets callers test errors.Is(err, ErrInvalidOptions).
func (e *OptionError) Unwrap() error { return ErrInvalidOptions }

func invalid(field, format string, args ...any) error {
	return &OptionError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// withDefaults fills zero durations. RenewBefore depends on CertValidity, so
// it is derived after CertValidity is settled.
func (o Options) withDefaults() Options {
	if o.CAValidity == 0 {
		o.CAValidity = DefaultCAValidity
	}
	if o.CertValidity == 0 {
		o.CertValidity = DefaultCertValidity
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = o.CertValidity / 3
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	return o
}

// Validate reports the first unusable field as an *OptionError. Zero
// durations are replaced by their defaults before checking, so a value that
// only conflicts with a default is reported too.
func (o Options) Validate() error {
	if err := o.validateNames(); err != nil {
		return err
	}
	if err := validateHosts(o.Hosts); err != nil {
		return err
	}
	return o.validateDurations()
}

func (o Options) validateNames() error {
	if o.Namespace == "" {
		return invalid("Namespace", "must not be empty")
	}
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		return invalid("Namespace", "%q: %s", o.Namespace, strings.Join(msgs, "; "))
	}
	if o.SecretName == "" {
		return invalid("SecretName", "must not be empty")
	}
	if msgs := validation.IsDNS1123Subdomain(o.SecretName); len(msgs) > 0 {
		return invalid("SecretName", "%q: %s", o.SecretName, strings.Join(msgs, "; "))
	}
	if o.WebhookConfigName == "" {
		return invalid("WebhookConfigName", "must not be empty")
	}
	if msgs := validation.IsDNS1123Subdomain(o.WebhookConfigName); len(msgs) > 0 {
		return invalid("WebhookConfigName", "%q: %s", o.WebhookConfigName, strings.Join(msgs, "; "))
	}
	return nil
}

func validateHosts(hosts []string) error {
	if len(hosts) == 0 {
		return invalid("Hosts", "at least one DNS name or IP address is required")
	}
	for i, h := range hosts {
		if net.ParseIP(h) != nil {
			continue
		}
		// DNS-1123 also rules out upper case, which would never compare equal
		// to the names as a certificate stores them.
		if msgs := validation.IsDNS1123Subdomain(h); len(msgs) > 0 {
			return invalid(fmt.Sprintf("Hosts[%d]", i), "%q is neither an IP address nor a DNS name: %s", h, strings.Join(msgs, "; "))
		}
	}
	return nil
}

func (o Options) validateDurations() error {
	for _, d := range []struct {
		field string
		value time.Duration
	}{
		{"CAValidity", o.CAValidity},
		{"CertValidity", o.CertValidity},
		{"RenewBefore", o.RenewBefore},
		{"CheckInterval", o.CheckInterval},
		{"PollInterval", o.PollInterval},
	} {
		if d.value < 0 {
			return invalid(d.field, "must not be negative, got %v", d.value)
		}
	}
	o = o.withDefaults()
	if o.CertValidity > o.CAValidity {
		return invalid("CertValidity", "%v outlives the CA (CAValidity %v)", o.CertValidity, o.CAValidity)
	}
	if o.RenewBefore >= o.CertValidity {
		// Otherwise every fresh certificate would already be due for renewal.
		return invalid("RenewBefore", "%v must be shorter than CertValidity %v", o.RenewBefore, o.CertValidity)
	}
	if o.CheckInterval >= o.RenewBefore {
		// A check must land inside the renewal window, or a certificate can
		// expire between two checks.
		return invalid("CheckInterval", "%v must be shorter than RenewBefore %v", o.CheckInterval, o.RenewBefore)
	}
	if o.PollInterval >= o.RenewBefore {
		return invalid("PollInterval", "%v must be shorter than RenewBefore %v", o.PollInterval, o.RenewBefore)
	}
	return nil
}
