package agent

// Post-render actions: what the agent does after a secret's file changed
// (never after the first render, which happens before the app starts).
// A secret may have any of them; they run in this order: its command, its
// signal, its reload URL. Failure is reported (log, metric), never fatal:
// the file is already in place.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/blinkchamber/blinkchamber/pkg/envfile"
	"github.com/blinkchamber/blinkchamber/pkg/procsig"
)

// Timing of the reload call: each attempt is bounded, attempts are spaced
// by the agent's backoff (0.5 s, 1 s, 2 s, with jitter).
const (
	ReloadTimeout  = 5 * time.Second
	ReloadAttempts = 4
)

// procDir is where the agent looks for processes to signal. With
// shareProcessNamespace it lists every container's processes.
const procDir = "/proc"

// Format is how a secret's file is written.
type Format string

// FormatEnv writes KEY='value' lines (pkg/envfile) from the template's
// output, which must be a JSON object; the default template renders the
// secret's data as one.
const FormatEnv Format = "env"

// ParseFormat accepts the output formats.
func ParseFormat(s string) (Format, error) {
	if Format(s) != FormatEnv {
		return "", fmt.Errorf("must be %q (KEY='value' lines); leave it out for the template's output as is", FormatEnv)
	}
	return FormatEnv, nil
}

// Signal is a signal sent, after the file changes, to every process of the
// pod with the given name. It needs shareProcessNamespace, and the agent
// running as the same uid as those processes (it has no CAP_KILL).
type Signal struct {
	// Signal is the canonical name, such as "SIGHUP".
	Signal  string `json:"signal"`
	Process string `json:"process"`
}

// ParseSignal reads "SIGHUP:nginx": a signal name, a colon, a program name.
func ParseSignal(s string) (*Signal, error) {
	sig, proc, ok := strings.Cut(s, ":")
	if !ok {
		return nil, errors.New(`must be SIGNAL:process, such as "SIGHUP:nginx"`)
	}
	_, name, err := procsig.ParseSignal(sig)
	if err != nil {
		return nil, err
	}
	if err := procsig.ValidateProcessName(proc); err != nil {
		return nil, err
	}
	return &Signal{Signal: name, Process: proc}, nil
}

func (s *Signal) String() string { return s.Signal + ":" + s.Process }

// ValidateReloadURL accepts an http(s) URL on the loopback interface
// (localhost, 127.0.0.0/8, ::1) without credentials: the call goes to the
// app in the same pod, never across the network.
func ValidateReloadURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must start with http:// or https://")
	}
	if u.User != nil {
		return errors.New("must not carry credentials")
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return errors.New("must be on the loopback interface (localhost, 127.0.0.1 or [::1]): the agent calls the app in its own pod only")
}

// validateActions checks a secret's format and actions.
func (s *Secret) validateActions(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Format != "" {
		if _, err := ParseFormat(string(s.Format)); err != nil {
			errs = append(errs, field.Invalid(p.Child("format"), s.Format, err.Error()))
		}
	}
	if s.Signal != nil {
		if _, err := ParseSignal(s.Signal.String()); err != nil {
			errs = append(errs, field.Invalid(p.Child("signal"), s.Signal.String(), err.Error()))
		}
	}
	if s.ReloadURL != "" {
		if err := ValidateReloadURL(s.ReloadURL); err != nil {
			errs = append(errs, field.Invalid(p.Child("reloadURL"), s.ReloadURL, err.Error()))
		}
	}
	return errs
}

// encode turns a template's output into the file's content.
func (s *Secret) encode(out []byte) ([]byte, error) {
	if s.Format != FormatEnv {
		return out, nil
	}
	b, err := envfile.FromJSON(out)
	if err != nil {
		return nil, &PermanentError{fmt.Errorf("%w: secret %s: format env: %w", ErrTemplate, s.Name, err)}
	}
	return b, nil
}

// afterChange runs a secret's actions after its file changed.
func (a *Agent) afterChange(ctx context.Context, s Secret) {
	if len(s.Command) > 0 {
		a.runCommand(ctx, s)
	}
	if s.Signal != nil {
		a.sendSignal(s)
	}
	if s.ReloadURL != "" {
		a.callReload(ctx, s)
	}
}

// runCommand runs a secret's command, bounded by CommandTimeout.
func (a *Agent) runCommand(ctx context.Context, s Secret) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	start := time.Now()
	if err := a.checkProgram(s.Command[0]); err != nil {
		a.metrics.commandFailures.WithLabelValues(s.Name).Inc()
		a.log.Error(err, "command after render refused", "secret", s.Name, "command", s.Command[0])
		return
	}
	cmd := exec.CommandContext(ctx, s.Command[0], s.Command[1:]...)
	// The command's output may hold anything; it is not logged.
	err := cmd.Run()
	if err != nil {
		a.metrics.commandFailures.WithLabelValues(s.Name).Inc()
		a.log.Error(err, "command after render failed", "secret", s.Name, "command", s.Command[0], "duration", time.Since(start).String())
		return
	}
	a.log.Info("command after render succeeded", "secret", s.Name, "command", s.Command[0], "duration", time.Since(start).String())
}

// sendSignal signals every process of the pod with the secret's process
// name.
func (a *Agent) sendSignal(s Secret) {
	sig, _, err := procsig.ParseSignal(s.Signal.Signal)
	if err != nil { // validated at decode; kept for a hand-edited config
		a.log.Error(err, "signal after render", "secret", s.Name)
		return
	}
	res, err := procsig.Send(procDir, s.Signal.Process, sig)
	a.metrics.signalled.WithLabelValues(s.Name).Add(float64(len(res.Signalled)))
	switch {
	case errors.Is(err, procsig.ErrNoProcess):
		a.metrics.signalNoProcess.WithLabelValues(s.Name).Inc()
		a.log.Info("no process to signal after render; does the pod share its process namespace, and is the name right?",
			"secret", s.Name, "process", s.Signal.Process, "signal", s.Signal.Signal)
	case errors.Is(err, procsig.ErrDenied):
		a.metrics.signalFailures.WithLabelValues(s.Name).Inc()
		a.log.Error(err, "signal after render refused: the agent must run as the same uid as the process (blinkchamber.io/agent-run-as-user)",
			"secret", s.Name, "process", s.Signal.Process, "signal", s.Signal.Signal, "signalled", len(res.Signalled))
	case err != nil:
		a.metrics.signalFailures.WithLabelValues(s.Name).Inc()
		a.log.Error(err, "signal after render failed", "secret", s.Name, "process", s.Signal.Process, "signal", s.Signal.Signal)
	default:
		a.log.Info("signalled after render", "secret", s.Name, "process", s.Signal.Process, "signal", s.Signal.Signal, "processes", len(res.Signalled))
	}
}

// reloadClient calls the app on loopback only: no proxy, no redirects
// (a redirect could lead off the pod).
var reloadClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	Timeout:   ReloadTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return errors.New("the reload URL answered with a redirect, which the agent does not follow")
	},
}

// callReload POSTs to the secret's reload URL until it answers 2xx, at
// most ReloadAttempts times with backoff between attempts.
func (a *Agent) callReload(ctx context.Context, s Secret) {
	b := newBackoff()
	var err error
	for attempt := 1; attempt <= ReloadAttempts; attempt++ {
		if err = postReload(ctx, s.ReloadURL); err == nil {
			a.log.Info("reload URL called after render", "secret", s.Name, "url", s.ReloadURL, "attempt", attempt)
			return
		}
		a.log.Info("reload URL call failed", "secret", s.Name, "url", s.ReloadURL, "attempt", attempt, "reason", err.Error())
		if attempt < ReloadAttempts && !b.wait(ctx) {
			break
		}
	}
	a.metrics.reloadFailures.WithLabelValues(s.Name).Inc()
	a.log.Error(err, "reload URL failed; giving up until the next change", "secret", s.Name, "url", s.ReloadURL, "attempts", ReloadAttempts)
}

// postReload makes one call. The app's answer is not read into any log:
// only its status code counts.
func postReload(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "blinkchamber-agent/"+Version)
	resp, err := reloadClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

// ErrProgramInVolume is wrapped when a command's program is a file on one
// of the agent's own volumes.
var ErrProgramInVolume = errors.New("the program is on one of the agent's volumes; the agent runs only programs of its image")

// checkProgram refuses to run a program that lives on the secrets or state
// volume, whatever path reaches it (/proc/self/root/..., a symlink): the
// file's device is compared with the volumes'. Nothing can put a symlink
// or directory into those volumes (the agent writes regular files only and
// the app mounts them read-only), so the check cannot be raced.
func (a *Agent) checkProgram(prog string) error {
	resolved, err := exec.LookPath(prog)
	if err != nil {
		return fmt.Errorf("command %s: %w", prog, err)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return fmt.Errorf("command %s: %w", prog, err)
	}
	for _, dir := range []string{a.cfg.SecretsDir, a.cfg.StateDir} {
		if dir == "" {
			continue
		}
		if di, err := os.Stat(dir); err == nil && sameDevice(fi, di) {
			return fmt.Errorf("command %s: %w", prog, ErrProgramInVolume)
		}
	}
	return nil
}

// sameDevice reports whether a and b are on one file system.
func sameDevice(a, b os.FileInfo) bool {
	sa, okA := a.Sys().(*syscall.Stat_t)
	sb, okB := b.Sys().(*syscall.Stat_t)
	return okA && okB && sa.Dev == sb.Dev
}
