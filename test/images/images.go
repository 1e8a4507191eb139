// Package images builds every image the real-node tests run, without a
// Docker engine: the product images (injector, agent, CLI) exactly as
// `make images` builds them, and three that only tests use: Vault from the
// toolchain's binary, a pause (sandbox) image and a small test app (with
// the CLI beside it, for `blinkchamber exec`). Build
// writes one archive per image into a directory and reuses an archive while
// what it was built from is unchanged.
package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	product "github.com/blinkchamber/blinkchamber/pkg/images"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// Names of the test-only images in a Set; the product images go by their
// table names (product.Products).
const (
	Vault   = "vault"
	Pause   = "pause"
	TestApp = "testapp"
)

// TestRegistry is the registry host in the test-only images' names (but
// Vault's, which is named as the chart names it). It is a reserved name
// that resolves nowhere: these images are imported or pushed to a local
// registry, never pulled from it.
const TestRegistry = "blinkchamber.test"

// Refs of the test-only images. Vault's is the chart's default vault.image,
// so `blinkchamber images push` mirrors it with the rest.
var (
	VaultRef   = "docker.io/hashicorp/vault:" + strings.TrimPrefix(toolchain.Vault.Version, "v")
	PauseRef   = TestRegistry + "/pause:v1"
	TestAppRef = TestRegistry + "/testapp:v1"
)

// CLIPath is where the test app's image holds the blinkchamber CLI, the
// product's own binary, as the CLI image has it.
const CLIPath = "/usr/local/bin/blinkchamber"

// Options say where Build writes and which version the product images get.
type Options struct {
	// Dir receives <name>.tar for each image. Reuse one across runs (e.g.
	// DefaultDir) to skip rebuilding unchanged images.
	Dir string
	// Version stamps the product binaries and tags their images; "dev" when
	// empty. The chart's values must name the same tag.
	Version string
	// Progress, when set, is told what is being built.
	Progress io.Writer
}

// Set is the built images, by name: agent, cli, injector, vault, pause,
// testapp.
type Set struct {
	Version string
	Images  map[string]product.Built
}

// Archives lists every archive, for `ctr images import` or `images push --from`.
func (s *Set) Archives() []string {
	var out []string
	for _, b := range s.Images {
		out = append(out, b.Archive)
	}
	return out
}

// DefaultDir is a directory beside the toolchain's cache, kept across runs.
func DefaultDir() (string, error) {
	root, err := toolchain.CacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(root), "images"), nil
}

// Build builds (or reuses) every image into o.Dir. The repository root is
// found from the working directory; the Vault binary comes from the
// toolchain (built on first use, a few minutes).
func Build(ctx context.Context, o Options) (*Set, error) {
	if o.Dir == "" {
		return nil, errors.New("images.Build: no directory")
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	repo, err := toolchain.RepoRoot()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	// Test packages run in parallel processes; one builds, the others wait
	// and then find the archives current.
	unlock, err := toolchain.Lock(filepath.Join(o.Dir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	binDir := filepath.Join(o.Dir, "bin")
	set := &Set{Version: o.Version, Images: map[string]product.Built{}}
	add := func(name, ref string, spec product.Spec) error {
		b, err := buildCached(o, name, ref, spec)
		if err != nil {
			return fmt.Errorf("image %s: %w", name, err)
		}
		set.Images[name] = b
		return nil
	}
	for _, p := range product.Products {
		bin := filepath.Join(binDir, p.Binary())
		if err := product.BuildBinary(ctx, repo, p.Package, p.LDFlags(o.Version), bin); err != nil {
			return nil, err
		}
		spec, err := p.Spec(bin, o.Version)
		if err != nil {
			return nil, err
		}
		if err := add(p.Name, p.Ref(o.Version), spec); err != nil {
			return nil, err
		}
	}
	for _, t := range []struct{ name, ref, pkg, path string }{
		{Pause, PauseRef, "./test/images/pause", "/pause"},
		{TestApp, TestAppRef, "./test/images/testapp", "/testapp"},
	} {
		bin := filepath.Join(binDir, t.name)
		if err := product.BuildBinary(ctx, repo, t.pkg, "-s -w", bin); err != nil {
			return nil, err
		}
		spec, err := staticSpec(bin, t.path)
		if err != nil {
			return nil, err
		}
		if t.name == TestApp {
			// The CLI beside the app, for `blinkchamber exec` as an app
			// container's entrypoint.
			spec.Files = append(spec.Files, product.File{Path: CLIPath, Mode: 0o755, Source: filepath.Join(binDir, path.Base(CLIPath))})
		}
		if err := add(t.name, t.ref, spec); err != nil {
			return nil, err
		}
	}
	vault, err := toolchain.Vault.Ensure(ctx, repo, o.Progress)
	if err != nil {
		return nil, err
	}
	spec, err := vaultSpec(ctx, vault)
	if err != nil {
		return nil, err
	}
	if err := add(Vault, VaultRef, spec); err != nil {
		return nil, err
	}
	return set, nil
}

// staticSpec is a test program's image: the base files and the program as
// the entrypoint.
func staticSpec(bin, path string) (product.Spec, error) {
	files, err := product.Base(product.Accounts)
	if err != nil {
		return product.Spec{}, err
	}
	return product.Spec{
		Files:      append(files, product.File{Path: path, Mode: 0o755, Source: bin}),
		User:       product.Nonroot,
		Entrypoint: []string{path},
		Env:        product.Env,
		WorkingDir: "/home/nonroot",
	}, nil
}

// vaultSpec is Vault at /bin/vault, as in Vault's own image, with the ELF
// interpreter and shared libraries the toolchain's (dynamically linked)
// binary needs at the paths ldd resolves them to. The chart runs Vault as
// uid 100 gid 1000, the official image's vault user: it is in /etc/passwd.
func vaultSpec(ctx context.Context, vault string) (product.Spec, error) {
	accounts := append(append([]product.Account{}, product.Accounts...),
		product.Account{Name: "vault", UID: 100, GID: 1000, Home: "/home/vault"})
	files, err := product.Base(accounts)
	if err != nil {
		return product.Spec{}, err
	}
	libs, err := sharedLibraries(ctx, vault)
	if err != nil {
		return product.Spec{}, err
	}
	for _, l := range libs {
		files = append(files, product.File{Path: l, Mode: 0o755, Source: l})
	}
	files = append(files,
		product.File{Path: "/bin/vault", Mode: 0o755, Source: vault},
		product.File{Path: "/vault", Mode: fs.ModeDir | 0o755},
		product.File{Path: "/vault/logs", Mode: fs.ModeDir | 0o775, UID: 100, GID: 1000},
		product.File{Path: "/vault/file", Mode: fs.ModeDir | 0o775, UID: 100, GID: 1000},
	)
	return product.Spec{
		Files:      files,
		User:       product.Nonroot,
		Entrypoint: []string{"/bin/vault"},
		Cmd:        []string{"server", "-dev"},
		Env:        product.Env,
		WorkingDir: "/home/nonroot",
		Labels:     map[string]string{"org.opencontainers.image.title": "vault (test image, built from the toolchain's binary)"},
	}, nil
}

// cacheEntry is kept beside an archive: what it was built from.
type cacheEntry struct {
	Key    string `json:"key"`
	Digest string `json:"digest"`
}

// buildCached writes name.tar unless name.json says it was built from the
// same spec and source contents.
func buildCached(o Options, name, ref string, spec product.Spec) (product.Built, error) {
	archive := filepath.Join(o.Dir, name+".tar")
	keyFile := filepath.Join(o.Dir, name+".json")
	key, err := specKey(ref, spec)
	if err != nil {
		return product.Built{}, err
	}
	var prev cacheEntry
	if b, err := os.ReadFile(keyFile); err == nil && json.Unmarshal(b, &prev) == nil && prev.Key == key {
		if _, err := os.Stat(archive); err == nil {
			return product.Built{Name: name, Ref: ref, Archive: archive, Digest: prev.Digest}, nil
		}
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "building image %s (%s)\n", name, ref)
	}
	img, err := product.Build(spec)
	if err != nil {
		return product.Built{}, err
	}
	digest, err := product.WriteArchive(archive, ref, img)
	if err != nil {
		return product.Built{}, err
	}
	b, err := json.Marshal(cacheEntry{Key: key, Digest: digest.String()})
	if err != nil {
		return product.Built{}, err
	}
	if err := os.WriteFile(keyFile, b, 0o644); err != nil {
		return product.Built{}, err
	}
	return product.Built{Name: name, Ref: ref, Archive: archive, Digest: digest.String()}, nil
}

// specKey hashes the name, the spec and the content of every source file.
func specKey(ref string, spec product.Spec) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", ref)
	if err := json.NewEncoder(h).Encode(spec); err != nil {
		return "", err
	}
	for _, f := range spec.Files {
		if f.Source == "" {
			continue
		}
		src, err := os.Open(f.Source)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, src)
		src.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
