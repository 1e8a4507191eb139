package main

import (
	"fmt"
	"path/filepath"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// injectorTemplate is the chart's injector Deployment, whose Go runtime
// settings the benchmark runs the injector with, so that it measures what
// an install gets.
const injectorTemplate = "blinkchamber/templates/injector/deployment.yaml"

// runtimeEnv is GOGC and GOMEMLIMIT as the chart, rendered with its
// default values, sets them on the injector; a non-empty gogc (the
// -injector-gogc flag) replaces GOGC.
func runtimeEnv(repo, gogc string) ([]string, error) {
	ch, err := loader.Load(filepath.Join(repo, "charts", "blinkchamber"))
	if err != nil {
		return nil, err
	}
	vals, err := chartutil.ToRenderValues(ch, map[string]any{},
		common.ReleaseOptions{Name: "bench", Namespace: "blinkchamber", IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("rendering the chart: %w", err)
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal([]byte(files[injectorTemplate]), &d); err != nil {
		return nil, fmt.Errorf("%s: %w", injectorTemplate, err)
	}
	env := map[string]string{}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
	}
	if gogc == "" {
		gogc = env["GOGC"]
	}
	if gogc == "" || env["GOMEMLIMIT"] == "" {
		return nil, fmt.Errorf("%s sets no GOGC or GOMEMLIMIT on the injector", injectorTemplate)
	}
	return []string{"GOGC=" + gogc, "GOMEMLIMIT=" + env["GOMEMLIMIT"]}, nil
}
