package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Exit codes, documented in the README.
const (
	ExitOK           = 0
	ExitFailure      = 1 // no complete render in time, or a runtime failure
	ExitConfig       = 2 // bad config or arguments
	ExitLoginRefused = 3 // Vault refused the role
	ExitAccess       = 4 // Vault refused a path, or it holds no secret
	ExitTemplate     = 5 // a template failed (missing key, bad function)
)

// DefaultGCPercent is the agent's GOGC unless its environment sets one.
// Go's default, 100, lets the heap grow to twice what is live (and at
// least 4 MiB) before collecting; the agent's live heap is 1-2 MiB and it
// runs in every pod, so it collects sooner: less memory held for garbage,
// for a little more CPU (docs/benchmarks.md, agent section, measures both).
const DefaultGCPercent = 50

// Version is set at build time.
var Version = "dev"

// Main runs the agent's command line: `run` (default), `probe`, `version`.
// The configuration comes only from the BLINKCHAMBER_AGENT_CONFIG variable.
func Main(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, Version)
		return ExitOK
	case "run", "probe":
	default:
		fmt.Fprintf(stderr, "unknown command %q; use run, probe or version\n", cmd)
		return ExitConfig
	}
	cfg, err := Decode([]byte(getenv(ConfigEnv)))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitConfig
	}
	if cmd == "probe" {
		if err := Probe(context.Background(), cfg.HealthAddr); err != nil {
			fmt.Fprintln(stderr, err)
			return ExitFailure
		}
		return ExitOK
	}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
	log := newLogger(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return run(ctx, cfg, log)
}

func run(ctx context.Context, cfg *Config, log logr.Logger) int {
	if err := hideFromSameUID(); err != nil {
		log.Error(err, "cannot mark the agent not dumpable; processes of its uid may read its memory")
	}
	a, err := New(cfg, log)
	if err != nil {
		log.Error(err, "agent cannot start")
		return exitCode(err)
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if err := a.ServeHealth(hctx); err != nil {
			log.Error(err, "health endpoint stopped")
		}
	}()
	go func() {
		if err := a.ServeMetrics(hctx); err != nil {
			log.Error(err, "metrics endpoint stopped")
		}
	}()
	log.Info("agent starting", "mode", cfg.Mode, "vault", cfg.Vault.Address, "role", cfg.Vault.Role,
		"secrets", len(cfg.Secrets), "renderInterval", cfg.RenderInterval.String(), "version", Version)
	if err := a.Run(ctx); err != nil {
		log.Error(err, "agent failed")
		// The kubelet shows the termination message: the same reason.
		writeTerminationMessage(err)
		return exitCode(err)
	}
	log.Info("agent stopped")
	return ExitOK
}

func exitCode(err error) int {
	switch {
	case errors.Is(err, ErrLoginRefused):
		return ExitLoginRefused
	case errors.Is(err, ErrDenied), errors.Is(err, ErrNotFound):
		return ExitAccess
	case errors.Is(err, ErrTemplate):
		return ExitTemplate
	case IsPermanent(err):
		return ExitFailure
	}
	return ExitFailure
}

// writeTerminationMessage fills /dev/termination-log where the kubelet
// provides it; elsewhere (tests, local runs) there is no such file.
func writeTerminationMessage(err error) {
	f, ferr := os.OpenFile("/dev/termination-log", os.O_WRONLY|os.O_TRUNC, 0)
	if ferr != nil {
		return
	}
	defer f.Close()
	_, _ = io.WriteString(f, err.Error())
}

func newLogger(w io.Writer) logr.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zap.InfoLevel)
	return zapr.NewLogger(zap.New(core))
}
