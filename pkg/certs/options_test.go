package certs

import (
	"errors"
	"testing"
	"time"
)

func validOptions() Options {
	return Options{
		Namespace:         "blinkchamber",
		SecretName:        "blinkchamber-injector-tls",
		WebhookConfigName: "blinkchamber-injector",
		Hosts:             []string{"blinkchamber-injector.blinkchamber.svc", "127.0.0.1"},
	}
}

func TestOptionsValidate(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name      string
		edit      func(*Options)
		wantField string // "" means valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"explicit durations", func(o *Options) {
			o.CAValidity, o.CertValidity, o.RenewBefore, o.CheckInterval, o.PollInterval = 30*day, 10*day, 2*day, time.Hour, time.Minute
		}, ""},
		{"cert as long as the CA", func(o *Options) { o.CAValidity, o.CertValidity = 10*day, 10*day }, ""},
		{"IPv6 host", func(o *Options) { o.Hosts = []string{"::1"} }, ""},
		{"no namespace", func(o *Options) { o.Namespace = "" }, "Namespace"},
		{"bad namespace", func(o *Options) { o.Namespace = "Blink_Chamber" }, "Namespace"},
		{"no secret name", func(o *Options) { o.SecretName = "" }, "SecretName"},
		{"bad secret name", func(o *Options) { o.SecretName = "tls/secret" }, "SecretName"},
		{"no webhook config", func(o *Options) { o.WebhookConfigName = "" }, "WebhookConfigName"},
		{"bad webhook config", func(o *Options) { o.WebhookConfigName = "Injector" }, "WebhookConfigName"},
		{"no hosts", func(o *Options) { o.Hosts = nil }, "Hosts"},
		{"empty host", func(o *Options) { o.Hosts = []string{"a.example", ""} }, "Hosts[1]"},
		{"upper-case host", func(o *Options) { o.Hosts = []string{"Injector.svc"} }, "Hosts[0]"},
		{"host with a port", func(o *Options) { o.Hosts = []string{"a.example", "127.0.0.1:443"} }, "Hosts[1]"},
		{"negative CA validity", func(o *Options) { o.CAValidity = -time.Hour }, "CAValidity"},
		{"negative cert validity", func(o *Options) { o.CertValidity = -time.Hour }, "CertValidity"},
		{"negative renew before", func(o *Options) { o.RenewBefore = -time.Hour }, "RenewBefore"},
		{"negative check interval", func(o *Options) { o.CheckInterval = -time.Second }, "CheckInterval"},
		{"negative poll interval", func(o *Options) { o.PollInterval = -time.Second }, "PollInterval"},
		{"cert outlives the CA", func(o *Options) { o.CAValidity, o.CertValidity = 10*day, 11*day }, "CertValidity"},
		{"cert outlives the default CA", func(o *Options) { o.CertValidity = 11 * 365 * day }, "CertValidity"},
		{"renew before equals validity", func(o *Options) { o.CertValidity, o.RenewBefore = 10*day, 10*day }, "RenewBefore"},
		{"renew before beyond the default validity", func(o *Options) { o.RenewBefore = 400 * day }, "RenewBefore"},
		{"check interval beyond renew window", func(o *Options) { o.RenewBefore, o.CheckInterval = time.Hour, 2*time.Hour }, "CheckInterval"},
		{"poll interval beyond renew window", func(o *Options) { o.RenewBefore, o.PollInterval = time.Hour, time.Hour }, "PollInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validOptions()
			tt.edit(&o)
			err := o.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("Validate() = %v, want an error wrapping ErrInvalidOptions", err)
			}
			var oe *OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("Validate() = %v, want an *OptionError", err)
			}
			if oe.Field != tt.wantField {
				t.Errorf("Field = %q, want %q (error: %v)", oe.Field, tt.wantField, err)
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := validOptions().withDefaults()
	if o.CAValidity != DefaultCAValidity || o.CertValidity != DefaultCertValidity ||
		o.CheckInterval != DefaultCheckInterval || o.PollInterval != DefaultPollInterval {
		t.Errorf("defaults not applied: %+v", o)
	}
	if o.RenewBefore != DefaultCertValidity/3 {
		t.Errorf("RenewBefore = %v, want a third of %v", o.RenewBefore, DefaultCertValidity)
	}
	custom := validOptions()
	custom.CertValidity = 90 * time.Hour
	if got := custom.withDefaults().RenewBefore; got != 30*time.Hour {
		t.Errorf("RenewBefore = %v, want a third of the configured CertValidity (30h)", got)
	}
}
