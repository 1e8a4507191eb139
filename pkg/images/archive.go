package images

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Archives are `docker save` tarballs (go-containerregistry's tarball
// format): containerd's `ctr images import`, `docker load` and `crane push`
// read them, and the name inside travels with the image. The manifest is
// rebuilt from the archive's config and compressed layers, so an image read
// back has the digest it was built with.

// ErrNotInArchive is returned when an archive holds no image by a name.
var ErrNotInArchive = errors.New("image not in archive")

// WriteArchive writes the image under ref to path, replacing it atomically,
// and returns the image's manifest digest.
func WriteArchive(path, ref string, img v1.Image) (v1.Hash, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image name %q: %w", ref, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return v1.Hash{}, err
	}
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return v1.Hash{}, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return v1.Hash{}, err
	}
	return img.Digest()
}

// ArchiveTags lists the names of the images in an archive, as written.
func ArchiveTags(path string) ([]string, error) {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var tags []string
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	return tags, nil
}

// ReadArchive returns the image named ref in the archive. Names match as
// registries resolve them ("hashicorp/vault:1" is docker.io/hashicorp/vault:1).
func ReadArchive(path, ref string) (v1.Image, error) {
	want, err := name.NewTag(ref)
	if err != nil {
		return nil, fmt.Errorf("image name %q: %w", ref, err)
	}
	tags, err := ArchiveTags(path)
	if err != nil {
		return nil, err
	}
	for _, t := range tags {
		if got, err := name.NewTag(t); err == nil && got.Name() == want.Name() {
			return tarball.ImageFromPath(path, &got)
		}
	}
	return nil, fmt.Errorf("%w: %s holds %v, not %s", ErrNotInArchive, path, tags, ref)
}

// Catalog indexes the archives of a directory by the names they hold.
type Catalog map[string]string // normalised name -> archive path

// ReadCatalog reads every *.tar in dir.
func ReadCatalog(dir string) (Catalog, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	c := Catalog{}
	for _, p := range paths {
		tags, err := ArchiveTags(p)
		if err != nil {
			return nil, err
		}
		for _, t := range tags {
			if n, err := name.NewTag(t); err == nil {
				c[n.Name()] = p
			}
		}
	}
	return c, nil
}

// Find returns the archive holding ref, if any.
func (c Catalog) Find(ref string) (string, bool) {
	n, err := name.NewTag(ref)
	if err != nil {
		return "", false
	}
	p, ok := c[n.Name()]
	return p, ok
}
