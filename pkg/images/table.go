// Package images builds blinkchamber's container images without a Docker
// engine: each is one layer holding a static binary, CA certificates and the
// few files of a distroless non-root base, written as an image archive that
// `ctr images import` and `docker load` read, and that `images push` mirrors
// to a registry. Timestamps are fixed, so the same binaries and CA bundle
// give the same digest.
package images

import (
	"fmt"
	"path"
)

// Product is one of the images the chart deploys, built from one command of
// this module. The Dockerfile's final stages say the same; a test holds them
// to it.
type Product struct {
	// Name is the Dockerfile target and the archive's file name.
	Name string
	// Package is the main package, relative to the module root.
	Package string
	// Path is where the binary lives in the image; its base name is the
	// binary's file name.
	Path string
	// VersionVar is the variable `-X` stamps with the version; empty when
	// the program has none.
	VersionVar string
	Entrypoint []string
	Cmd        []string
	// Repository is the image's name without a tag, as the chart's values
	// name it at ChartValue.
	Repository string
	// ChartValue is the path of the image's {repository, tag} in the
	// chart's values.
	ChartValue string
	// Title is the org.opencontainers.image.title label.
	Title string
}

// Source is the org.opencontainers.image.source label of every product image.
const Source = "https://github.com/blinkchamber/blinkchamber"

// Products are the images `make images` builds, in the Dockerfile's order.
var Products = []Product{
	{
		Name: "agent", Package: "./cmd/agent", Path: "/usr/local/bin/blinkchamber-agent",
		VersionVar: "github.com/blinkchamber/blinkchamber/pkg/agent.Version",
		Entrypoint: []string{"/usr/local/bin/blinkchamber-agent"}, Cmd: []string{"run"},
		Repository: "ghcr.io/blinkchamber/agent", ChartValue: "injector.agentImage",
		Title: "blinkchamber-agent",
	},
	{
		Name: "cli", Package: "./cmd/blinkchamber", Path: "/usr/local/bin/blinkchamber",
		VersionVar: "github.com/blinkchamber/blinkchamber/pkg/cli.Version",
		Entrypoint: []string{"/usr/local/bin/blinkchamber"},
		Repository: "ghcr.io/blinkchamber/cli", ChartValue: "bootstrap.image",
		Title: "blinkchamber",
	},
	{
		Name: "injector", Package: "./cmd/injector", Path: "/usr/local/bin/blinkchamber-injector",
		Entrypoint: []string{"/usr/local/bin/blinkchamber-injector"},
		Repository: "ghcr.io/blinkchamber/injector", ChartValue: "injector.image",
		Title: "blinkchamber-injector",
	},
}

// Binary is the binary's file name.
func (p Product) Binary() string { return path.Base(p.Path) }

// LDFlags are the linker flags the Dockerfile builds the binary with.
func (p Product) LDFlags(version string) string {
	if p.VersionVar == "" {
		return "-s -w"
	}
	return fmt.Sprintf("-s -w -X %s=%s", p.VersionVar, version)
}

// Ref is the image's name at a version: Repository:version.
func (p Product) Ref(version string) string { return p.Repository + ":" + version }

// Labels are the image's OCI annotations, as the Dockerfile's LABEL lines.
func (p Product) Labels(version string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":  Source,
		"org.opencontainers.image.title":   p.Title,
		"org.opencontainers.image.version": version,
	}
}

// ProductByName finds a product image by its Dockerfile target name.
func ProductByName(name string) (Product, bool) {
	for _, p := range Products {
		if p.Name == name {
			return p, true
		}
	}
	return Product{}, false
}
