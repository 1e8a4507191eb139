package images

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// layerEntry is what a test reads back from an image's layer.
type layerEntry struct {
	Mode     int64
	Type     byte
	UID, GID int
	Content  string
	ModTime  int64
}

// readLayer returns the entries of an image's only layer, in order.
func readLayer(t *testing.T, img v1.Image) ([]string, map[string]layerEntry) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var order []string
	entries := map[string]layerEntry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, h.Name)
		entries[h.Name] = layerEntry{Mode: h.Mode, Type: h.Typeflag, UID: h.Uid, GID: h.Gid, Content: string(b), ModTime: h.ModTime.Unix()}
	}
	return order, entries
}

func TestBuildLayerAndConfig(t *testing.T) {
	src := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(src, []byte("#program"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Files: []File{
			{Path: "/usr/local/bin/prog", Mode: 0o755, Source: src},
			{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
			{Path: "/home/nonroot", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
			{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0::/:/sbin/nologin\n")},
			{Path: "/usr-local", Mode: 0o644, Data: []byte("sorts after /usr's children")},
		},
		User: Nonroot, Entrypoint: []string{"/usr/local/bin/prog"}, Cmd: []string{"run"},
		Env: Env, WorkingDir: "/home/nonroot", Labels: map[string]string{"a": "b"},
	}
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	order, entries := readLayer(t, img)
	wantOrder := []string{"etc/", "etc/passwd", "home/", "home/nonroot/", "tmp/", "usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/prog", "usr-local"}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("layer order:\n got %v\nwant %v", order, wantOrder)
	}
	want := map[string]layerEntry{
		"etc/":               {Mode: 0o755, Type: tar.TypeDir},
		"etc/passwd":         {Mode: 0o644, Type: tar.TypeReg, Content: "root:x:0:0::/:/sbin/nologin\n"},
		"home/":              {Mode: 0o755, Type: tar.TypeDir},
		"home/nonroot/":      {Mode: 0o700, Type: tar.TypeDir, UID: 65532, GID: 65532},
		"tmp/":               {Mode: 0o1777, Type: tar.TypeDir},
		"usr/":               {Mode: 0o755, Type: tar.TypeDir},
		"usr/local/":         {Mode: 0o755, Type: tar.TypeDir},
		"usr/local/bin/":     {Mode: 0o755, Type: tar.TypeDir},
		"usr/local/bin/prog": {Mode: 0o755, Type: tar.TypeReg, Content: "#program"},
		"usr-local":          {Mode: 0o644, Type: tar.TypeReg, Content: "sorts after /usr's children"},
	}
	for p, w := range want {
		if got := entries[p]; got != w {
			t.Errorf("%s: got %+v, want %+v", p, got, w)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != Nonroot || !slices.Equal(c.Entrypoint, spec.Entrypoint) || !slices.Equal(c.Cmd, spec.Cmd) ||
		!slices.Equal(c.Env, Env) || c.WorkingDir != "/home/nonroot" || c.Labels["a"] != "b" {
		t.Errorf("config %+v does not carry the spec", c)
	}
	if !cf.Created.Time.Equal(Epoch) || cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("created %v, os %q, arch %q", cf.Created, cf.OS, cf.Architecture)
	}
}

// The digest depends only on the inputs: a rebuild, and an image read back
// from its archive, have the same one; a changed byte changes it.
func TestDigestIsReproducible(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "prog")
	if err := os.WriteFile(src, []byte("#program v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Files: []File{{Path: "/prog", Mode: 0o755, Source: src}}, Entrypoint: []string{"/prog"}}
	digest := func() v1.Hash {
		img, err := Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := digest()
	if again := digest(); again != first {
		t.Errorf("rebuild: %s, then %s", first, again)
	}
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "prog.tar")
	written, err := WriteArchive(archive, "example.test/prog:v1", img)
	if err != nil {
		t.Fatal(err)
	}
	read, err := ReadArchive(archive, "example.test/prog:v1")
	if err != nil {
		t.Fatal(err)
	}
	readDigest, err := read.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if written != first || readDigest != first {
		t.Errorf("built %s, written %s, read back %s", first, written, readDigest)
	}
	if err := os.WriteFile(src, []byte("#program v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if changed := digest(); changed == first {
		t.Errorf("changed program, same digest %s", changed)
	}
}

func TestBuildRejects(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	dir := t.TempDir()
	cases := map[string][]File{
		"relative path":       {{Path: "etc/passwd", Mode: 0o644}},
		"unclean path":        {{Path: "/etc/../passwd", Mode: 0o644}},
		"root":                {{Path: "/", Mode: fs.ModeDir | 0o755}},
		"listed twice":        {{Path: "/a", Mode: 0o644}, {Path: "/a", Mode: 0o644}},
		"directory with data": {{Path: "/d", Mode: fs.ModeDir | 0o755, Data: []byte("x")}},
		"under a file":        {{Path: "/a", Mode: 0o644}, {Path: "/a/b", Mode: 0o644}},
		"missing source":      {{Path: "/a", Mode: 0o644, Source: missing}},
		"source a directory":  {{Path: "/a", Mode: 0o644, Source: dir}},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Build(Spec{Files: files}); !errors.Is(err, ErrSpec) {
				t.Errorf("got %v, want ErrSpec", err)
			}
		})
	}
}

// Every product image holds its binary where the table says, the base
// files, and runs as nonroot with the table's entrypoint and labels.
func TestProductImages(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(bin, []byte("#binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range Products {
		t.Run(p.Name, func(t *testing.T) {
			spec, err := p.Spec(bin, "v9.9.9")
			if err != nil {
				t.Fatal(err)
			}
			img, err := Build(spec)
			if err != nil {
				t.Fatal(err)
			}
			_, entries := readLayer(t, img)
			if e := entries[strings.TrimPrefix(p.Path, "/")]; e.Content != "#binary" || e.Mode != 0o755 || e.UID != 0 {
				t.Errorf("binary at %s: %+v", p.Path, e)
			}
			for _, f := range []string{"etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group", "home/nonroot/", "tmp/"} {
				if _, ok := entries[f]; !ok {
					t.Errorf("no %s", f)
				}
			}
			passwd := entries["etc/passwd"].Content
			for _, line := range []string{"root:x:0:0:", "nonroot:x:65532:65532:"} {
				if !strings.Contains(passwd, line) {
					t.Errorf("/etc/passwd lacks %q:\n%s", line, passwd)
				}
			}
			if !strings.Contains(entries["etc/group"].Content, "nonroot:x:65532:") {
				t.Errorf("/etc/group lacks nonroot:\n%s", entries["etc/group"].Content)
			}
			for name := range entries {
				if strings.HasSuffix(name, "/sh") || strings.HasSuffix(name, "/bash") {
					t.Errorf("image has a shell: %s", name)
				}
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Entrypoint, p.Entrypoint) || !slices.Equal(cf.Config.Cmd, p.Cmd) {
				t.Errorf("config: user %q, entrypoint %q, cmd %q", cf.Config.User, cf.Config.Entrypoint, cf.Config.Cmd)
			}
			if got := cf.Config.Labels["org.opencontainers.image.version"]; got != "v9.9.9" {
				t.Errorf("version label %q", got)
			}
		})
	}
}

func TestNoCABundleFailsClearly(t *testing.T) {
	saved := hostCABundle
	t.Cleanup(func() { hostCABundle = saved })
	hostCABundle = filepath.Join(t.TempDir(), "ca-certificates.crt")
	_, err := Products[0].Spec("/bin/true", "dev")
	if !errors.Is(err, ErrNoCABundle) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want ErrNoCABundle and the missing file", err)
	}
}

func TestReadArchiveByName(t *testing.T) {
	img, err := Build(Spec{Files: []File{{Path: "/a", Mode: 0o644, Data: []byte("a")}}})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "vault.tar")
	if _, err := WriteArchive(archive, "docker.io/hashicorp/vault:1.21.0", img); err != nil {
		t.Fatal(err)
	}
	// Docker Hub names match however they are written.
	if _, err := ReadArchive(archive, "hashicorp/vault:1.21.0"); err != nil {
		t.Errorf("short name: %v", err)
	}
	if _, err := ReadArchive(archive, "hashicorp/vault:1.20.0"); !errors.Is(err, ErrNotInArchive) {
		t.Errorf("other tag: got %v, want ErrNotInArchive", err)
	}
	c, err := ReadCatalog(filepath.Dir(archive))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c.Find("index.docker.io/hashicorp/vault:1.21.0"); !ok || p != archive {
		t.Errorf("catalog: %q %v", p, ok)
	}
	if _, ok := c.Find("ghcr.io/hashicorp/vault:1.21.0"); ok {
		t.Error("catalog found the name in another registry")
	}
}
