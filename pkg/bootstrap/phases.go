package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/hashicorp/vault/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Targets are what the steps act on.
type Targets struct {
	Kube      client.Client
	Vault     *api.Client
	VaultAddr string
}

// Steps returns the steps of the named phases, in phase order.
func Steps(spec *Spec, t Targets, phases []string) ([]Step, error) {
	for _, p := range phases {
		if !slices.Contains(Phases, p) {
			return nil, fmt.Errorf("unknown phase %q; the phases are %v", p, Phases)
		}
	}
	var steps []Step
	for _, p := range Phases {
		if !slices.Contains(phases, p) {
			continue
		}
		switch p {
		case PhaseBase:
			steps = append(steps, baseSteps(spec, t.Kube, t.Vault, t.VaultAddr)...)
		case PhaseVault:
			steps = append(steps, vaultSteps(spec, t.Vault)...)
		case PhaseSecrets:
			if !slices.Contains(phases, PhaseVault) {
				// Run alone, the secrets phase still needs the admin token.
				steps = append(steps, Step{Phase: PhaseSecrets, Name: "admin token", Check: checkToken(spec, t.Vault), Apply: noop})
			}
			steps = append(steps, secretsSteps(spec, t.Vault)...)
		case PhaseApps:
			steps = append(steps, appsSteps(spec)...)
		}
	}
	return steps, nil
}

func noop(context.Context) error { return nil }

// ErrNoChart is returned by the apps phase while the chart does not exist.
var ErrNoChart = errors.New("the app stack chart does not exist yet")

func appsSteps(spec *Spec) []Step {
	return []Step{{Phase: PhaseApps, Name: "app stack release", Apply: noop,
		Check: func(context.Context) (Change, error) {
			chart := filepath.Join(spec.ChartDir, "Chart.yaml")
			if _, err := os.Stat(chart); errors.Is(err, fs.ErrNotExist) {
				return Change{}, fmt.Errorf("%w: %s is missing; the apps phase installs charts/blinkchamber with the Helm SDK once that chart lands (issue #5), until then run the base, vault and secrets phases", ErrNoChart, chart)
			}
			return Change{}, fmt.Errorf("%w: installing %s is not implemented yet (issue #5)", ErrNoChart, spec.ChartDir)
		}}}
}
