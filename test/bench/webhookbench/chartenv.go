package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"sigs.k8s.io/yaml"
)

// chartValues is the chart's default Go runtime settings of the injector,
// which the benchmark runs it with so that it measures what installs get.
const chartValues = "charts/blinkchamber/values.yaml"

// runtimeEnv is GOGC and GOMEMLIMIT as the chart's injector Deployment
// sets them (injector.goGC, injector.goMemoryLimit); a non-empty gogc
// (the -injector-gogc flag) replaces the chart's GOGC.
func runtimeEnv(repo, gogc string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(repo, chartValues))
	if err != nil {
		return nil, err
	}
	var v struct {
		Injector struct {
			GoGC          *int   `json:"goGC"`
			GoMemoryLimit string `json:"goMemoryLimit"`
		} `json:"injector"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", chartValues, err)
	}
	if v.Injector.GoGC == nil || v.Injector.GoMemoryLimit == "" {
		return nil, fmt.Errorf("%s: injector.goGC and injector.goMemoryLimit must both be set", chartValues)
	}
	if gogc == "" {
		gogc = strconv.Itoa(*v.Injector.GoGC)
	}
	return []string{"GOGC=" + gogc, "GOMEMLIMIT=" + v.Injector.GoMemoryLimit}, nil
}
