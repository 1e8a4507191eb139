// Package toolchain builds the real servers that tests and the demo run
// (etcd, kube-apiserver, Vault) from Go modules, once per machine, into a
// cache outside the repository.
//
// Release binaries cannot be downloaded here, so each server has a tools
// module under test/tools/<name> that pins it. A built binary is reused while
// the tools module (go.mod, go.sum) and the build flags are unchanged: the
// cache key is a hash of those inputs.
package toolchain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// Tool is one server binary built from a tools module.
type Tool struct {
	// Name is the binary's file name, also the cache folder prefix.
	Name string
	// Version is informative; the cache key is the hash of the module files.
	Version string
	// ModuleDir is the tools module, relative to the repository root.
	ModuleDir string
	// Package is the main package to build.
	Package string
	// LDFlags are passed to go build.
	LDFlags string
}

// The kube-apiserver built from modules reports "v0.0.0-master"; anything
// that reads the server version (native sidecar detection) needs the real one.
const kubeVersionLDFlags = "-s -w" +
	" -X k8s.io/component-base/version.gitVersion=v1.37.2" +
	" -X k8s.io/component-base/version.gitMajor=1" +
	" -X k8s.io/component-base/version.gitMinor=37"

var (
	Etcd = Tool{Name: "etcd", Version: "v3.6.16", ModuleDir: "test/tools/etcd",
		Package: "go.etcd.io/etcd/server/v3", LDFlags: "-s -w"}
	KubeAPIServer = Tool{Name: "kube-apiserver", Version: "v1.37.2", ModuleDir: "test/tools/kube",
		Package: "k8s.io/kubernetes/cmd/kube-apiserver", LDFlags: kubeVersionLDFlags}
	Vault = Tool{Name: "vault", Version: "v1.21.0", ModuleDir: "test/tools/vault",
		Package: "github.com/hashicorp/vault", LDFlags: "-s -w"}

	// The node's parts share one tools module of their own, so that adding
	// them did not change the kube-apiserver's cache key.
	Kubelet = Tool{Name: "kubelet", Version: "v1.37.2", ModuleDir: "test/tools/node",
		Package: "k8s.io/kubernetes/cmd/kubelet", LDFlags: kubeVersionLDFlags}
	KubeControllerManager = Tool{Name: "kube-controller-manager", Version: "v1.37.2", ModuleDir: "test/tools/node",
		Package: "k8s.io/kubernetes/cmd/kube-controller-manager", LDFlags: kubeVersionLDFlags}
	KubeScheduler = Tool{Name: "kube-scheduler", Version: "v1.37.2", ModuleDir: "test/tools/node",
		Package: "k8s.io/kubernetes/cmd/kube-scheduler", LDFlags: kubeVersionLDFlags}
	KubeProxy = Tool{Name: "kube-proxy", Version: "v1.37.2", ModuleDir: "test/tools/node",
		Package: "k8s.io/kubernetes/cmd/kube-proxy", LDFlags: kubeVersionLDFlags}
	CoreDNS = Tool{Name: "coredns", Version: "v1.15.0", ModuleDir: "test/tools/coredns",
		Package: "github.com/coredns/coredns", LDFlags: "-s -w"}
)

// Server lists the tools of the loopback servers (no node).
var Server = []Tool{Etcd, KubeAPIServer, Vault}

// Node lists the tools a real node adds to them.
var Node = []Tool{Kubelet, KubeControllerManager, KubeScheduler, KubeProxy, CoreDNS}

// All lists every tool, in the order `make tools` builds them.
var All = append(append([]Tool{}, Server...), Node...)

// CacheRoot is where built tools live: $BLINKCHAMBER_TOOLS_CACHE, else
// $XDG_CACHE_HOME/blinkchamber/tools, else ~/.cache/blinkchamber/tools.
func CacheRoot() (string, error) {
	if d := os.Getenv("BLINKCHAMBER_TOOLS_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locating the user cache directory: %w", err)
	}
	return filepath.Join(d, "blinkchamber", "tools"), nil
}

// RepoRoot finds the repository root by walking up from the working
// directory to the go.mod of the main module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(b), "module github.com/blinkchamber/blinkchamber\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod of github.com/blinkchamber/blinkchamber) not found above the working directory")
		}
		dir = parent
	}
}

// key hashes everything that changes the binary.
func (t Tool) key(repo string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(repo, t.ModuleDir, f))
		if err != nil {
			return "", fmt.Errorf("reading %s of tool %s: %w", f, t.Name, err)
		}
		h.Write(b)
	}
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", t.Package, t.LDFlags, runtime.Version(), runtime.GOARCH)
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// Path returns where the tool's binary is (or will be) cached.
func (t Tool) Path(repo string) (string, error) {
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	k, err := t.key(repo)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, fmt.Sprintf("%s-%s-%s", t.Name, t.Version, k), t.Name), nil
}

// Ensure returns the path of the tool's binary, building it first when the
// cache has none. Concurrent callers (parallel test packages) wait on a file
// lock so that one builds and the others reuse.
func (t Tool) Ensure(ctx context.Context, repo string, progress io.Writer) (string, error) {
	bin, err := t.Path(repo)
	if err != nil {
		return "", err
	}
	if isExecutable(bin) {
		return bin, nil
	}
	dir := filepath.Dir(bin)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating tool cache %s: %w", dir, err)
	}
	unlock, err := lock(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // another process built it while we waited
		return bin, nil
	}
	if progress != nil {
		fmt.Fprintf(progress, "building %s %s from Go modules (once per machine, a few minutes)...\n", t.Name, t.Version)
	}
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", t.LDFlags, "-o", tmp, t.Package)
	cmd.Dir = filepath.Join(repo, t.ModuleDir)
	// The tools modules are separate from the main module and must not be
	// vendored or read-only-resolved by a caller's GOFLAGS.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building %s (%s in %s): %w\n%s", t.Name, t.Package, t.ModuleDir, err, tail(out, 4000))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("installing %s: %w", t.Name, err)
	}
	return bin, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func lock(path string) (func(), error) {
	f, err := LockFile(path)
	if err != nil {
		return nil, err
	}
	return func() { UnlockFile(f) }, nil
}

// LockFile takes an exclusive lock on the file at path (made if missing),
// waiting for it. The lock belongs to the file's open description: a child
// process that inherits the file holds it too, until it exits.
func LockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

// UnlockFile releases the lock for every holder of f's open description.
func UnlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
