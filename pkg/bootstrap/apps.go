package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// ErrReleaseFormat is returned when the release in the cluster is not in
// the release format of apiVersion v2 charts.
var ErrReleaseFormat = errors.New("release is not in Helm's v1 release format")

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
			rel, err := getRelease(cfg, a.Release)
			switch {
			case errors.Is(err, driver.ErrReleaseNotFound):
				return Needs("install %s with values-%s.yaml", a.ChartDir, spec.Environment), nil
			case err != nil:
				return Change{}, err
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
			// As `helm install`/`helm upgrade` of Helm 4 without --wait:
			// server-side apply (an upgrade keeps the release's own
			// method), and only the hooks are waited for.
			if _, err := action.NewGet(cfg).Run(a.Release); errors.Is(err, driver.ErrReleaseNotFound) {
				in := action.NewInstall(cfg)
				in.ReleaseName, in.Namespace, in.CreateNamespace = a.Release, a.Namespace, true
				in.WaitStrategy = kube.HookOnlyStrategy
				_, err = in.RunWithContext(ctx, ch, vals)
				return err
			}
			up := action.NewUpgrade(cfg)
			up.Namespace, up.WaitStrategy = a.Namespace, kube.HookOnlyStrategy
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
	vals, err := common.ReadValuesFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", file, err)
	}
	m := vals.AsMap()
	m["vault"] = map[string]any{"enabled": false, "externalAddress": spec.VaultAddr}
	m["bootstrap"] = map[string]any{"enabled": false}
	// Helm's own log is left out, as the Helm CLI leaves it out without --debug.
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(a.Getter, a.Namespace, "secret"); err != nil {
		return nil, nil, fmt.Errorf("helm: %w", err)
	}
	return cfg, m, nil
}

// getRelease is the release's last revision. Helm 4 returns it as an
// opaque value; this chart's releases are all of Helm's v1 release format
// (the one of apiVersion v2 charts).
func getRelease(cfg *action.Configuration, name string) (*releasev1.Release, error) {
	r, err := action.NewGet(cfg).Run(name)
	if err != nil {
		return nil, fmt.Errorf("reading release %s: %w", name, err)
	}
	rel, ok := r.(*releasev1.Release)
	if !ok {
		return nil, fmt.Errorf("reading release %s: %w: %T", name, ErrReleaseFormat, r)
	}
	return rel, nil
}
