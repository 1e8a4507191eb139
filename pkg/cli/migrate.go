package cli

// blinkchamber migrate: vault.hashicorp.com/ annotations to blinkchamber.io/
// ones, in manifests. The translation is the injector's own (mutate.Parse to
// a Spec, Spec.Annotations back), so a migrated pod gets what the injector
// would have given the original. Only the annotations change: documents
// without vault annotations are copied byte for byte, and the others keep
// their keys, order and comments.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/blinkchamber/blinkchamber/pkg/mutate"
)

// ErrMigrate is wrapped by every document migrate cannot translate.
var ErrMigrate = errors.New("cannot migrate")

// podPaths are where each workload kind keeps its pod's metadata.
var podPaths = map[string][]string{
	"Pod":                   {"metadata"},
	"PodTemplate":           {"template", "metadata"},
	"Deployment":            {"spec", "template", "metadata"},
	"StatefulSet":           {"spec", "template", "metadata"},
	"DaemonSet":             {"spec", "template", "metadata"},
	"ReplicaSet":            {"spec", "template", "metadata"},
	"ReplicationController": {"spec", "template", "metadata"},
	"Job":                   {"spec", "template", "metadata"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template", "metadata"},
}

// migrateCmd runs `migrate [file|-]...`; no file means stdin.
func migrateCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		args = []string{"-"}
	}
	var failed []error
	for _, name := range args {
		in, err := readSource(name, stdin)
		if err != nil {
			return err
		}
		out, warnings, errs := Migrate(in, sourceName(name))
		for _, w := range warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
		failed = append(failed, errs...)
		if _, err := stdout.Write(out); err != nil {
			return err
		}
	}
	return errors.Join(failed...)
}

func sourceName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

func readSource(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading manifests: %w", err)
	}
	return b, nil
}

// docSeparator is a YAML document marker line.
var docSeparator = regexp.MustCompile(`^---(\s.*)?$`)

// Migrate rewrites every document of a multi-document YAML stream. A
// document it cannot translate is copied unchanged and reported in errs.
func Migrate(in []byte, source string) (out []byte, warnings []string, errs []error) {
	var buf bytes.Buffer
	for i, doc := range splitDocuments(in) {
		where := fmt.Sprintf("%s, document %d", source, i+1)
		body, sep := doc.body, doc.separator
		buf.WriteString(sep)
		converted, ws, err := migrateDocument(body, where)
		warnings = append(warnings, ws...)
		if err != nil {
			errs = append(errs, err)
			converted = nil
		}
		if converted == nil {
			buf.Write(body)
			continue
		}
		buf.Write(converted)
	}
	return buf.Bytes(), warnings, errs
}

type document struct {
	separator string // the "---" line before it, if any
	body      []byte
}

// splitDocuments cuts a stream at its "---" lines, keeping every byte.
func splitDocuments(in []byte) []document {
	var docs []document
	cur := document{}
	sc := bufio.NewScanner(bytes.NewReader(in))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	sc.Split(scanLinesKeepEnds)
	for sc.Scan() {
		line := sc.Text()
		if docSeparator.MatchString(strings.TrimRight(line, "\r\n")) {
			docs = append(docs, cur)
			cur = document{separator: line}
			continue
		}
		cur.body = append(cur.body, line...)
	}
	docs = append(docs, cur)
	if len(docs[0].body) == 0 && docs[0].separator == "" {
		docs = docs[1:]
	}
	return docs
}

// scanLinesKeepEnds is bufio.ScanLines without dropping the line ends.
func scanLinesKeepEnds(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// migrateDocument returns the rewritten document, or nil when it has
// nothing to rewrite.
func migrateDocument(body []byte, where string) ([]byte, []string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(body, &root); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: not YAML: %w", ErrMigrate, where, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, nil, nil
	}
	obj := root.Content[0]
	kind := scalar(lookup(obj, "kind"))
	where = fmt.Sprintf("%s (%s %s)", where, kind, scalar(lookup(lookup(obj, "metadata"), "name")))
	podPath, ok := podPaths[kind]
	if !ok {
		return nil, nil, nil
	}
	meta := obj
	for _, k := range podPath {
		meta = lookup(meta, k)
	}
	ann := lookup(meta, "annotations")
	if ann == nil || !hasVaultKey(ann) {
		return nil, nil, nil
	}
	pod, err := podOf(obj, podPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrMigrate, where, err)
	}
	spec, errs := mutate.Parse(pod)
	var warnings []string
	for _, w := range spec.Warnings {
		warnings = append(warnings, fmt.Sprintf("%s: %s (dropped)", where, w))
	}
	switch {
	case len(errs) > 0:
		return nil, warnings, fmt.Errorf("%w: %s: %w", ErrMigrate, where, errs.ToAggregate())
	case spec.Injected:
		return nil, warnings, fmt.Errorf("%w: %s: already injected (agent-inject-status); migrate the manifest it was made from", ErrMigrate, where)
	case !spec.Inject:
		return nil, append(warnings, where+": vault-k8s would not inject it (agent-inject is not true); left as it is"), nil
	}
	replaceVaultAnnotations(ann, spec.Annotations())
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if compactSequences(body) {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(&root); err != nil {
		return nil, warnings, fmt.Errorf("%w: %s: %w", ErrMigrate, where, err)
	}
	if err := enc.Close(); err != nil {
		return nil, warnings, fmt.Errorf("%w: %s: %w", ErrMigrate, where, err)
	}
	return out.Bytes(), warnings, nil
}

// podOf decodes the pod (or pod template) at podPath as a typed Pod, the
// input mutate.Parse needs.
func podOf(obj *yaml.Node, podPath []string) (*corev1.Pod, error) {
	node := obj
	for _, k := range podPath[:len(podPath)-1] {
		node = lookup(node, k)
	}
	b, err := yaml.Marshal(node)
	if err != nil {
		return nil, err
	}
	var pod corev1.Pod
	if err := sigsyaml.Unmarshal(b, &pod); err != nil {
		return nil, fmt.Errorf("the pod does not decode: %w", err)
	}
	return &pod, nil
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

func hasVaultKey(ann *yaml.Node) bool {
	for i := 0; i < len(ann.Content); i += 2 {
		if strings.HasPrefix(ann.Content[i].Value, mutate.VaultPrefix) {
			return true
		}
	}
	return false
}

// replaceVaultAnnotations drops every vault.hashicorp.com/ key and puts the
// new keys, sorted, where the first one was; other keys stay in place.
func replaceVaultAnnotations(ann *yaml.Node, add map[string]string) {
	keys := make([]string, 0, len(add))
	for k := range add {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var fresh []*yaml.Node
	for _, k := range keys {
		fresh = append(fresh, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, stringNode(add[k]))
	}
	var content []*yaml.Node
	inserted := false
	for i := 0; i+1 < len(ann.Content); i += 2 {
		if !strings.HasPrefix(ann.Content[i].Value, mutate.VaultPrefix) {
			content = append(content, ann.Content[i], ann.Content[i+1])
			continue
		}
		if !inserted {
			content = append(content, fresh...)
			inserted = true
		}
	}
	ann.Content = content
}

// stringNode always reads back as a string: quoted on one line (so "true"
// and "0644" stay strings), a literal block over several.
func stringNode(v string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.DoubleQuotedStyle}
	if strings.Contains(v, "\n") {
		n.Style = yaml.LiteralStyle
	}
	return n
}

// compactSequences reports whether a document writes sequence items at
// their key's indentation ("containers:\n- name: x"), kubectl's style, so
// that the rewritten document keeps it.
func compactSequences(body []byte) bool {
	lines := strings.Split(string(body), "\n")
	for i := 1; i < len(lines); i++ {
		prev, cur := lines[i-1], lines[i]
		key := strings.TrimSpace(prev)
		if strings.HasSuffix(key, ":") && !strings.HasPrefix(key, "#") &&
			strings.HasPrefix(strings.TrimSpace(cur), "- ") && indent(prev) == indent(cur) {
			return true
		}
	}
	return false
}

func indent(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }
