package keystore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/blinkchamber/blinkchamber/pkg/fsync"
)

// maxFileSize bounds a key file; keys and a token are a few kilobytes.
const maxFileSize = 1 << 20

// fileStore keeps the keys in one JSON file, mode 0600.
type fileStore struct {
	path string
	// link is os.Link; tests stand in a filesystem without hard links.
	link func(oldname, newname string) error
}

// NewFile returns a store that keeps the keys in the file at path (made
// absolute). Save creates missing parent directories with mode 0700 and
// the file with mode 0600, atomically: a temporary file in the same
// directory is written and synced, then hard-linked to path, which fails
// rather than replaces when path exists, and the directory is synced.
// Load and Save refuse a file that its group or others may read or write,
// a symbolic link, and anything but a regular file.
//
// Save does not stop for a cancelled context: the keys it is given may
// exist nowhere else.
func NewFile(path string) Store {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return &fileStore{path: path, link: os.Link}
}

func (f *fileStore) Describe() string { return "file " + f.path }

func (f *fileStore) Load(ctx context.Context) (*Keys, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return f.read()
}

func (f *fileStore) Save(_ context.Context, k *Keys) error {
	if err := check(k); err != nil {
		return fmt.Errorf("saving keys to %s: %w", f.Describe(), err)
	}
	if done, err := f.compare(k); done {
		return err
	}
	data, err := encode(k)
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", f.Describe(), err)
	}
	tmp, err := f.writeTemp(dir, data)
	if err != nil {
		return err
	}
	return f.publish(dir, tmp, k)
}

// compare looks at what is stored already. done is false only when nothing
// is; otherwise err is nil for the same keys, wraps ErrExists for
// different ones, or says why the file is left alone.
func (f *fileStore) compare(k *Keys) (done bool, err error) {
	old, err := f.read()
	switch {
	case err == nil && Same(old, k):
		return true, nil
	case err == nil:
		return true, fmt.Errorf("%w in %s: refusing to replace them; they may be the only copy of another Vault's keys", ErrExists, f.Describe())
	case errors.Is(err, ErrNotFound):
		return false, nil
	}
	return true, fmt.Errorf("%w; it is left alone", err)
}

// writeTemp writes data to a new temporary file next to the key file and
// syncs it. The temporary file is removed on failure: it is incomplete.
func (f *fileStore) writeTemp(dir string, data []byte) (name string, err error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("naming a temporary file for %s: %w", f.Describe(), err)
	}
	name = filepath.Join(dir, f.tempPrefix()+hex.EncodeToString(r[:]))
	t, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", fmt.Errorf("creating a temporary file for %s: %w", f.Describe(), err)
	}
	defer func() {
		if err != nil {
			t.Close()
			os.Remove(name)
		}
	}()
	if _, err = t.Write(data); err != nil {
		return "", fmt.Errorf("writing %s: %w", name, err)
	}
	// The umask may have narrowed the mode at creation; set it exactly.
	if err = t.Chmod(0o600); err != nil {
		return "", fmt.Errorf("setting the mode of %s: %w", name, err)
	}
	if err = t.Sync(); err != nil {
		return "", fmt.Errorf("syncing %s: %w", name, err)
	}
	if err = t.Close(); err != nil {
		return "", fmt.Errorf("closing %s: %w", name, err)
	}
	return name, nil
}

// publish gives the complete temporary file the key file's name, never
// replacing a file that appeared meanwhile. When it fails for another
// reason the temporary file is kept and named in the error: it holds the
// keys.
func (f *fileStore) publish(dir, tmp string, k *Keys) error {
	err := f.link(tmp, f.path)
	switch {
	case err == nil:
		os.Remove(tmp) // a second name of the same file; harmless if it stays
	case errors.Is(err, fs.ErrExist):
		// Another save won the race: compare with what it stored.
		if done, err := f.compare(k); done {
			os.Remove(tmp)
			return err
		}
		return fmt.Errorf("%s appeared and vanished while saving; the keys are in %s meanwhile", f.Describe(), tmp)
	case linkUnsupported(err):
		// No hard links here: check, then rename, which leaves a short
		// window in which a concurrent save could be replaced.
		if _, err := os.Lstat(f.path); err == nil {
			if done, err := f.compare(k); done {
				os.Remove(tmp)
				return err
			}
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return fmt.Errorf("storing keys in %s: %w; they are in %s meanwhile", f.Describe(), err, tmp)
		}
	default:
		return fmt.Errorf("storing keys in %s: %w; they are in %s meanwhile", f.Describe(), err, tmp)
	}
	return fsync.Dir(dir)
}

func linkUnsupported(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP)
}

// read loads and checks the key file.
func (f *fileStore) read() (*Keys, error) {
	fd, err := os.OpenFile(f.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, f.notFound()
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("%s is a symbolic link; keys are kept in a regular file only", f.Describe())
	case err != nil:
		return nil, fmt.Errorf("opening %s: %w", f.Describe(), err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Describe(), err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", f.Describe())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o: it holds Vault's unseal keys and root token, so only its owner may read or write it (chmod 600 %s)",
			f.Describe(), perm, f.path)
	}
	b, err := io.ReadAll(io.LimitReader(fd, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Describe(), err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a key file", f.Describe(), maxFileSize)
	}
	k, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Describe(), err)
	}
	return k, nil
}

// notFound wraps ErrNotFound, naming the temporary files an interrupted
// save may have left: one of them may hold the keys.
func (f *fileStore) notFound() error {
	if left := f.leftovers(); len(left) > 0 {
		return fmt.Errorf("%w in %s; an interrupted save left %s, which may hold them: check, then rename it to %s",
			ErrNotFound, f.Describe(), strings.Join(left, ", "), f.path)
	}
	return fmt.Errorf("%w in %s", ErrNotFound, f.Describe())
}

func (f *fileStore) tempPrefix() string { return "." + filepath.Base(f.path) + ".tmp-" }

func (f *fileStore) leftovers() []string {
	dir := filepath.Dir(f.path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var left []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), f.tempPrefix()) {
			left = append(left, filepath.Join(dir, e.Name()))
		}
	}
	return left
}
