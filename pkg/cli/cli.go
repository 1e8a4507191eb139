// Package cli is the blinkchamber command: global flags bound onto one
// Options struct, validated before anything runs, then a subcommand.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/blinkchamber/blinkchamber/pkg/bootstrap"
)

// Version is set at build time.
var Version = "dev"

// Options are the global flags.
type Options struct {
	Config     string
	Env        string
	Kubeconfig string
	Output     string
	DryRun     bool
	Chart      string
}

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

const usage = `usage: blinkchamber [flags] <command>

commands:
  bootstrap [all|base|vault|secrets|apps]   provision, phase by phase (--dry-run: plan only)
  plan [all|base|vault|secrets|apps]        what bootstrap would change, changing nothing
  status                                    Vault's state and what bootstrap manages
  unseal                                    unseal Vault with the keys from the key store
  secrets rotate <app>/<secret>             replace a secret's generated values
  seal-config                               print the seal stanza of Vault's server config (transit, awskms)
  exec --env-file <path> -- <command>...    run an app with an agent-rendered env file, restart it on change
  migrate [file|-]...                       print manifests with vault.hashicorp.com/ annotations rewritten as blinkchamber.io/ ones
  images list                               the images the chart names and the archives (make images) that hold them
  images push --registry HOST[:PORT]        mirror the image archives to a registry (air-gapped installs)
  version                                   print the version

flags:
`

// Main runs the command line and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	o := &Options{}
	fs := flag.NewFlagSet("blinkchamber", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.Config, "config", "blinkchamber.yaml", "bootstrap config file")
	fs.StringVar(&o.Env, "env", "", "development, staging or production; must match the config's environment")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.StringVar(&o.Output, "output", "text", "text or json")
	fs.BoolVar(&o.DryRun, "dry-run", false, "bootstrap: show the plan, change nothing")
	fs.StringVar(&o.Chart, "chart", "charts/blinkchamber", "the chart the apps phase installs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return ExitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return ExitUsage
	}
	if rest[0] == "version" {
		fmt.Fprintln(stdout, Version)
		return ExitOK
	}
	if rest[0] == "exec" {
		return execMain(rest[1:], stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := dispatch(ctx, o, rest, stdout, stderr)
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, err)
		return ExitUsage
	case err != nil:
		fmt.Fprintln(stderr, "blinkchamber:", err)
		return ExitFailed
	}
	return ExitOK
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func (o *Options) validate() error {
	var errs []string
	if o.Output != "text" && o.Output != "json" {
		errs = append(errs, fmt.Sprintf("--output: %q must be text or json", o.Output))
	}
	if o.Env != "" && !slices.Contains([]string{"development", "staging", "production"}, o.Env) {
		errs = append(errs, fmt.Sprintf("--env: %q must be development, staging or production", o.Env))
	}
	if o.Config == "" {
		errs = append(errs, "--config: must name a file")
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

func dispatch(ctx context.Context, o *Options, args []string, stdout, stderr io.Writer) error {
	switch args[0] {
	case "bootstrap":
		return runPhases(ctx, o, args[1:], o.DryRun, stdout)
	case "plan":
		return runPhases(ctx, o, args[1:], true, stdout)
	case "status":
		return status(ctx, o, stdout)
	case "unseal":
		return unseal(ctx, o, stdout)
	case "seal-config":
		return sealConfig(o, stdout)
	case "migrate":
		return migrateCmd(args[1:], os.Stdin, stdout, stderr)
	case "images":
		return imagesCmd(ctx, o, args[1:], stdout, stderr)
	case "secrets":
		if len(args) != 3 || args[1] != "rotate" {
			return &usageError{"usage: blinkchamber secrets rotate <app>/<secret>"}
		}
		return rotate(ctx, o, args[2], stdout)
	}
	return &usageError{fmt.Sprintf("unknown command %q; run blinkchamber -h", args[0])}
}

// phasesFrom turns `bootstrap [all|phase...]` into phase names.
func phasesFrom(args []string) ([]string, error) {
	if len(args) == 0 || len(args) == 1 && args[0] == "all" {
		return bootstrap.Phases, nil
	}
	for _, a := range args {
		if !slices.Contains(bootstrap.Phases, a) {
			return nil, &usageError{fmt.Sprintf("unknown phase %q; use all, %s", a, strings.Join(bootstrap.Phases, ", "))}
		}
	}
	return args, nil
}

func runPhases(ctx context.Context, o *Options, args []string, dryRun bool, stdout io.Writer) error {
	phases, err := phasesFrom(args)
	if err != nil {
		return err
	}
	env, err := load(ctx, o)
	if err != nil {
		return err
	}
	steps, err := bootstrap.Steps(env.spec, env.targets, phases)
	if err != nil {
		return err
	}
	var p bootstrap.Progress = bootstrap.TextProgress{W: stdout}
	if o.Output == "json" {
		p = bootstrap.NoProgress{}
	}
	rep, runErr := bootstrap.Run(ctx, steps, dryRun, p)
	if o.Output == "json" {
		if err := rep.WriteJSON(stdout); err != nil {
			return err
		}
	} else {
		summary(stdout, rep)
	}
	return runErr
}

func summary(w io.Writer, rep *bootstrap.Report) {
	if rep.DryRun {
		fmt.Fprintf(w, "plan: %d to change, %d failed, %d steps\n", rep.Planned, rep.Failed, len(rep.Results))
		return
	}
	fmt.Fprintf(w, "done: %d changed, %d failed, %d steps\n", rep.Changed, rep.Failed, len(rep.Results))
}
