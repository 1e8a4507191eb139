package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"

	"github.com/blinkchamber/blinkchamber/pkg/images"
)

// TestImagesPushNamesWhatTheChartPulls: `blinkchamber images list` and
// `images push` read the images from the chart's values; in every
// environment the chart renders no image they miss, and with
// global.imageRegistry each image (the injector's --agent-image included)
// is the name push gives it in that registry.
func TestImagesPushNamesWhatTheChartPulls(t *testing.T) {
	const registry = "registry.example.com:5000/mirror"
	ch := loadChart(t)
	containers := func(p *corev1.Pod) []corev1.Container {
		return append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...)
	}
	for _, env := range renderCases {
		t.Run(env, func(t *testing.T) {
			base, _ := strings.CutSuffix(env, "+all")
			listed, err := images.ChartImages(chartDir(t), filepath.Join(chartDir(t), "values-"+base+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			named := map[string]bool{}
			for _, c := range listed {
				n, err := name.NewTag(c.Ref())
				if err != nil {
					t.Fatal(err)
				}
				named[n.Name()] = true
			}
			plainObjs := render(t, ch, env)
			mirroredObjs := renderWith(t, ch, env, func(user map[string]any) {
				valuesMap(user, "global")["imageRegistry"] = registry
			})
			agent := agentImageFlag(t, plainObjs)
			if want, err := images.MirrorRef(agent, registry); err != nil || agentImageFlag(t, mirroredObjs) != want {
				t.Errorf("--agent-image %s with the registry, want %s (%v)", agentImageFlag(t, mirroredObjs), want, err)
			}
			plain, mirrored := podSpecs(t, plainObjs), podSpecs(t, mirroredObjs)
			if len(plain) == 0 || len(plain) != len(mirrored) {
				t.Fatalf("%d pod specs, %d with the registry", len(plain), len(mirrored))
			}
			for key, pod := range plain {
				ms := containers(mirrored[key])
				for i, c := range containers(pod) {
					if n, err := name.NewTag(c.Image); err != nil || !named[n.Name()] {
						t.Errorf("%s: container %s's image %s is not among the images the values name", key, c.Name, c.Image)
					}
					want, err := images.MirrorRef(c.Image, registry)
					if err != nil {
						t.Fatal(err)
					}
					if i >= len(ms) || ms[i].Image != want {
						t.Errorf("%s: container %s: with the registry, want %s", key, c.Name, want)
					}
				}
			}
		})
	}
}
