package valuesdoc

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the generated values reference in docs/chart.md")

const (
	chartDir = "../../charts/blinkchamber"
	docPath  = "../../docs/chart.md"
)

func loadSchema(t *testing.T) *Schema {
	t.Helper()
	s, err := Load(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readValues(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// TestSchemaCoversValues: every key of values.yaml and of the three
// environment files is described by the schema, every object of the
// schema that lists its keys refuses others (a typo fails), and every
// value has a description for the reference.
func TestSchemaCoversValues(t *testing.T) {
	s := loadSchema(t)
	for _, f := range []string{"values.yaml", "values-development.yaml", "values-staging.yaml", "values-production.yaml"} {
		if miss := s.Uncovered(readValues(t, f)); len(miss) > 0 {
			t.Errorf("%s sets keys the schema does not describe: %s", f, strings.Join(miss, ", "))
		}
	}
	if loose := s.Loose(); len(loose) > 0 {
		t.Errorf("schema objects without additionalProperties: false (a typo would pass): %s", strings.Join(loose, ", "))
	}
	if undesc := s.Undescribed(); len(undesc) > 0 {
		t.Errorf("schema properties without a description: %s", strings.Join(undesc, ", "))
	}
	// The walk finds what it must: a key the schema lacks, at any depth,
	// inside a list too, and not the keys of a free-form object.
	miss := s.Uncovered(map[string]any{
		"injectr":  map[string]any{},
		"injector": map[string]any{"image": map[string]any{"tagg": "x"}, "affinity": map[string]any{"nodeAffinity": map[string]any{"anything": 1}}},
		"global":   map[string]any{"imagePullSecrets": []any{"a", map[string]any{"name": "b", "nmae": "c"}}},
	})
	want := []string{"global.imagePullSecrets[1] (no alternative of oneOf)", "injector.image.tagg", "injectr"}
	if !slices.Equal(miss, want) {
		t.Errorf("Uncovered = %q, want %q", miss, want)
	}
}

// TestValuesDoc: the values reference in docs/chart.md is the one the
// schema and values.yaml generate (go generate ./hack/valuesdoc rewrites
// it), and it has a row for every value.
func TestValuesDoc(t *testing.T) {
	want, err := loadSchema(t).Doc(readValues(t, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{"| `injector.replicas` | integer, at least 1 | `2` |", "| `vault.seal.type` | one of `shamir`, `transit`, `awskms` | `shamir` |",
		"| `apps.postgresql.image` | `image` | `{repository: postgres, tag: \"17.2\", digest: \"\", pullPolicy: IfNotPresent}` |"} {
		if !strings.Contains(want, row) {
			t.Errorf("the generated reference lacks the row %s", row)
		}
	}
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	begin, end := strings.Index(doc, DocBegin), strings.Index(doc, DocEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the generated section's markers", docPath)
	}
	if doc[begin:end+len(DocEnd)] == want {
		return
	}
	if *update {
		if err := os.WriteFile(docPath, []byte(doc[:begin]+want+doc[end+len(DocEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("the values reference in %s differs from the schema; run go generate ./hack/valuesdoc", docPath)
}

// TestDocNeedsDefaults: a value the schema describes and values.yaml does
// not set fails the generation, naming it.
func TestDocNeedsDefaults(t *testing.T) {
	values := readValues(t, "values.yaml")
	delete(values["injector"].(map[string]any), "logLevel")
	_, err := loadSchema(t).Doc(values)
	if !errors.Is(err, ErrNoDefault) || !strings.Contains(err.Error(), "injector.logLevel") {
		t.Fatalf("Doc error = %v, want %v naming injector.logLevel", err, ErrNoDefault)
	}
}
