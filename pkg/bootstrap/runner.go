// Package bootstrap provisions Vault and the platform in four phases
// (base, vault, secrets, apps). Every phase is a list of steps; each step
// first checks what it would change and only then changes it, so the same
// code serves `plan` (check only), `bootstrap` (check, then apply) and drift
// repair, and a second run reports zero changes.
package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Phase names, in order.
const (
	PhaseBase    = "base"
	PhaseVault   = "vault"
	PhaseSecrets = "secrets"
	PhaseApps    = "apps"
)

// Phases lists the phases in the order `bootstrap all` runs them.
var Phases = []string{PhaseBase, PhaseVault, PhaseSecrets, PhaseApps}

// Step is one idempotent unit of provisioning.
type Step struct {
	Phase string
	Name  string
	// Check says whether the step would change anything and what; it must
	// not change anything itself.
	Check func(ctx context.Context) (Change, error)
	// Apply makes the change Check described.
	Apply func(ctx context.Context) error
}

// Change is what a step's Check found.
type Change struct {
	Needed bool
	// Detail says what would change (or why nothing needs to). It never
	// holds a secret value.
	Detail string
}

// Unchanged and Needs build Changes.
func Unchanged(detail string) Change { return Change{Detail: detail} }

func Needs(format string, a ...any) Change {
	return Change{Needed: true, Detail: fmt.Sprintf(format, a...)}
}

// ErrBlocked is returned by a Check that cannot look yet because an earlier
// step has not been applied (for example, Vault is not initialised during
// a plan). The plan reports the step as pending.
var ErrBlocked = errors.New("depends on an earlier step")

// Status of a step in a report.
type Status string

const (
	StatusOK      Status = "ok"      // nothing to change
	StatusChanged Status = "changed" // applied
	StatusPlanned Status = "planned" // would change (plan)
	StatusPending Status = "pending" // cannot be checked before earlier steps (plan)
	StatusFailed  Status = "failed"
)

// Result is one step's outcome.
type Result struct {
	Phase    string        `json:"phase"`
	Step     string        `json:"step"`
	Status   Status        `json:"status"`
	Detail   string        `json:"detail,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"durationNs"`
}

// Report is the outcome of a run.
type Report struct {
	DryRun  bool     `json:"dryRun"`
	Results []Result `json:"results"`
	Changed int      `json:"changed"`
	Planned int      `json:"planned"`
	Failed  int      `json:"failed"`
}

// Progress receives each result as it happens.
type Progress interface{ Step(Result) }

// TextProgress prints one line per step, for terminals and logs.
type TextProgress struct{ W io.Writer }

func (p TextProgress) Step(r Result) {
	mark := map[Status]string{StatusOK: "ok     ", StatusChanged: "changed", StatusPlanned: "plan   ",
		StatusPending: "pending", StatusFailed: "FAILED "}[r.Status]
	line := fmt.Sprintf("[%-7s] %s %s", r.Phase, mark, r.Step)
	if r.Detail != "" {
		line += ": " + r.Detail
	}
	if r.Error != "" {
		line += ": " + r.Error
	}
	fmt.Fprintln(p.W, line)
}

// NoProgress discards progress (JSON output prints the report at the end).
type NoProgress struct{}

func (NoProgress) Step(Result) {}

// Run checks each step in order and, unless dryRun, applies the ones that
// need it. It stops at the first failure: later steps depend on earlier
// ones. In a dry run a blocked check makes the rest of its phase pending.
func Run(ctx context.Context, steps []Step, dryRun bool, p Progress) (*Report, error) {
	rep := &Report{DryRun: dryRun}
	crashAfter, _ := strconv.Atoi(os.Getenv(CrashEnv))
	for _, s := range steps {
		start := time.Now()
		r := Result{Phase: s.Phase, Step: s.Name}
		err := runStep(ctx, s, dryRun, &r)
		r.Duration = time.Since(start)
		rep.Results = append(rep.Results, r)
		switch r.Status {
		case StatusChanged:
			rep.Changed++
			if rep.Changed == crashAfter {
				crash()
			}
		case StatusPlanned, StatusPending:
			rep.Planned++
		case StatusFailed:
			rep.Failed++
		}
		p.Step(r)
		if err != nil {
			return rep, fmt.Errorf("%s: %s: %w", s.Phase, s.Name, err)
		}
	}
	return rep, nil
}

// CrashEnv is a test hook: set to n, a run kills its own process with
// SIGKILL right after its n-th change is applied, before the change is
// reported or the next step starts, as a node failure or an OOM kill would.
// test/e2e runs bootstrap with n=1 until it converges, which interrupts it
// after every step in turn. Nothing else sets it.
const CrashEnv = "BLINKCHAMBER_TEST_CRASH_AFTER_CHANGES"

func crash() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is delivered before this returns in practice; never go on
}

func runStep(ctx context.Context, s Step, dryRun bool, r *Result) error {
	c, err := s.Check(ctx)
	switch {
	case errors.Is(err, ErrBlocked) && dryRun:
		r.Status, r.Detail = StatusPending, "checked once earlier steps are applied"
		return nil
	case err != nil:
		r.Status, r.Error = StatusFailed, err.Error()
		return err
	}
	r.Detail = c.Detail
	switch {
	case !c.Needed:
		r.Status = StatusOK
	case dryRun:
		r.Status = StatusPlanned
	default:
		if err := s.Apply(ctx); err != nil {
			r.Status, r.Error = StatusFailed, err.Error()
			return err
		}
		r.Status = StatusChanged
	}
	return nil
}

// WriteJSON prints the report for --output json.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
