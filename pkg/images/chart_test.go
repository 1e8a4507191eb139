package images

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const chartDir = "../../charts/blinkchamber"

// The chart names every product image where the table says, under the
// table's repository: push and the chart read the same names.
func TestChartNamesTheProducts(t *testing.T) {
	imgs, err := ChartImages(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	byValue := map[string]ChartImage{}
	for _, c := range imgs {
		byValue[c.Value] = c
	}
	for _, p := range Products {
		c, ok := byValue[p.ChartValue]
		if !ok {
			t.Errorf("%s: the chart has no %s", p.Name, p.ChartValue)
			continue
		}
		if c.Repository != p.Repository || c.Product != p.Name || c.Tag == "" {
			t.Errorf("%s: chart %+v, table repository %s", p.Name, c, p.Repository)
		}
	}
	if v, ok := byValue["vault.image"]; !ok || v.Product != "" {
		t.Errorf("vault.image: %+v (found %v), want an external image", v, ok)
	}
}

func TestChartValuesFilesMergeOver(t *testing.T) {
	over := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(over, []byte("injector:\n  image:\n    tag: dev\nvault:\n  image:\n    tag: 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	imgs, err := ChartImages(chartDir, over)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range imgs {
		got[c.Value] = c.Ref()
	}
	want := map[string]string{
		"injector.image":      "ghcr.io/blinkchamber/injector:dev",
		"injector.agentImage": "ghcr.io/blinkchamber/agent:v0.1.0",
		"vault.image":         "hashicorp/vault:1.21",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %q, want %q", k, got[k], w)
		}
	}
	if _, err := ChartImages(chartDir, filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, ErrChartValues) {
		t.Errorf("missing values file: got %v, want ErrChartValues", err)
	}
}

func TestMirrorRef(t *testing.T) {
	cases := []struct{ ref, registry, want string }{
		{"ghcr.io/blinkchamber/agent:v0.1.0", "127.0.0.1:5000", "127.0.0.1:5000/blinkchamber/agent:v0.1.0"},
		{"hashicorp/vault:1.21.0", "registry.internal", "registry.internal/hashicorp/vault:1.21.0"},
		{"postgres:17.2", "registry.internal:443", "registry.internal:443/postgres:17.2"},
		{"localhost/team/app:1", "mirror:5000", "mirror:5000/team/app:1"},
		{"registry.example.com:5000/a/b/c:t", "m.example", "m.example/a/b/c:t"},
		{"ghcr.io/blinkchamber/agent:v0.1.0", "registry.example.com/mirror", "registry.example.com/mirror/blinkchamber/agent:v0.1.0"},
		{"postgres:17.2", "10.0.0.1:5000/a/b", "10.0.0.1:5000/a/b/postgres:17.2"},
	}
	for _, c := range cases {
		got, err := MirrorRef(c.ref, c.registry)
		if err != nil || got != c.want {
			t.Errorf("MirrorRef(%q, %q) = %q, %v; want %q", c.ref, c.registry, got, err, c.want)
		}
	}
	for _, bad := range [][2]string{{"UPPER/case:1", "r"}, {"a:1", "host/"}, {"a:1", "host/Upper"}, {"a:1", "/path"}, {"a:1", ""}, {"a:1", "bad host"}, {"a:1", "http://host"}} {
		if got, err := MirrorRef(bad[0], bad[1]); err == nil {
			t.Errorf("MirrorRef(%q, %q) = %q, want an error", bad[0], bad[1], got)
		}
	}
}

// Push to an in-process registry on loopback and pull back: the registry
// serves the digest the archive was built with.
func TestPushThenPull(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := Build(Spec{Files: []File{{Path: "/a", Mode: 0o644, Data: []byte("a")}}, Entrypoint: []string{"/a"}})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "a.tar")
	built, err := WriteArchive(archive, "ghcr.io/blinkchamber/a:v1", img)
	if err != nil {
		t.Fatal(err)
	}
	target, err := MirrorRef("ghcr.io/blinkchamber/a:v1", host)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := Push(context.Background(), archive, "ghcr.io/blinkchamber/a:v1", target, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(target)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if pushed != built.String() || desc.Digest != built {
		t.Errorf("built %s, push reported %s, registry serves %s", built, pushed, desc.Digest)
	}
	if _, err := Push(context.Background(), archive, "ghcr.io/blinkchamber/b:v1", target, PushOptions{}); !errors.Is(err, ErrNotInArchive) {
		t.Errorf("pushing a name the archive lacks: got %v, want ErrNotInArchive", err)
	}
}
