package images

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/blinkchamber/blinkchamber/test/toolchain"
)

func TestParseDockerfile(t *testing.T) {
	src := `# syntax=docker/dockerfile:1
ARG BASE=debian
ARG TAG
FROM ${BASE}:12 AS Build
RUN echo one && \
    # a comment inside a continuation
    echo two
FROM --platform=linux/amd64 scratch AS final
ARG VERSION=dev
ARG TAG
LABEL a=1 b="two words" c='$VERSION' \
      d="v=${VERSION}" e=x"y"'z' f="quote\"d"
COPY --from=build --chown=1:1 /out/a /out/b /usr/bin/
COPY ["src dir", "/dst"]
USER 65532:${VERSION}
ENTRYPOINT ["/usr/bin/a", "--flag"]
CMD run --now
`
	stages, err := ParseDockerfile(src, map[string]string{"VERSION": "v1.2.3", "TAG": "given"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Stage{
		{Name: "build", From: "debian:12", Runs: []string{"echo one &&  echo two"}, Labels: map[string]string{}},
		{
			Name: "final", From: "scratch",
			Copies: []Copy{
				{From: "build", Sources: []string{"/out/a", "/out/b"}, Dest: "/usr/bin/"},
				{Sources: []string{"src dir"}, Dest: "/dst"},
			},
			User:       "65532:v1.2.3",
			Entrypoint: []string{"/usr/bin/a", "--flag"},
			Cmd:        []string{"/bin/sh", "-c", "run --now"},
			Labels:     map[string]string{"a": "1", "b": "two words", "c": "$VERSION", "d": "v=v1.2.3", "e": "xyz", "f": `quote"d`},
		},
	}
	if !reflect.DeepEqual(stages, want) {
		t.Errorf("got\n%#v\nwant\n%#v", stages, want)
	}
}

func TestParseDockerfileArgDefaults(t *testing.T) {
	src := "ARG V=global\nFROM x AS a\nARG V\nLABEL v=$V\nFROM y AS b\nARG V=local\nLABEL v=${V}\nFROM z AS c\nLABEL v=${V}\n"
	stages, err := ParseDockerfile(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A stage sees a global ARG only when it declares it again.
	for i, want := range []string{"global", "local", ""} {
		if got := stages[i].Labels["v"]; got != want {
			t.Errorf("stage %s: v=%q, want %q", stages[i].Name, got, want)
		}
	}
}

func TestParseDockerfileRejects(t *testing.T) {
	cases := map[string]string{
		"no FROM":           "# nothing\n",
		"before FROM":       "USER 1\nFROM x\n",
		"bad FROM":          "FROM a b c d\n",
		"COPY one argument": "FROM x\nCOPY a\n",
		"label without =":   "FROM x\nLABEL a b\n",
		"unterminated":      "FROM x\nLABEL a=\"b\n",
		"unterminated '":    "FROM x\nLABEL a='b\n",
		"empty label key":   "FROM x\nLABEL \"\"=b\n",
		"bad ARG":           "ARG =x\nFROM x\n",
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseDockerfile(src, nil); !errors.Is(err, ErrDockerfile) {
				t.Errorf("got %v, want ErrDockerfile", err)
			}
		})
	}
}

func FuzzParseDockerfile(f *testing.F) {
	repo, err := toolchain.RepoRoot()
	if err != nil {
		f.Fatal(err)
	}
	real, err := os.ReadFile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(real))
	f.Add("FROM a AS b\nLABEL k=\"v\\\"\" k2='x' \\\n k3=${A}$B\nCOPY [\"a\",\"b\"]\n")
	f.Add("ARG A=\"x y\"\nFROM $A\nENTRYPOINT [\"a\"\nCMD [1]\n")
	f.Fuzz(func(t *testing.T, src string) {
		stages, err := ParseDockerfile(src, map[string]string{"VERSION": "v1"})
		if err != nil {
			if !errors.Is(err, ErrDockerfile) {
				t.Fatalf("error not wrapping ErrDockerfile: %v", err)
			}
			return
		}
		for _, s := range stages {
			if s.From == "" {
				t.Fatalf("stage %q without a base", s.Name)
			}
			for k := range s.Labels {
				if k == "" {
					t.Fatal("empty label key")
				}
			}
			for _, c := range s.Copies {
				if len(c.Sources) == 0 || c.Dest == "" {
					t.Fatalf("copy %+v", c)
				}
			}
		}
		// Parsing is a function of its input.
		again, _ := ParseDockerfile(src, map[string]string{"VERSION": "v1"})
		if !reflect.DeepEqual(stages, again) {
			t.Fatal("two parses differ")
		}
	})
}

func TestParseLDD(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd4b5f2000)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1c2f000000)\n" +
		"\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f1c2f100000)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f1c2f300000)\n" +
		"\tlinux-vdso.so.1 =>  (0x00007ffd4b5f2000)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1c2f000000)\n"
	got, err := parseLDD(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libm.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, err := parseLDD("\tstatically linked\n"); err != nil || len(got) != 0 {
		t.Errorf("static: %q, %v", got, err)
	}
	for _, bad := range []string{"\tlibfoo.so.1 => not found\n", "\tsomething else\n", "\tlibc.so.6 => lib/rel.so (0x1)\n"} {
		if _, err := parseLDD(bad); !errors.Is(err, ErrLDD) {
			t.Errorf("parseLDD(%q): got %v, want ErrLDD", bad, err)
		}
	}
}

func FuzzParseLDD(f *testing.F) {
	f.Add("\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1c2f000000)\n\t/lib64/ld-linux-x86-64.so.2 (0x1)\n")
	f.Add("\tlinux-vdso.so.1 =>  (0x00007ffd4b5f2000)\n")
	f.Fuzz(func(t *testing.T, out string) {
		libs, err := parseLDD(out)
		if err != nil {
			if !errors.Is(err, ErrLDD) {
				t.Fatalf("error not wrapping ErrLDD: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, l := range libs {
			if !filepath.IsAbs(l) || filepath.Clean(l) != l || seen[l] {
				t.Fatalf("library %q in %q", l, libs)
			}
			seen[l] = true
		}
	})
}
