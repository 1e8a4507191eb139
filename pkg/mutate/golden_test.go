package mutate

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenOptions are fixed injector settings so that golden files only change
// when the mutation does.
func goldenOptions() Options {
	o := DefaultOptions()
	o.AgentImage = "ghcr.io/blinkchamber/agent:v0.1.0"
	o.VaultAddr = "https://vault.vault.svc:8200"
	o.VaultCACert = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
	return o
}

// TestGolden mutates every testdata/*.yaml pod and compares the result with
// its .golden file; each case is mutated a second time to prove idempotency.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 15 {
		t.Fatalf("found %d golden cases, want at least 15", len(inputs))
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			pod := readPod(t, in)
			opts := goldenOptions()
			if strings.HasPrefix(name, "default-mode-sidecar") {
				opts.Mode = ModeSidecar
			}
			if strings.HasPrefix(name, "metrics-port") {
				opts.MetricsPort = 9102
			}
			if _, err := Mutate(pod, opts); err != nil {
				t.Fatalf("Mutate: %v", err)
			}
			got, err := yaml.Marshal(pod)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/mutate -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("mutation of %s differs from %s; rerun with -update if intended.\n--- got ---\n%s", in, golden, got)
			}
			t.Run("idempotent", func(t *testing.T) {
				again := pod.DeepCopy()
				out, err := Mutate(again, opts)
				if err != nil {
					t.Fatalf("second Mutate: %v", err)
				}
				if !reflect.DeepEqual(again, pod) {
					t.Errorf("mutating an injected pod changed it (reason %s)", out.Reason)
				}
			})
		})
	}
}

func readPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(b, &pod); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &pod
}

// BenchmarkMutate measures one injection of a realistic two-container pod
// with three secrets (allocations included), without the HTTP and JSON
// patch layers.
func BenchmarkMutate(b *testing.B) {
	pod := annotatedPod(map[string]string{
		AnnotationInject: "true", PrefixSecret + "db": "secret/data/ns/app/db",
		PrefixSecret + "api": "secret/data/ns/app/api", PrefixSecret + "creds": "database/creds/app",
		PrefixTemplate + "url": `{{ with secret "secret/data/ns/app/db" }}{{ .Data.data.url }}{{ end }}`,
	})
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "sidecar", Image: "example/side:1"})
	opts := goldenOptions()
	b.ReportAllocs()
	for b.Loop() {
		p := pod.DeepCopy()
		if _, err := Mutate(p, opts); err != nil {
			b.Fatal(err)
		}
	}
}
