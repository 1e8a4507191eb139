package images

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	product "github.com/blinkchamber/blinkchamber/pkg/images"
	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

var (
	setOnce sync.Once
	set     *Set
	setErr  error
)

// built builds every image once per test binary, into the shared cache.
func built(t *testing.T) *Set {
	t.Helper()
	setOnce.Do(func() {
		dir, err := DefaultDir()
		if err != nil {
			setErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		set, setErr = Build(ctx, Options{Dir: dir, Progress: os.Stderr})
	})
	if setErr != nil {
		t.Fatal(setErr)
	}
	return set
}

func image(t *testing.T, b product.Built) v1.Image {
	t.Helper()
	img, err := product.ReadArchive(b.Archive, b.Ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d.String() != b.Digest {
		t.Fatalf("%s: archive digest %s, Build reported %s", b.Name, d, b.Digest)
	}
	return img
}

// files lists an image's layer: path -> header.
func files(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	walkLayer(t, img, func(h *tar.Header, _ io.Reader) { out["/"+strings.TrimSuffix(h.Name, "/")] = h })
	return out
}

func walkLayer(t *testing.T, img v1.Image, fn func(*tar.Header, io.Reader)) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rc.Close()
				t.Fatal(err)
			}
			fn(h, tr)
		}
		rc.Close()
	}
}

// The Dockerfile's final stages and the images built without Docker agree:
// user, entrypoint, command, labels, and the binary, built with the same
// flags, at the same path.
func TestDockerfileAgreesWithImages(t *testing.T) {
	s := built(t)
	repo, err := toolchain.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages, err := ParseDockerfile(string(src), map[string]string{"VERSION": s.Version})
	if err != nil {
		t.Fatal(err)
	}
	buildStage, ok := StageByName(stages, "build")
	if !ok {
		t.Fatal("the Dockerfile has no build stage")
	}
	run := strings.Join(buildStage.Runs, " && ")
	for _, p := range product.Products {
		t.Run(p.Name, func(t *testing.T) {
			st, ok := StageByName(stages, p.Name)
			if !ok {
				t.Fatalf("the Dockerfile has no %s target", p.Name)
			}
			cf, err := image(t, s.Images[p.Name]).ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			c := cf.Config
			if st.User != c.User {
				t.Errorf("user: Dockerfile %q, image %q", st.User, c.User)
			}
			if !slices.Equal(st.Entrypoint, c.Entrypoint) {
				t.Errorf("entrypoint: Dockerfile %q, image %q", st.Entrypoint, c.Entrypoint)
			}
			if !slices.Equal(st.Cmd, c.Cmd) {
				t.Errorf("cmd: Dockerfile %q, image %q", st.Cmd, c.Cmd)
			}
			if len(st.Labels) == 0 || !equalMaps(st.Labels, c.Labels) {
				t.Errorf("labels: Dockerfile %v, image %v", st.Labels, c.Labels)
			}
			if len(st.Copies) != 1 || st.Copies[0].From != "build" || st.Copies[0].Dest != p.Path ||
				len(st.Copies[0].Sources) != 1 || filepath.Base(st.Copies[0].Sources[0]) != p.Binary() {
				t.Errorf("Dockerfile copies %+v, want /out/%s to %s", st.Copies, p.Binary(), p.Path)
			}
			h, ok := files(t, image(t, s.Images[p.Name]))[p.Path]
			if !ok || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
				t.Errorf("image has no executable %s (%+v)", p.Path, h)
			}
			// The build stage builds the binary with the flags the table
			// gives (and pkg/images uses).
			want := `-ldflags "` + p.LDFlags("${VERSION}") + `" -o /out/` + p.Binary() + " " + p.Package
			if !strings.Contains(run, want) {
				t.Errorf("the build stage does not run go build ... %s\n%s", want, run)
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A second Build finds every archive current and rewrites none.
func TestBuildReusesArchives(t *testing.T) {
	first := built(t)
	stat := map[string]time.Time{}
	for name, b := range first.Images {
		st, err := os.Stat(b.Archive)
		if err != nil {
			t.Fatal(err)
		}
		stat[name] = st.ModTime()
	}
	dir, err := DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Build(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Images) != len(product.Products)+3 {
		t.Errorf("built %d images: %v", len(again.Images), again.Images)
	}
	for name, b := range again.Images {
		if b != first.Images[name] {
			t.Errorf("%s: %+v, then %+v", name, first.Images[name], b)
		}
		st, err := os.Stat(b.Archive)
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime().Equal(stat[name]) {
			t.Errorf("%s: archive rewritten", name)
		}
	}
}

// rootfs unpacks an image's layer into a directory, owners and modes kept.
func rootfs(t *testing.T, img v1.Image) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	walkLayer(t, img, func(h *tar.Header, r io.Reader) {
		p := filepath.Join(root, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, r); err != nil {
				t.Fatal(err)
			}
			f.Close()
		default:
			t.Fatalf("%s: unexpected type %c", h.Name, h.Typeflag)
		}
		if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, h.FileInfo().Mode().Perm()|h.FileInfo().Mode()&os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	})
	return root
}

// inImage runs the image's entrypoint with args as its user, chrooted
// into its unpacked filesystem: what a container runtime would run, minus
// the namespaces.
func inImage(t *testing.T, b product.Built, args ...string) *exec.Cmd {
	t.Helper()
	img := image(t, b)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != product.Nonroot {
		t.Fatalf("%s runs as %q", b.Name, cf.Config.User)
	}
	argv := append(slices.Clone(cf.Config.Entrypoint), args...)
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Env: cf.Config.Env, Dir: "/"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     rootfs(t, img),
		Credential: &syscall.Credential{Uid: product.NonrootUID, Gid: product.NonrootUID},
	}
	return cmd
}

// Each image's program runs from the image alone, as nonroot: the static
// ones and Vault with the libraries copied beside it.
func TestImagesRun(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("running an image's program in a chroot needs root")
	}
	s := built(t)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"agent", []string{"version"}, s.Version},
		{"cli", []string{"version"}, s.Version},
		{"injector", []string{"-h"}, "-agent-image"},
		{Vault, []string{"version"}, "Vault " + toolchain.Vault.Version},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := inImage(t, s.Images[c.name], c.args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), c.want) {
				t.Errorf("%v, want output with %q:\n%s", err, c.want, out)
			}
		})
	}
	t.Run(Pause, func(t *testing.T) {
		cmd := inImage(t, s.Images[Pause])
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("pause on SIGTERM: %v, want exit 0", err)
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Error("pause did not exit on SIGTERM")
		}
	})
}

// The test app reports a file's mode, owner and digest from inside, counts
// SIGHUPs and exits 0 on SIGTERM.
func TestTestApp(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("running an image's program in a chroot needs root")
	}
	s := built(t)
	var passwd []byte
	walkLayer(t, image(t, s.Images[TestApp]), func(h *tar.Header, r io.Reader) {
		if h.Name == "etc/passwd" {
			passwd, _ = io.ReadAll(r)
		}
	})
	sum := sha256.Sum256(passwd)

	out, err := inImage(t, s.Images[TestApp], "report", "/etc/passwd").Output()
	if err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var start map[string]any
	var file map[string]any
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &start) != nil || json.Unmarshal([]byte(lines[1]), &file) != nil {
		t.Fatalf("report printed:\n%s", out)
	}
	if start["uid"] != float64(product.NonrootUID) {
		t.Errorf("start: %v", start)
	}
	if file["mode"] != "0644" || file["uid"] != float64(0) || file["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("report: %v, want mode 0644, uid 0, sha256 %x", file, sum)
	}
	if out, err := inImage(t, s.Images[TestApp], "report", "/missing").Output(); err == nil {
		t.Errorf("report of a missing file exited 0:\n%s", out)
	}

	cmd := inImage(t, s.Images[TestApp], "watch", "-interval", "50ms", "-status", "/tmp/status.json", "/etc/passwd")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	events := make(chan map[string]any, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				events <- ev
			}
		}
		close(events)
	}()
	next := func(event string) map[string]any {
		t.Helper()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("testapp stopped before %s", event)
				}
				if ev["event"] == event {
					return ev
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no %s event", event)
			}
		}
	}
	next("file")
	for i := 1; i <= 2; i++ {
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if ev := next("sighup"); ev["count"] != float64(i) {
			t.Errorf("SIGHUP %d counted as %v", i, ev["count"])
		}
	}
	// The status file is written just after the event is printed.
	statusFile := filepath.Join(cmd.SysProcAttr.Chroot, "tmp", "status.json")
	var st Status
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(statusFile)
		st = Status{}
		if err == nil && json.Unmarshal(b, &st) == nil && st.SIGHUPs == 2 || time.Now().After(deadline) {
			break
		}
	}
	if st.SIGHUPs != 2 || len(st.Files) != 1 || st.Files[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("status file: %+v", st)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("watch on SIGTERM: %v, want exit 0", err)
	}
}

// Status mirrors testapp's status file.
type Status struct {
	SIGHUPs int `json:"sighups"`
	Files   []struct {
		SHA256 string `json:"sha256"`
	} `json:"files"`
}
