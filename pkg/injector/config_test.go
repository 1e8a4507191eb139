package injector

import (
	"errors"
	"strings"
	"testing"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

func validConfig() *Config {
	c := NewConfig()
	c.AgentImage = "ghcr.io/blinkchamber/agent:v1"
	c.VaultAddr = "https://vault:8200"
	c.Namespace = "blinkchamber"
	return c
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		flag string // the flag the error must name; "" for valid
	}{
		{"valid, self-managed TLS", func(*Config) {}, ""},
		{"valid, cert dir", func(c *Config) { c.CertDir = "/certs"; c.Namespace = "" }, ""},
		{"no agent image", func(c *Config) { c.AgentImage = "" }, "--agent-image"},
		{"vault address without scheme", func(c *Config) { c.VaultAddr = "vault:8200" }, "--vault-addr"},
		{"bad mode", func(c *Config) { c.DefaultMode = "daemon" }, "--default-mode"},
		{"bad port", func(c *Config) { c.Port = 70000 }, "--port"},
		{"self-managed without namespace", func(c *Config) { c.Namespace = "" }, "--namespace"},
		{"self-managed without webhook name", func(c *Config) { c.WebhookConfigName = "" }, "--webhook-config-name"},
		{"leader election without namespace", func(c *Config) { c.CertDir = "/certs"; c.Namespace = ""; c.LeaderElect = true }, "--namespace"},
		{"bad quantity", func(c *Config) { c.AgentMemoryLimit = "lots" }, "--agent-memory-limit"},
		{"render interval too short", func(c *Config) { c.RenderInterval = 1 }, "--render-interval"},
		{"root agent", func(c *Config) { c.AgentRunAsUser = 0 }, "--agent-run-as-user"},
		{"agent metrics port out of range", func(c *Config) { c.AgentMetricsPort = 70000 }, "--agent-metrics-port"},
		{"agent metrics on the health port", func(c *Config) { c.AgentMetricsPort = c.AgentHealthPort }, "--agent-metrics-port"},
		{"cert host with a path", func(c *Config) { _ = c.CertHosts.Set("a/b") }, "--cert-hosts"},
		{"valid, debug logs", func(c *Config) { c.LogLevel = "debug" }, ""},
		{"unknown log level", func(c *Config) { c.LogLevel = "verbose" }, "--log-level"},
		{"fatal log level", func(c *Config) { c.LogLevel = "fatal" }, "--log-level"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(c)
			err := c.Validate()
			if tc.flag == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.flag+":") {
				t.Fatalf("Validate() = %v, want an ErrConfig naming %s", err, tc.flag)
			}
		})
	}
}

func TestModeForVersion(t *testing.T) {
	cases := map[string]mutate.Mode{
		"v1.37.2": mutate.ModeNative, "v1.29.0": mutate.ModeNative, "v1.28.9-eks-1": mutate.ModeSidecar, "v1.27.0": mutate.ModeSidecar,
	}
	for v, want := range cases {
		got, err := modeForVersion(v)
		if err != nil || got != want {
			t.Errorf("modeForVersion(%s) = %s, %v; want %s", v, got, err, want)
		}
	}
	// An API server built without a stamped version must not be taken for
	// one with native sidecars.
	if m, _ := modeForVersion("v0.0.0-master+$Format:%H$"); m == mutate.ModeNative {
		t.Errorf("an unstamped server version was treated as native-capable")
	}
}

func TestMainRejectsBadFlagsBeforeStarting(t *testing.T) {
	var stderr strings.Builder
	code := Main([]string{"--agent-image", "x", "--vault-addr", "vault:8200"}, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--vault-addr") {
		t.Fatalf("Main = %d, stderr %q", code, stderr.String())
	}
}
