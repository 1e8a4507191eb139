package keystore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testKeys returns keys whose material is recognisable, so a test can
// check that none of it leaks into a message.
func testKeys(tag string) *Keys {
	return &Keys{
		UnsealKeysB64: []string{"U0VDUkVULUtFWS0x" + tag, "U0VDUkVULUtFWS0y" + tag, "U0VDUkVULUtFWS0z" + tag},
		RootToken:     "hvs.ROOTTOKEN" + tag,
		Threshold:     2,
		CreatedAt:     time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
	}
}

// assertNoLeak fails when s holds any of k's material.
func assertNoLeak(t *testing.T, s string, k *Keys) {
	t.Helper()
	for _, m := range append([]string{k.RootToken}, k.UnsealKeysB64...) {
		if strings.Contains(s, m) {
			t.Errorf("key material in %q", s)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestFileRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "new", "dir", "keys.json")
	s := NewFile(path)
	if _, err := s.Load(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load before Save: %v", err)
	}
	k := testKeys("a")
	if err := s.Save(ctx, k); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !Same(got, k) || !got.CreatedAt.Equal(k.CreatedAt) {
		t.Errorf("loaded %v, saved %v", got, k)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	for _, d := range []string{filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("created directory %s has mode %04o, want 0700", d, st.Mode().Perm())
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want the key file only", len(entries))
	}
	if d := s.Describe(); d != "file "+path {
		t.Errorf("Describe: %q", d)
	}
}

func TestFileSaveIsIdempotentAndNeverReplaces(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.json")
	s := NewFile(path)
	k := testKeys("a")
	if err := s.Save(ctx, k); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	again := testKeys("a")
	again.CreatedAt = time.Now() // a retried save stamps a new time
	if err := s.Save(ctx, again); err != nil {
		t.Errorf("saving the same keys again: %v", err)
	}

	other := testKeys("b")
	err := s.Save(ctx, other)
	if !errors.Is(err, ErrExists) {
		t.Errorf("saving different keys: %v, want ErrExists", err)
	}
	assertNoLeak(t, errString(err), k)
	assertNoLeak(t, errString(err), other)
	for _, change := range []func(*Keys){
		func(k *Keys) { k.RootToken += "x" },
		func(k *Keys) { k.Threshold = 3 },
		func(k *Keys) { k.UnsealKeysB64 = k.UnsealKeysB64[:2] },
		func(k *Keys) { k.UnsealKeysB64[0], k.UnsealKeysB64[1] = k.UnsealKeysB64[1], k.UnsealKeysB64[0] },
	} {
		d := testKeys("a")
		change(d)
		if err := s.Save(ctx, d); !errors.Is(err, ErrExists) {
			t.Errorf("saving keys differing slightly: %v, want ErrExists", err)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("the key file changed")
	}
}

func TestFileRefusesLooseMode(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.json")
	s := NewFile(path)
	k := testKeys("a")
	if err := s.Save(ctx, k); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := s.Load(ctx)
		if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprintf("mode %04o", mode)) ||
			!strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("Load of a %04o file: %v", mode, err)
		}
		err = s.Save(ctx, k)
		if err == nil || !strings.Contains(err.Error(), "left alone") {
			t.Errorf("Save over a %04o file: %v", mode, err)
		}
		assertNoLeak(t, errString(err), k)
	}
}

func TestFileRefusesWhatIsNotAKeyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := testKeys("a")
	secretish := "hvs.SOMETHING-SECRET"
	cases := map[string]func(path string) error{
		"corrupt JSON": func(p string) error { return os.WriteFile(p, []byte(`{"rootToken": "`+secretish), 0o600) },
		"wrong type": func(p string) error {
			return os.WriteFile(p, []byte(`{"rootToken": 7, "unsealKeysB64": "`+secretish+`"}`), 0o600)
		},
		"empty object": func(p string) error { return os.WriteFile(p, []byte(`{}`), 0o600) },
		"empty file":   func(p string) error { return os.WriteFile(p, nil, 0o600) },
		"a directory":  func(p string) error { return os.Mkdir(p, 0o700) },
		"a symlink": func(p string) error {
			target := p + ".target"
			if err := os.WriteFile(target, []byte(`{"rootToken":"x"}`), 0o600); err != nil {
				return err
			}
			return os.Symlink(target, p)
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if err := mk(path); err != nil {
				t.Fatal(err)
			}
			s := NewFile(path)
			_, err := s.Load(ctx)
			if err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("Load: %v", err)
			}
			if strings.Contains(errString(err), secretish) {
				t.Errorf("file content in %q", err)
			}
			err = s.Save(ctx, k)
			if err == nil || errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "left alone") {
				t.Errorf("Save: %v", err)
			}
			assertNoLeak(t, errString(err), k)
			t.Log(err)
		})
	}
}

// TestFileCrashLeftovers simulates saves interrupted at each step: a
// temporary file written in part (crash before its fsync), written in
// full but never linked (crash before the link), and still present next
// to the key file (crash between the link and its removal).
func TestFileCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	k := testKeys("a")
	full, err := encode(k)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("partial temporary file, no key file", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "keys.json")
		tmp := filepath.Join(dir, ".keys.json.tmp-0123456789abcdef")
		if err := os.WriteFile(tmp, full[:len(full)/2], 0o600); err != nil {
			t.Fatal(err)
		}
		s := NewFile(path)
		_, err := s.Load(ctx)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), tmp) {
			t.Fatalf("Load: %v, want ErrNotFound naming %s", err, tmp)
		}
		assertNoLeak(t, err.Error(), k)
		// The next run saves normally and leaves the leftover alone.
		if err := s.Save(ctx, k); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Load(ctx); err != nil || !Same(got, k) {
			t.Fatalf("Load after Save: %v %v", got, err)
		}
		if _, err := os.Stat(tmp); err != nil {
			t.Errorf("the leftover was removed: it may have been the only copy of keys: %v", err)
		}
	})

	t.Run("complete temporary file beside the key file", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "keys.json")
		s := NewFile(path)
		if err := s.Save(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(path, filepath.Join(dir, ".keys.json.tmp-feedfacecafebeef")); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Load(ctx); err != nil || !Same(got, k) {
			t.Fatalf("Load: %v %v", got, err)
		}
		if err := s.Save(ctx, k); err != nil {
			t.Errorf("Save of the same keys: %v", err)
		}
	})
}

// TestFileConcurrentSaves: of racing saves of different keys exactly one
// wins; racing saves of the same keys all succeed.
func TestFileConcurrentSaves(t *testing.T) {
	ctx := context.Background()
	const n = 16
	path := filepath.Join(t.TempDir(), "keys.json")
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = NewFile(path).Save(ctx, testKeys(fmt.Sprint(i)))
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("saves %d and %d both succeeded", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, ErrExists):
			t.Errorf("save %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no save succeeded")
	}
	if got, err := NewFile(path).Load(ctx); err != nil || !Same(got, testKeys(fmt.Sprint(won))) {
		t.Errorf("stored keys are not the winner's: %v", err)
	}

	same := filepath.Join(t.TempDir(), "keys.json")
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = NewFile(same).Save(ctx, testKeys("same"))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("save %d of the same keys: %v", i, err)
		}
	}
}

func TestFileSaveRefusesNoKeys(t *testing.T) {
	s := NewFile(filepath.Join(t.TempDir(), "keys.json"))
	for _, k := range []*Keys{nil, {}} {
		if err := s.Save(context.Background(), k); err == nil {
			t.Errorf("saved %v", k)
		}
	}
}

func TestFileLoadHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewFile(filepath.Join(t.TempDir(), "k")).Load(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
}

func TestKeysNeverPrintTheirMaterial(t *testing.T) {
	k := testKeys("a")
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		assertNoLeak(t, fmt.Sprintf(format, k), k)
		assertNoLeak(t, fmt.Sprintf(format, *k), k)
	}
	var nilKeys *Keys
	_ = fmt.Sprint(nilKeys) // no panic
}

// TestFileWithoutHardLinks: where the filesystem has no hard links, Save
// falls back to a rename after checking the key file is absent.
func TestFileWithoutHardLinks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.json")
	noLinks := func(string, string) error { return &os.LinkError{Op: "link", Err: syscall.EPERM} }
	s := &fileStore{path: path, link: noLinks}
	k := testKeys("a")
	if err := s.Save(ctx, k); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx); err != nil || !Same(got, k) {
		t.Fatalf("Load: %v %v", got, err)
	}
	if err := s.Save(ctx, k); err != nil {
		t.Errorf("same keys: %v", err)
	}
	if err := s.Save(ctx, testKeys("b")); !errors.Is(err, ErrExists) {
		t.Errorf("different keys: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want the key file only", len(entries))
	}
}

// TestFileKeepsTheTemporaryFileWhenItCannotPublish: when the last step
// fails, the keys stay in the temporary file, which the error names.
func TestFileKeepsTheTemporaryFileWhenItCannotPublish(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.json")
	s := &fileStore{path: path, link: func(string, string) error { return &os.LinkError{Op: "link", Err: syscall.EIO} }}
	k := testKeys("a")
	err := s.Save(ctx, k)
	if err == nil {
		t.Fatal("Save succeeded")
	}
	assertNoLeak(t, err.Error(), k)
	left := s.leftovers()
	if len(left) != 1 || !strings.Contains(err.Error(), left[0]) {
		t.Fatalf("error %q, leftovers %v", err, left)
	}
	b, err := os.ReadFile(left[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decode(b); err != nil || !Same(got, k) {
		t.Errorf("the temporary file does not hold the keys: %v", err)
	}
}
