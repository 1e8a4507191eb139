// Package injector is the injector command's application: its flags bound
// onto one Config validated before anything starts, the admission webhook
// with metrics and logs, TLS either from files or self-managed, and leader
// election for the certificate writer.
package injector

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

// ModeAuto picks native sidecars when the API server supports them.
const ModeAuto = "auto"

// Config is every setting of the injector.
type Config struct {
	Host                   string
	Port                   int
	CertDir                string
	AgentImage             string
	VaultAddr              string
	VaultCAFile            string
	DefaultMode            string
	WebhookConfigName      string
	MetricsBindAddress     string
	HealthProbeBindAddress string
	// PprofBindAddress serves net/http/pprof; off by default, as the
	// profiles expose internals to whoever can reach the port.
	PprofBindAddress   string
	LeaderElect        bool
	Namespace          string
	CertSecretName     string
	CertHosts          stringList
	AuthPath           string
	TokenAudience      string
	RenderInterval     time.Duration
	VolumeSize         string
	AgentCPURequest    string
	AgentMemoryRequest string
	AgentCPULimit      string
	AgentMemoryLimit   string
	AgentRunAsUser     int64
	AgentHealthPort    int
	AgentMetricsPort   int
	// LogLevel is the lowest level logged: debug, info, warn or error.
	LogLevel string
}

// NewConfig returns the defaults documented in the README.
func NewConfig() *Config {
	d := mutate.DefaultOptions()
	return &Config{
		Port:                   9443,
		DefaultMode:            ModeAuto,
		WebhookConfigName:      "blinkchamber-injector",
		MetricsBindAddress:     ":8080",
		HealthProbeBindAddress: ":8081",
		PprofBindAddress:       "0",
		Namespace:              namespaceFromEnv(),
		CertSecretName:         "blinkchamber-injector-tls",
		AuthPath:               d.AuthPath,
		TokenAudience:          d.TokenAudience,
		RenderInterval:         d.RenderInterval,
		VolumeSize:             d.VolumeSize.String(),
		AgentCPURequest:        qty(d.Requests.Cpu()),
		AgentMemoryRequest:     qty(d.Requests.Memory()),
		AgentCPULimit:          qty(d.Limits.Cpu()),
		AgentMemoryLimit:       qty(d.Limits.Memory()),
		AgentRunAsUser:         d.RunAsUser,
		AgentHealthPort:        d.HealthPort,
		LogLevel:               "info",
	}
}

func qty(q *resource.Quantity) string { return q.String() }

// namespaceFromEnv is the pod's namespace (downward API or the mounted
// ServiceAccount), used for leader election and the certificate Secret.
func namespaceFromEnv() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

// BindFlags binds every field onto fs.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Host, "host", c.Host, "address the webhook server listens on (empty: all)")
	fs.IntVar(&c.Port, "port", c.Port, "webhook server port")
	fs.StringVar(&c.CertDir, "cert-dir", c.CertDir, "directory with tls.crt and tls.key (reloaded on change); empty: self-managed certificates")
	fs.StringVar(&c.AgentImage, "agent-image", c.AgentImage, "agent image injected into pods (required)")
	fs.StringVar(&c.VaultAddr, "vault-addr", c.VaultAddr, "Vault address the agent uses unless a pod says otherwise (required)")
	fs.StringVar(&c.VaultCAFile, "vault-ca-file", c.VaultCAFile, "PEM file with the CA that signs Vault's certificate, passed to the agent")
	fs.StringVar(&c.DefaultMode, "default-mode", c.DefaultMode, "agent mode: auto (native on API servers >= 1.29, else sidecar), native, sidecar, init-only")
	fs.StringVar(&c.WebhookConfigName, "webhook-config-name", c.WebhookConfigName, "MutatingWebhookConfiguration whose caBundle the self-managed certificates go to")
	fs.StringVar(&c.MetricsBindAddress, "metrics-bind-address", c.MetricsBindAddress, "Prometheus metrics address (0 disables)")
	fs.StringVar(&c.HealthProbeBindAddress, "health-probe-bind-address", c.HealthProbeBindAddress, "/healthz and /readyz address (0 disables)")
	fs.StringVar(&c.PprofBindAddress, "pprof-bind-address", c.PprofBindAddress, "Go profiling (net/http/pprof) address, e.g. 127.0.0.1:6060 (0 disables)")
	fs.BoolVar(&c.LeaderElect, "leader-elect", c.LeaderElect, "elect a leader among replicas; only the leader writes certificates")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "namespace of the injector (leader lease, certificate Secret); default from POD_NAMESPACE")
	fs.StringVar(&c.CertSecretName, "cert-secret-name", c.CertSecretName, "Secret that holds the self-managed CA and serving certificate")
	fs.Var(&c.CertHosts, "cert-hosts", "comma-separated DNS names and IPs of the self-managed serving certificate (default: the injector Service's names)")
	fs.StringVar(&c.AuthPath, "auth-path", c.AuthPath, "default Vault kubernetes auth mount")
	fs.StringVar(&c.TokenAudience, "token-audience", c.TokenAudience, "default audience of the projected token")
	fs.DurationVar(&c.RenderInterval, "render-interval", c.RenderInterval, "default interval at which agents re-read static secrets")
	fs.StringVar(&c.VolumeSize, "volume-size", c.VolumeSize, "default size limit of the in-memory secrets volume")
	fs.StringVar(&c.AgentCPURequest, "agent-cpu-request", c.AgentCPURequest, "default agent CPU request")
	fs.StringVar(&c.AgentMemoryRequest, "agent-memory-request", c.AgentMemoryRequest, "default agent memory request")
	fs.StringVar(&c.AgentCPULimit, "agent-cpu-limit", c.AgentCPULimit, "default agent CPU limit")
	fs.StringVar(&c.AgentMemoryLimit, "agent-memory-limit", c.AgentMemoryLimit, "default agent memory limit")
	fs.Int64Var(&c.AgentRunAsUser, "agent-run-as-user", c.AgentRunAsUser, "agent uid when the app's securityContext names none")
	fs.IntVar(&c.AgentHealthPort, "agent-health-port", c.AgentHealthPort, "agent's localhost port for health and metrics")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "lowest level logged: debug, info, warn or error")
	fs.IntVar(&c.AgentMetricsPort, "agent-metrics-port", c.AgentMetricsPort, "when not 0, agents also serve /metrics on this port of the pod IP (container port "+mutate.MetricsPortName+") for Prometheus")
}

// SelfManagedTLS reports whether the injector issues its own certificates.
func (c *Config) SelfManagedTLS() bool { return c.CertDir == "" }

// ErrConfig is wrapped by every validation error.
var ErrConfig = errors.New("invalid injector configuration")

// Validate checks every flag and names the bad ones, before anything starts.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flagName, format string, a ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flagName, fmt.Sprintf(format, a...)))
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("port", "%d is not a TCP port", c.Port)
	}
	if c.AgentImage == "" {
		bad("agent-image", "is required")
	}
	if err := agent.ValidateVaultAddress(c.VaultAddr); err != nil {
		bad("vault-addr", "%q %v", c.VaultAddr, err)
	}
	if c.DefaultMode != ModeAuto {
		if _, err := mutate.ParseMode(c.DefaultMode); err != nil {
			bad("default-mode", "%q must be auto, native, sidecar or init-only", c.DefaultMode)
		}
	}
	if c.SelfManagedTLS() {
		if c.WebhookConfigName == "" {
			bad("webhook-config-name", "is required for self-managed certificates (no --cert-dir)")
		}
		if c.CertSecretName == "" {
			bad("cert-secret-name", "is required for self-managed certificates (no --cert-dir)")
		}
	}
	if (c.SelfManagedTLS() || c.LeaderElect) && c.Namespace == "" {
		bad("namespace", "is required for self-managed certificates and leader election (or set POD_NAMESPACE)")
	}
	for _, h := range c.CertHosts {
		if net.ParseIP(h) == nil && strings.ContainsAny(h, " /:") {
			bad("cert-hosts", "%q is neither a DNS name nor an IP address", h)
		}
	}
	if c.RenderInterval < agent.MinRenderInterval || c.RenderInterval > agent.MaxRenderInterval {
		bad("render-interval", "%s must be between %s and %s", c.RenderInterval, agent.MinRenderInterval, agent.MaxRenderInterval)
	}
	for _, q := range []struct{ name, value string }{
		{"volume-size", c.VolumeSize}, {"agent-cpu-request", c.AgentCPURequest}, {"agent-memory-request", c.AgentMemoryRequest},
		{"agent-cpu-limit", c.AgentCPULimit}, {"agent-memory-limit", c.AgentMemoryLimit},
	} {
		if v, err := resource.ParseQuantity(q.value); err != nil || v.Sign() <= 0 {
			bad(q.name, "%q is not a positive quantity such as 100m or 64Mi", q.value)
		}
	}
	if c.AgentRunAsUser < 1 {
		bad("agent-run-as-user", "%d must be a non-root uid", c.AgentRunAsUser)
	}
	if c.AgentHealthPort < 1 || c.AgentHealthPort > 65535 {
		bad("agent-health-port", "%d is not a TCP port", c.AgentHealthPort)
	}
	if c.AgentMetricsPort < 0 || c.AgentMetricsPort > 65535 {
		bad("agent-metrics-port", "%d is not a TCP port (0 turns it off)", c.AgentMetricsPort)
	} else if c.AgentMetricsPort != 0 && c.AgentMetricsPort == c.AgentHealthPort {
		bad("agent-metrics-port", "%d is the agent's health port", c.AgentMetricsPort)
	}
	if _, err := c.zapLevel(); err != nil {
		bad("log-level", "%q must be debug, info, warn or error", c.LogLevel)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}

// zapLevel is LogLevel as zap's level; zap's panic and fatal levels are
// not offered, as they would hide errors.
func (c *Config) zapLevel() (zapcore.Level, error) {
	l, err := zapcore.ParseLevel(c.LogLevel)
	if err != nil || l > zapcore.ErrorLevel {
		return 0, fmt.Errorf("log level %q: %w", c.LogLevel, ErrConfig)
	}
	return l, nil
}

// hosts are the serving certificate's names: the flag, else the names the
// API server uses to reach the injector's Service.
func (c *Config) hosts() []string {
	if len(c.CertHosts) > 0 {
		return c.CertHosts
	}
	svc := c.WebhookConfigName
	return []string{svc + "." + c.Namespace + ".svc", svc + "." + c.Namespace + ".svc.cluster.local", svc + "." + c.Namespace, svc}
}

// mutateOptions turns the validated config into the mutation defaults.
// caPEM is the content of --vault-ca-file; mode is the resolved default mode.
func (c *Config) mutateOptions(caPEM string, mode mutate.Mode) mutate.Options {
	o := mutate.DefaultOptions()
	o.AgentImage = c.AgentImage
	o.VaultAddr = strings.TrimSuffix(c.VaultAddr, "/")
	o.VaultCACert = caPEM
	o.Mode = mode
	o.AuthPath = c.AuthPath
	o.TokenAudience = c.TokenAudience
	o.RenderInterval = c.RenderInterval
	o.VolumeSize = resource.MustParse(c.VolumeSize) // validated
	o.Requests[corev1.ResourceCPU] = resource.MustParse(c.AgentCPURequest)
	o.Requests[corev1.ResourceMemory] = resource.MustParse(c.AgentMemoryRequest)
	o.Limits[corev1.ResourceCPU] = resource.MustParse(c.AgentCPULimit)
	o.Limits[corev1.ResourceMemory] = resource.MustParse(c.AgentMemoryLimit)
	o.RunAsUser = c.AgentRunAsUser
	o.HealthPort = c.AgentHealthPort
	o.MetricsPort = c.AgentMetricsPort
	return o
}

// stringList is a comma-separated flag value.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = nil
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}
