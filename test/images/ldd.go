package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path"
	"strings"
)

// ErrLDD is wrapped when ldd's output names a library it cannot find, or a
// line this parser does not understand.
var ErrLDD = errors.New("reading ldd's output")

// sharedLibraries returns the ELF interpreter and the shared libraries a
// binary loads, as ldd resolves them on this machine; none for a static
// binary.
func sharedLibraries(ctx context.Context, binary string) ([]string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ldd", binary)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// ldd fails on a static binary, saying so.
	if strings.Contains(stdout.String()+stderr.String(), "not a dynamic executable") {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w: %s", binary, err, stderr.String())
	}
	return parseLDD(stdout.String())
}

// parseLDD reads glibc ldd's lines:
//
//	linux-vdso.so.1 (0x00007ffd...)                 the kernel's; nothing to copy
//	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)
//	/lib64/ld-linux-x86-64.so.2 (0x...)              the interpreter
//	libfoo.so.1 => not found                         an error
//	statically linked
func parseLDD(out string) ([]string, error) {
	var libs []string
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "statically linked" {
			continue
		}
		if i := strings.LastIndex(line, " (0x"); i >= 0 && strings.HasSuffix(line, ")") {
			line = line[:i]
		}
		p := line
		if soname, target, ok := strings.Cut(line, " => "); ok {
			if target == "" { // an old ldd's "linux-vdso.so.1 =>  (0x...)"
				continue
			}
			if target == "not found" {
				return nil, fmt.Errorf("%w: %s not found", ErrLDD, soname)
			}
			p = target
		} else if !strings.HasPrefix(line, "/") {
			if strings.HasPrefix(line, "linux-vdso") || strings.HasPrefix(line, "linux-gate") {
				continue
			}
			return nil, fmt.Errorf("%w: %q", ErrLDD, line)
		}
		if !path.IsAbs(p) || path.Clean(p) != p {
			return nil, fmt.Errorf("%w: %q is not a clean absolute path", ErrLDD, p)
		}
		if !seen[p] {
			seen[p] = true
			libs = append(libs, p)
		}
	}
	return libs, nil
}
