package images

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"sigs.k8s.io/yaml"
)

// ChartImage is an image the chart's values name: a map with a repository
// and a tag.
type ChartImage struct {
	// Value is the map's path in the values, e.g. "injector.image".
	Value      string `json:"value"`
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	// Product is the name of the image built here, or empty for an image
	// this project does not build (Vault, the app stack).
	Product string `json:"product,omitempty"`
}

// Ref is repository:tag.
func (c ChartImage) Ref() string { return c.Repository + ":" + c.Tag }

// ErrChartValues is wrapped when the chart's values cannot be read.
var ErrChartValues = errors.New("reading the chart's values")

// ChartImages reads the images named by a chart's values.yaml, with each
// extra values file merged over it in order (as `helm install -f`), sorted
// by their path in the values.
func ChartImages(chartDir string, valuesFiles ...string) ([]ChartImage, error) {
	values, err := readValues(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	for _, f := range valuesFiles {
		over, err := readValues(f)
		if err != nil {
			return nil, err
		}
		values = merge(values, over)
	}
	var out []ChartImage
	walkImages(values, "", &out)
	byValue := map[string]string{}
	for _, p := range Products {
		byValue[p.ChartValue] = p.Name
	}
	for i := range out {
		out[i].Product = byValue[out[i].Value]
	}
	slices.SortFunc(out, func(a, b ChartImage) int { return strings.Compare(a.Value, b.Value) })
	return out, nil
}

func readValues(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrChartValues, err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrChartValues, path, err)
	}
	return v, nil
}

// merge returns over merged into base: maps merge key by key, anything
// else in over replaces what base has.
func merge(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range over {
		bm, ok1 := out[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			out[k] = merge(bm, om)
			continue
		}
		out[k] = v
	}
	return out
}

func walkImages(v map[string]any, at string, out *[]ChartImage) {
	repo, hasRepo := v["repository"].(string)
	if tag, hasTag := v["tag"]; hasRepo && hasTag && tag != nil {
		// A tag written without quotes (1.21) is a number in YAML.
		*out = append(*out, ChartImage{Value: at, Repository: repo, Tag: fmt.Sprint(tag)})
		return
	}
	for k, child := range v {
		if m, ok := child.(map[string]any); ok {
			p := k
			if at != "" {
				p = at + "." + k
			}
			walkImages(m, p, out)
		}
	}
}

// MirrorRef names ref in another registry: the registry host is replaced
// by registry (HOST, HOST:PORT, or either with a path), the rest of the
// repository path and the tag are kept as written.
// "ghcr.io/blinkchamber/agent:v1" becomes "HOST/blinkchamber/agent:v1";
// "hashicorp/vault:1.21.0" and "postgres:17.2", which name no host, become
// "HOST/hashicorp/vault:1.21.0" and "HOST/postgres:17.2". The chart's
// global.imageRegistry names images the same way.
func MirrorRef(ref, registry string) (string, error) {
	if _, err := name.NewTag(ref); err != nil {
		return "", fmt.Errorf("image name %q: %w", ref, err)
	}
	host, _, _ := strings.Cut(registry, "/")
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil || host == "" || strings.HasSuffix(host, ":") ||
		strings.HasSuffix(registry, "/") || strings.Contains(registry, "//") || strings.ContainsAny(registry, "@ \t") {
		return "", fmt.Errorf("registry %q: want HOST[:PORT][/PATH]", registry)
	}
	rest := ref
	if first, after, ok := strings.Cut(ref, "/"); ok && isHost(first) {
		rest = after
	}
	out := registry + "/" + rest
	if _, err := name.NewTag(out, name.StrictValidation); err != nil {
		return "", fmt.Errorf("image name %q: %w", out, err)
	}
	return out, nil
}

// isHost tells a registry host from a repository's first path component,
// as Docker does: a dot, a port, or localhost.
func isHost(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}
