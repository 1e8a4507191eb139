package bootstrap

import (
	"context"
	"errors"
	"fmt"
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

// ErrNoChart is returned by the apps phase when the chart is missing.
var ErrNoChart = errors.New("the app stack chart is missing")
