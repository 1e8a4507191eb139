package e2e

import (
	"flag"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/chart/*.golden from the current render")

// podKnobs is what the scheduling, metadata and image values of the chart
// change in one rendered pod.
type podKnobs struct {
	Labels            map[string]string   `json:"labels,omitempty"`
	Annotations       map[string]string   `json:"annotations,omitempty"`
	PriorityClassName string              `json:"priorityClassName,omitempty"`
	NodeSelector      map[string]string   `json:"nodeSelector,omitempty"`
	Tolerations       []corev1.Toleration `json:"tolerations,omitempty"`
	Affinity          *corev1.Affinity    `json:"affinity,omitempty"`
	// Images by container name, and the agent image the injector puts
	// into pods (its --agent-image).
	Images     map[string]string `json:"images"`
	AgentImage string            `json:"agentImage,omitempty"`
}

// knobsOf projects the pods of a render. Values the knobs do not change
// and that change for other reasons (templates, checksums, the chart's
// version) are elided, so that the golden files move only with the knobs.
func knobsOf(t *testing.T, objs []*unstructured.Unstructured) map[string]podKnobs {
	t.Helper()
	agent := agentImageFlag(t, objs)
	out := map[string]podKnobs{}
	for owner, pod := range podSpecs(t, objs) {
		k := podKnobs{
			Labels: maps.Clone(pod.Labels), Annotations: maps.Clone(pod.Annotations),
			PriorityClassName: pod.Spec.PriorityClassName, NodeSelector: pod.Spec.NodeSelector,
			Tolerations: pod.Spec.Tolerations, Affinity: pod.Spec.Affinity, Images: map[string]string{},
		}
		for key := range k.Annotations {
			if strings.HasPrefix(key, "blinkchamber.io/template-") || strings.HasPrefix(key, "checksum/") {
				k.Annotations[key] = "(elided)"
			}
		}
		if _, ok := k.Labels["helm.sh/chart"]; ok {
			k.Labels["helm.sh/chart"] = "(elided)"
		}
		for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
			k.Images[c.Name] = c.Image
		}
		if owner == "Deployment/bc-injector" {
			k.AgentImage = agent
		}
		out[owner] = k
	}
	return out
}

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// everyKnob sets every scheduling and metadata value of every component
// that makes pods, and a digest on every image.
func everyKnob(user map[string]any) {
	valuesMap(user, "global")["imageRegistry"] = "registry.test:5000"
	toleration := []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "platform", "effect": "NoSchedule"}}
	nodeAffinity := map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
		"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{
			map[string]any{"key": "topology.kubernetes.io/zone", "operator": "In", "values": []any{"zone-a"}}}}}}}
	components := map[string]map[string]any{"injector": valuesMap(user, "injector"), "vault": valuesMap(user, "vault"),
		"bootstrap": valuesMap(user, "bootstrap"), "tests": valuesMap(user, "tests")}
	for _, c := range []string{"postgresql", "minio", "grafana", "prometheus", "zitadel", "mailu", "vaultBackup"} {
		components["apps."+c] = valuesMap(valuesMap(user, "apps"), c)
	}
	for name, c := range components {
		c["nodeSelector"] = map[string]any{"pool": "platform"}
		c["tolerations"] = toleration
		c["affinity"] = map[string]any{"nodeAffinity": nodeAffinity}
		c["priorityClassName"] = "platform-critical"
		if name != "tests" {
			c["podAnnotations"] = map[string]any{"example.com/owner": name}
			c["podLabels"] = map[string]any{"example.com/team": "platform"}
		}
		if name != "apps.vaultBackup" { // the backup runs vault.image
			valuesMap(c, "image")["digest"] = digestA
		}
	}
	valuesMap(components["injector"], "agentImage")["digest"] = digestB
}

// TestChartKnobsGolden renders the pods of the chart with the knobs unset,
// with every knob set on every component, and with affinities that
// replace one part of the chart's and keep the other, and compares what
// the knobs change with testdata/chart/<case>.golden (-update rewrites).
// With every knob set, each pod must also carry each one, so that a
// golden file rewritten with a knob missing fails here.
func TestChartKnobsGolden(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		name, env string
		edit      func(user map[string]any)
	}{
		{"defaults", "development+all", nil},
		{"every-knob", "development+all", everyKnob},
		{"production-affinity", "production", edits(
			// Vault keeps the chart's anti-affinity and gains a node
			// affinity; the injector's anti-affinity is replaced.
			set("vault.affinity", map[string]any{"nodeAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{
				map[string]any{"weight": 50, "preference": map[string]any{"matchExpressions": []any{
					map[string]any{"key": "disktype", "operator": "In", "values": []any{"ssd"}}}}}}}}),
			set("injector.affinity", map[string]any{"podAntiAffinity": map[string]any{}}),
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pods := knobsOf(t, renderWith(t, ch, tc.env, tc.edit))
			if tc.name == "every-knob" {
				checkEveryKnob(t, pods)
			}
			got, err := yaml.Marshal(pods)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.name, got)
		})
	}
}

// checkEveryKnob: every pod got every knob of its component, next to the
// chart's own labels, annotations and anti-affinity, and every image is
// pulled by digest from the registry.
func checkEveryKnob(t *testing.T, pods map[string]podKnobs) {
	t.Helper()
	if len(pods) < 10 {
		t.Fatalf("only %d pods rendered", len(pods))
	}
	for owner, p := range pods {
		test := strings.HasPrefix(owner, "Pod/")
		if p.NodeSelector["pool"] != "platform" || p.PriorityClassName != "platform-critical" ||
			len(p.Tolerations) != 1 || p.Tolerations[0].Key != "dedicated" {
			t.Errorf("%s: nodeSelector %v, priorityClassName %q, tolerations %v", owner, p.NodeSelector, p.PriorityClassName, p.Tolerations)
		}
		if p.Affinity == nil || p.Affinity.NodeAffinity == nil {
			t.Errorf("%s: no node affinity", owner)
		}
		if !test && (p.Labels["example.com/team"] != "platform" || p.Annotations["example.com/owner"] == "") {
			t.Errorf("%s: labels %v, annotations %v", owner, p.Labels, p.Annotations)
		}
		if !test && p.Labels["app.kubernetes.io/instance"] != "bc" {
			t.Errorf("%s lost the chart's own labels: %v", owner, p.Labels)
		}
		for c, img := range p.Images {
			if !strings.HasPrefix(img, "registry.test:5000/") || !strings.HasSuffix(img, "@"+digestA) {
				t.Errorf("%s container %s runs %s, want registry.test:5000/...@%s", owner, c, img, digestA)
			}
		}
	}
	for _, owner := range []string{"Deployment/bc-injector", "Deployment/zitadel"} {
		if a := pods[owner].Affinity; a == nil || a.PodAntiAffinity == nil {
			t.Errorf("%s: the chart's anti-affinity is gone, though only nodeAffinity was given", owner)
		}
	}
	if want := "registry.test:5000/blinkchamber/agent@" + digestB; pods["Deployment/bc-injector"].AgentImage != want {
		t.Errorf("--agent-image=%s, want %s", pods["Deployment/bc-injector"].AgentImage, want)
	}
	if a := pods["Deployment/grafana"].Annotations; a["blinkchamber.io/inject"] != "true" || a["prometheus.io/scrape"] != "true" {
		t.Errorf("grafana lost the chart's annotations: %v", a)
	}
	if reflect.DeepEqual(pods["Deployment/bc-injector"].Annotations, pods["StatefulSet/bc-vault"].Annotations) {
		t.Errorf("each component's podAnnotations must reach its own pods only")
	}
}

// TestChartNotes: the notes `helm install` prints say what was installed,
// how to onboard a pod and check the bootstrap Job, and what the
// environment needs or risks (golden: testdata/chart/notes-<env>.golden).
func TestChartNotes(t *testing.T) {
	ch := loadChart(t)
	says := map[string][]string{
		"development": {"(development)", "blinkchamber.io/injection=enabled", `blinkchamber.io/inject: "true"`, "logs job/bc-bootstrap",
			"WARNING (development)", "Secret vault-unseal-keys"},
		"staging":    {"(staging)", "seal transit", "the Secret vault-transit-token (key token)"},
		"production": {"(production)", "mode ha, seal awskms", "cert-manager", "ClusterIssuer named letsencrypt", "ConfigMap vault-ca", "AWS credentials"},
	}
	for _, env := range environments {
		t.Run(env, func(t *testing.T) {
			notes := renderFiles(t, ch, env, nil)["blinkchamber/templates/NOTES.txt"]
			for _, s := range says[env] {
				if !strings.Contains(notes, s) {
					t.Errorf("the notes do not say %q:\n%s", s, notes)
				}
			}
			if env != "development" && strings.Contains(notes, "WARNING (development)") {
				t.Errorf("the notes of %s warn about development's key store", env)
			}
			checkGolden(t, "notes-"+env, []byte(notes))
		})
	}
}

// checkGolden compares got with testdata/chart/<name>.golden, which
// -update rewrites.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden := filepath.Join("testdata", "chart", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./test/e2e -run %s -update to create it)", err, t.Name())
	}
	if string(got) != string(want) {
		t.Errorf("the render differs from %s; rerun with -update if intended.\n--- got ---\n%s", golden, got)
	}
}
