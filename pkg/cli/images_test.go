package cli

import (
	"bytes"
	"encoding/json"
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

	"github.com/blinkchamber/blinkchamber/pkg/images"
)

const testChart = "../../charts/blinkchamber"

// archives writes one archive per product image at the chart's tags (the
// binaries are stand-ins: push copies bytes, it does not run them) and one
// for Vault, and returns each image's digest by name.
func archives(t *testing.T, dir string) map[string]string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(bin, []byte("#stand-in"), 0o755); err != nil {
		t.Fatal(err)
	}
	chart, err := images.ChartImages(testChart)
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	for _, c := range chart {
		var spec images.Spec
		switch p, ok := images.ProductByName(c.Product); {
		case ok:
			if spec, err = p.Spec(bin, c.Tag); err != nil {
				t.Fatal(err)
			}
		case c.Value == "vault.image":
			spec = images.Spec{Files: []images.File{{Path: "/bin/vault", Mode: 0o755, Source: bin}}}
		default:
			continue
		}
		img, err := images.Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, strings.ReplaceAll(c.Value, ".", "-")+".tar")
		d, err := images.WriteArchive(file, c.Ref(), img)
		if err != nil {
			t.Fatal(err)
		}
		digests[c.Ref()] = d.String()
	}
	return digests
}

// images push mirrors every archived image the chart names to a registry
// served on loopback; pulled back, each has the digest it was built with.
func TestImagesPushMirrorsTheChart(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	from := t.TempDir()
	digests := archives(t, from)
	if len(digests) != len(images.Products)+1 {
		t.Fatalf("built %d archives: %v", len(digests), digests)
	}
	var stdout, stderr bytes.Buffer
	code := Main([]string{"images", "push", "--registry", host, "--from", from, "--chart", testChart}, &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for ref, want := range digests {
		target, err := images.MirrorRef(ref, host)
		if err != nil {
			t.Fatal(err)
		}
		tag, err := name.NewTag(target)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(tag)
		if err != nil {
			t.Errorf("pulling %s: %v", target, err)
			continue
		}
		if desc.Digest.String() != want {
			t.Errorf("%s: registry serves %s, built %s", target, desc.Digest, want)
		}
		if !strings.Contains(stdout.String(), "pushed "+target+"@"+want) {
			t.Errorf("output does not report %s:\n%s", target, stdout.String())
		}
	}
	if !strings.Contains(stdout.String(), "skipped postgres:17.2: external") {
		t.Errorf("output does not say postgres was skipped:\n%s", stdout.String())
	}
}

func TestImagesPushRefusesMissingProducts(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main([]string{"images", "push", "--registry", "127.0.0.1:1", "--from", t.TempDir(), "--chart", testChart}, &stdout, &stderr)
	if code != ExitFailed || !strings.Contains(stderr.String(), "ghcr.io/blinkchamber/agent:v0.1.0") {
		t.Errorf("exit %d, want %d naming the missing agent image:\n%s", code, ExitFailed, stderr.String())
	}
}

func TestImagesListJSON(t *testing.T) {
	from := t.TempDir()
	archives(t, from)
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"--output", "json", "images", "list", "--from", from, "--chart", testChart}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rows []imageRow
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	got := map[string]imageRow{}
	for _, r := range rows {
		got[r.Value] = r
	}
	for _, p := range images.Products {
		r := got[p.ChartValue]
		if r.Product != p.Name || r.Archive == "" || !strings.HasPrefix(r.Image, p.Repository+":") {
			t.Errorf("%s: %+v", p.ChartValue, r)
		}
	}
	if r := got["apps.grafana.image"]; r.Product != "" || r.Archive != "" || r.Image != "grafana/grafana:11.3.0" {
		t.Errorf("grafana: %+v", r)
	}
}

func TestImagesUsage(t *testing.T) {
	cases := map[string][]string{
		"no subcommand":          {"images"},
		"unknown subcommand":     {"images", "build"},
		"push without registry":  {"images", "push"},
		"registry with a scheme": {"images", "push", "--registry", "http://host"},
		"registry on list":       {"images", "list", "--registry", "host"},
		"arguments":              {"images", "list", "extra"},
		"unknown flag":           {"images", "list", "--nope"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main(args, &stdout, &stderr); code != ExitUsage {
				t.Errorf("exit %d, want %d\n%s", code, ExitUsage, stderr.String())
			}
		})
	}
}
