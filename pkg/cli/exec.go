package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/blinkchamber/blinkchamber/pkg/execenv"
)

const execUsage = `usage: blinkchamber exec --env-file <path> [--env-file <path>...] [--on-change restart|signal:SIGHUP] -- <command> [args...]

Starts the command with the variables of the env files (rendered by the
agent with blinkchamber.io/format-<name>: env) added to its environment, and
restarts it (or sends it the signal) when a file changes. Exits with the
command's exit code.

flags:
`

// stringList is a repeatable flag (--env-file, --values).
type stringList []string

func (e *stringList) String() string     { return strings.Join(*e, ",") }
func (e *stringList) Set(v string) error { *e = append(*e, v); return nil }

// execMain runs `blinkchamber exec` and returns the app's exit code. It is
// not a dispatch command: its exit code is the app's, not ok/failed.
func execMain(args []string, stdout, stderr io.Writer) int {
	o := execenv.Options{BaseEnv: os.Environ(), Stdout: stdout, Stderr: stderr}
	fs := flag.NewFlagSet("blinkchamber exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, execUsage); fs.PrintDefaults() }
	fs.Var((*stringList)(&o.EnvFiles), "env-file", "env file to read (repeatable; a later file's variable wins)")
	onChange := fs.String("on-change", "restart", "restart, or signal:<SIGNAL> (e.g. signal:SIGHUP) to signal the command instead")
	fs.DurationVar(&o.PollInterval, "poll-interval", execenv.DefaultPollInterval, "how often the env files are checked for a change")
	fs.DurationVar(&o.StopTimeout, "stop-timeout", execenv.DefaultStopTimeout, "how long a restart waits after SIGTERM before SIGKILL")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	o.Command = fs.Args()
	var err error
	if o.OnChange, err = execenv.ParseOnChange(*onChange); err != nil {
		fmt.Fprintf(stderr, "--on-change: %v\n", err)
		return ExitUsage
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	code, err := execenv.Run(ctx, o, newLogger(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "blinkchamber exec:", err)
		return ExitFailed
	}
	return code
}

// newLogger writes zap JSON lines, as the agent does.
func newLogger(w io.Writer) logr.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zap.InfoLevel)
	return zapr.NewLogger(zap.New(core)).WithName("exec")
}
