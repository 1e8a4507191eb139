// Package execenv is `blinkchamber exec`: it starts an app with the
// variables of env files the agent renders (format env) added to its
// environment, and restarts or signals it when the files change. It is for
// images whose apps read their secrets only from environment variables.
//
// The values are secrets: they travel only in the child's environment,
// never in an argument list, a log line or an error.
package execenv

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/blinkchamber/blinkchamber/pkg/envfile"
	"github.com/blinkchamber/blinkchamber/pkg/procsig"
)

// Defaults of Options.
const (
	DefaultPollInterval = time.Second
	DefaultStopTimeout  = 10 * time.Second
)

// OnChange is what happens to the app when an env file changes.
type OnChange struct {
	// Signal, when not 0, is sent instead of restarting. The app's
	// environment does not change: use it for apps that re-exec
	// themselves or re-read the file on that signal.
	Signal syscall.Signal
	name   string
}

// Restart is the default: stop the app (SIGTERM, then SIGKILL after the
// stop timeout) and start it again with the new variables.
var Restart = OnChange{name: "restart"}

func (o OnChange) String() string { return o.name }

// ParseOnChange reads "restart" or "signal:SIGHUP".
func ParseOnChange(s string) (OnChange, error) {
	if s == "restart" {
		return Restart, nil
	}
	name, ok := strings.CutPrefix(s, "signal:")
	if !ok {
		return OnChange{}, fmt.Errorf(`%q must be "restart" or "signal:<SIGNAL>", such as signal:SIGHUP`, s)
	}
	sig, canonical, err := procsig.ParseSignal(name)
	if err != nil {
		return OnChange{}, err
	}
	return OnChange{Signal: sig, name: "signal:" + canonical}, nil
}

// Options configure Run; the CLI binds its flags onto them.
type Options struct {
	// EnvFiles are read in order; a later file's variable wins.
	EnvFiles []string
	OnChange OnChange
	// Command is the app: program and arguments.
	Command      []string
	PollInterval time.Duration
	StopTimeout  time.Duration
	// BaseEnv is the environment the variables are added to (the CLI's own).
	BaseEnv        []string
	Stdout, Stderr io.Writer
}

// ErrUsage is wrapped by Validate.
var ErrUsage = errors.New("invalid exec options")

// Validate checks the options, naming the flag at fault.
func (o *Options) Validate() error {
	var errs []error
	if len(o.EnvFiles) == 0 {
		errs = append(errs, errors.New("--env-file: at least one env file is needed"))
	}
	if len(o.Command) == 0 || o.Command[0] == "" {
		errs = append(errs, errors.New("no command: give the app after --, e.g. blinkchamber exec --env-file /blinkchamber/secrets/app.env -- /app/server"))
	}
	if o.OnChange.name == "" {
		errs = append(errs, errors.New("--on-change: must be restart or signal:<SIGNAL>"))
	}
	if o.PollInterval < 100*time.Millisecond || o.PollInterval > time.Hour {
		errs = append(errs, fmt.Errorf("--poll-interval: %s must be between 100ms and 1h", o.PollInterval))
	}
	if o.StopTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--stop-timeout: %s must be positive", o.StopTimeout))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrUsage, errors.Join(errs...))
	}
	return nil
}

// snapshot is what the env files held at one read.
type snapshot struct {
	sum  [sha256.Size]byte
	vars []envfile.Var
}

// load reads every env file and their digest.
func (o *Options) load() ([][]byte, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h := sha256.New()
	contents := make([][]byte, 0, len(o.EnvFiles))
	for _, f := range o.EnvFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, sum, fmt.Errorf("env file: %w", err)
		}
		h.Write(b)
		h.Write([]byte{0})
		contents = append(contents, b)
	}
	h.Sum(sum[:0])
	return contents, sum, nil
}

// read reads and parses every env file. Errors name the file and the line,
// never a value.
func (o *Options) read() (*snapshot, error) {
	contents, sum, err := o.load()
	if err != nil {
		return nil, err
	}
	s := &snapshot{sum: sum}
	for i, b := range contents {
		vs, err := envfile.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("env file %s: %w", o.EnvFiles[i], err)
		}
		s.vars = append(s.vars, vs...)
	}
	return s, nil
}

// environ is the base environment with the variables set (replacing a
// base variable of the same name).
func (o *Options) environ(s *snapshot) []string {
	set := map[string]bool{}
	for _, v := range s.vars {
		set[v.Name] = true
	}
	env := make([]string, 0, len(o.BaseEnv)+len(s.vars))
	for _, kv := range o.BaseEnv {
		name, _, _ := strings.Cut(kv, "=")
		if !set[name] {
			env = append(env, kv)
		}
	}
	last := map[string]string{}
	var order []string
	for _, v := range s.vars {
		if _, seen := last[v.Name]; !seen {
			order = append(order, v.Name)
		}
		last[v.Name] = v.Value
	}
	for _, n := range order {
		env = append(env, n+"="+last[n])
	}
	return env
}
