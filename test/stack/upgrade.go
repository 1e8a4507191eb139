package stack

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"

	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// Upgrade runs `helm upgrade` of the release with values merged over the
// stack's own, waiting for the bootstrap Job, as a platform team does to
// onboard an app. The Helm SDK calls are here and in helmInstall only.
func (s *Stack) Upgrade(ctx context.Context, values map[string]any) error {
	ch, err := loadChart()
	if err != nil {
		return err
	}
	cfg, err := s.HelmConfig()
	if err != nil {
		return err
	}
	up := action.NewUpgrade(cfg)
	// `helm upgrade --wait --wait-for-jobs` of Helm 4, keeping the apply
	// method the release was installed with.
	up.Namespace, up.WaitStrategy, up.WaitForJobs, up.Timeout = Namespace, kube.StatusWatcherStrategy, true, 5*time.Minute
	up.ServerSideApply = "auto"
	if _, err := up.RunWithContext(ctx, Release, ch, chartutil.MergeTables(cloneValues(values), s.values())); err != nil {
		return fmt.Errorf("helm upgrade: %w", err)
	}
	return nil
}

// loadChart loads the repository's chart.
func loadChart() (*chart.Chart, error) {
	repo, err := toolchain.RepoRoot()
	if err != nil {
		return nil, err
	}
	return loader.Load(filepath.Join(repo, "charts", "blinkchamber"))
}
