package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// Release is where phase 4 installs the chart.
type Release struct {
	ChartDir  string
	Release   string
	Namespace string
	// Getter reaches the cluster for the Helm SDK.
	Getter genericclioptions.RESTClientGetter
}

// appsSteps is phase 4: install or upgrade the chart with the Helm SDK,
// with the environment's values file, Vault and the bootstrap Job left out
// (this command is the bootstrap, and Vault is the one it just provisioned).
func appsSteps(spec *Spec) []Step {
	a := spec.Release
	return []Step{{Phase: PhaseApps, Name: fmt.Sprintf("release %s/%s", a.Namespace, a.Release),
		Check: func(ctx context.Context) (Change, error) {
			cfg, vals, err := appsRelease(spec)
			if err != nil {
				return Change{}, err
			}
			rel, err := action.NewGet(cfg).Run(a.Release)
			switch {
			case errors.Is(err, driver.ErrReleaseNotFound):
				return Needs("install %s with values-%s.yaml", a.ChartDir, spec.Environment), nil
			case err != nil:
				return Change{}, fmt.Errorf("reading release %s: %w", a.Release, err)
			}
			ch, err := loader.Load(a.ChartDir)
			if err != nil {
				return Change{}, err
			}
			if rel.Info.Status != "deployed" || rel.Chart.Metadata.Version != ch.Metadata.Version || !reflect.DeepEqual(rel.Config, vals) {
				return Needs("upgrade (revision %d, %s)", rel.Version, rel.Info.Status), nil
			}
			return Unchanged(fmt.Sprintf("revision %d deployed", rel.Version)), nil
		},
		Apply: func(ctx context.Context) error {
			cfg, vals, err := appsRelease(spec)
			if err != nil {
				return err
			}
			ch, err := loader.Load(a.ChartDir)
			if err != nil {
				return err
			}
			if _, err := action.NewGet(cfg).Run(a.Release); errors.Is(err, driver.ErrReleaseNotFound) {
				in := action.NewInstall(cfg)
				in.ReleaseName, in.Namespace, in.CreateNamespace = a.Release, a.Namespace, true
				_, err = in.RunWithContext(ctx, ch, vals)
				return err
			}
			up := action.NewUpgrade(cfg)
			up.Namespace = a.Namespace
			_, err = up.RunWithContext(ctx, a.Release, ch, vals)
			return err
		}}}
}

// appsRelease is the Helm configuration and the release's values.
func appsRelease(spec *Spec) (*action.Configuration, map[string]any, error) {
	a := spec.Release
	file := filepath.Join(a.ChartDir, "values-"+spec.Environment+".yaml")
	if _, err := os.Stat(filepath.Join(a.ChartDir, "Chart.yaml")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: %s has no Chart.yaml (run from the repository root or pass --chart)", ErrNoChart, a.ChartDir)
	}
	vals, err := chartutil.ReadValuesFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", file, err)
	}
	m := vals.AsMap()
	m["vault"] = map[string]any{"enabled": false, "externalAddress": spec.VaultAddr}
	m["bootstrap"] = map[string]any{"enabled": false}
	cfg := &action.Configuration{}
	if err := cfg.Init(a.Getter, a.Namespace, "secret", func(string, ...any) {}); err != nil {
		return nil, nil, fmt.Errorf("helm: %w", err)
	}
	return cfg, m, nil
}
