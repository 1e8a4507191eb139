package template

import (
	"bytes"
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

// WriteFile replaces dir/name with data atomically: a temporary file in the
// same directory, written, synced, given its mode, then renamed over the
// old one, so a reader sees the old file or the new one, never a part. When
// the file already holds data with mode perm, nothing is written and changed
// is false. A symlink planted at name is replaced, never followed.
func WriteFile(dir, name string, data []byte, perm fs.FileMode) (changed bool, err error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	target := filepath.Join(dir, name)
	if same, err := unchanged(target, data, perm); err != nil {
		return false, err
	} else if same {
		return false, nil
	}
	tmp, err := createTemp(dir, name, perm)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return false, fmt.Errorf("writing %s: %w", name, err)
	}
	// The umask may have narrowed the mode at creation; set it exactly.
	if err = tmp.Chmod(perm); err != nil {
		return false, fmt.Errorf("setting mode of %s: %w", name, err)
	}
	if err = tmp.Sync(); err != nil {
		return false, fmt.Errorf("syncing %s: %w", name, err)
	}
	if err = tmp.Close(); err != nil {
		return false, fmt.Errorf("closing %s: %w", name, err)
	}
	if err = os.Rename(tmp.Name(), target); err != nil {
		return false, fmt.Errorf("replacing %s: %w", name, err)
	}
	return true, fsync.Dir(dir)
}

// ErrFileName is wrapped when a file name would leave the directory or
// cannot be a file name at all. Callers validate names earlier (admission,
// config decoding); this is the last line, where the file is written.
var ErrFileName = errors.New("invalid file name")

func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: %q is not a file name", ErrFileName, name)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("%w: %q contains a path separator or NUL", ErrFileName, name)
	case len(name) > 255:
		return fmt.Errorf("%w: %d bytes, more than 255", ErrFileName, len(name))
	}
	return nil
}

func createTemp(dir, name string, perm fs.FileMode) (*os.File, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	// Dot files are reserved for the agent: no user file name starts with a
	// dot. The name is cut so that a 255-byte name still has a temporary
	// file within the 255-byte limit.
	p := filepath.Join(dir, "."+name[:min(len(name), 200)]+".tmp-"+hex.EncodeToString(b[:]))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file for %s: %w", name, err)
	}
	return f, nil
}

// unchanged reports whether path is a regular file holding data with perm.
func unchanged(path string, data []byte, perm fs.FileMode) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != perm || st.Size() != int64(len(data)) {
		return false, nil
	}
	old, err := io.ReadAll(f)
	if err != nil {
		return false, nil
	}
	return bytes.Equal(old, data), nil
}
