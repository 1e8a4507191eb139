package injector

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	ctrl "sigs.k8s.io/controller-runtime"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Main parses args, validates them, and runs the injector until SIGTERM.
// It returns the process exit code: 0 on a clean stop, 2 on bad flags,
// 1 on a runtime failure.
func Main(args []string, stderr io.Writer) int {
	cfg := NewConfig()
	fs := flag.NewFlagSet("injector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	level, _ := cfg.zapLevel() // validated
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	zl, err := zc.Build()
	if err != nil {
		fmt.Fprintln(stderr, "creating logger:", err)
		return 1
	}
	defer func() { _ = zl.Sync() }()
	log := zapr.NewLogger(zl)
	// controller-runtime's own packages log through its delegating logger;
	// hand them the same one so there is a single log stream.
	crlog.SetLogger(log)
	rc, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "loading kubeconfig")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg, rc, log); err != nil {
		log.Error(err, "injector stopped")
		return 1
	}
	return 0
}
