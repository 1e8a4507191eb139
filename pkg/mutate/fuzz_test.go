package mutate

import (
	"testing"

	"github.com/blinkchamber/blinkchamber/pkg/agent"
)

// FuzzParse feeds arbitrary annotation keys and values through Parse and
// Mutate: never a panic, and whatever is injected decodes and validates as
// the agent's config.
func FuzzParse(f *testing.F) {
	f.Add("secret-db", "secret/data/a/b", "template-db", `{{ with secret "x" }}{{ .Data.data.k }}{{ end }}`)
	f.Add("perms-db", "0440", "file-db", "db.env")
	f.Add("mode", "sidecar", "containers", "app")
	f.Add("agent-memory-limit", "1Gi", "render-interval", "1s")
	f.Add("command-db", `["/bin/kill","-HUP","1"]`, "file-db", "../x")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		pod := annotatedPod(map[string]string{
			AnnotationInject: "true", PrefixSecret + "db": "secret/data/ns/app/db",
			Prefix + k1: v1, Prefix + k2: v2,
		})
		before := pod.DeepCopy()
		out, err := Mutate(pod, goldenOptions())
		if err != nil {
			if pod.String() != before.String() {
				t.Fatalf("refused pod was changed")
			}
			return
		}
		if !out.Injected {
			return
		}
		for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
			for _, e := range c.Env {
				if e.Name == agent.ConfigEnv {
					if _, err := agent.Decode([]byte(e.Value)); err != nil {
						t.Fatalf("injected config does not decode: %v", err)
					}
				}
			}
		}
	})
}
