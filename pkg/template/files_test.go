package template

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// special is one kind of entry a hostile or broken neighbour can put in
// the secrets directory.
type special struct {
	name  string
	plant func(t *testing.T, path string)
	// dir: the entry is a directory, which the writer refuses (and
	// reports) rather than removes.
	dir bool
}

var specials = []special{
	{name: "fifo", plant: func(t *testing.T, p string) { must(t, syscall.Mkfifo(p, 0o600)) }},
	{name: "unix socket", plant: func(t *testing.T, p string) {
		l, err := net.Listen("unix", p)
		must(t, err)
		t.Cleanup(func() { l.Close() })
	}},
	{name: "directory", dir: true, plant: func(t *testing.T, p string) { must(t, os.MkdirAll(filepath.Join(p, "inside"), 0o700)) }},
	{name: "symlink to a fifo", plant: func(t *testing.T, p string) {
		fifo := filepath.Join(t.TempDir(), "fifo")
		must(t, syscall.Mkfifo(fifo, 0o600))
		must(t, os.Symlink(fifo, p))
	}},
	{name: "symlink to /dev/zero", plant: func(t *testing.T, p string) { must(t, os.Symlink("/dev/zero", p)) }},
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// write runs f.Write and fails the test if it has not returned after a
// minute: a deadlock guard, not a timing check (writes take microseconds).
func write(t *testing.T, f *Files, name, data string) (bool, error) {
	t.Helper()
	type result struct {
		changed bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		c, err := f.Write(name, []byte(data), 0o400)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.changed, r.err
	case <-time.After(time.Minute):
		t.Fatalf("writing %s blocked", name)
		return false, nil
	}
}

func assertFile(t *testing.T, path, want string) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() {
		t.Fatalf("%s is not a regular file: %v %v", filepath.Base(path), st, err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Fatalf("%s holds %q (%v), want %q", filepath.Base(path), got, err, want)
	}
}

// TestSpecialFilesNeverBlockWrites: each special entry, at the file's name
// or at its temporary file's name, put there before the first write or
// after it (while running): the write returns; other files keep being
// written; anything but a directory is replaced, a directory is reported
// (ErrNotRegular) until it is removed, then the file is written again.
func TestSpecialFilesNeverBlockWrites(t *testing.T) {
	for _, sp := range specials {
		for _, when := range []string{"before start", "while running"} {
			t.Run(sp.name+" at the file's name "+when, func(t *testing.T) {
				dir := t.TempDir()
				f := NewFiles(dir)
				target := filepath.Join(dir, "a")
				if when == "while running" {
					if _, err := write(t, f, "a", "one"); err != nil {
						t.Fatal(err)
					}
					must(t, os.Remove(target))
				}
				sp.plant(t, target)
				if when == "while running" && f.Intact("a") {
					t.Error("Intact does not see the file replaced")
				}
				changed, err := write(t, f, "a", "one")
				if _, oerr := write(t, f, "b", "other"); oerr != nil {
					t.Fatalf("another file was not written: %v", oerr)
				}
				assertFile(t, filepath.Join(dir, "b"), "other")
				if sp.dir {
					if !errors.Is(err, ErrNotRegular) {
						t.Fatalf("a directory at the name: err = %v, want ErrNotRegular", err)
					}
					must(t, os.RemoveAll(target))
					changed, err = write(t, f, "a", "one")
				}
				if err != nil || !changed {
					t.Fatalf("write = %v, %v; want the file written", changed, err)
				}
				assertFile(t, target, "one")
				if !f.Intact("a") {
					t.Error("the file just written is not Intact")
				}
				if changed, err := write(t, f, "a", "one"); changed || err != nil {
					t.Errorf("an unchanged file was written again (%v, %v)", changed, err)
				}
			})
			t.Run(sp.name+" at the temporary file's name "+when, func(t *testing.T) {
				dir := t.TempDir()
				f := NewFiles(dir)
				if when == "while running" {
					if _, err := write(t, f, "a", "one"); err != nil {
						t.Fatal(err)
					}
				}
				// Temporary names are random; the test makes one collide.
				sp.plant(t, filepath.Join(dir, ".a.tmp-fixed"))
				f.tempSuffix = func() (string, error) { return "fixed", nil }
				_, err := write(t, f, "a", "two")
				if !errors.Is(err, os.ErrExist) {
					t.Fatalf("a taken temporary name: err = %v, want it to exist (O_EXCL)", err)
				}
				f.tempSuffix = randomSuffix
				if changed, err := write(t, f, "a", "two"); err != nil || !changed {
					t.Fatalf("the next write = %v, %v", changed, err)
				}
				assertFile(t, filepath.Join(dir, "a"), "two")
			})
		}
	}
}

// TestUnchangedAfterRestart: a new Files (an agent restarted, a sidecar
// after its init container) leaves a file that holds the data alone,
// reading it without blocking, and rewrites one that differs or has
// another mode.
func TestUnchangedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	if _, err := write(t, NewFiles(dir), "a", "same"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		data    string
		changed bool
	}{{"same", false}, {"diff", true}, {"longer", true}} {
		if changed, err := write(t, NewFiles(dir), "a", c.data); err != nil || changed != c.changed {
			t.Errorf("%q: changed = %v, %v; want %v", c.data, changed, err, c.changed)
		}
	}
	must(t, os.Chmod(filepath.Join(dir, "a"), 0o600))
	if changed, _ := write(t, NewFiles(dir), "a", "longer"); !changed {
		t.Error("a file with another mode was left alone")
	}
}

// TestInPlaceChangeIsSeen: a file changed in place (same inode) is not
// Intact, and the next write restores it.
func TestInPlaceChangeIsSeen(t *testing.T) {
	dir := t.TempDir()
	f := NewFiles(dir)
	if _, err := write(t, f, "a", "good"); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "a")
	must(t, os.Chmod(p, 0o600))
	must(t, os.WriteFile(p, []byte("evil"), 0o600))
	must(t, os.Chmod(p, 0o400))
	if f.Intact("a") {
		t.Fatal("a file rewritten in place reads as Intact")
	}
	if changed, err := write(t, f, "a", "good"); err != nil || !changed {
		t.Fatalf("write = %v, %v", changed, err)
	}
	assertFile(t, p, "good")
}

// TestReadRegularRefusesSpecialFiles: the state file reader returns at once
// with ErrNotRegular for every special entry, and bounds what it reads.
func TestReadRegularRefusesSpecialFiles(t *testing.T) {
	for _, sp := range specials {
		p := filepath.Join(t.TempDir(), "state.json")
		sp.plant(t, p)
		if _, err := ReadRegular(p, 1<<20); !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: err = %v, want ErrNotRegular", sp.name, err)
		}
	}
	p := filepath.Join(t.TempDir(), "big")
	must(t, os.WriteFile(p, make([]byte, 100), 0o600))
	if _, err := ReadRegular(p, 99); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a 100-byte file read with a bound of 99: err = %v, want ErrTooLarge", err)
	}
	if b, err := ReadRegular(p, 100); err != nil || len(b) != 100 {
		t.Errorf("ReadRegular = %d bytes, %v", len(b), err)
	}
}
