// Package images checks the binaries the Dockerfile puts in the images,
// built the same way: static (the distroless static base has no libc) and
// small.
package images

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

// TestBinariesAreStatic builds each command with the Dockerfile's flags and
// checks that it has no ELF interpreter and no dynamic section, and reports
// its size; the agent must stay under 25 MB (issue #3).
func TestBinariesAreStatic(t *testing.T) {
	repo, err := toolchain.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	limits := map[string]int64{"agent": 25_000_000, "injector": 0, "blinkchamber": 0}
	for cmd, limit := range limits {
		t.Run(cmd, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), cmd)
			build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/"+cmd)
			build.Dir, build.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
			if b, err := build.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("%s is dynamically linked (%s segment)", cmd, p.Type)
				}
			}
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.1f MB stripped, static", cmd, float64(st.Size())/1e6)
			if limit > 0 && st.Size() > limit {
				t.Errorf("%s is %d bytes, over the %d limit", cmd, st.Size(), limit)
			}
		})
	}
}

// TestInjectorAndAgentLeaveOutTheImageLibrary keeps go-containerregistry
// (and what it pulls in) to the CLI, which pushes images: the injector and
// the agent run in every cluster and should stay small.
func TestInjectorAndAgentLeaveOutTheImageLibrary(t *testing.T) {
	repo, err := toolchain.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	list := exec.Command("go", "list", "-deps", "./cmd/injector", "./cmd/agent")
	list.Dir = repo
	out, err := list.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/google/go-containerregistry") {
			t.Errorf("the injector or the agent imports %s", pkg)
		}
	}
}
