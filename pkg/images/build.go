package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Epoch is every file's modification time and the image's creation time:
// a fixed time, so that a rebuild from the same inputs has the same digest.
var Epoch = time.Unix(0, 0).UTC()

// File is one entry of an image's layer.
type File struct {
	// Path is absolute, in the image.
	Path string
	// Mode is the permission bits, with fs.ModeDir for a directory and
	// fs.ModeSticky where wanted.
	Mode     fs.FileMode
	UID, GID int
	// Data is a regular file's content, unless Source names a host file to
	// copy (symbolic links followed).
	Data   []byte
	Source string
}

// Spec is everything an image is built from.
type Spec struct {
	Files      []File
	User       string
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	Labels     map[string]string
	// Architecture defaults to the build host's (the binaries are built
	// for it).
	Architecture string
}

// ErrSpec is wrapped by every reason a Spec cannot be built.
var ErrSpec = errors.New("invalid image spec")

// entry is a File with its parents filled in and its size known.
type entry struct {
	File
	size int64
}

// Build makes a one-layer image from the spec. The layer is streamed from
// the sources each time it is read, never held in memory whole, so a large
// binary costs no more than its compression.
func Build(s Spec) (v1.Image, error) {
	entries, err := layout(s.Files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTar(pw, entries)) }()
		return pr, nil
	})
	if err != nil {
		return nil, fmt.Errorf("building the layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("building the image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = s.Architecture, "linux"
	if cf.Architecture == "" {
		cf.Architecture = runtime.GOARCH
	}
	cf.Created = v1.Time{Time: Epoch}
	cf.History = []v1.History{{Created: v1.Time{Time: Epoch}, CreatedBy: "blinkchamber images: one layer"}}
	cf.Config = v1.Config{
		User: s.User, Entrypoint: s.Entrypoint, Cmd: s.Cmd, Env: s.Env,
		WorkingDir: s.WorkingDir, Labels: s.Labels,
	}
	return mutate.ConfigFile(img, cf)
}

// layout checks the files, adds the directories above them that the spec
// leaves out (root's, mode 0755), and sorts them so that a parent comes
// before its children.
func layout(files []File) ([]entry, error) {
	byPath := map[string]entry{}
	for _, f := range files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return nil, fmt.Errorf("%w: %q is not a clean absolute path", ErrSpec, f.Path)
		}
		if _, dup := byPath[f.Path]; dup {
			return nil, fmt.Errorf("%w: %s is listed twice", ErrSpec, f.Path)
		}
		e := entry{File: f}
		switch {
		case f.Mode.IsDir():
			if f.Data != nil || f.Source != "" {
				return nil, fmt.Errorf("%w: directory %s has content", ErrSpec, f.Path)
			}
		case f.Source != "":
			st, err := os.Stat(f.Source)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrSpec, f.Path, err)
			}
			if !st.Mode().IsRegular() {
				return nil, fmt.Errorf("%w: %s: source %s is not a regular file", ErrSpec, f.Path, f.Source)
			}
			e.size = st.Size()
		default:
			e.size = int64(len(f.Data))
		}
		byPath[f.Path] = e
	}
	for p := range byPath {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if e, ok := byPath[d]; ok {
				if !e.Mode.IsDir() {
					return nil, fmt.Errorf("%w: %s is under %s, which is not a directory", ErrSpec, p, d)
				}
				continue
			}
			byPath[d] = entry{File: File{Path: d, Mode: fs.ModeDir | 0o755}}
		}
	}
	out := make([]entry, 0, len(byPath))
	for _, e := range byPath {
		out = append(out, e)
	}
	// Sorting on the path with "/" as the lowest character puts /a before
	// /a/b and /a/b before /a-b.
	key := func(p string) string { return strings.ReplaceAll(p, "/", "\x00") }
	sort.Slice(out, func(i, j int) bool { return key(out[i].Path) < key(out[j].Path) })
	return out, nil
}

func writeTar(w io.Writer, entries []entry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{
			Name:    strings.TrimPrefix(e.Path, "/"),
			Mode:    int64(e.Mode.Perm()),
			Uid:     e.UID,
			Gid:     e.GID,
			ModTime: Epoch,
		}
		if e.Mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		if e.Mode.IsDir() {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing %s: %w", e.Path, err)
		}
		if err := writeContent(tw, e); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeContent(w io.Writer, e entry) error {
	switch {
	case e.Mode.IsDir():
		return nil
	case e.Source == "":
		_, err := w.Write(e.Data)
		return err
	}
	f, err := os.Open(e.Source)
	if err != nil {
		return fmt.Errorf("reading %s for %s: %w", e.Source, e.Path, err)
	}
	defer f.Close()
	// A source that changed size since layout would give a layer whose
	// digest no longer matches what was read first.
	n, err := io.Copy(w, io.LimitReader(f, e.size+1))
	if err != nil {
		return fmt.Errorf("reading %s for %s: %w", e.Source, e.Path, err)
	}
	if n != e.size {
		return fmt.Errorf("%s changed while the image was built (%d bytes, then %d)", e.Source, e.size, n)
	}
	return nil
}
