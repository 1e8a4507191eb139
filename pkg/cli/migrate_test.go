package cli

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

var updateMigrate = flag.Bool("update-migrate", false, "rewrite testdata/migrate/*.golden from the current output")

const corpus = "testdata/migrate/manifests.yaml"

// TestMigrateGolden compares migrate's output on a corpus of workloads
// (Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod, and documents
// that are not pods or not injected) with a reviewed golden file.
func TestMigrateGolden(t *testing.T) {
	in, err := os.ReadFile(corpus)
	if err != nil {
		t.Fatal(err)
	}
	out, warnings, errs := Migrate(in, "corpus")
	if len(errs) > 0 {
		t.Fatalf("migrate: %v", errs)
	}
	golden := strings.TrimSuffix(corpus, ".yaml") + ".golden"
	if *updateMigrate {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/cli -update-migrate to create it)", err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("output differs from %s; rerun with -update-migrate if intended.\n%s", golden, out)
	}
	wantWarnings := []string{
		"corpus, document 1 (Deployment web): metadata.annotations[vault.hashicorp.com/agent-image]: ignored: the injector's agent image is used (dropped)",
		"corpus, document 8 (Pod not-injected): vault-k8s would not inject it (agent-inject is not true); left as it is",
	}
	if !reflect.DeepEqual(warnings, wantWarnings) {
		t.Errorf("warnings\n%q\nwant\n%q", warnings, wantWarnings)
	}
}

// TestMigrateRoundTrip: every document reads back as the same object but
// for its pod's vault.hashicorp.com/ annotations, which are gone and whose
// blinkchamber.io/ replacements parse into the Spec the originals gave;
// documents without them are copied byte for byte; comments stay.
func TestMigrateRoundTrip(t *testing.T) {
	in, err := os.ReadFile(corpus)
	if err != nil {
		t.Fatal(err)
	}
	out, _, errs := Migrate(in, "corpus")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	before, after := splitDocuments(in), splitDocuments(out)
	if len(before) != len(after) || len(before) < 8 {
		t.Fatalf("%d documents in, %d out", len(before), len(after))
	}
	migrated := 0
	for i := range before {
		a, b := before[i], after[i]
		if a.separator != b.separator {
			t.Errorf("document %d: separator %q became %q", i+1, a.separator, b.separator)
		}
		if bytes.Equal(a.body, b.body) {
			continue // the Service and the pod vault-k8s would not inject
		}
		migrated++
		checkMigratedDocument(t, i+1, a.body, b.body)
	}
	if migrated != 6 {
		t.Errorf("%d documents migrated, want 6", migrated)
	}
	for _, c := range []string{"# Manifests annotated for the Vault Agent Injector.", "# keep me",
		"# kept: the Deployment's own annotations are not the pod's"} {
		if !bytes.Contains(out, []byte(c)) {
			t.Errorf("comment %q was lost", c)
		}
	}
}

func checkMigratedDocument(t *testing.T, n int, orig, migrated []byte) {
	t.Helper()
	var a, b map[string]any
	if err := sigsyaml.Unmarshal(orig, &a); err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.Unmarshal(migrated, &b); err != nil {
		t.Fatalf("document %d does not read back: %v", n, err)
	}
	path := podPaths[a["kind"].(string)]
	annA, annB := annotationsAt(a, path), annotationsAt(b, path)
	for k, v := range annA {
		if !strings.HasPrefix(k, mutate.VaultPrefix) && annB[k] != v {
			t.Errorf("document %d: annotation %s was %q, is %q", n, k, v, annB[k])
		}
	}
	for k := range annB {
		if strings.HasPrefix(k, mutate.VaultPrefix) {
			t.Errorf("document %d still has %s", n, k)
		}
	}
	specA, errs := mutate.Parse(podAt(t, a, path))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	specB, errs := mutate.Parse(podAt(t, b, path))
	if len(errs) > 0 {
		t.Fatalf("document %d: migrated annotations refused: %v", n, errs)
	}
	specA.VaultK8s, specA.Warnings = false, nil
	if !reflect.DeepEqual(specA, specB) {
		t.Errorf("document %d: specs differ\nvault-k8s    %+v\nblinkchamber %+v", n, specA, specB)
	}
	// Everything else is the same object.
	delete(annotationsParent(a, path), "annotations")
	delete(annotationsParent(b, path), "annotations")
	if !reflect.DeepEqual(a, b) {
		t.Errorf("document %d changed beyond its pod's annotations", n)
	}
}

func annotationsParent(obj map[string]any, path []string) map[string]any {
	m := obj
	for _, k := range path {
		m = m[k].(map[string]any)
	}
	return m
}

func annotationsAt(obj map[string]any, path []string) map[string]string {
	out := map[string]string{}
	raw, _ := annotationsParent(obj, path)["annotations"].(map[string]any)
	for k, v := range raw {
		out[k] = v.(string)
	}
	return out
}

func podAt(t *testing.T, obj map[string]any, path []string) *corev1.Pod {
	t.Helper()
	m := obj
	for _, k := range path[:len(path)-1] {
		m = m[k].(map[string]any)
	}
	b, err := sigsyaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := sigsyaml.Unmarshal(b, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

// TestMigrateRefusals: a document migrate cannot translate is reported with
// the field and reason and copied unchanged; the others are still migrated.
func TestMigrateRefusals(t *testing.T) {
	in, err := os.ReadFile("testdata/migrate/refused.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err = migrateCmd([]string{"-"}, bytes.NewReader(in), &stdout, &stderr)
	if !errors.Is(err, ErrMigrate) {
		t.Fatalf("want ErrMigrate, got %v", err)
	}
	for _, want := range []string{"stdin, document 1 (Pod configmap)", "metadata.annotations[vault.hashicorp.com/agent-configmap]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	docs := splitDocuments(stdout.Bytes())
	orig := splitDocuments(in)
	if len(docs) != 2 || !bytes.Equal(docs[0].body, orig[0].body) {
		t.Fatalf("the refused document was not copied unchanged:\n%s", stdout.String())
	}
	if !bytes.Contains(docs[1].body, []byte(mutate.AnnotationInject)) || bytes.Contains(docs[1].body, []byte(mutate.VaultPrefix)) {
		t.Errorf("the second document was not migrated:\n%s", docs[1].body)
	}
}

// TestMigrateThroughMain runs the command line as users do, on a file.
func TestMigrateThroughMain(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"migrate", corpus}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), mutate.AnnotationInject) || !strings.Contains(stderr.String(), "warning: ") {
		t.Errorf("stdout %d bytes, stderr %q", stdout.Len(), stderr.String())
	}
	if code := Main([]string{"migrate", "testdata/migrate/no-such-file.yaml"}, &stdout, &stderr); code != ExitFailed {
		t.Errorf("a missing file: exit %d, want %d", code, ExitFailed)
	}
}
