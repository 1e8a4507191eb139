package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Options say where and at which version BuildProducts builds.
type Options struct {
	// ModuleDir is the root of this module (where go.mod is).
	ModuleDir string
	// OutDir receives <name>.tar for each image, and the binaries under
	// bin/.
	OutDir string
	// Version stamps the binaries, tags the images and fills their
	// org.opencontainers.image.version label.
	Version string
	// Products to build; empty means all.
	Products []Product
}

// Built is one image archive.
type Built struct {
	Name    string
	Ref     string
	Archive string
	// Digest is the image's manifest digest (what a registry reports after
	// a push).
	Digest string
}

// ErrOptions is wrapped by every invalid Options.
var ErrOptions = errors.New("invalid image build options")

func (o Options) validate() error {
	var errs []error
	if o.ModuleDir == "" {
		errs = append(errs, fmt.Errorf("%w: no module directory", ErrOptions))
	}
	if o.OutDir == "" {
		errs = append(errs, fmt.Errorf("%w: no output directory", ErrOptions))
	}
	if o.Version == "" {
		errs = append(errs, fmt.Errorf("%w: no version", ErrOptions))
	}
	return errors.Join(errs...)
}

// BuildProducts builds each product's static binary as the Dockerfile does
// (CGO_ENABLED=0, -trimpath, its ldflags), then its image archive.
func BuildProducts(ctx context.Context, o Options) ([]Built, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	products := o.Products
	if len(products) == 0 {
		products = Products
	}
	var out []Built
	for _, p := range products {
		bin := filepath.Join(o.OutDir, "bin", p.Binary())
		if err := BuildBinary(ctx, o.ModuleDir, p.Package, p.LDFlags(o.Version), bin); err != nil {
			return nil, err
		}
		spec, err := p.Spec(bin, o.Version)
		if err != nil {
			return nil, err
		}
		img, err := Build(spec)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", p.Name, err)
		}
		archive := filepath.Join(o.OutDir, p.Name+".tar")
		digest, err := WriteArchive(archive, p.Ref(o.Version), img)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", p.Name, err)
		}
		out = append(out, Built{Name: p.Name, Ref: p.Ref(o.Version), Archive: archive, Digest: digest.String()})
	}
	return out, nil
}

// BuildBinary builds a static binary of a main package of the module.
func BuildBinary(ctx context.Context, moduleDir, pkg, ldflags, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", abs, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}
